// Numerical gradient checks (float64, central differences) for every differentiable operation that the
// tensor API and the layers use: autograd's gradient of sum(w ⊙ f(x)) must equal the finite difference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';

const { ops } = T;
type F = (...xs: T.Tensor[]) => T.Tensor;

function gradcheck(name: string, f: F, shapes: number[][], opts: { positive?: boolean; eps?: number; tol?: number; init?: (i: number, shape: number[]) => T.Tensor } = {}) {
  T.scope(() => {
    const eps = opts.eps ?? 1e-6;
    const tol = opts.tol ?? 1e-5;
    const inputs = shapes.map((s, i) => {
      const t = opts.init ? opts.init(i, s) : T.rand(s, { dtype: 'float64' }).mul(2).sub(1);
      return (opts.positive ? t.abs().add(0.5) : t).detach().requiresGrad_();
    });
    const out = f(...inputs);
    const weight = T.randLike(out);
    const [ ...grads ] = T.autograd.grad(out.mul(weight).sum(), inputs, { allowUnused: true });
    inputs.forEach((x, k) => {
      const g = grads[k] ? (grads[k]!.flatten().toArray() as number[]) : Array(x.numel).fill(0);
      const base = x.detach().flatten().toTypedArray() as Float64Array;
      for (let i = 0; i < base.length; i++) {
        const probe = (d: number) =>
          T.noGrad(() => {
            const b = Float64Array.from(base);
            b[i] = b[i]! + d;
            const xi = T.fromTypedArray(b, x.shape);
            const args = inputs.map((y, j) => (j === k ? xi : y.detach()));
            return f(...args).mul(weight).sum().item();
          });
        const numeric = (probe(eps) - probe(-eps)) / (2 * eps);
        const err = Math.abs(numeric - g[i]!) / Math.max(1, Math.abs(numeric));
        assert.ok(err < tol, `${name}: input ${k} element ${i}: autograd ${g[i]} vs numeric ${numeric}`);
      }
    });
  });
}

const cases: [string, F, number[][], Parameters<typeof gradcheck>[3]?][] = [
  ['add', (a, b) => a.add(b, 0.5), [[3, 4], [4]]],
  ['sub', (a, b) => a.sub(b), [[3, 4], [3, 4]]],
  ['mul', (a, b) => a.mul(b), [[3, 4], [3, 1]]],
  ['div', (a, b) => a.div(b), [[3, 4], [3, 4]], { positive: true }],
  ['pow', (a) => a.pow(3), [[5]]],
  ['exp', (a) => a.exp(), [[5]]],
  ['log', (a) => a.log(), [[5]], { positive: true }],
  ['sqrt', (a) => a.sqrt(), [[5]], { positive: true }],
  ['tanh', (a) => a.tanh(), [[5]]],
  ['sigmoid', (a) => a.sigmoid(), [[5]]],
  ['abs', (a) => a.abs(), [[6]]],
  ['neg', (a) => a.neg(), [[6]]],
  ['square', (a) => a.square(), [[6]]],
  ['clamp scalar', (a) => a.clamp(-0.5, 0.5), [[8]]],
  ['clamp tensor', (a, lo, hi) => a.clamp(lo!.sub(1), hi!.add(1)), [[6], [6], [6]]],
  ['minimum', (a, b) => a.minimum(b), [[6], [6]]],
  ['maximum', (a, b) => a.maximum(b), [[6], [6]]],
  ['relu', (a) => a.relu(), [[8]]],
  ['leaky_relu', (a) => ops.leakyRelu(a, 0.1), [[8]]],
  ['softmax', (a) => a.softmax(1), [[3, 4]]],
  ['log_softmax', (a) => a.logSoftmax(1), [[3, 4]]],
  ['sum dim', (a) => a.sum(1, true), [[3, 4]]],
  ['mean', (a) => a.mean(0), [[3, 4]]],
  ['amax', (a) => a.amax(1), [[3, 4]]],
  ['norm', (a) => a.norm(2, 1), [[3, 4]]],
  ['var', (a) => a.var(1), [[3, 4]]],
  ['matmul', (a, b) => a.matmul(b), [[3, 4], [4, 2]]],
  ['linear', (x, w, b) => ops.linear(x, w, b), [[3, 4], [5, 4], [5]]],
  ['conv2d', (x, w, b) => ops.conv2d(x, w, b, 1, 1), [[2, 2, 5, 5], [3, 2, 3, 3], [3]]],
  ['conv2d stride 2', (x, w) => ops.conv2d(x, w, null, 2, 0), [[1, 2, 6, 6], [2, 2, 3, 3]]],
  ['max_pool2d', (x) => ops.maxPool2d(x, 2), [[1, 2, 4, 4]]],
  ['avg_pool2d', (x) => ops.avgPool2d(x, 2), [[1, 2, 4, 4]]],
  ['adaptive_avg_pool2d', (x) => ops.adaptiveAvgPool2d(x, 1), [[2, 3, 3, 3]]],
  ['batch_norm train', (x, w, b) => ops.batchNorm(x, w, b, null, null, true, 0.1, 1e-5, false), [[4, 3, 2, 2], [3], [3]]],
  ['batch_norm eval', (x, w, b) => ops.batchNorm(x, w, b, T.zeros([3], { dtype: 'float64' }), T.ones([3], { dtype: 'float64' }), false, 0.1, 1e-5, false), [[4, 3, 2, 2], [3], [3]]],
  ['cross_entropy', (x) => ops.crossEntropy(x, T.tensor([0, 2, 1], { dtype: 'int64' })), [[3, 4]]],
  ['cross_entropy per example', (x) => ops.crossEntropy(x, T.tensor([0, 2, 1], { dtype: 'int64' }), null, 0), [[3, 4]]],
  ['nll_loss', (x) => ops.nllLoss(x.logSoftmax(1), T.tensor([3, 0], { dtype: 'int64' })), [[2, 4]]],
  ['view/permute/flatten', (x) => x.permute(1, 0, 2).reshape(3, 8).flatten(), [[2, 3, 4]]],
  ['narrow/select', (x) => x.narrow(1, 1, 2).select(0, 1), [[3, 4]]],
  ['index_select', (x) => x.indexSelect(0, T.tensor([2, 0, 2], { dtype: 'int64' })), [[3, 4]]],
  ['gather', (x) => x.gather(1, T.tensor([[1], [0], [3]], { dtype: 'int64' })), [[3, 4]]],
  ['cat/stack', (a, b) => T.cat([a, T.stack([b, b], 0).sum(0)], 0), [[2, 3], [2, 3]]],
  ['masked_fill', (x) => x.maskedFill(T.tensor([[true, false], [false, true]]), 0), [[2, 2]]],
  ['where', (a, b) => T.where(T.tensor([true, false, true]), a, b), [[3], [3]]],
  ['dropout p=0 (identity)', (x) => ops.dropout(x, 0, true), [[5]]],
  ['expand/repeat', (x) => x.expand(3, 4).repeat(2, 1), [[1, 4]]],
];

for (const [name, f, shapes, o] of cases) {
  test(`gradcheck: ${name}`, () => {
    T.manualSeed(1);
    gradcheck(name, f, shapes, o);
  });
}
