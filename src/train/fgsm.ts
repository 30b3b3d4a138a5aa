/**
 * FGSM with random start — Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training"
 * (ICLR 2020). δ ~ U(−ε, ε); one FGSM step of 1.25·ε from there, projected; one SGD step on x + δ: two backward
 * passes per step. The loop's catastrophic-overfitting stop (validation PGD-10 accuracy after
 * each pass; on a collapse, warn and restore the best weights) protects this method.
 */
import { scope, noGrad, autograd } from '../torch/index.js';
import { Linf } from '../attacks/index.js';
import { forwardLoss, type Method } from './method.js';

export const fgsm: Method = {
  name: 'fgsm',
  help: 'FGSM with random start (Wong et al.), 2 backward passes per step',
  label: () => 'fgsm',
  title: () => 'FGSM-RS',
  collapseDrop: 0.2,
  passes: (cfg) => Math.ceil(cfg.epochs),
  stepsPerBatch: () => 1,
  backwardPerStep: () => 2,
  step(ctx, x, y) {
    const alpha = ctx.cfg.stepSize ?? 1.25 * ctx.cfg.eps;
    const ball = new Linf(ctx.cfg.eps);
    scope(() => {
      const xr = ball.randomStart(x).requiresGrad_();
      const [g] = autograd.grad(forwardLoss(ctx, xr, y).loss, [xr]);
      const xa = noGrad(() => ball.project(ball.step(xr, g!, alpha), x));
      const { logits, loss } = forwardLoss(ctx, xa, y);
      ctx.sgdStep(loss);
      ctx.record(loss, logits, y);
    });
  },
};
