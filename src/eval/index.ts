export { evaluate, type EvalResult, type EvalOptions, type Batch } from './evaluate.js';
export { makeAttack, parseAttackName, type AttackSettings } from './attacks.js';
