/**
 * PGD — Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks" (ICLR 2018).
 * k projected gradient-ascent steps of size alpha inside the ε-ball (L∞ or L2), from a random start, with
 * `restarts` keeping the worst case per example. Losses: cross-entropy (default) or CW margin; targeted mode
 * descends the loss towards the target class. Every point the attack visits is checked: an example counts as
 * broken as soon as any visited point fools the model, and that point is returned (worst case, early exit when
 * the whole batch is broken). Defaults: L∞, alpha = 2.5·ε/steps, random start, 1 restart.
 */
import { Tensor, keep, unkeep, noGrad, scope, where } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, correct } from './attack.js';
import { threatModel, type ThreatModel } from './threat.js';
import { lossFn, type LossName } from './losses.js';

export interface PGDOptions {
  eps: number;
  steps?: number;
  alpha?: number;
  norm?: 'linf' | 'l2';
  randomStart?: boolean;
  restarts?: number;
  loss?: LossName;
  /** Targets (a tensor of class indices): minimise the loss of the target class instead. */
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
  /** Start points of the last run, per restart (for tests that replay them elsewhere). */
  startHook?: (start: Tensor, restart: number) => Tensor | void;

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
    const sign = this.targeted ? -1 : 1;
    const objective = (logits: Tensor, t: Tensor) => loss(logits, t).mul(sign);
    // success: fooled (untargeted) or hit the target (targeted)
    const success = (logits: Tensor) => (this.targeted ? correct(logits, y) : correct(logits, y).logicalNot());
    let best = keep(x.clone());
    let done = keep(noGrad(() => success(this.model.forward(x))));
    for (let r = 0; r < this.restarts; r++) {
      if (this.earlyStop && done.all().item()) break;
      let xa = keep(this.randomStart ? this.threat.randomStart(x) : x.clone());
      if (this.startHook) {
        const s = this.startHook(xa, r);
        if (s) {
          xa.dispose();
          xa = keep(s.clone());
        }
      }
      for (let k = 0; k <= this.steps; k++) {
        const next = scope(() => {
          const { g, logits } = k < this.steps ? this.inputGrad(xa, y, objective) : { g: undefined, logits: noGrad(() => this.model.forward(xa)) };
          const hit = success(logits);
          if (this.earlyStop || k === this.steps) {
            // record points that succeed for examples not yet broken
            const take = hit.logicalAnd(done.logicalNot()).view(-1, ...Array(x.ndim - 1).fill(1));
            const nb = where(take, xa, best);
            const nd = done.logicalOr(hit);
            best.dispose();
            done.dispose();
            best = keep(nb);
            done = keep(nd);
          }
          if (!g || (this.earlyStop && done.all().item())) return undefined;
          return keep(noGrad(() => this.threat.project(this.threat.step(xa, g, this.alpha), x)));
        });
        if (!next) break;
        xa.dispose();
        xa = next;
      }
      // without early stop, the last restart's final point stands for examples never broken
      if (!this.earlyStop || r === this.restarts - 1) {
        const keepFinal = done.logicalNot().view(-1, ...Array(x.ndim - 1).fill(1));
        const nb = where(keepFinal, xa, best);
        best.dispose();
        best = keep(nb);
      }
      xa.dispose();
    }
    done.dispose();
    return unkeep(best);
  }
}
