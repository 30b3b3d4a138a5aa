export { evaluate, type EvalResult, type EvalOptions, type Batch } from './evaluate.js';
export { evaluateDataset, type DatasetEvalOptions } from './dataset.js';
