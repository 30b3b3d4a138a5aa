/**
 * APGD — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
 * parameter-free attacks" (ICML 2020), Algorithm 1: the step-size-free attack of AutoAttack, L∞ or L2.
 *
 * `apgd()` is one run of the algorithm for any loss to maximise; APGD-CE/-DLR (this file) and APGD-T (apgd-t.ts)
 * are built on it. From a random point on the sphere of the ε-ball (as AutoAttack draws it), with momentum 0.75:
 *
 *   z       = P(x_k + η_k · d(∇f(x_k)))                     d: sign (L∞) or ∇/‖∇‖₂ (L2); P: onto ball ∩ [0, 1]
 *   x_{k+1} = P(x_k + 0.75 (z − x_k) + 0.25 (x_k − x_{k−1}))
 *
 * The step size starts at η_0 = 2ε and is halved, per example, at the checkpoints w_j where the loss oscillated
 * (at most ρ = 75% of the steps since the last checkpoint increased it) or where neither the step size nor the
 * best loss changed since the previous checkpoint; a halving restarts from the best point x_max and its gradient.
 * Checkpoint gaps: 22% of the iterations, shrinking by 3% per checkpoint to at least 6% (AutoAttack's integer
 * rounding). Each run returns, per example, the first point that fooled the model if one was found, else the
 * point of highest loss.
 */
import { Tensor, keep, unkeep, noGrad, scope, where, full, zeros, randLike, randnLike, manualSeed } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, WorstCase, correct, interruptionPoint, lossInputGrad, checkSteps } from './attack.js';
import { threatModel, type ThreatModel } from './threat.js';
import { lossFn, type LossName, type Loss } from './losses.js';
import type { AttackEntry } from './registry.js';

/** The gaps between APGD's checkpoints for `steps` iterations (AutoAttack's rounding: ⌊0.22 n⌋, −⌊0.03 n⌋, ≥ ⌊0.06 n⌋). */
export function checkpointGaps(steps: number): number[] {
  const first = Math.max(Math.floor(0.22 * steps), 1);
  const shrink = Math.max(Math.floor(0.03 * steps), 1);
  const least = Math.max(Math.floor(0.06 * steps), 1);
  const gaps: number[] = [];
  for (let k = first, at = 0; at + k <= steps; at += k, k = Math.max(k - shrink, least)) gaps.push(k);
  return gaps;
}

/** A random point on the sphere of the ε-ball around x, in [0, 1]: x + ε·u/‖u‖, u uniform in the cube (L∞) or Gaussian (L2). */
export function sphereStart(x: Tensor, threat: ThreatModel): Tensor {
  const u = threat.norm === 'linf' ? randLike(x).mul_(2).add_(-1) : randnLike(x);
  const len = threat.magnitude(u).add(1e-12).view(-1, ...Array(x.ndim - 1).fill(1));
  return x.add(u.div(len).mul_(threat.eps)).clamp_(0, 1);
}

/** One run of APGD maximising loss(model(·), y) inside threat's ball around x. */
export function apgd(model: Module, x: Tensor, y: Tensor, loss: Loss, threat: ThreatModel, steps: number): { adv: Tensor; fooled: Tensor } {
  const rho = 0.75;
  const momentum = 0.75;
  const B = x.size(0);
  const perExample = (m: Tensor) => m.view(-1, ...Array(x.ndim - 1).fill(1));
  const P = (t: Tensor) => threat.project(t, x);
  // the state of the run, per example (kept across iterations; `set` replaces and frees)
  const s: Record<string, Tensor> = {};
  const set = (k: string, t: Tensor) => {
    if (s[k] && s[k] !== t) s[k]!.dispose();
    s[k] = keep(t);
  };

  scope(() => {
    set('x', sphereStart(x, threat));
    const { g, logits, loss: f } = lossInputGrad(model, s.x!, y, loss);
    set('grad', g);
    set('xPrev', s.x!.clone());
    set('fooled', correct(logits, y).logicalNot());
    set('xFooling', s.x!.clone());
    set('xMax', s.x!.clone()); // x_max: the highest-loss point, with its loss f_max and its gradient
    set('fMax', f);
    set('gradMax', g.clone());
    set('fPrev', f.clone());
    set('fMaxAtCheckpoint', f.clone());
    set('halvedAtCheckpoint', full([B], true, { dtype: 'bool', device: x.device }));
    set('increases', zeros([B], { device: x.device }));
    set('eta', perExample(full([B], 2 * threat.eps, { device: x.device })));
  });

  const gaps = checkpointGaps(steps);
  let gap = 0;
  let sinceCheckpoint = 0;
  for (let k = 0; k < steps; k++) {
    interruptionPoint();
    scope(() => {
      // the step, with momentum from the second iteration on
      const a = k === 0 ? 1 : momentum;
      const next = noGrad(() => {
        const z = P(s.x!.add(s.eta!.mul(threat.direction(s.grad!))));
        return P(s.x!.add(z.sub(s.x!).mul_(a)).add_(s.x!.sub(s.xPrev!).mul_(1 - a)));
      });
      set('xPrev', s.x!);
      s.x = keep(next);
      const { g, logits, loss: f } = lossInputGrad(model, next, y, loss);
      set('grad', g);
      // the first fooling point per example
      const hit = correct(logits, y).logicalNot();
      set('xFooling', where(perExample(hit.logicalAnd(s.fooled!.logicalNot())), next, s.xFooling!));
      set('fooled', s.fooled!.logicalOr(hit));
      // x_max, f_max
      const better = f.gt(s.fMax!);
      set('xMax', where(perExample(better), next, s.xMax!));
      set('gradMax', where(perExample(better), g, s.gradMax!));
      set('fMax', where(better, f, s.fMax!));
      set('increases', s.increases!.add(f.gt(s.fPrev!).float()));
      set('fPrev', f);

      if (++sinceCheckpoint === (gaps[gap] ?? Infinity)) {
        const h = sinceCheckpoint;
        const oscillating = s.increases!.le(full([B], rho * h, { device: x.device }));
        const stalled = s.halvedAtCheckpoint!.logicalNot().logicalAnd(s.fMaxAtCheckpoint!.ge(s.fMax!));
        const halve = oscillating.logicalOr(stalled);
        set('halvedAtCheckpoint', halve);
        set('fMaxAtCheckpoint', s.fMax!.clone());
        set('eta', where(perExample(halve), s.eta!.mul(0.5), s.eta!));
        set('x', where(perExample(halve), s.xMax!, s.x!));
        set('grad', where(perExample(halve), s.gradMax!, s.grad!));
        set('increases', zeros([B], { device: x.device }));
        sinceCheckpoint = 0;
        gap++;
      }
    });
  }
  const adv = scope(() => keep(where(perExample(s.fooled!), s.xFooling!, s.xMax!)));
  const fooled = s.fooled!;
  delete s.fooled;
  for (const t of Object.values(s)) t.dispose();
  return { adv: unkeep(adv), fooled: unkeep(fooled) };
}

export interface APGDOptions {
  eps: number;
  norm?: 'linf' | 'l2';
  /** Iterations per run (default 100). */
  steps?: number;
  /** 'ce' (APGD-CE, default) or 'dlr' (APGD-DLR). */
  loss?: LossName;
  /** Runs; each one attacks the examples not yet fooled (default 1). */
  restarts?: number;
  /** Seeds libtorch's generator before the attack (the random starts), as AutoAttack does. */
  seed?: number;
  threat?: ThreatModel;
}

/** APGD-CE / APGD-DLR. Examples never fooled end with the highest-loss point of the first run. */
export class APGD extends Attack {
  readonly name: string;
  readonly steps: number;
  readonly loss: LossName;
  readonly restarts: number;
  readonly seed: number | undefined;
  constructor(model: Module, opts: APGDOptions) {
    super(model, opts.threat ?? threatModel(opts.norm ?? 'linf', opts.eps));
    this.steps = opts.steps ?? 100;
    this.loss = opts.loss ?? 'ce';
    this.restarts = Math.max(1, opts.restarts ?? 1);
    this.seed = opts.seed;
    this.name = `apgd-${this.loss}`;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.seed !== undefined) manualSeed(this.seed);
    const loss = lossFn(this.loss);
    const worst = new WorstCase(x, noGrad(() => correct(this.model.forward(x), y)));
    for (let r = 0; r < this.restarts && !worst.done; r++)
      worst.stage(x, y, (xs, ys) => apgd(this.model, xs, ys, loss, this.threat, this.steps), { fallback: r === 0 });
    return worst.result();
  }
}

export const apgdAttacks: AttackEntry[] = [
  {
    usage: 'apgd-ce, apgd-dlr, apgd-ce-K (K iterations, default 100), apgd-ce-l2',
    pattern: /^apgd-(ce|dlr)(?:-(\d+))?(?:-(linf|l2))?$/,
    check: (m) => checkSteps(m[2]),
    make: (m, model, s) => new APGD(model, { eps: s.eps, steps: m[2] ? Number(m[2]) : 100, loss: m[1] as 'ce' | 'dlr', norm: (m[3] as 'linf' | 'l2' | undefined) ?? 'linf', restarts: s.restarts ?? 1 }),
  },
];
