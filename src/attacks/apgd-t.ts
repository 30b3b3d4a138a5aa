/**
 * APGD-T — targeted APGD on the targeted DLR loss (Croce & Hein, ICML 2020), as AutoAttack's "standard"
 * version runs it:
 *
 *   for i = 1 … k   (k = min(nTargetClasses, classes − 1); default 9)
 *     t  ← the class of the i-th highest non-true logit at the clean point
 *     for each restart (default 1), on the examples still classified correctly:
 *       APGD (apgd.ts, 100 iterations) maximising −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2)
 *       examples it misclassifies take that point
 *
 * L∞ or L2 (L2 steps and projection, as AutoAttack's L2 APGD). An example counts as fooled when it is
 * misclassified (as any class, not necessarily t). Examples never fooled end with the highest-loss point of the
 * first target's run, inside the ball.
 */
import { Tensor, manualSeed } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, overTargets } from './attack.js';
import { threatModel } from './threat.js';
import { apgd } from './apgd.js';
import { dlrTargetedLoss } from './losses.js';
import type { AttackEntry } from './registry.js';

export interface APGDTOptions {
  eps: number;
  norm?: 'linf' | 'l2';
  /** APGD iterations per target and restart (default 100). */
  steps?: number;
  /** Target classes, the highest non-true logits first (default 9, at most classes − 1). */
  nTargetClasses?: number;
  /** Runs per target class (default 1). */
  restarts?: number;
  /** Seeds libtorch's generator before the attack (the random starts), as AutoAttack does. */
  seed?: number;
}


export class APGDT extends Attack {
  readonly name = 'apgd-t';
  readonly steps: number;
  readonly nTargetClasses: number;
  readonly restarts: number;
  readonly seed: number | undefined;
  constructor(model: Module, opts: APGDTOptions) {
    super(model, threatModel(opts.norm ?? 'linf', opts.eps));
    this.steps = opts.steps ?? 100;
    this.nTargetClasses = opts.nTargetClasses ?? 9;
    this.restarts = Math.max(1, opts.restarts ?? 1);
    this.seed = opts.seed;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.seed !== undefined) manualSeed(this.seed);
    const o = { targets: this.nTargetClasses, restarts: this.restarts, fallback: true };
    return overTargets(this.model, x, y, o, (xs, ys, t) => apgd(this.model, xs, ys, dlrTargetedLoss(t), this.threat, this.steps));
  }
}

export const apgdtAttacks: AttackEntry[] = [
  {
    usage: 'apgd-t, apgd-t-l2 (targeted, min(9, classes − 1) target classes)',
    pattern: /^apgd-t(?:-(linf|l2))?$/,
    minClasses: 4, // the targeted DLR loss reads the 4 largest logits
    make: (m, model, s) => new APGDT(model, { eps: s.eps, norm: (m[1] as 'linf' | 'l2' | undefined) ?? 'linf', restarts: s.restarts ?? 1 }),
  },
];
