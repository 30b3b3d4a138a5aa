// Dynamic loss scaling for float16 training, with exactly torch.cuda.amp.GradScaler's rule. float16's range is
// small: gradients below 2⁻²⁴ flush to zero. The loss is multiplied by a large scale S before backward, so the
// gradients come out S times larger; before the step they are divided by S again. When any gradient is
// infinite or NaN (S too large), the step is skipped and S shrinks; after `growthInterval` good steps in a row,
// S grows:
//
//   scaler.scale(loss).backward();
//   const stepped = scaler.step(opt);   // unscale, check for inf/NaN, opt.step() only when all finite
//   scaler.update();                    // S ← S·backoff after a skipped step; S ← S·growth after N good ones
//
// Free training's input gradient comes out scaled too. Its sign, all that δ uses, is the unscaled one's; but
// where the scaled gradient underflowed to 0 the sign is 0 and δ does not move, and a skipped step must leave δ
// alone as well (free.ts).
import { Tensor, noGrad, scope, ops } from '../torch/index.js';
import type { SGD } from './sgd.js';

export interface GradScalerOptions {
  /** The starting scale (PyTorch: 2¹⁶). */
  initScale?: number;
  /** The factor after `growthInterval` steps without inf/NaN (2). */
  growthFactor?: number;
  /** The factor after a step with inf/NaN gradients (0.5). */
  backoffFactor?: number;
  /** Good steps in a row before the scale grows (2000). */
  growthInterval?: number;
}

export interface GradScalerState {
  scale: number;
  growth_tracker: number;
}

export class GradScaler {
  /** The current scale S. */
  scaleValue: number;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  /** Good steps since the scale last changed. */
  growthTracker = 0;
  /** Whether the gradients of the current step are unscaled, and whether any was inf/NaN. */
  private unscaled = false;
  private foundInf = false;
  /** Steps skipped so far (for the run's summary). */
  skipped = 0;

  constructor(opts: GradScalerOptions = {}) {
    this.scaleValue = opts.initScale ?? 2 ** 16;
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    if (!(this.scaleValue > 0) || !(this.growthFactor > 1) || !(this.backoffFactor > 0 && this.backoffFactor < 1) || !(this.growthInterval >= 1))
      throw new RangeError('GradScaler: needs initScale > 0, growthFactor > 1, 0 < backoffFactor < 1, growthInterval >= 1');
  }

  /** loss · S (a new tensor, to call backward on), in float32. */
  scale(loss: Tensor): Tensor {
    return loss.float().mul(this.scaleValue);
  }

  /** Divides the optimizer's gradients by S in place and records whether any of them is inf or NaN. */
  unscale(opt: SGD): boolean {
    if (this.unscaled) return this.foundInf;
    const grads = opt.params.map((p) => p.grad).filter((g): g is Tensor => g !== undefined);
    this.foundInf = noGrad(() =>
      scope(() => {
        if (!grads.length) return false;
        const finite = ops.stack(grads.map((g) => g.isfinite().all()));
        for (const g of grads) g.mul_(1 / this.scaleValue);
        return !finite.all().item();
      }),
    );
    this.unscaled = true;
    return this.foundInf;
  }

  /** Unscales (unless done already) and takes the optimizer's step unless a gradient was inf/NaN. Returns whether it stepped. */
  step(opt: SGD): boolean {
    const inf = this.unscale(opt);
    if (inf) this.skipped++;
    else opt.step();
    return !inf;
  }

  /** Adjusts S after a step: backoff after inf/NaN, growth after growthInterval good steps. */
  update(): void {
    if (!this.unscaled) throw new Error('GradScaler.update: no step was taken since the last update');
    if (this.foundInf) {
      this.scaleValue *= this.backoffFactor;
      this.growthTracker = 0;
    } else if (++this.growthTracker === this.growthInterval) {
      this.scaleValue *= this.growthFactor;
      this.growthTracker = 0;
    }
    this.unscaled = this.foundInf = false;
  }

  /** What a checkpoint keeps (the names of PyTorch's GradScaler.state_dict()). */
  stateDict(): GradScalerState {
    return { scale: this.scaleValue, growth_tracker: this.growthTracker };
  }

  loadStateDict(s: GradScalerState): void {
    if (!(typeof s.scale === 'number' && s.scale > 0 && Number.isInteger(s.growth_tracker) && s.growth_tracker >= 0))
      throw new RangeError(`GradScaler state must have a positive scale and a growth_tracker >= 0, got ${JSON.stringify(s)}`);
    this.scaleValue = s.scale;
    this.growthTracker = s.growth_tracker;
  }
}
