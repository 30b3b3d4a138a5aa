// Natural training: one SGD step on the clean minibatch.
import { scope } from '../torch/index.js';
import { forwardLoss, type Method } from './method.js';

export const natural: Method = {
  name: 'natural',
  help: 'natural training on clean images',
  label: () => 'natural',
  title: () => 'Natural',
  passes: (cfg) => Math.ceil(cfg.epochs),
  stepsPerBatch: () => 1,
  backwardPerStep: () => 1,
  step(ctx, x, y) {
    scope(() => {
      const { logits, loss } = forwardLoss(ctx, x, y);
      ctx.sgdStep(loss);
      ctx.record(loss, logits, y);
    });
  },
};
