/**
 * AutoAttack, "standard" version — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble
 * of diverse parameter-free attacks" (ICML 2020), the number RobustBench lists:
 *
 *   robust ← examples the model classifies correctly
 *   for attack in APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5,000 queries):
 *     run it on the examples still robust; those it fools take its point and stop being robust
 *   robust accuracy = |robust| / n, and after each attack too
 *
 * Each attack in its own file; this one only runs them in turn. Only the whole standard ensemble is called
 * autoattack: it needs at least 10 classes (9 target classes).
 */
import { Tensor, noGrad } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, WorstCase, correct } from './attack.js';
import { threatModel } from './threat.js';
import { APGD } from './apgd.js';
import { APGDT } from './apgd-t.js';
import { FABT } from './fab.js';
import { Square } from './square.js';
import type { AttackEntry } from './registry.js';

export const AUTOATTACK_TARGETS = 9;

export class AutoAttack extends Attack {
  readonly name: string;
  readonly stages: { name: string; attack: Attack }[];
  /** Per stage: examples still robust after it, summed over every batch run so far (and the clean count). */
  readonly robustAfter: Record<string, number>;
  /** Examples attacked so far, and how many were classified correctly before any attack. */
  examples = 0;
  clean = 0;

  constructor(model: Module, opts: { eps: number; norm?: 'linf' | 'l2'; seed?: number }) {
    const norm = opts.norm ?? 'linf';
    super(model, threatModel(norm, opts.eps));
    this.name = norm === 'l2' ? 'autoattack-l2' : 'autoattack';
    const common = { eps: opts.eps, norm, seed: opts.seed ?? 0 };
    this.stages = [
      { name: 'apgd-ce', attack: new APGD(model, { ...common, loss: 'ce', steps: 100 }) },
      { name: 'apgd-t', attack: new APGDT(model, { ...common, steps: 100, nTargetClasses: AUTOATTACK_TARGETS }) },
      { name: 'fab-t', attack: new FABT(model, { ...common, steps: 100, nTargetClasses: AUTOATTACK_TARGETS }) },
      { name: 'square', attack: new Square(model, { ...common, queries: 5000, pInit: 0.8 }) },
    ];
    this.robustAfter = Object.fromEntries(this.stages.map((s) => [s.name, 0]));
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    const clean = noGrad(() => this.model.forward(x));
    const classes = clean.size(1);
    if (classes < AUTOATTACK_TARGETS + 1) throw new RangeError(`${this.name} attacks ${AUTOATTACK_TARGETS} target classes and needs at least ${AUTOATTACK_TARGETS + 1} classes; the model has ${classes}`);
    const worst = new WorstCase(x, correct(clean, y));
    this.examples += x.size(0);
    this.clean += worst.resisting;
    for (const { name, attack } of this.stages) {
      worst.stage(x, y, (xs, ys) => {
        const adv = attack.run(xs, ys);
        return { adv, fooled: noGrad(() => correct(this.model.forward(adv), ys)).logicalNot() };
      });
      this.robustAfter[name]! += worst.resisting;
    }
    return worst.result();
  }

  /** Robust accuracy after each stage over the examples run so far. */
  stageAccuracy(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.robustAfter).map(([k, v]) => [k, this.examples ? v / this.examples : 0]));
  }
}

export const autoAttacks: AttackEntry[] = [
  {
    usage: 'autoattack, autoattack-l2 (the standard ensemble: APGD-CE, APGD-T, FAB-T, Square)',
    pattern: /^autoattack(?:-(linf|l2))?$/,
    minClasses: AUTOATTACK_TARGETS + 1, // the standard ensemble attacks 9 target classes
    // every stage seeds libtorch's generator with 0 before it runs, as AutoAttack seeds its attacks
    make: (m, model, s) => new AutoAttack(model, { eps: s.eps, norm: (m[1] as 'linf' | 'l2' | undefined) ?? 'linf' }),
  },
];
