/**
 * PGD adversarial training — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks"
 * (ICLR 2018). Each minibatch is replaced by its PGD-k adversary (random start in the ε-ball, k sign-gradient
 * steps of 2.5·ε/k, projected), then one SGD step: k + 1 backward passes per step. As in the official code the
 * adversary is computed with the model in training mode.
 */
import { scope, noGrad, autograd } from '../torch/index.js';
import { Linf } from '../attacks/index.js';
import { forwardLoss, type Method } from './method.js';

export const pgd: Method = {
  name: 'pgd',
  help: 'PGD-k adversarial training (Madry et al.), k + 1 backward passes per step',
  label: (cfg) => `pgd-${cfg.attackSteps}`,
  title: (cfg) => `PGD-${cfg.attackSteps}`,
  passes: (cfg) => Math.ceil(cfg.epochs),
  stepsPerBatch: () => 1,
  backwardPerStep: (cfg) => cfg.attackSteps + 1,
  step(ctx, x, y) {
    const k = ctx.cfg.attackSteps;
    const alpha = ctx.cfg.stepSize ?? (2.5 * ctx.cfg.eps) / k;
    const ball = new Linf(ctx.cfg.eps);
    scope(() => {
      let xa = ball.randomStart(x);
      for (let i = 0; i < k; i++) {
        const xr = xa.detach().requiresGrad_();
        const [g] = autograd.grad(forwardLoss(ctx, xr, y).loss, [xr]);
        xa = noGrad(() => ball.project(ball.step(xr, g!, alpha), x));
      }
      const { logits, loss } = forwardLoss(ctx, xa.detach(), y);
      ctx.sgdStep(loss);
      ctx.record(loss, logits, y);
    });
  },
};
