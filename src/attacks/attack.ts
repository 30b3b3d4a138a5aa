// The common shape of an attack (torchattacks-style): built from a model and its settings, called on a batch
// (x, y) of images in [0, 1], it returns adversarial images inside the ε-ball and [0, 1]. The model is put in
// eval mode for the attack (BatchNorm statistics must not move) and its previous mode is restored.
import { Tensor, autograd, keep, noGrad, ops, pendingInterrupt, scope, unkeep, withGradEnabled, zerosLike } from '../torch/index.js';
import { inEvalMode, type Module } from '../nn/index.js';
import type { ThreatModel } from './threat.js';

export abstract class Attack {
  constructor(readonly model: Module, readonly threat: ThreatModel) {}

  abstract readonly name: string;

  /** The attack itself; runs with the model in eval mode. */
  protected abstract perturb(x: Tensor, y: Tensor): Tensor;

  /** Adversarial examples for (x, y). */
  run(x: Tensor, y: Tensor): Tensor {
    return inEvalMode(this.model, () => withGradEnabled(true, () => scope(() => this.perturb(x.detach(), y))));
  }

  /** The gradient of sum(loss) w.r.t. the input, and the logits at x (both detached). */
  protected inputGrad(x: Tensor, y: Tensor, loss: (logits: Tensor, y: Tensor) => Tensor): { g: Tensor; logits: Tensor; loss: Tensor } {
    return lossInputGrad(this.model, x, y, loss);
  }
}

/**
 * An attack stopped between two of its iterations by SIGINT/SIGTERM (the native interrupt flag), inside
 * stoppable(). Named AbortError, as an aborted evaluation's error is: the caller stops as it does between batches.
 */
export class AttackInterrupted extends Error {
  override name = 'AbortError';
  constructor(readonly signal: NodeJS.Signals) {
    super(`stopped by ${signal} inside an attack`);
  }
}

let stopping = false;

/**
 * Runs fn (attacks, synchronously) so that a SIGINT/SIGTERM arriving meanwhile stops it at the next iteration of
 * its attack, throwing AttackInterrupted. Only where the caller can stop there and has armed the flag (its signal
 * handlers installed, src/train/signals.ts); elsewhere (a training step's attack, ranks that must stop together)
 * attacks run to the end.
 */
export function stoppable<T>(fn: () => T): T {
  const was = stopping;
  stopping = true;
  try {
    return fn();
  } finally {
    stopping = was;
  }
}

/**
 * Every attack's iteration loop calls this once per iteration (PGD step, APGD step, FAB step, Square query):
 * inside stoppable(), throws AttackInterrupted once a signal has arrived. Costs a flag test, and inside
 * stoppable() one read of an atomic through the addon (BENCHMARKS.md).
 */
export function interruptionPoint(): void {
  if (!stopping) return;
  const sig = pendingInterrupt();
  if (sig) throw new AttackInterrupted(sig);
}

/**
 * The gradient of sum(loss) w.r.t. the input x (per example, since examples do not mix), with the logits and the
 * per-example loss at x (all detached). Needs grad mode on; the caller chooses the model's mode.
 */
export function lossInputGrad(model: Module, x: Tensor, y: Tensor, loss: (logits: Tensor, y: Tensor) => Tensor): { g: Tensor; logits: Tensor; loss: Tensor } {
  const xr = x.detach().requiresGrad_();
  const logits = model.forward(xr);
  const l = loss(logits, y);
  // a model whose output does not depend on x differentiably (masking) has no gradient: treat it as zero
  const [g] = l.requiresGrad ? autograd.grad(l.sum(), [xr], { allowUnused: true }) : [undefined];
  return { g: g ?? zerosLike(x), logits: logits.detach(), loss: l.detach() };
}

/** Per-example: true where the model's prediction is correct. */
export function correct(logits: Tensor, y: Tensor): Tensor {
  return logits.argmax(1).eq(y);
}

/** Attack steps written in a name (pgd-K, apgd-ce-K): why they are out of [1, 10000], or undefined. */
export const checkSteps = (k: string | undefined) => (k !== undefined && !(Number(k) >= 1 && Number(k) <= 10000) ? `steps must be in [1, 10000], got ${k}` : undefined);

/** A per-example mask [B] shaped to broadcast over a batch like `like` ([B, 1, 1, 1]). */
export function perExample(mask: Tensor, like: Tensor): Tensor {
  return mask.view(-1, ...Array(like.ndim - 1).fill(1));
}

/**
 * The running worst case of an attack that proceeds in stages (restarts, target classes), as AutoAttack runs
 * them: per example, the adversarial point found so far (x where none is) and whether the example still
 * resists. Each stage attacks only the examples that still resist. Owns its tensors until result().
 */
export class WorstCase {
  private adv: Tensor;
  private robust: Tensor;
  /** robust: per example, true where the model is right at x (the examples worth attacking). */
  constructor(x: Tensor, robust: Tensor) {
    this.adv = keep(x.clone());
    this.robust = keep(robust.clone());
  }

  /** True once no example resists. */
  get done(): boolean {
    return !this.robust.any().item();
  }

  /** How many examples still resist. */
  get resisting(): number {
    return this.robust.sum().item();
  }

  /**
   * Runs `attack` on the examples that still resist (xs, ys: their rows of x and y). It returns one point per
   * row and the mask of rows whose point fools the model; those examples take their point and stop resisting.
   * With `fallback`, the other rows take their point too (an attack's best effort inside the ball).
   */
  stage(x: Tensor, y: Tensor, attack: (xs: Tensor, ys: Tensor) => { adv: Tensor; fooled: Tensor }, opts: { fallback?: boolean } = {}): void {
    if (this.done) return;
    const next = scope(() => {
      const rows = ops.nonzero(this.robust).flatten();
      const r = attack(x.indexSelect(0, rows), y.indexSelect(0, rows));
      const foolingRows = ops.nonzero(r.fooled).flatten();
      const adv = opts.fallback
        ? ops.indexCopy(this.adv, 0, rows, r.adv)
        : ops.indexCopy(this.adv, 0, rows.indexSelect(0, foolingRows), r.adv.indexSelect(0, foolingRows));
      return keep({ adv, robust: ops.indexFill(this.robust, 0, rows.indexSelect(0, foolingRows), false) });
    });
    this.adv.dispose();
    this.robust.dispose();
    this.adv = next.adv;
    this.robust = next.robust;
  }

  /** The adversarial points (the caller's now); the recorder is spent. */
  result(): Tensor {
    this.robust.dispose();
    return unkeep(this.adv);
  }
}

/** The i-th most likely wrong class (i = 1 is the runner-up) per example, from the logits at the clean point. */
export function targetClass(logits: Tensor, y: Tensor, i: number): Tensor {
  const isTrue = ops.oneHot(y, logits.size(1)).gt(0);
  return logits.maskedFill(isTrue, -Infinity).sort(1, true)[1].select(1, i - 1);
}

/**
 * The loop of AutoAttack's targeted attacks (APGD-T, FAB-T): for the i-th most likely wrong class at the clean
 * point (i = 1 … min(targets, classes − 1)) and each restart, one run on the examples still robust. With
 * `fallback`, examples never fooled end with the first run's point; else with x.
 */
export function overTargets(model: Module, x: Tensor, y: Tensor, o: { targets: number; restarts: number; fallback: boolean }, run: (xs: Tensor, ys: Tensor, target: Tensor, restart: number) => { adv: Tensor; fooled: Tensor }): Tensor {
  const clean = noGrad(() => model.forward(x));
  const targets = Math.min(o.targets, clean.size(1) - 1);
  const worst = new WorstCase(x, correct(clean, y));
  for (let i = 1; i <= targets; i++)
    for (let r = 0; r < o.restarts && !worst.done; r++)
      worst.stage(x, y, (xs, ys) => run(xs, ys, targetClass(noGrad(() => model.forward(xs)), ys, i), r), { fallback: o.fallback && i === 1 && r === 0 });
  return worst.result();
}
