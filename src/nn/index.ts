export { Module, StateDictError, chain, release, inEvalMode } from './module.js';
export * from './layers.js';
