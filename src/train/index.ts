export { train, evaluateOn, methods, precheck, readRunConfig, InterruptedError, TrainingError, RUN_FILES, type Summary, type TrainOptions } from './loop.js';
export { resolveConfig, parseNumber, ConfigError, type TrainConfig, type MethodName } from './config.js';
export type { Method, TrainContext } from './method.js';
export { free } from './free.js';
export { pgd } from './pgd.js';
export { fgsm } from './fgsm.js';
export { natural } from './natural.js';
