// One rank of the overlapped gradient averaging test (test/dist.test.ts). Prints one JSON line of measurements:
//  - small-cnn, 3 SGD steps, different data per rank: the gradients averaged during backward (OverlappedGradAverager,
//    small buckets: several of them) against the old after-backward GradAverager on the same local gradients;
//    the input gradient (free training's δ) stays per rank; unarmed backward passes (a plain backward, an attack
//    step's autograd.grad) leave the gradients per rank although the reducer's hooks are installed;
//  - a parameter that gets no gradient: refused with a DistError by default, handled with findUnusedParameters.
// Mode 'die': afterwards rank 1 exits while rank 0 runs another overlapped backward, which must end in a DistError
// within the timeout.
import * as T from '../../src/torch/index.js';
import { rendezvousFromEnv, GradAverager, OverlappedGradAverager } from '../../src/torch/dist.js';
import { createModel } from '../../src/models/index.js';

const mode = process.argv[2] ?? 'ok';
const g = T.dist.init({ ...rendezvousFromEnv()!, timeoutMs: Number(process.env.TIMEOUT_MS ?? 20000) });
const r = g.rank;
const N = g.worldSize;
T.setNumThreads(1);
const res: Record<string, unknown> = {};

const maxDiff = (a: Float32Array[], b: Float32Array[]) => {
  let d = 0;
  a.forEach((x, i) => x.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i]![j]!)))));
  return d;
};
const maxAbs = (a: Float32Array[]) => Math.max(...a.map((x) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
const arrays = (ts: (T.Tensor | undefined)[]) => ts.map((t) => t!.toTypedArray() as Float32Array);

// ---- small-cnn: overlapped vs after-backward averaging ----
T.manualSeed(0); // the same weights on every rank
const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.5], std: [0.25] });
const named = model.namedParameters();
const params = named.map(([, p]) => p);
const names = named.map(([n]) => n);
const bucketBytes = 4096; // small-cnn has 0.8 MB of gradients in 8 tensors: 4 buckets
const overlapped = new OverlappedGradAverager(params, { bucketBytes, names });
const old = new GradAverager(params, N, bucketBytes);
res.bucketsBefore = overlapped.buckets.length;
T.manualSeed(100 + r); // different data on every rank
const steps: Record<string, number>[] = [];
for (let step = 0; step < 3; step++) {
  T.scope(() => {
    const x = T.rand([16, 1, 28, 28]);
    const y = T.randint(0, 10, [16]);
    const lossOf = (xi: T.Tensor) => T.ops.crossEntropy(model.forward(xi), y);
    // local gradients, two ways: autograd.grad (never touches .grad) and an unarmed backward
    const xr = x.clone().requiresGrad_();
    const loc = T.autograd.grad(lossOf(xr), [...params, xr]);
    const local = arrays(loc.slice(0, -1));
    const localInput = arrays([loc[loc.length - 1]]);
    for (const p of params) p.grad = undefined;
    lossOf(x).backward();
    const unarmed = arrays(params.map((p) => p.grad));
    // the old path: average the local gradients after backward
    old.average();
    const ref = arrays(params.map((p) => p.grad));
    // an attack step in between: autograd.grad w.r.t. the input only
    T.autograd.grad(lossOf(x.clone().requiresGrad_()), [x.clone().requiresGrad_()], { allowUnused: true });
    // the overlapped path, free-training style: the input requires grad too
    for (const p of params) p.grad = undefined;
    const xd = x.clone().requiresGrad_();
    const loss = lossOf(xd);
    overlapped.prepare([loss]);
    loss.backward();
    overlapped.finish();
    const got = arrays(params.map((p) => p.grad));
    steps.push({
      unarmed_vs_local: maxDiff(unarmed, local),
      local_vs_mean: maxDiff(local, ref),
      overlapped_vs_old: maxDiff(got, ref),
      grad_scale: maxAbs(ref),
      input_grad_vs_local: maxDiff(arrays([xd.grad]), localInput),
    });
    // SGD step with the averaged gradients (the same on every rank)
    T.noGrad(() => params.forEach((p) => p.sub_(p.grad!, 0.5)));
  });
}
res.steps = steps;
res.buckets = overlapped.buckets;
res.calls = overlapped.calls;
res.weights = T.scope(() => T.cat(params.map((p) => p.detach().reshape(-1))).sum().item());
overlapped.dispose();

// ---- a parameter without gradient ----
{
  T.manualSeed(1);
  const w = T.randn([4, 3]).requiresGrad_();
  const u = T.randn([3]).requiresGrad_(); // never used
  const v = T.randn([3]).requiresGrad_(); // used by rank 0 only
  const x = T.ones([2, 4]).mul(r + 1);
  const loss = (useV: boolean) => {
    const h = x.matmul(w).sum();
    return useV ? h.add(v.mul(2).sum()) : h;
  };
  const refuse = new OverlappedGradAverager([w, u], { bucketBytes: 16, names: ['w', 'u'] });
  try {
    const l = loss(false);
    refuse.prepare([l]);
    l.backward();
    refuse.finish();
    res.unusedRefused = null;
  } catch (e) {
    res.unusedRefused = { name: (e as Error).name, message: (e as Error).message };
  }
  refuse.dispose();
  w.grad = undefined;
  const handle = new OverlappedGradAverager([w, u, v], { bucketBytes: 16, findUnusedParameters: true });
  const got: unknown[] = [];
  for (let i = 0; i < 2; i++) {
    for (const p of [w, u, v]) p.grad = undefined;
    const l = loss(r === 0);
    handle.backward(l);
    const show = (p: T.Tensor) => (p.grad === undefined ? 'undefined' : p.grad.toArray());
    got.push({ w: show(w), u: show(u), v: show(v) });
  }
  res.unusedHandled = got;
  handle.dispose();
}

T.dist.barrier();
process.stdout.write(JSON.stringify(res) + '\n');
if (mode === 'die') {
  if (r === 1) process.exit(3);
  const t0 = performance.now();
  const p = T.randn([64, 64]).requiresGrad_();
  const q = T.randn([64]).requiresGrad_();
  const avg = new OverlappedGradAverager([p, q], { bucketBytes: 1024 });
  try {
    for (let i = 0; i < 2; i++) avg.backward(T.ones([8, 64]).matmul(p).add(q).square().sum());
    process.stdout.write(JSON.stringify({ error: null }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: (e as Error).name, message: (e as Error).message, seconds: (performance.now() - t0) / 1000 }) + '\n');
  }
  process.exit(0);
}
T.dist.destroy();
