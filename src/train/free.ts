/**
 * "Free" adversarial training — Shafahi et al., "Adversarial Training for Free!" (NeurIPS 2019), Algorithm 1.
 *
 *   δ ← 0                                   (one batch's shape; persists across minibatches, never reset)
 *   for ceil(epochs / m) passes, for each minibatch (x, y):
 *     repeat m times:
 *       g_θ, g_x ← ∇θ, ∇x  ℓ(f_θ(clip(x + δ, 0, 1)), y)      ← one backward pass yields both
 *       θ ← θ − lr · g_θ                     (SGD with momentum)
 *       δ ← clip(δ + ε_step · sign(g_x), −ε, ε)
 *
 * The SGD steps, and so the forward/backward passes, equal natural training's for the same epoch budget.
 * A smaller last batch uses the first rows of δ.
 */
import { ops, scope, noGrad, zeros } from '../torch/index.js';
import type { Method } from './method.js';

export const free: Method = {
  name: 'free',
  passes: (cfg) => Math.ceil(cfg.epochs / cfg.replays),
  stepsPerBatch: (cfg) => cfg.replays,
  backwardPerStep: () => 1,
  init(ctx) {
    ctx.state.set('delta', zeros(ctx.batchShape, { device: ctx.cfg.device }).keep());
  },
  batch(ctx, x, y) {
    const { eps, replays } = ctx.cfg;
    const step = ctx.cfg.stepSize ?? eps;
    const delta = ctx.state.get('delta')!;
    const n = x.size(0);
    for (let i = 0; i < replays; i++) {
      scope(() => {
        const d = delta.narrow(0, 0, n).clone().requiresGrad_();
        const logits = ctx.model.forward(x.add(d).clamp(0, 1));
        const loss = ops.crossEntropy(logits, y);
        ctx.sgdStep(loss);
        noGrad(() => delta.narrow(0, 0, n).add_(d.grad!.sign(), step).clamp_(-eps, eps));
        ctx.record(loss, logits, y);
      });
    }
  },
};
