// Natural training: one SGD step on the clean minibatch.
import { ops, scope } from '../torch/index.js';
import type { Method } from './method.js';

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
      const logits = ctx.model.forward(x);
      const loss = ops.crossEntropy(logits, y);
      ctx.sgdStep(loss);
      ctx.record(loss, logits, y);
    });
  },
};
