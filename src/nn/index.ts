export { Module, StateDictError, chain, release } from './module.js';
export * from './layers.js';
