// Does fp16's scaled input gradient underflow to zero and freeze δ? On a trained Fashion-MNIST run's weights
// (small-cnn) and the first training images with δ at ±ε (where free training's δ mostly sits), the input
// gradient free training steps on, computed in float32, under bf16 autocast and under fp16 autocast with loss
// scales S = 1, 2^15, 2^16 — the same weights and inputs for each. Prints, per precision: the share of exact
// zeros, the share that is zero only there (not in float32: underflow or float16 cancellation), and the share
// whose sign differs from float32's where both are non-zero. fp16 needs a libtorch with float16 CPU autocast
// (FREEADV_ADDON, the 2.x build).
//
//   node dist/bench/input-grad-underflow.js RUN_DIR [--batches 8] [--eps 0.1]
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { createModel } from '../src/models/index.js';
import { loadWeights } from '../src/io/index.js';
import { loadDataset } from '../src/data/index.js';

const { values: a, positionals } = parseArgs({ allowPositionals: true, options: { batches: { type: 'string', default: '8' }, eps: { type: 'string', default: '0.1' } } });
const run = positionals[0];
if (!run) throw new Error('usage: input-grad-underflow RUN_DIR (a small-cnn Fashion-MNIST run folder)');
const ds = await loadDataset({ name: 'fashion-mnist', split: 'train' });
const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: ds.mean, std: ds.std }).train();
loadWeights(model, join(run, 'latest.safetensors'));
T.manualSeed(0);
const B = 128, P = 28 * 28, eps = Number(a.eps);
const variants: [string, T.AutocastDType | false, number][] = [['float32', false, 1], ['bf16', 'bfloat16', 1], ['fp16 S=1', 'float16', 1], ['fp16 S=2^15', 'float16', 2 ** 15], ['fp16 S=2^16', 'float16', 2 ** 16]];
const acc = new Map<string, { zero: number; onlyHere: number; flips: number; n: number }>();
for (let b = 0; b < Number(a.batches); b++)
  T.scope(() => {
    const x = T.fromTypedArray(ds.images.slice(b * B * P, (b + 1) * B * P), [B, 1, 28, 28], 'uint8').float().div(255);
    const y = T.fromTypedArray(Int32Array.from(ds.labels.slice(b * B, (b + 1) * B)), [B], 'int32').to('int64');
    const delta = T.rand([B, 1, 28, 28]).sub(0.5).sign().mul(eps);
    const grad = (dtype: T.AutocastDType | false, scale: number) => {
      const xAdv = T.noGrad(() => x.add(delta).clamp_(0, 1)).requiresGrad_();
      const loss = T.autocast(dtype, () => T.ops.crossEntropy(model.forward(xAdv), y));
      loss.float().mul(scale).backward();
      for (const p of model.parameters()) p.grad?.zero_();
      return xAdv.grad!;
    };
    const g32 = grad(false, 1);
    const nz32 = g32.eq(0).logicalNot();
    for (const [name, dtype, scale] of variants) {
      const g = grad(dtype, scale);
      const z = g.eq(0);
      const r = acc.get(name) ?? { zero: 0, onlyHere: 0, flips: 0, n: 0 };
      r.n += B * P;
      r.zero += z.sum().item();
      r.onlyHere += z.logicalAnd(nz32).sum().item();
      r.flips += g.sign().ne(g32.sign()).logicalAnd(z.logicalNot()).logicalAnd(nz32).sum().item();
      acc.set(name, r);
    }
  });
const pct = (v: number, n: number) => `${((100 * v) / n).toFixed(3)}%`;
for (const [k, r] of acc) console.log(`${k.padEnd(12)} exact zeros ${pct(r.zero, r.n)}, zero only here ${pct(r.onlyHere, r.n)}, sign differs (both non-zero) ${pct(r.flips, r.n)}`);
