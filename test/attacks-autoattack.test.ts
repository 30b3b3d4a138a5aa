// The rest of AutoAttack's standard ensemble: APGD-T, FAB-T and Square. Analytic cases on linear classifiers
// (FAB's projection onto hyperplane ∩ box against a bisection, FAB's boundary point, APGD-T's targeted optimum,
// Square's vertices), the ε-ball / [0, 1] / model-mode / memory contract, and robust accuracy against the
// PyTorch twin (bench/reference/autoattack.py) on the same trained weights, with reduced budgets for time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { Module, Linear } from '../src/nn/index.js';
import { APGD, APGDT, FABT, Square, boundaryStep, correct, type Attack } from '../src/attacks/index.js';
import { loadDataset, type InMemoryDataset } from '../src/data/index.js';
import { trainedSmallCnn } from './helpers/models.js';
import { pythonJsonAsync, SKIP_NO_TORCH } from './helpers/python.js';

class Lin extends Module {
  fc: Linear;
  constructor(inputs: number, classes: number) {
    super();
    this.fc = this.module('fc', new Linear(inputs, classes));
  }
  forward(x: T.Tensor) {
    return this.fc.forward(x.flatten(1));
  }
}

/** Per-example L∞ or L2 norm of a batch of perturbations. */
const lengths = (d: T.Tensor, norm: 'linf' | 'l2') => (norm === 'linf' ? d.flatten(1).abs().amax(1) : d.flatten(1).norm(2, 1));

/** The least-norm step onto ⟨w, t + δ⟩ = b within [0, 1]^d, by bisection on the multiplier (plain JS, float64). */
function referenceStep(t: number[], w: number[], b: number, norm: 'linf' | 'l2'): number[] {
  const need = b - t.reduce((a, ti, i) => a + ti * w[i]!, 0);
  const v = w.map((wi) => (need < 0 ? -wi : wi));
  const room = t.map((ti, i) => (v[i]! > 0 ? 1 - ti : ti));
  const weight = norm === 'linf' ? v.map(Math.abs) : v.map((vi) => vi * vi);
  const cap = norm === 'linf' ? room : room.map((r, i) => (v[i] !== 0 ? r / Math.abs(v[i]!) : 0));
  const reach = (l: number) => weight.reduce((a, wi, i) => a + wi * Math.min(l, cap[i]!), 0);
  let lo = 0, hi = Math.max(...cap);
  if (reach(hi) >= Math.abs(need))
    for (let k = 0; k < 200; k++) {
      const mid = (lo + hi) / 2;
      if (reach(mid) < Math.abs(need)) lo = mid;
      else hi = mid;
    }
  return v.map((vi, i) => (norm === 'linf' ? Math.sign(vi) * Math.min(hi, cap[i]!) : vi * Math.min(hi, cap[i]!)));
}

test('boundaryStep: the least-norm step onto hyperplane ∩ box, L∞ and L2, equals a bisection (zero weights, missed boxes)', () => {
  T.manualSeed(3);
  T.scope(() => {
    const B = 64, D = 24;
    const t = T.rand([B, D], { dtype: 'float64' });
    const w = T.randn([B, D], { dtype: 'float64' }).mul(T.rand([B, D]).gt(0.2).to('float64'));
    const b = T.randn([B], { dtype: 'float64' }).mul(3);
    const [ta, wa, ba] = [t.toArray() as number[][], w.toArray() as number[][], b.toArray() as number[]];
    for (const norm of ['linf', 'l2'] as const) {
      const got = boundaryStep(t, w, b, norm).toArray() as number[][];
      let err = 0, missed = 0;
      for (let i = 0; i < B; i++) {
        const ref = referenceStep(ta[i]!, wa[i]!, ba[i]!, norm);
        err = Math.max(err, ...ref.map((r, j) => Math.abs(r - got[i]![j]!)));
        const residual = ba[i]! - ta[i]!.reduce((a, tj, j) => a + (tj + got[i]![j]!) * wa[i]![j]!, 0);
        if (Math.abs(residual) > 1e-9) missed++;
        assert.ok(got[i]!.every((d, j) => ta[i]![j]! + d >= -1e-12 && ta[i]![j]! + d <= 1 + 1e-12), `${norm} row ${i} leaves the box`);
      }
      assert.ok(err < 1e-9, `${norm}: max deviation from the bisection ${err}`);
      assert.ok(missed > 0 && missed < B / 4, `${norm}: ${missed} rows whose hyperplane misses the box (some, not most)`);
    }
  });
});

/**
 * FAB on a linear model whose box does not bind moves along the ray x0 + c·δ* (δ* the least-norm step to the
 * target's boundary): δ from x0 + c·δ* is (1 − c)·δ*, δ_orig = δ*. This is its iteration on c; the result is
 * the smallest c that crossed the boundary.
 */
function fabOnTheRay(o: { steps?: number; eta?: number; beta?: number; alphaMax?: number } = {}): number {
  const { steps = 100, eta = 1.05, beta = 0.9, alphaMax = 0.1 } = o;
  let c = 0, best = Infinity;
  for (let k = 0; k < steps; k++) {
    const a = Math.max(1 - c, 1e-8); // ‖δ‖ in units of ‖δ*‖ (≥ 1e-8 as in the attack)
    const alpha = Math.min(a / (a + 1), alphaMax);
    c = (1 - alpha) * (c + eta * (1 - c)) + alpha * eta;
    if (c > 1) {
      best = Math.min(best, c);
      c *= beta;
    }
  }
  return best;
}

test('FAB-T on linear classifiers: the exact boundary point (binary and 5 classes, L∞ and L2)', () => {
  T.manualSeed(5);
  const factor = fabOnTheRay();
  assert.ok(factor > 1.005 && factor < 1.006, `AutoAttack's η = 1.05 ends ${factor} × the least distance away`);
  T.scope(() => {
    for (const K of [2, 5])
      for (const norm of ['linf', 'l2'] as const)
        for (const eta of [1.05, 1.0001]) {
          const m = new Lin(16, K);
          T.noGrad(() => {
            m.fc.weight.mul_(norm === 'linf' ? 5 : 20);
            m.fc.bias!.add_(m.fc.weight.sum(1).mul(-0.5)); // boundaries near the middle of the box
          });
          const x = T.rand([64, 1, 4, 4]).mul(0.4).add(0.3);
          const logits = T.noGrad(() => m.forward(x));
          const y = logits.argmax(1);
          const adv = new FABT(m, { eps: norm === 'linf' ? 1 : 4, norm, eta }).run(x, y);
          // the target is the runner-up class; the boundary z_y = z_t is at |margin| / ‖w_y − w_t‖ (dual norm)
          const t = logits.sort(1, true)[1].select(1, 1);
          const W = m.fc.weight;
          const wd = W.indexSelect(0, t).sub(W.indexSelect(0, y)); // ∇(z_t − z_y)
          const margin = logits.gather(1, y.unsqueeze(1)).sub(logits.gather(1, t.unsqueeze(1))).squeeze(1);
          const dual = norm === 'linf' ? wd.abs().sum(1) : wd.norm(2, 1);
          const least = margin.div(dual);
          const deltaStar = norm === 'linf' ? wd.sign().mul(least.unsqueeze(1)) : wd.mul(margin.div(dual.square()).unsqueeze(1));
          // points whose path (up to η·δ*) stays inside [0, 1], so that the box never binds
          const reach = x.flatten(1).add(deltaStar.mul(eta * 1.001));
          // (and far enough from the boundary for float32 to resolve the distance to 1e-4)
          const interior = reach.min(1)[0].gt(0).logicalAnd(reach.amax(1).lt(1)).logicalAnd(least.gt(norm === 'linf' ? 0.002 : 0.01));
          const n = interior.sum().item();
          assert.ok(n >= 48, `${K} classes ${norm}: ${n} interior points`);
          const c = eta === 1.05 ? factor : fabOnTheRay({ eta });
          const expected = x.flatten(1).add(deltaStar.mul(c));
          const dist = lengths(adv.sub(x), norm);
          const relErr = dist.div(least.mul(c)).sub(1).abs().maskedSelect(interior).max().item();
          assert.ok(relErr < 1e-4, `${K} classes ${norm} η ${eta}: distance off by ${relErr} relative`);
          const off = lengths(adv.flatten(1).sub(expected), norm).div(least).maskedSelect(interior).max().item();
          assert.ok(off < 1e-4, `${K} classes ${norm} η ${eta}: point off by ${off} × the least distance`);
          if (eta < 1.001) assert.ok(dist.div(least).maskedSelect(interior).max().item() < 1 + 1e-4, 'with η → 1 it is the least-norm boundary point');
          m.dispose();
        }
  });
});

test('APGD-T on a linear model reaches the targeted optimum (L∞: x − ε·sign(w_y − w_t); L2: x − ε·(w_y − w_t)/‖·‖₂)', () => {
  T.manualSeed(6);
  T.scope(() => {
    // 4 classes; only class 1 (the runner-up) depends on x, so the DLR denominator z_π1 − (z_π3 + z_π4)/2 is constant
    const m = new Lin(16, 4);
    T.noGrad(() => {
      const W = m.fc.weight;
      for (const k of [0, 2, 3]) W.select(0, k).zero_();
      m.fc.bias!.copy_(T.tensor([5, 0, -5, -6]));
    });
    const x = T.rand([32, 1, 4, 4]).mul(0.6).add(0.2);
    const y = T.zeros([32], { dtype: 'int64' });
    const w = m.fc.weight.select(0, 1).view(1, 1, 4, 4); // w_t − w_y
    for (const norm of ['linf', 'l2'] as const) {
      const eps = norm === 'linf' ? 0.05 : 0.1;
      const adv = new APGDT(m, { eps, norm, nTargetClasses: 1, seed: 0 }).run(x, y);
      const optimum = norm === 'linf' ? x.add(w.sign().mul(eps)) : x.add(w.div(w.norm()).mul(eps));
      // the gain in z_t − z_y over x, in float64
      const gain = (a: T.Tensor) => a.to('float64').sub(x.to('float64')).flatten(1).matmul(w.flatten().to('float64').unsqueeze(1)).squeeze(1);
      const best = gain(optimum);
      const shortfall = best.sub(gain(adv)).div(best).max().item();
      const off = lengths(adv.sub(optimum), norm).max().item();
      if (norm === 'linf') {
        assert.ok(off < 1e-6, `L∞: the vertex x + ε·sign(w_t − w_y) (off by ${off})`);
        assert.ok(shortfall < 1e-6, `L∞: targeted margin ${shortfall} short of the optimum`);
      } else {
        // on the sphere the loss is flat to second order at the optimum: float32 losses (relative resolution
        // 6e-8) tell points apart only down to an angle of ~3e-3, so the point is placed to that and the
        // margin reached to ~1e-5
        assert.ok(off < 5e-3 * eps, `L2: the point x + ε·ŵ (off by ${off})`);
        assert.ok(shortfall < 2e-5, `L2: targeted margin ${shortfall} short of the optimum`);
      }
      assert.ok(lengths(adv.sub(x), norm).max().item() <= eps * (1 + 1e-6));
    }
    m.dispose();
  });
});

test('Square on a linear model: L∞ finds a flipping vertex whenever the worst case flips; L2 stays in the ball', () => {
  T.manualSeed(7);
  T.scope(() => {
    for (const norm of ['linf', 'l2'] as const) {
      const side = norm === 'linf' ? 4 : 10;
      const m = new Lin(side * side, 2);
      T.noGrad(() => {
        m.fc.weight.mul_(norm === 'linf' ? 6 : 3);
        m.fc.bias!.copy_(m.fc.weight.sum(1).mul(-0.5)); // boundary through the middle of the box: margins of all sizes
      });
      const x = T.rand([256, 1, side, side]).mul(0.5).add(0.25);
      const logits = T.noGrad(() => m.forward(x));
      const y = logits.argmax(1);
      const eps = norm === 'linf' ? 0.04 : 0.15;
      const W = m.fc.weight;
      const wd = W.indexSelect(0, y).sub(W.indexSelect(0, y.neg().add(1)));
      const margin = logits.amax(1).sub(logits.min(1)[0]);
      const budget = norm === 'linf' ? wd.abs().sum(1).mul(eps) : wd.norm(2, 1).mul(eps);
      const flippable = margin.lt(budget); // the analytic worst case flips it
      const adv = new Square(m, { eps, norm, queries: 1000, seed: 1 }).run(x, y);
      const fooled = T.noGrad(() => m.forward(adv).argmax(1).ne(y));
      const d = adv.sub(x).flatten(1);
      assert.ok(lengths(adv.sub(x), norm).max().item() <= eps * (1 + 1e-6), `${norm}: inside the ball`);
      assert.ok(adv.min().item() >= 0 && adv.max().item() <= 1);
      assert.equal(fooled.logicalAnd(flippable.logicalNot()).sum().item(), 0, `${norm}: never fools beyond the worst case`);
      const nFlip = flippable.sum().item();
      assert.ok(nFlip > 40 && nFlip < 216, `${norm}: a mix of flippable (${nFlip}) and safe points`);
      if (norm === 'linf') {
        assert.ok(d.abs().sub(eps).abs().amax(1).max().item() < 1e-6, 'every point is a vertex of the ball');
        assert.ok(fooled.equal(flippable), `L∞: fooled ${fooled.sum().item()} of ${nFlip} flippable`);
      } else {
        const easy = margin.lt(budget.mul(0.5)); // flippable with half the budget
        const found = fooled.logicalAnd(easy).sum().item() / easy.sum().item();
        assert.ok(found >= 0.95, `L2: fooled ${found} of the points flippable with half the budget`);
      }
      m.dispose();
    }
  });
});

test('each attack (and APGD-CE, L2 included) stays in the ε-ball and [0, 1], restores the model mode, and leaves no live tensors', () => {
  T.manualSeed(8);
  const m = new Lin(64, 10);
  T.noGrad(() => m.fc.weight.mul_(10));
  const x = T.rand([24, 1, 8, 8]).keep();
  const y = T.noGrad(() => m.forward(x).argmax(1)).keep();
  for (const norm of ['linf', 'l2'] as const) {
    const eps = norm === 'linf' ? 0.03 : 0.3;
    const attacks: Attack[] = [
      new APGD(m, { eps, norm, steps: 10, restarts: 2 }), // the refactored APGD-CE, L2 now too
      new APGDT(m, { eps, norm, steps: 10, nTargetClasses: 3 }),
      new FABT(m, { eps, norm, steps: 10, nTargetClasses: 3, restarts: 2 }),
      new Square(m, { eps, norm, queries: 50, restarts: 2 }),
    ];
    for (const a of attacks)
      for (const mode of [true, false]) {
        m.train(mode);
        const live = T.liveTensors();
        const adv = a.run(x, y);
        assert.equal(m.training, mode, `${a.name} ${norm} restores the mode`);
        T.scope(() => {
          assert.ok(adv.min().item() >= 0 && adv.max().item() <= 1, `${a.name} ${norm} in [0, 1]`);
          assert.ok(lengths(adv.sub(x), norm).max().item() <= eps * (1 + 1e-5), `${a.name} ${norm} in the ball`);
          const robust = T.noGrad(() => correct(m.forward(adv), y).float().mean().item());
          assert.ok(robust < 1, `${a.name} ${norm} fools something`);
        });
        adv.dispose();
        assert.equal(T.liveTensors(), live, `${a.name} ${norm} leaves no live tensors`);
      }
  }
  x.dispose();
  y.dispose();
  m.dispose();
});


// Reduced budgets (time): APGD-T and FAB-T 2 targets × 40 iterations (standard: 9 × 100), Square 300 queries
// (standard: 5,000); L∞ ε = 0.1 on 200 Fashion-MNIST test images, L2 ε = 1 on the first 100 of them.
const BUDGET = { targets: 2, steps: 40, queries: 300 };

test('APGD-T, FAB-T and Square: robust accuracy within 2 points of the PyTorch twin on the same weights', { skip: SKIP_NO_TORCH }, async (t) => {
  const train = (await loadDataset({ name: 'fashion-mnist', split: 'train' })) as InMemoryDataset;
  const test_ = (await loadDataset({ name: 'fashion-mnist', split: 'test' })) as InMemoryDataset;
  const m = trainedSmallCnn(train, 60);
  const n = 200;
  const runs = [
    { attack: 'apgd-t', norm: 'linf', eps: 0.1, n: 200 },
    { attack: 'fab-t', norm: 'linf', eps: 0.1, n: 200 },
    { attack: 'square', norm: 'linf', eps: 0.1, n: 200 },
    { attack: 'apgd-t', norm: 'l2', eps: 1, n: 100 },
    { attack: 'fab-t', norm: 'l2', eps: 1, n: 100 },
    { attack: 'square', norm: 'l2', eps: 1, n: 100 },
  ] as const;
  const batch = () => ({
    x: T.fromTypedArray(Float32Array.from(test_.images.subarray(0, n * 784), (v) => v / 255), [n, 1, 28, 28]),
    y: T.fromTypedArray(BigInt64Array.from(test_.labels.subarray(0, n), (v) => BigInt(v)), [n], 'int64'),
  });
  // FAB's projection on the same rows in both implementations (sort-and-solve here, bisection there)
  const { input, projections } = T.scope(() => {
    T.manualSeed(9);
    const pt = T.rand([32, 50]), pw = T.randn([32, 50]), pb = T.randn([32]).mul(2);
    const projections = Object.fromEntries((['linf', 'l2'] as const).map((norm) => [norm, boundaryStep(pt, pw, pb, norm).toArray() as number[][]]));
    const flat = (v: T.Tensor) => Array.from(v.flatten().toTypedArray() as Float32Array);
    const weights = Object.fromEntries(Object.entries(m.stateDict()).map(([k, v]) => [k, flat(v)]));
    const input = JSON.stringify({ weights, x: flat(batch().x), y: Array.from(test_.labels.subarray(0, n)), runs, budget: BUDGET, proj: { t: flat(pt), w: flat(pw), b: flat(pb) } });
    return { input, projections };
  });
  // the twin runs on another core while freeadv attacks
  const twin = pythonJsonAsync<{ acc: Record<string, number>; secs: Record<string, number>; proj: Record<string, number[][]> }>(`
import json, sys, time, torch, models, autoattack as aa
torch.set_num_threads(1)
d = json.loads(sys.stdin.read())
m = models.build('small-cnn', 10).eval()
sd = m.state_dict()
for k, v in d['weights'].items():
    sd[k].copy_(torch.tensor(v, dtype=sd[k].dtype).view(sd[k].shape))
X = torch.tensor(d['x']).view(-1, 1, 28, 28); Y = torch.tensor(d['y'])
B = d['budget']
acc, secs = {}, {}
for r in d['runs']:
    torch.manual_seed(0)
    x, y = X[:r['n']], Y[:r['n']]
    t0 = time.time()
    if r['attack'] == 'apgd-t':
        adv = aa.apgd_t(m, x, y, r['eps'], r['norm'], n_iter=B['steps'], n_targets=B['targets'])
    elif r['attack'] == 'fab-t':
        adv = aa.fab_t(m, x, y, r['eps'], r['norm'], n_iter=B['steps'], n_targets=B['targets'])
    else:
        adv = aa.square(m, x, y, r['eps'], r['norm'], n_queries=B['queries'])
    key = r['attack'] + '-' + r['norm']
    secs[key] = time.time() - t0
    assert aa.lp(adv - x, r['norm']).max() <= r['eps'] * (1 + 1e-5) and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        acc[key] = (m(adv).argmax(1) == y).float().mean().item()
p = d['proj']
t, w, b = torch.tensor(p['t']).view(32, 50), torch.tensor(p['w']).view(32, 50), torch.tensor(p['b'])
proj = {n: aa.hyperplane_box_step(t, w, b, n).tolist() for n in ('linf', 'l2')}
print(json.dumps({'acc': acc, 'secs': secs, 'proj': proj}))
`, [], { input, timeoutMs: 300_000 });
  twin.catch(() => {}); // awaited below; this only keeps an early failure here from going unhandled
  const ours = T.scope(() => {
    const { x: xAll, y: yAll } = batch();
    const ours: Record<string, number> = {};
    for (const r of runs) {
      const x = xAll.narrow(0, 0, r.n), y = yAll.narrow(0, 0, r.n);
      const atk =
        r.attack === 'apgd-t' ? new APGDT(m, { eps: r.eps, norm: r.norm, nTargetClasses: BUDGET.targets, steps: BUDGET.steps, seed: 0 })
        : r.attack === 'fab-t' ? new FABT(m, { eps: r.eps, norm: r.norm, nTargetClasses: BUDGET.targets, steps: BUDGET.steps })
        : new Square(m, { eps: r.eps, norm: r.norm, queries: BUDGET.queries, seed: 0 });
      const t0 = Date.now();
      const adv = atk.run(x, y);
      assert.ok(lengths(adv.sub(x), r.norm).max().item() <= r.eps * (1 + 1e-5) && adv.min().item() >= 0 && adv.max().item() <= 1);
      ours[`${r.attack}-${r.norm}`] = T.noGrad(() => correct(m.forward(adv), y).float().mean().item());
      t.diagnostic(`freeadv ${r.attack} ${r.norm}: ${(100 * ours[`${r.attack}-${r.norm}`]!).toFixed(1)}% in ${Date.now() - t0} ms`);
    }
    return ours;
  });
  const py = await twin;
  for (const norm of ['linf', 'l2'] as const) {
    const err = Math.max(...projections[norm]!.flatMap((row, i) => row.map((v, j) => Math.abs(v - py.proj[norm]![i]![j]!))));
    assert.ok(err < 1e-5, `FAB projection ${norm}: freeadv and the twin differ by ${err}`);
  }
  for (const [key, a] of Object.entries(ours)) {
    t.diagnostic(`${key}: freeadv ${(100 * a).toFixed(1)}%, PyTorch twin ${(100 * py.acc[key]!).toFixed(1)}% (${py.secs[key]!.toFixed(1)} s)`);
    assert.ok(Math.abs(a - py.acc[key]!) <= 0.02 + 1e-9, `${key}: freeadv ${a} vs the PyTorch twin ${py.acc[key]}`);
  }
  assert.ok(ours['apgd-t-linf']! < 0.6 && ours['square-linf']! < 0.75, 'the attacks do something');
  m.dispose();
});
