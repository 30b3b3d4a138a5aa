/**
 * PGD — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks" (ICLR 2018).
 * k projected gradient-ascent steps of size alpha inside the ε-ball (L∞ or L2), from a random start, with
 * `restarts` keeping the worst case per example. Losses: cross-entropy (default) or CW margin; targeted mode
 * descends the loss towards the target class. Every point the attack visits is checked: an example counts as
 * broken as soon as any visited point fools the model, and that point is returned (worst case, early exit when
 * the whole batch is broken). Defaults: L∞, alpha = 2.5·ε/steps, random start, 1 restart.
 */
import { Tensor, carry, noGrad, scope, where } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, correct, checkSteps, interruptionPoint, perExample } from './attack.js';
import { threatModel, type ThreatModel } from './threat.js';
import { lossFn, type LossName } from './losses.js';
import type { AttackEntry } from './registry.js';

export interface PGDOptions {
  eps: number;
  steps?: number;
  alpha?: number;
  norm?: 'linf' | 'l2';
  randomStart?: boolean;
  restarts?: number;
  loss?: LossName;
  /** y holds target classes: minimise the loss of the target class instead. */
  targeted?: boolean;
  /** Keep the first fooling point per example and stop once all are fooled (default true). */
  earlyStop?: boolean;
}

export class PGD extends Attack {
  readonly name: string;
  readonly steps: number;
  readonly alpha: number;
  readonly randomStart: boolean;
  readonly restarts: number;
  readonly loss: LossName;
  readonly targeted: boolean;
  readonly earlyStop: boolean;

  constructor(model: Module, opts: PGDOptions & { threat?: ThreatModel }) {
    super(model, opts.threat ?? threatModel(opts.norm ?? 'linf', opts.eps));
    this.steps = opts.steps ?? 10;
    this.alpha = opts.alpha ?? (2.5 * opts.eps) / this.steps;
    this.randomStart = opts.randomStart ?? true;
    this.restarts = Math.max(1, opts.restarts ?? 1);
    this.loss = opts.loss ?? 'ce';
    this.targeted = opts.targeted ?? false;
    this.earlyStop = opts.earlyStop ?? true;
    this.name = `pgd-${this.steps}`;
  }

  /** y holds the true labels, or the target classes in targeted mode. */
  protected perturb(x: Tensor, y: Tensor): Tensor {
    const loss = lossFn(this.loss);
    const objective = this.targeted ? (logits: Tensor, t: Tensor) => loss(logits, t).neg() : loss;
    // success: fooled (untargeted) or hit the target (targeted)
    const success = (logits: Tensor) => (this.targeted ? correct(logits, y) : correct(logits, y).logicalNot());
    const s = carry({ best: x.clone(), done: noGrad(() => success(this.model.forward(x))), xa: x.clone() });
    for (let r = 0; r < this.restarts && !(this.earlyStop && s.done.all().item()); r++) {
      s.xa = this.randomStart ? this.threat.randomStart(x) : x.clone();
      for (let k = 0; k <= this.steps; k++) {
        interruptionPoint();
        const stop = scope(() => {
          const last = k === this.steps;
          const { g, logits } = last ? { g: undefined, logits: noGrad(() => this.model.forward(s.xa)) } : this.inputGrad(s.xa, y, objective);
          const hit = success(logits);
          if (this.earlyStop || last) {
            // the point succeeds for examples not yet broken: it is theirs
            s.best = where(perExample(hit.logicalAnd(s.done.logicalNot()), x), s.xa, s.best);
            s.done = s.done.logicalOr(hit);
          }
          if (last || (this.earlyStop && s.done.all().item())) return true;
          s.xa = noGrad(() => this.threat.project(this.threat.step(s.xa, g!, this.alpha), x));
          return false;
        });
        if (stop) break;
      }
      // without early stop, the last restart's final point stands for examples never broken
      if (!this.earlyStop || r === this.restarts - 1) s.best = where(perExample(s.done.logicalNot(), x), s.xa, s.best);
    }
    return s.take('best');
  }
}

export const pgdAttacks: AttackEntry[] = [
  {
    usage: 'pgd-K, pgd-K-l2',
    pattern: /^pgd-(\d+)(?:-(linf|l2))?$/,
    check: (m) => checkSteps(m[1]),
    make: (m, model, s) => new PGD(model, { eps: s.eps, steps: Number(m[1]), norm: (m[2] as 'linf' | 'l2' | undefined) ?? 'linf', restarts: s.restarts ?? 1, earlyStop: s.earlyStop }),
  },
  {
    usage: 'cw-K (PGD on the CW margin)',
    pattern: /^cw-(\d+)(?:-(linf|l2))?$/,
    check: (m) => checkSteps(m[1]),
    make: (m, model, s) => new PGD(model, { eps: s.eps, steps: Number(m[1]), norm: (m[2] as 'linf' | 'l2' | undefined) ?? 'linf', restarts: s.restarts ?? 1, loss: 'cw', earlyStop: s.earlyStop }),
  },
];
