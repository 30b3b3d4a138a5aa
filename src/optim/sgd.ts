// SGD with momentum, Nesterov and weight decay, with exactly torch.optim.SGD's update rule:
//   g ← ∇ + wd·p;  b ← g (first step) or μ·b + (1−dampening)·g;  g ← g + μ·b (Nesterov) or b;  p ← p − lr·g
import { Tensor, keep, noGrad, scope } from '../torch/index.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD {
  lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  /** Momentum buffers, one per parameter (created on the first step, like PyTorch). */
  private buffers: (Tensor | undefined)[];

  constructor(readonly params: Tensor[], opts: SGDOptions) {
    this.lr = opts.lr;
    this.momentum = opts.momentum ?? 0;
    this.dampening = opts.dampening ?? 0;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0))
      throw new RangeError('Nesterov momentum requires a momentum and zero dampening');
    this.buffers = params.map(() => undefined);
  }

  /** Applies one update from the parameters' accumulated .grad (parameters without a gradient are skipped). */
  step(): void {
    noGrad(() =>
      scope(() => {
        this.params.forEach((p, i) => {
          const grad = p.grad;
          if (!grad) return;
          let d = this.weightDecay !== 0 ? grad.add(p, this.weightDecay) : grad;
          if (this.momentum !== 0) {
            let b = this.buffers[i];
            if (!b) b = this.buffers[i] = keep(d.clone());
            else b.mul_(this.momentum).add_(d, 1 - this.dampening);
            d = this.nesterov ? d.add(b, this.momentum) : b;
          }
          p.add_(d, -this.lr);
        });
      }),
    );
  }

  /** Drops the gradients (set to None, freeing their memory). */
  zeroGrad(): void {
    for (const p of this.params) p.grad = undefined;
  }

  /** Momentum buffers by parameter index, for checkpoints ('momentum_buffer.<i>'). */
  stateDict(): Record<string, Tensor> {
    const sd: Record<string, Tensor> = {};
    this.buffers.forEach((b, i) => {
      if (b) sd[`momentum_buffer.${i}`] = b;
    });
    return sd;
  }

  loadStateDict(sd: Record<string, Tensor>): void {
    noGrad(() => {
      this.buffers.forEach((b, i) => {
        const s = sd[`momentum_buffer.${i}`];
        if (!s) return;
        if (s.shape.join() !== this.params[i]!.shape.join())
          throw new RangeError(`optimizer state momentum_buffer.${i} has shape [${s.shape}], parameter has [${this.params[i]!.shape}]`);
        // as torch.optim's load_state_dict: the state takes its parameter's device and dtype (a checkpoint is read
        // onto the CPU; a buffer left there would fail the first step on a GPU)
        if (b) b.copy_(s);
        else this.buffers[i] = keep(scope(() => s.to(this.params[i]!.device).to(this.params[i]!.dtype, { copy: true })));
      });
    });
  }

  dispose(): void {
    for (const b of this.buffers) b?.dispose();
    this.buffers = this.params.map(() => undefined);
  }
}
