/**
 * Square Attack — Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
 * adversarial attack via random search" (ECCV 2020), L∞ and L2, as AutoAttack's "standard" version runs it.
 *
 * Score-based random search on the margin loss L(x) = z_y − max_{j≠y} z_j (minimised; fooled once ≤ 0), with
 * forward passes only:
 *
 *   x̂ ← an initial point on the boundary of the ball          (L∞: vertical stripes ±ε; L2: ±η-blocks)
 *   for i = 0 … queries − 1, on the examples not yet fooled:
 *     s  ← side of the square from p = p(i) (the fraction of pixels changed; p_init, halved on a schedule)
 *     x' ← x̂ changed inside one random s×s square per image  (L∞: set to x ± ε per channel; L2: Alg. 3)
 *     x̂ ← x' where L(x') < L(x̂)
 *
 * Each image draws its own square (the paper's per-image algorithm; AutoAttack's code shares one square per
 * batch). The p schedule halves p after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000, counted
 * in raw iterations as AutoAttack's standard version does (rescaleSchedule: false), or rescaled to 10,000
 * (the paper's setting for other budgets). Randomness comes from libtorch's generator (manualSeed / `seed`).
 * Defaults: 5,000 queries, p_init 0.8, 1 restart. Examples never fooled return their lowest-margin point.
 */
import { Tensor, arange, full, keep, manualSeed, noGrad, ops, rand, randint, scope, tensor, unkeep, where, zeros } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Attack, WorstCase, correct, interruptionPoint } from './attack.js';
import { threatModel } from './threat.js';
import { cwLoss } from './losses.js';
import type { AttackEntry } from './registry.js';

export interface SquareOptions {
  eps: number;
  norm?: 'linf' | 'l2';
  /** Iterations of the random search, one query each, after the initial point's (default 5,000). */
  queries?: number;
  /** Initial fraction of the pixels a square covers (default 0.8). */
  pInit?: number;
  /** Runs; each attacks the examples not yet fooled (default 1). */
  restarts?: number;
  /** Rescale the p schedule from 10,000 iterations to `queries` (default false, as AutoAttack). */
  rescaleSchedule?: boolean;
  /** Seeds libtorch's generator before the attack. */
  seed?: number;
}

/** p at iteration i: p_init halved after each of the schedule's iterations passed. */
export function squareFraction(i: number, pInit: number, queries: number, rescale: boolean): number {
  const it = rescale ? Math.floor((i / queries) * 10000) : i;
  const halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000].filter((t) => it > t).length;
  return pInit / 2 ** halvings;
}

/**
 * The L2 building block η(s) (s×s, unit L2 norm): the top half a stack of nested rectangles around its centre
 * with weights 1/(k+1)², the bottom half the same pattern negated.
 */
export function squareBlock(s: number): number[][] {
  const rectangles = (rows: number, cols: number): number[][] => {
    const ci = Math.floor(rows / 2), cj = Math.floor(cols / 2);
    const K = Math.max(ci, cj) + 1;
    return Array.from({ length: rows }, (_, i) =>
      Array.from({ length: cols }, (_, j) => {
        let v = 0;
        for (let k = Math.max(Math.abs(i - ci), Math.abs(j - cj)); k < K; k++) v += 1 / (k + 1) ** 2;
        return v;
      }),
    );
  };
  const unit = (m: number[][]) => {
    const n = Math.sqrt(m.flat().reduce((a, v) => a + v * v, 0)) || 1;
    return m.map((r) => r.map((v) => v / n));
  };
  const top = Math.floor(s / 2);
  const upper = top > 0 ? unit(rectangles(top, s)) : [];
  const lower = unit(rectangles(s - top, s)).map((r) => r.map((v) => -v));
  return unit([...upper, ...lower]);
}

export class Square extends Attack {
  readonly name = 'square';
  readonly queries: number;
  readonly pInit: number;
  readonly restarts: number;
  readonly rescaleSchedule: boolean;
  readonly seed: number | undefined;
  /** Where the search runs (the images' device): every random draw and constant is made there. */
  private device = 'cpu';
  constructor(model: Module, opts: SquareOptions) {
    super(model, threatModel(opts.norm ?? 'linf', opts.eps));
    this.queries = opts.queries ?? 5000;
    this.pInit = opts.pInit ?? 0.8;
    this.restarts = Math.max(1, opts.restarts ?? 1);
    this.rescaleSchedule = opts.rescaleSchedule ?? false;
    this.seed = opts.seed;
  }

  protected perturb(x: Tensor, y: Tensor): Tensor {
    if (x.ndim !== 4) throw new RangeError(`square: images must be [B, C, H, W], got [${x.shape}]`);
    if (this.seed !== undefined) manualSeed(this.seed);
    const worst = new WorstCase(x, noGrad(() => correct(this.model.forward(x), y)));
    for (let r = 0; r < this.restarts && !worst.done; r++) worst.stage(x, y, (xs, ys) => noGrad(() => this.search(xs, ys)), { fallback: r === 0 });
    return worst.result();
  }

  /** The margin z_y − max_{j≠y} z_j (one query per example). */
  private margin(x: Tensor, y: Tensor): Tensor {
    return cwLoss(this.model.forward(x), y).neg();
  }

  /** One random search; per example the lowest-margin point found and whether it fools the model. */
  private search(x: Tensor, y: Tensor): { adv: Tensor; fooled: Tensor } {
    this.device = x.device;
    // every example's best point and margin; the search runs on the rows still unfooled (`at`), compacted
    let best = keep(this.initialPoint(x));
    let bestMargin = keep(this.margin(best, y));
    let at = keep(ops.nonzero(bestMargin.gt(0)).flatten());
    let xa = keep(x.indexSelect(0, at)), ya = keep(y.indexSelect(0, at));
    let besta = keep(best.indexSelect(0, at)), margina = keep(bestMargin.indexSelect(0, at));
    const writeBack = () => {
      const [b, m] = scope(() => keep([ops.indexCopy(best, 0, at, besta), ops.indexCopy(bestMargin, 0, at, margina)]));
      best.dispose(); bestMargin.dispose();
      best = b!; bestMargin = m!;
    };
    for (let i = 0; i < this.queries && at.size(0) > 0; i++) {
      interruptionPoint();
      const p = squareFraction(i, this.pInit, this.queries, this.rescaleSchedule);
      const someFooled = scope(() => {
        const candidate = this.threat.norm === 'linf' ? this.proposeLinf(xa, besta, p) : this.proposeL2(xa, besta, p);
        const m = this.margin(candidate, ya);
        const better = m.lt(margina);
        const nb = keep(where(better.view(-1, 1, 1, 1), candidate, besta));
        const nm = keep(where(better, m, margina));
        besta.dispose(); margina.dispose();
        besta = nb; margina = nm;
        return margina.gt(0).logicalNot().any().item() !== 0;
      });
      if (someFooled) {
        // record the rows just fooled and drop them from the search
        writeBack();
        const still = scope(() => keep(ops.nonzero(margina.gt(0)).flatten()));
        const next = scope(() => keep([at, xa, ya, besta, margina].map((t) => t.indexSelect(0, still))));
        for (const t of [at, xa, ya, besta, margina, still]) t.dispose();
        [at, xa, ya, besta, margina] = next as [Tensor, Tensor, Tensor, Tensor, Tensor];
      }
    }
    writeBack();
    for (const t of [at, xa, ya, besta, margina]) t.dispose();
    const fooled = scope(() => keep(bestMargin.gt(0).logicalNot()));
    bestMargin.dispose();
    return { adv: unkeep(best), fooled: unkeep(fooled) };
  }

  /** The side of the square for the fraction p of an h×w image (L∞ ≥ 1; L2 odd, ≥ 3), at most min(h, w). */
  private side(p: number, h: number, w: number): number {
    let s = Math.max(Math.round(Math.sqrt(p * h * w)), this.threat.norm === 'linf' ? 1 : 3);
    if (this.threat.norm === 'l2' && s % 2 === 0) s++;
    return Math.min(s, h, w);
  }

  /** Per image, a random s×s square: a [n, 1, h, w] mask, and its row/column index maps into an s×s block. */
  private square(n: number, h: number, w: number, s: number): { mask: Tensor; ri: Tensor; ci: Tensor } {
    const on = { device: this.device };
    const top = randint(0, h - s + 1, [n, 1], on);
    const left = randint(0, w - s + 1, [n, 1], on);
    const ri = arange(0, h, 1, on).view(1, h).sub(top); // row index inside the square (outside: < 0 or ≥ s)
    const ci = arange(0, w, 1, on).view(1, w).sub(left);
    const rows = ri.lt(0).logicalNot().logicalAnd(ri.lt(s));
    const cols = ci.lt(0).logicalNot().logicalAnd(ci.lt(s));
    return { mask: rows.view(n, 1, h, 1).logicalAnd(cols.view(n, 1, 1, w)), ri: ri.clamp(0, s - 1), ci: ci.clamp(0, s - 1) };
  }

  /** Random signs ±1 of the given shape. */
  private signs(shape: number[]): Tensor {
    return rand(shape, { device: this.device }).lt(0.5).float().mul(2).sub(1);
  }

  private initialPoint(x: Tensor): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const eps = this.threat.eps;
    if (this.threat.norm === 'linf') return x.add(this.signs([n, c, 1, w]).mul(eps)).clamp(0, 1); // vertical stripes
    // L2: a grid of η-blocks of side ⌊h/5⌋ (each transposed at random, with a random sign per channel), scaled to ε
    const s = Math.max(Math.floor(h / 5), 1);
    const nh = Math.floor(h / s), nw = Math.floor(w / s);
    const top = Math.floor((h - nh * s) / 2), left = Math.floor((w - nw * s) / 2);
    const eta = tensor(squareBlock(s), { device: this.device });
    const delta = zeros([n, c, h, w], { device: this.device });
    for (let bi = 0; bi < nh; bi++)
      for (let bj = 0; bj < nw; bj++) {
        const transposed = rand([n, 1, 1, 1], { device: this.device }).lt(0.5);
        const block = where(transposed, eta.T.reshape(1, 1, s, s), eta.view(1, 1, s, s)).mul(this.signs([n, c, 1, 1]));
        delta.narrow(2, top + bi * s, s).narrow(3, left + bj * s, s).copy_(block);
      }
    return x.add(delta.div(this.l2(delta).add(1e-12)).mul(eps)).clamp(0, 1);
  }

  /** L∞: the pixels of one random square set to x ± ε (one sign per channel), a vertex of the ball. */
  private proposeLinf(x: Tensor, best: Tensor, p: number): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const { mask } = this.square(n, h, w, this.side(p, h, w));
    const vertex = x.add(this.signs([n, c, 1, 1]).mul(this.threat.eps)).clamp(0, 1);
    return where(mask, vertex, best);
  }

  /**
   * L2 (the paper's Algorithm 3): in a random square W1, the perturbation becomes its old direction there plus a
   * new ±η-block, rescaled to take the budget of W1 ∪ W2 (W2 another random square, whose perturbation is
   * removed) plus what is left of ε; the whole perturbation is then rescaled to norm ε.
   */
  private proposeL2(x: Tensor, best: Tensor, p: number): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const eps = this.threat.eps;
    const s = this.side(p, h, w);
    const W1 = this.square(n, h, w, s), W2 = this.square(n, h, w, s);
    const delta = best.sub(x);
    const windowNorm = (m: Tensor) => delta.mul(m.float()).square().sum([2, 3], true).sqrt(); // per (example, channel)
    const inW1 = windowNorm(W1.mask);
    const inBoth = windowNorm(W1.mask.logicalOr(W2.mask));
    const total = this.l2(delta);
    // the block η(s) placed on W1, transposed at random per image, one sign per channel
    const eta = tensor(squareBlock(s), { device: this.device });
    const rows = W1.ri.view(n, h, 1), cols = W1.ci.view(n, 1, w);
    const placed = where(rand([n, 1, 1], { device: this.device }).lt(0.5), eta.index([cols, rows]), eta.index([rows, cols])).view(n, 1, h, w);
    let fresh = placed.mul(this.signs([n, c, 1, 1])).add(delta.div(inW1.add(1e-12))).mul(W1.mask.float());
    const budget = full([1], eps * eps, { device: this.device }).sub(total.square()).clamp(0, null).div(c).add(inBoth.square()).sqrt();
    fresh = fresh.div(fresh.square().sum([2, 3], true).sqrt().add(1e-12)).mul(budget);
    const moved = where(W1.mask, fresh, delta.maskedFill(W2.mask, 0));
    return x.add(moved.div(this.l2(moved).add(1e-12)).mul(eps)).clamp(0, 1);
  }

  /** Per-example L2 norm, shaped [n, 1, 1, 1]. */
  private l2(d: Tensor): Tensor {
    return d.flatten(1).norm(2, 1).view(-1, 1, 1, 1);
  }
}

export const squareAttacks: AttackEntry[] = [
  {
    usage: 'square, square-l2, square-Q (Q queries, default 5,000; black-box)',
    pattern: /^square(?:-(\d+))?(?:-(linf|l2))?$/,
    check: (m) => (m[1] !== undefined && !(Number(m[1]) >= 1 && Number(m[1]) <= 1e6) ? `queries must be in [1, 1000000], got ${m[1]}` : undefined),
    make: (m, model, s) => new Square(model, { eps: s.eps, norm: (m[2] as 'linf' | 'l2' | undefined) ?? 'linf', queries: m[1] ? Number(m[1]) : 5000, restarts: s.restarts ?? 1 }),
  },
];
