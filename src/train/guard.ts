// The guard: PGD-10 accuracy on a fixed batch of training images after every pass. It picks best.safetensors
// and stops methods that overfit catastrophically (FGSM). With several processes each rank attacks its block of
// the batch and the counts are summed.
import { Tensor, scope, keep, noGrad, dist, type DType } from '../torch/index.js';
import { inEvalMode, type Module } from '../nn/index.js';
import { DataError, type Dataset } from '../data/index.js';
import { firstImages } from '../data/tensor.js';
import { PGD } from '../attacks/index.js';

export const GUARD_IMAGES = 512;
const GUARD_STEPS = 10;

export class Guard {
  private constructor(private readonly x: Tensor, private readonly y: Tensor, private readonly eps: number, private readonly group?: dist.Rank) {}

  /** The first GUARD_IMAGES training images in file order, without augmentation; a rank keeps its block. */
  static async create(data: Dataset, o: { eps: number; device: string; dtype: DType; rank?: dist.Rank }): Promise<Guard> {
    const t = await firstImages(data, GUARD_IMAGES, o.device, o.dtype);
    if (!t) throw new DataError('the training set yielded no images');
    const group = o.rank && o.rank.worldSize > 1 ? o.rank : undefined;
    if (!group) return new Guard(keep(t.x), keep(t.y), o.eps);
    const n = t.y.size(0);
    const lo = Math.floor((group.rank * n) / group.worldSize), hi = Math.floor(((group.rank + 1) * n) / group.worldSize);
    const part = scope(() => keep({ x: t.x.narrow(0, lo, hi - lo).contiguous(), y: t.y.narrow(0, lo, hi - lo).contiguous() }));
    t.x.dispose();
    t.y.dispose();
    return new Guard(part.x, part.y, o.eps, group);
  }

  /** PGD-10 robust accuracy of the model on the guard batch (over all ranks). 0 when ε is 0. */
  accuracy(model: Module): number {
    const n = this.y.size(0);
    const correct = this.eps === 0 || n === 0 ? 0 : scope(() => {
      const adv = new PGD(model, { eps: this.eps, steps: GUARD_STEPS }).run(this.x, this.y);
      return inEvalMode(model, () => noGrad(() => model.forward(adv).argmax(1).eq(this.y).float().mean().item()));
    });
    if (!this.group) return correct;
    const [c, total] = dist.allReduceNumbers([Math.round(correct * n), n]);
    return c! / total!;
  }

  dispose(): void {
    this.x.dispose();
    this.y.dispose();
  }
}
