// Attack losses on logits, one value per example (attacks maximise them).
import { Tensor, ops } from '../torch/index.js';

export type LossName = 'ce' | 'cw' | 'dlr';
/** A per-example loss on logits, to maximise. */
export type Loss = (logits: Tensor, y: Tensor) => Tensor;

/** Cross-entropy per example. */
export function ceLoss(logits: Tensor, y: Tensor): Tensor {
  return ops.crossEntropy(logits, y, null, 0);
}

/**
 * Largest logit other than the true class's. The true class is masked with −∞, which every floating type holds
 * (a finite stand-in such as −1e9 does not fit float16: libtorch refuses the fill, e.g. under fp16 autocast).
 */
function maxOther(logits: Tensor, y: Tensor): Tensor {
  const onehot = ops.oneHot(y, logits.size(1)).gt(0);
  return logits.maskedFill(onehot, -Infinity).amax(1);
}

/** Carlini–Wagner margin: max_{i≠y} z_i − z_y (positive once misclassified). */
export function cwLoss(logits: Tensor, y: Tensor): Tensor {
  const zy = logits.gather(1, y.unsqueeze(1)).squeeze(1);
  return maxOther(logits, y).sub(zy);
}

/** Difference of logits ratio (Croce & Hein 2020): scale-invariant margin. */
export function dlrLoss(logits: Tensor, y: Tensor): Tensor {
  const [sorted] = logits.sort(1, true);
  const zy = logits.gather(1, y.unsqueeze(1)).squeeze(1);
  const denom = sorted.select(1, 0).sub(sorted.select(1, 2)).add(1e-12);
  return maxOther(logits, y).sub(zy).div(denom);
}

/**
 * Targeted DLR (Croce & Hein 2020): −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2), π the classes by decreasing logit;
 * t holds the target class per example. Needs at least 4 classes.
 */
export function dlrTargetedLoss(t: Tensor): Loss {
  return (logits: Tensor, y: Tensor) => {
    if (logits.size(1) < 4) throw new RangeError(`the targeted DLR loss needs at least 4 classes, got ${logits.size(1)}`);
    const [sorted] = logits.sort(1, true);
    const zy = logits.gather(1, y.unsqueeze(1)).squeeze(1);
    const zt = logits.gather(1, t.unsqueeze(1)).squeeze(1);
    const denom = sorted.select(1, 0).sub(sorted.select(1, 2).add(sorted.select(1, 3)).mul(0.5)).add(1e-12);
    return zt.sub(zy).div(denom);
  };
}

export function lossFn(name: LossName): Loss {
  switch (name) {
    case 'ce': return ceLoss;
    case 'cw': return cwLoss;
    case 'dlr': return dlrLoss;
    default: throw new RangeError(`unknown attack loss '${String(name)}' (known: ce, cw, dlr)`);
  }
}
