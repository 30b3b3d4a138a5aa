export { Attack, correct, lossInputGrad, perExample } from './attack.js';
export { FGSM } from './fgsm.js';
export { PGD, type PGDOptions } from './pgd.js';
export { APGD } from './apgd.js';
export { Linf, L2, threatModel, type ThreatModel } from './threat.js';
export { ceLoss, cwLoss, dlrLoss, lossFn, type LossName } from './losses.js';
export { makeAttack, checkAttackName, attackUsage, type AttackSettings, type AttackEntry } from './registry.js';
