export { Module, StateDictError } from './module.js';
export * from './layers.js';
