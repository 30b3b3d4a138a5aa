// Free training's replay step (src/train/free.ts) against an analytic case: a linear softmax classifier, whose
// loss gradients with respect to the weights and to the input have closed forms, computed here in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { Module, Linear } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { free, resolveConfig, trainBatch, type TrainContext } from '../src/train/index.js';
import { TEST_DEVICE, deviceSkip } from './helpers/device.js';

class LinearNet extends Module {
  readonly fc = this.module('fc', new Linear(4, 3));
  forward(x: T.Tensor): T.Tensor {
    return this.fc.forward(T.ops.flatten(x, 1));
  }
}

/** Mean cross-entropy of softmax(W x + b) over the batch: ∂/∂W, ∂/∂b and ∂/∂x (per example). */
function analytic(W: number[][], b: number[], xs: number[][], ys: number[]) {
  const n = xs.length;
  const gW = W.map((r) => r.map(() => 0));
  const gb = b.map(() => 0);
  const gx = xs.map((x) => x.map(() => 0));
  xs.forEach((x, i) => {
    const z = W.map((r, k) => r.reduce((s, w, j) => s + w * x[j]!, b[k]!));
    const mx = Math.max(...z);
    const e = z.map((v) => Math.exp(v - mx));
    const sum = e.reduce((s, v) => s + v, 0);
    const dz = e.map((v, k) => (v / sum - (k === ys[i] ? 1 : 0)) / n);
    dz.forEach((d, k) => {
      gb[k] += d;
      x.forEach((xj, j) => {
        gW[k]![j] += d * xj;
        gx[i]![j] += d * W[k]![j]!;
      });
    });
  });
  return { gW, gb, gx };
}

const clip = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

test(`free-m: m replays, each one SGD step and δ ← clip(δ + step·sign(∇x ℓ at clip(x + δ, 0, 1)), −ε, ε), δ kept for the next batch (${TEST_DEVICE})`, { skip: deviceSkip }, () => {
  T.scope(() => {
    const eps = 0.1, step = 0.05, lr = 0.5, m = 3;
    const dev = TEST_DEVICE;
    // in float64, against the same arithmetic in JavaScript's doubles: they agree to rounding (~1e-16)
    const cfg = resolveConfig({ method: 'free', replays: m, eps, stepSize: step, dtype: 'float64', device: dev });
    const model = new LinearNet().to('float64').to(dev);
    let W = [[0.8, -0.5, 0.3, 0.1], [-0.2, 0.6, -0.7, 0.4], [0.1, 0.2, 0.5, -0.9]];
    let b = [0.05, -0.1, 0.02];
    T.noGrad(() => {
      model.fc.weight.copy_(T.tensor(W, { dtype: 'float64', device: dev }));
      model.fc.bias!.copy_(T.tensor(b, { dtype: 'float64', device: dev }));
    });
    const opt = new SGD(model.parameters(), { lr, momentum: 0, weightDecay: 0 });
    const ctx: TrainContext = {
      model, cfg, batchShape: [2, 1, 2, 2], state: new Map(),
      sgdStep(loss) {
        opt.zeroGrad();
        loss.backward();
        opt.step();
      },
      record() {},
    };
    free.init!(ctx);
    // Pixels at 0 (black background) and at 1, and a δ that already points out of [0, 1] at some of them: the
    // input gradient there is not zero, so δ must move (differentiating through the clip would freeze it).
    const xs = [[0, 0, 0.5, 1], [0, 0.3, 1, 0]];
    const ys = [2, 0];
    let delta = [[-0.1, -0.05, 0.02, 0.1], [-0.08, 0, 0.1, 0.03]];
    const deltaT = ctx.state.get('delta')!;
    assert.equal(deltaT.device, model.fc.weight.device, 'δ lives on the training device');
    T.noGrad(() => deltaT.copy_(T.tensor(delta, { dtype: 'float64', device: dev }).reshape(2, 1, 2, 2)));
    trainBatch(free, ctx, T.tensor(xs, { dtype: 'float64', device: dev }).reshape(2, 1, 2, 2), T.tensor(ys, { dtype: 'int64', device: dev }));
    let moved = 0;
    for (let r = 0; r < m; r++) {
      const xAdv = xs.map((x, i) => x.map((v, j) => clip(v + delta[i]![j]!, 0, 1)));
      const g = analytic(W, b, xAdv, ys);
      const next = delta.map((d, i) => d.map((v, j) => clip(v + step * Math.sign(g.gx[i]![j]!), -eps, eps)));
      xs.forEach((x, i) => x.forEach((v, j) => { if ((v + delta[i]![j]! < 0 || v + delta[i]![j]! > 1) && next[i]![j] !== delta[i]![j]) moved++; }));
      delta = next;
      W = W.map((row, k) => row.map((w, j) => w - lr * g.gW[k]![j]!));
      b = b.map((v, k) => v - lr * g.gb[k]!);
    }
    assert.ok(moved >= 2, `δ moved at ${moved} out-of-range positions`);
    const got = deltaT.reshape(2, 4).toArray() as number[][];
    got.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - delta[i]![j]!) < 1e-12, `δ[${i}][${j}] ${v} vs ${delta[i]![j]}`)));
    const gotW = model.fc.weight.toArray() as number[][];
    gotW.forEach((row, k) => row.forEach((v, j) => assert.ok(Math.abs(v - W[k]![j]!) < 1e-12, `W[${k}][${j}] ${v} vs ${W[k]![j]}`)));
    (model.fc.bias!.toArray() as number[]).forEach((v, k) => assert.ok(Math.abs(v - b[k]!) < 1e-12, `b[${k}] ${v} vs ${b[k]}`));

    // A smaller last batch uses (and updates) the first rows of δ only.
    const before = deltaT.reshape(2, 4).toArray() as number[][];
    trainBatch(free, ctx, T.tensor([xs[0]!], { dtype: 'float64', device: dev }).reshape(1, 1, 2, 2), T.tensor([ys[0]!], { dtype: 'int64', device: dev }));
    const after = deltaT.reshape(2, 4).toArray() as number[][];
    assert.deepEqual(after[1], before[1]);
    assert.notDeepEqual(after[0], before[0]);
  });
});
