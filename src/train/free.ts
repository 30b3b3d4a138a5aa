/**
 * "Free" adversarial training — Shafahi et al., "Adversarial Training for Free!" (NeurIPS 2019), Algorithm 1.
 *
 *   δ ← 0                                   (one batch's shape; persists across minibatches, never reset)
 *   for ceil(epochs / m) passes, for each minibatch (x, y):
 *     repeat m times:
 *       x_adv ← clip(x + δ, 0, 1)
 *       g_θ, g_x ← ∇θ, ∇x  ℓ(f_θ(x_adv), y)   ← one backward pass yields both
 *       θ ← θ − lr · g_θ                     (SGD with momentum)
 *       δ ← clip(δ + ε_step · sign(g_x), −ε, ε)
 *
 * The SGD steps, and so the forward/backward passes, equal natural training's for the same epoch budget.
 * A smaller last batch uses the first rows of δ. The loop (loop.ts) makes the m replays, one `step` each.
 *
 * g_x is the gradient with respect to the model's input x_adv, as in the paper's Algorithm 1. The official code
 * differentiates through the clip instead, which gives 0 wherever x + δ lies outside [0, 1]: there δ can never
 * move again. On images with a black background (Fashion-MNIST) that leaves the perturbation stuck, pushed out
 * of range, on much of the background, and costs robustness (BENCHMARKS.md has the figures).
 *
 * Under --amp the forward pass runs in low precision (forwardLoss). With fp16 the loss is scaled before backward,
 * so g_x is scaled too: its sign is unchanged, but entries that underflow to 0 leave δ where it is (the share of
 * exact zeros is recorded in metrics.jsonl), and a step that the gradient scaler skips (inf/NaN) skips the δ
 * update as well.
 */
import { scope, noGrad, zeros } from '../torch/index.js';
import { forwardLoss, type Method } from './method.js';

export const free: Method = {
  name: 'free',
  help: 'free-m (Shafahi et al.): each minibatch replayed m times, δ carried across minibatches',
  label: (cfg) => `free-${cfg.replays}`,
  title: (cfg) => `Free (m = ${cfg.replays})`,
  passes: (cfg) => Math.ceil(cfg.epochs / cfg.replays),
  stepsPerBatch: (cfg) => cfg.replays,
  backwardPerStep: () => 1,
  init(ctx) {
    const delta = zeros(ctx.batchShape, { device: ctx.cfg.device, dtype: ctx.cfg.dtype });
    ctx.state.set('delta', (ctx.cfg.channelsLast ? scope(() => delta.channelsLast()) : delta).keep());
  },
  // one replay: the loop calls it m times per minibatch
  step(ctx, x, y) {
    const { eps } = ctx.cfg;
    const step = ctx.cfg.stepSize ?? eps;
    const delta = ctx.state.get('delta')!;
    const n = x.size(0);
    scope(() => {
      const xAdv = noGrad(() => x.add(delta.narrow(0, 0, n)).clamp_(0, 1)).requiresGrad_();
      const { logits, loss } = forwardLoss(ctx, xAdv, y);
      const stepped = ctx.sgdStep(loss) !== false;
      if (stepped) noGrad(() => delta.narrow(0, 0, n).add_(xAdv.grad!.sign(), step).clamp_(-eps, eps));
      ctx.record(loss, logits, y, xAdv.grad);
    });
  },
};
