export { Attack, WorstCase, correct, lossInputGrad } from './attack.js';
export { FGSM } from './fgsm.js';
export { PGD, type PGDOptions } from './pgd.js';
export { APGD, apgd, checkpointGaps, sphereStart, type APGDOptions } from './apgd.js';
export { APGDT, targetClass, type APGDTOptions } from './apgd-t.js';
export { FABT, boundaryStep, type FABOptions } from './fab.js';
export { Square, squareFraction, squareBlock, type SquareOptions } from './square.js';
export { Linf, L2, threatModel, type ThreatModel } from './threat.js';
export { ceLoss, cwLoss, dlrLoss, dlrTargetedLoss, lossFn, type LossName, type Loss } from './losses.js';
