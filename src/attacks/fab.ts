/**
 * FAB-T — the targeted Fast Adaptive Boundary attack (Croce & Hein, "Minimally distorted adversarial examples
 * with a fast adaptive boundary attack", ICML 2020), L∞ or L2, with AutoAttack's "standard" settings.
 *
 * FAB looks for the adversarial point closest to x_orig. For a target class t, at the current iterate x it
 * linearises the boundary between the true class y and t, π(x) = {z : f(x) + ⟨∇f(x), z − x⟩ = 0} with
 * f = z_t − z_y, and projects onto π ∩ [0, 1]^d both x and x_orig (least-norm steps δ and δ_orig):
 *
 *   α       = min(‖δ‖ / (‖δ‖ + ‖δ_orig‖), α_max)                         bias towards x_orig
 *   x       ← clip_[0,1]( (1 − α)(x + η δ) + α (x_orig + η δ_orig) )      η: overshoot past the boundary
 *   if x is misclassified: remember it if it is the closest so far, then x ← x_orig + β (x − x_orig)
 *
 * for `steps` iterations, the first run from x_orig, later restarts from a random point at distance ε/2. Targets
 * as in APGD-T: the highest non-true logits at the clean point, one after the other, on the examples not yet
 * fooled. For the robust accuracy, an example counts as fooled only if the closest point found lies within ε
 * (then it is returned); other examples return x_orig. Defaults: 9 targets, 100 iterations, α_max 0.1, η 1.05,
 * β 0.9, 1 restart.
 *
 * boundaryStep() is the paper's projection onto hyperplane ∩ box, the minimiser of ‖δ‖ subject to
 * ⟨w, t + δ⟩ = b and 0 ≤ t + δ ≤ 1, batched over rows; for L∞ and L2 alike it is one water-filling problem.
 */
import { Tensor, cat, keep, unkeep, noGrad, manualSeed, ops, scope, where, full } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, correct, interruptionPoint, lossInputGrad, overTargets } from './attack.js';
import { threatModel, type ThreatModel } from './threat.js';
import { sphereStart } from './apgd.js';
import type { AttackEntry } from './registry.js';

/** Stands for +∞ in the projection's float64 arithmetic. */
const BIG = 1e30;

/**
 * The least λ ≥ 0 with Σ_i a_i·min(λ, r_i) = c, per row (a ≥ 0, r ≥ 0, c ≥ 0); BIG where even λ = ∞ falls short.
 * The left side is piecewise linear and nondecreasing in λ, with kinks at the r_i: sort them, evaluate it at
 * every kink, and solve on the first segment that reaches c.
 */
function waterLevel(a: Tensor, r: Tensor, c: Tensor): Tensor {
  const D = r.size(1);
  const [rs, order] = r.sort(1);
  const as = a.gather(1, order);
  const ar = as.mul(rs);
  const below = ops.cumsum(ar, 1).sub(ar); // Σ_{j<k} a_j r_j: the coordinates already at their limit
  const above = ops.cumsum(as.flip(1), 1).flip(1); // Σ_{j≥k} a_j: the ones still moving with λ (exactly 0 past the last a_j > 0)
  const atKinks = below.add(rs.mul(above));
  const k = atKinks.lt(c.unsqueeze(1)).sum(1); // the first kink at which the sum reaches c
  const feasible = k.lt(D);
  const kk = k.clamp(null, D - 1).unsqueeze(1);
  const lambda = c.sub(below.gather(1, kk).squeeze(1)).div(above.gather(1, kk).squeeze(1).clamp(1e-300, null));
  return where(feasible, lambda, full([r.size(0)], BIG, { dtype: 'float64', device: r.device }));
}

/**
 * The least-norm step δ (L∞ or L2) from each row t ∈ [0, 1]^d onto its hyperplane ⟨w, t + δ⟩ = b within the box
 * [0, 1]^d; where the hyperplane misses the box, the step to the box corner that comes closest to it.
 * t, w: [B, d]; b: [B]. Computed in float64, returned in t's dtype.
 */
export function boundaryStep(t: Tensor, w: Tensor, b: Tensor, norm: 'linf' | 'l2'): Tensor {
  return scope(() => {
    const t64 = t.to('float64'), w64 = w.to('float64');
    const need = b.to('float64').sub(t64.mul(w64).sum(1)); // the change of ⟨w, ·⟩ to make
    // orient each row so that ⟨v, δ⟩ = |need| ≥ 0: every coordinate then moves along sign(v_i), up to a box face
    const s = where(need.lt(0), full(need.shape, -1, { dtype: 'float64', device: need.device }), full(need.shape, 1, { dtype: 'float64', device: need.device }));
    const v = w64.mul(s.unsqueeze(1));
    const room = where(v.gt(0), t64.neg().add(1), t64); // how far coordinate i can move that way
    let delta: Tensor;
    if (norm === 'linf') {
      // δ_i = sign(v_i)·min(λ, room_i): one common magnitude λ, capped by the box
      const lambda = waterLevel(v.abs(), room, need.abs()).unsqueeze(1);
      delta = v.sign().mul(room.clamp(null, lambda));
    } else {
      // δ_i = clip(μ v_i) to the box (KKT): coordinate i saturates at μ = room_i / |v_i|
      const vAbs = v.abs();
      const saturates = where(vAbs.gt(0), room.div(vAbs.clamp(1e-300, null)), full(v.shape, BIG, { dtype: 'float64', device: v.device }));
      const mu = waterLevel(v.square(), saturates, need.abs()).unsqueeze(1);
      delta = v.mul(saturates.clamp(null, mu));
    }
    return delta.to(t.dtype);
  });
}

export interface FABOptions {
  eps: number;
  norm?: 'linf' | 'l2';
  /** Iterations per target and restart (default 100). */
  steps?: number;
  /** Target classes, the highest non-true logits first (default 9, at most classes − 1). */
  nTargetClasses?: number;
  /** Runs per target; the first from x, the others from random points at distance ε/2 (default 1). */
  restarts?: number;
  /** Largest weight of the step from x_orig (default 0.1). */
  alphaMax?: number;
  /** Overshoot past the linearised boundary (default 1.05). */
  eta?: number;
  /** Backward step towards x_orig after a success (default 0.9). */
  beta?: number;
  /** Seeds libtorch's generator before the attack (the restarts' random starts). */
  seed?: number;
}

export class FABT extends Attack {
  readonly name = 'fab-t';
  readonly steps: number;
  readonly nTargetClasses: number;
  readonly restarts: number;
  readonly alphaMax: number;
  readonly eta: number;
  readonly beta: number;
  readonly seed: number | undefined;
  constructor(model: Module, opts: FABOptions) {
    super(model, threatModel(opts.norm ?? 'linf', opts.eps));
    this.steps = opts.steps ?? 100;
    this.nTargetClasses = opts.nTargetClasses ?? 9;
    this.restarts = Math.max(1, opts.restarts ?? 1);
    this.alphaMax = opts.alphaMax ?? 0.1;
    this.eta = opts.eta ?? 1.05;
    this.beta = opts.beta ?? 0.9;
    this.seed = opts.seed;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (this.seed !== undefined) manualSeed(this.seed);
    const o = { targets: this.nTargetClasses, restarts: this.restarts, fallback: false };
    return overTargets(this.model, x, y, o, (xs, ys, t, r) => {
      const start = r === 0 ? xs : sphereStart(xs, threatModel(this.threat.norm, this.threat.eps / 2));
      const { closest, distance } = this.towards(xs, ys, t, start);
      const fooled = distance.gt(this.threat.eps).logicalNot(); // found within ε
      return { adv: where(fooled.view(-1, ...Array(x.ndim - 1).fill(1)), closest, xs), fooled };
    });
  }

  /**
   * One FAB run towards target t from `start`: the closest misclassified point found per example and its
   * distance to x0 (BIG where none was found).
   */
  private towards(x0: Tensor, y: Tensor, t: Tensor, start: Tensor): { closest: Tensor; distance: Tensor } {
    const threat: ThreatModel = this.threat;
    const B = x0.size(0);
    const flat = (u: Tensor) => u.flatten(1);
    const perExample = (m: Tensor) => m.view(-1, ...Array(x0.ndim - 1).fill(1));
    const margin = (logits: Tensor, yy: Tensor) => logits.gather(1, t.unsqueeze(1)).sub(logits.gather(1, yy.unsqueeze(1))).squeeze(1);
    let x = keep(start.clone());
    let closest = keep(x0.clone());
    let distance = keep(full([B], BIG, { device: x0.device }));
    for (let k = 0; k < this.steps; k++) {
      interruptionPoint();
      const next = scope(() => {
        // the linearised boundary between y and t at x: ⟨∇f, z⟩ = ⟨∇f, x⟩ − f(x)
        const { g, loss: f } = lossInputGrad(this.model, x, y, margin);
        const w = flat(g);
        const b = w.mul(flat(x)).sum(1).sub(f);
        // project x and x0 onto it (∩ box) in one batch
        const both = boundaryStep(cat([flat(x), flat(x0)]), cat([w, w]), cat([b, b]), threat.norm);
        const d = both.narrow(0, 0, B).view(...x0.shape);
        const dOrig = both.narrow(0, B, B).view(...x0.shape);
        const a = threat.magnitude(d).clamp(1e-8, null);
        const aOrig = threat.magnitude(dOrig).clamp(1e-8, null);
        const alpha = perExample(a.div(a.add(aOrig)).clamp(0, this.alphaMax));
        const xNew = x.add(d.mul(this.eta)).mul(alpha.neg().add(1)).add(x0.add(dOrig.mul(this.eta)).mul(alpha)).clamp_(0, 1);
        // a success: keep it if it is the closest yet, and step back towards x0
        const fooled = noGrad(() => correct(this.model.forward(xNew), y)).logicalNot();
        const dist = threat.magnitude(xNew.sub(x0));
        const closer = fooled.logicalAnd(dist.lt(distance));
        return keep({
          closest: where(perExample(closer), xNew, closest),
          distance: where(closer, dist, distance),
          x: where(perExample(fooled), x0.add(xNew.sub(x0).mul(this.beta)), xNew),
        });
      });
      x.dispose(); closest.dispose(); distance.dispose();
      ({ x, closest, distance } = next);
    }
    x.dispose();
    return { closest: unkeep(closest), distance: unkeep(distance) };
  }
}

export const fabAttacks: AttackEntry[] = [
  {
    usage: 'fab-t, fab-t-l2 (targeted, min(9, classes − 1) target classes)',
    pattern: /^fab-t(?:-(linf|l2))?$/,
    minClasses: 2,
    make: (m, model, s) => new FABT(model, { eps: s.eps, norm: (m[1] as 'linf' | 'l2' | undefined) ?? 'linf', restarts: s.restarts ?? 1 }),
  },
];
