// What a training method supplies to the shared loop (loop.ts): how it describes itself, how many passes over
// the data its budget buys, and its per-batch step. Everything else — data, schedule, logging, checkpoints, the
// validation, evaluation — is shared. A new method is one file and one line in methods.ts.
import { ops, autocast, type Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { ampType, type TrainConfig } from './options.js';

export interface TrainContext {
  readonly model: Module;
  readonly cfg: TrainConfig;
  /** [B, C, H, W] of a full batch. */
  readonly batchShape: number[];
  /** The method's persistent tensors (saved in checkpoints and restored on resume), e.g. free training's δ. */
  readonly state: Map<string, Tensor>;
  /**
   * One SGD step on `loss`: learning rate from the schedule, gradients cleared, one backward pass (which also
   * fills .grad of any input leaf that requires it), parameter update. Returns false when the update was
   * skipped (--amp fp16: the gradient scaler found an inf/NaN gradient); the method must then skip whatever
   * else it derives from this backward pass (free training's δ update).
   */
  sgdStep(loss: Tensor): boolean | void;
  /**
   * Accounts a step's loss and accuracy on the (perturbed) inputs it trained on; `inputGrad`, the gradient
   * w.r.t. the input that a method steps on, for the share of its entries that are exactly 0.
   */
  record(loss: Tensor, logits: Tensor, y: Tensor, inputGrad?: Tensor): void;
}

/**
 * The model's logits and the mean cross-entropy on (x, y): the forward pass of every method, under the run's
 * --amp autocast (left when this returns: backward runs outside it, and each forward pass casts the weights anew).
 */
export function forwardLoss(ctx: TrainContext, x: Tensor, y: Tensor): { logits: Tensor; loss: Tensor } {
  const f = () => {
    const logits = ctx.model.forward(x);
    return { logits, loss: ops.crossEntropy(logits, y) };
  };
  const amp = ampType(ctx.cfg.amp);
  return amp ? autocast(amp, f, ctx.cfg.device) : f();
}

export interface Method {
  readonly name: string;
  /** One line for --help. */
  readonly help: string;
  /** The method with its settings, for messages, summaries and default run-folder names: free-4, pgd-7, fgsm. */
  label(cfg: TrainConfig): string;
  /** The name papers use, for the report: Free (m = 4), PGD-7, FGSM-RS, Natural. */
  title(cfg: TrainConfig): string;
  /**
   * Catastrophic overfitting (Wong et al.): when validation robust accuracy falls by more than this from its
   * best, the loop restores the best weights and stops. Undefined: the method never stops early.
   */
  readonly collapseDrop?: number;
  /** Passes over the training data that a budget of cfg.epochs natural epochs buys. */
  passes(cfg: TrainConfig): number;
  /** SGD steps per minibatch (free-m: m replays; the others: 1). */
  stepsPerBatch(cfg: TrainConfig): number;
  /** Backward passes per SGD step (forward/backward cost relative to natural training). */
  backwardPerStep(cfg: TrainConfig): number;
  /** Creates the method's persistent state (before a resume overwrites it). */
  init?(ctx: TrainContext): void;
  /**
   * SGD step i (0 ≤ i < stepsPerBatch) on one minibatch x (images in [0, 1]) with labels y. The loop makes the
   * steps of a minibatch one call at a time, so that it can stop between any two (a signal, --max-steps) and a
   * resumed run continue with step i of the same minibatch.
   */
  step(ctx: TrainContext, x: Tensor, y: Tensor, i: number): void;
}

/** Every SGD step of one minibatch, in order (for callers that train outside the loop: tests, benchmarks). */
export function trainBatch(method: Method, ctx: TrainContext, x: Tensor, y: Tensor): void {
  for (let i = 0; i < method.stepsPerBatch(ctx.cfg); i++) method.step(ctx, x, y, i);
}
