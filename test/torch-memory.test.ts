// Memory: live tensors stay constant and RSS stays flat over thousands of training steps (the caching CPU
// allocator keeps glibc from growing the heap), and the finalizer backstop frees tensors nobody disposed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import * as T from '../src/torch/index.js';
import { Module, Conv2d, Linear } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';

class Tiny extends Module {
  conv = this.module('conv', new Conv2d(1, 8, 3, { padding: 1 }));
  fc = this.module('fc', new Linear(8 * 14 * 14, 10));
  forward(x: T.Tensor): T.Tensor {
    return this.fc.forward(T.ops.maxPool2d(this.conv.forward(x).relu(), 2).flatten(1));
  }
}

const rssMB = () => process.memoryUsage().rss / 2 ** 20;

// Soak variant on demand: FREEADV_SOAK_STEPS=10000 node --test dist/test/torch-memory.test.js
const STEPS = Number(process.env.FREEADV_SOAK_STEPS ?? 2000);

test(`RSS within ±10% and constant live tensors over ${STEPS} free-training steps`, async (t) => {
  T.manualSeed(0);
  const model = new Tiny();
  const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const B = 32;
  const delta = T.zeros([B, 1, 28, 28]).keep();
  const step = () =>
    T.scope(() => {
      const x = T.rand([B, 1, 28, 28]);
      const y = T.randint(0, 10, [B]);
      const d = delta.clone().requiresGrad_();
      const loss = T.ops.crossEntropy(model.forward(x.add(d).clamp(0, 1)), y);
      opt.zeroGrad();
      loss.backward();
      T.noGrad(() => delta.add_(d.grad!.sign(), 0.1).clamp_(-0.1, 0.1));
      opt.step();
    });
  for (let i = 0; i < 200; i++) step();
  await tick();
  const live0 = T.liveTensors();
  const rss0 = rssMB();
  let rssMax = rss0;
  for (let i = 0; i < STEPS; i++) {
    step();
    if (i % 100 === 0) {
      await tick();
      rssMax = Math.max(rssMax, rssMB());
      assert.equal(T.liveTensors(), live0, `live tensors changed at step ${i}`);
    }
  }
  const rss1 = rssMB();
  t.diagnostic(`${STEPS} steps after warm-up: RSS ${rss0.toFixed(1)} → ${rss1.toFixed(1)} MB (max ${rssMax.toFixed(1)}), live tensors ${live0} throughout`);
  assert.ok(Math.abs(rss1 - rss0) / rss0 < 0.1, `RSS moved from ${rss0.toFixed(1)} to ${rss1.toFixed(1)} MB`);
  assert.ok((rssMax - rss0) / rss0 < 0.1, `RSS peaked at ${rssMax.toFixed(1)} MB from ${rss0.toFixed(1)} MB`);
  const stats = T.memory.stats();
  assert.ok(stats.hits > stats.misses, `allocator cache hits ${stats.hits} vs misses ${stats.misses}`);
  opt.dispose();
  model.dispose();
  delta.dispose();
});

test('caching allocator: statistics, cap and emptyCache', () => {
  T.memory.emptyCache();
  const before = T.memory.stats();
  const big = T.zeros([1 << 20]); // 4 MiB
  const mid = T.memory.stats();
  assert.ok(mid.allocated >= before.allocated + 4 * 2 ** 20);
  big.dispose();
  const after = T.memory.stats();
  assert.ok(after.cached >= 4 * 2 ** 20, 'freed block is cached');
  const again = T.zeros([1 << 20]);
  assert.ok(T.memory.stats().hits > after.hits, 'same size is served from the cache');
  again.dispose();
  T.memory.emptyCache();
  assert.equal(T.memory.stats().cached, 0);
  T.memory.setCacheLimit(1 << 20);
  T.zeros([1 << 20]).dispose();
  assert.equal(T.memory.stats().cached, 0, 'blocks above the cap are released');
  T.memory.setCacheLimit(2 * 2 ** 30);
});

test('finalizers free tensors that were never disposed, and V8 sees their memory', async () => {
  const f0 = T.memory.finalized();
  const live0 = T.liveTensors();
  for (let round = 0; round < 60; round++) {
    for (let i = 0; i < 10; i++) T.zeros([1 << 20]); // 4 MiB each, no scope, never disposed
    await tick();
    if (T.memory.finalized() > f0) break;
  }
  assert.ok(T.memory.finalized() > f0, 'the garbage collector ran finalizers under external-memory pressure');
  assert.ok(T.liveTensors() < live0 + 600);
});
