// Threat models: how an attack steps, projects and starts inside its ε-ball. A new norm is one class.
// All images live in [0, 1]; ε is in pixel units.
import { Tensor, ops, randLike, randnLike } from '../torch/index.js';

export interface ThreatModel {
  readonly norm: 'linf' | 'l2';
  readonly eps: number;
  /** One ascent step of size alpha along the gradient g (steepest ascent for the norm). */
  step(x: Tensor, g: Tensor, alpha: number): Tensor;
  /** The steepest-ascent direction of unit norm for g, per example: sign(g) (L∞), g/‖g‖₂ (L2). */
  direction(g: Tensor): Tensor;
  /** The norm of each example's perturbation d (shape [B]). */
  magnitude(d: Tensor): Tensor;
  /** Projection onto the ε-ball around x0 intersected with [0, 1]. */
  project(x: Tensor, x0: Tensor): Tensor;
  /** A random point of the ε-ball around x0 (inside [0, 1]). */
  randomStart(x0: Tensor): Tensor;
}

/** L∞ ball: sign-gradient steps, per-pixel clipping (the paper's threat model). */
export class Linf implements ThreatModel {
  readonly norm = 'linf' as const;
  constructor(readonly eps: number) {}
  step(x: Tensor, g: Tensor, alpha: number): Tensor {
    return x.add(g.sign(), alpha);
  }
  direction(g: Tensor): Tensor {
    return g.sign();
  }
  magnitude(d: Tensor): Tensor {
    return d.flatten(1).abs().amax(1);
  }
  project(x: Tensor, x0: Tensor): Tensor {
    return x.clamp(x0.sub(this.eps), x0.add(this.eps)).clamp_(0, 1);
  }
  randomStart(x0: Tensor): Tensor {
    return x0.add(randLike(x0).mul_(2 * this.eps).add_(-this.eps)).clamp_(0, 1);
  }
}

const perExampleNorm = (t: Tensor) => t.flatten(1).norm(2, 1).clamp(1e-12, null).view(-1, ...Array(t.ndim - 1).fill(1));

/** L2 ball: normalised-gradient steps, radial projection. */
export class L2 implements ThreatModel {
  readonly norm = 'l2' as const;
  constructor(readonly eps: number) {}
  step(x: Tensor, g: Tensor, alpha: number): Tensor {
    return x.add(g.div(perExampleNorm(g)), alpha);
  }
  direction(g: Tensor): Tensor {
    return g.div(perExampleNorm(g));
  }
  magnitude(d: Tensor): Tensor {
    return d.flatten(1).norm(2, 1);
  }
  project(x: Tensor, x0: Tensor): Tensor {
    const d = x.sub(x0);
    const n = perExampleNorm(d);
    const factor = ops.reciprocal(n).mul_(this.eps).clamp_(null, 1);
    return x0.add(d.mul(factor)).clamp_(0, 1);
  }
  randomStart(x0: Tensor): Tensor {
    const d = randnLike(x0);
    const n = perExampleNorm(d);
    const r = randLike(n).mul_(this.eps);
    return x0.add(d.div(n).mul(r)).clamp_(0, 1);
  }
}

export function threatModel(norm: 'linf' | 'l2', eps: number): ThreatModel {
  if (!(eps >= 0)) throw new RangeError(`eps must be >= 0, got ${eps}`);
  return norm === 'l2' ? new L2(eps) : new Linf(eps);
}
