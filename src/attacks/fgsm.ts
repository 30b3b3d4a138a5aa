/**
 * FGSM — Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples" (ICLR 2015).
 * One step x + ε·sign(∇x loss) (L∞), optionally from a random start (Wong et al. 2020) with step `alpha`.
 * Defaults: L∞, step = ε, no random start, cross-entropy.
 */
import { Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack } from './attack.js';
import { threatModel, type ThreatModel } from './threat.js';
import { ceLoss } from './losses.js';
import type { AttackEntry } from './registry.js';

export class FGSM extends Attack {
  readonly name = 'fgsm';
  readonly alpha: number;
  readonly randomStart: boolean;
  constructor(model: Module, opts: { eps: number; alpha?: number; randomStart?: boolean; threat?: ThreatModel }) {
    super(model, opts.threat ?? threatModel('linf', opts.eps));
    this.alpha = opts.alpha ?? opts.eps;
    this.randomStart = opts.randomStart ?? false;
  }
  protected perturb(x: Tensor, y: Tensor): Tensor {
    const start = this.randomStart ? this.threat.randomStart(x) : x;
    const { g } = this.inputGrad(start, y, ceLoss);
    return this.threat.project(this.threat.step(start, g, this.alpha), x);
  }
}

export const fgsmAttacks: AttackEntry[] = [{ usage: 'fgsm', pattern: /^fgsm$/, make: (_, model, s) => new FGSM(model, { eps: s.eps }) }];
