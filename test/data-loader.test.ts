// Loader: seeded order, resumption, last-batch policies, augmentation pixels, worker/inline equivalence,
// worker clean-up, wait statistics; and the progress display.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  Loader, activeWorkers, permutation, Rng, hashSeed, padCropFlipParams, sampleRng, numBatches,
  Progress, formatDuration, validationSplit, DataError, padCropFlip, toFloat, type Batch,
} from '../src/data/index.js';
import { toTensors } from '../src/data/tensor.js';
import { fromTypedArray, type Tensor } from '../src/torch/index.js';
import { mapLimit } from '../src/data/util.js';

/** A small in-memory dataset whose pixel values encode (image, channel, y, x). */
function synth(n: number, c = 3, h = 8, w = 8) {
  const images = new Uint8Array(n * c * h * w);
  for (let i = 0; i < images.length; i++) images[i] = (i * 7 + (i >> 8)) & 255;
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return { images, labels, n, c, h, w };
}

async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('PRNG', () => {
  test('deterministic, seed- and epoch-dependent permutations', () => {
    const a = permutation(1000, 42, 3), b = permutation(1000, 42, 3);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, permutation(1000, 42, 4));
    assert.notDeepEqual(a, permutation(1000, 43, 3));
    assert.deepEqual(Array.from(a).sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
    assert.notEqual(hashSeed(1, 2), hashSeed(2, 1));
  });
  test('uniform-looking floats and ints', () => {
    const r = new Rng(7);
    let s = 0;
    const hist = new Array(9).fill(0);
    for (let i = 0; i < 20000; i++) {
      const u = r.next();
      assert.ok(u >= 0 && u < 1);
      s += u;
      hist[r.int(0, 8)]++;
    }
    assert.ok(Math.abs(s / 20000 - 0.5) < 0.01);
    for (const c of hist) assert.ok(Math.abs(c - 20000 / 9) < 200, `histogram ${hist}`);
  });
});

describe('mapLimit', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  test('keeps order, bounds concurrency, and throws the lowest-index failure whatever the timing', async () => {
    let inFlight = 0, peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (v) => {
      peak = Math.max(peak, ++inFlight);
      await sleep(v);
      inFlight--;
      return v * 10;
    });
    assert.deepEqual(out, [50, 10, 40, 20, 30]);
    assert.equal(peak, 2);
    // Item 1 fails late, item 2 fails at once: the error is item 1's, and nothing after the failure starts.
    const started: number[] = [];
    await assert.rejects(mapLimit([0, 1, 2, 3, 4, 5], 3, async (v) => {
      started.push(v);
      if (v === 1) { await sleep(30); throw new Error('one'); }
      if (v === 2) throw new Error('two');
      await sleep(1);
      return v;
    }), /one/);
    assert.ok(!started.includes(5), `started ${started}`);
  });
});

describe('Loader', () => {
  const ds = synth(50);

  test('same seed + epoch → same batches (worker), different epoch → different order', async () => {
    const l1 = new Loader(ds, { batchSize: 8, seed: 5, augment: true });
    const l2 = new Loader(ds, { batchSize: 8, seed: 5, augment: true });
    const a = await collect(l1.epoch(2)), b = await collect(l2.epoch(2));
    assert.equal(a.length, 7);
    for (let i = 0; i < a.length; i++) {
      assert.deepEqual(a[i]!.indices, b[i]!.indices);
      assert.deepEqual(a[i]!.x, b[i]!.x);
      assert.deepEqual(a[i]!.y, b[i]!.y);
    }
    const all = a.flatMap((x) => Array.from(x.indices));
    assert.deepEqual(all, Array.from(l1.order(2)));
    assert.deepEqual([...all].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
    const c = await collect(l1.epoch(3));
    assert.notDeepEqual(c.flatMap((x) => Array.from(x.indices)), all);
    assert.equal(activeWorkers(), 0);
  });

  test('worker and in-thread production give identical batches', async () => {
    const opts = { batchSize: 16, seed: 9, augment: true } as const;
    const a = await collect(new Loader(ds, opts).epoch(1));
    const b = await collect(new Loader(ds, { ...opts, worker: false }).epoch(1));
    assert.deepEqual(a.map((x) => Array.from(x.x)), b.map((x) => Array.from(x.x)));
    assert.deepEqual(a.map((x) => x.shape), b.map((x) => x.shape));
  });

  test('several workers: the same batches in the same order; breaking out or closing ends them all', async () => {
    const opts = { batchSize: 6, seed: 9, augment: true, prefetch: 1 } as const;
    const one = await collect(new Loader(ds, opts).epoch(3));
    for (const workers of [2, 3, 16]) {
      const l = new Loader(ds, { ...opts, workers });
      const got = await collect(l.epoch(3));
      assert.deepEqual(got.map((b) => [b.batch, Array.from(b.indices), Array.from(b.x)]), one.map((b) => [b.batch, Array.from(b.indices), Array.from(b.x)]), `${workers} workers`);
      assert.equal(activeWorkers(), 0);
      const tail = await collect(l.epoch(3, { startBatch: 7 }));
      assert.deepEqual(tail.map((b) => b.batch), [7, 8]);
      for await (const _ of l.epoch(0)) {
        assert.equal(activeWorkers(), Math.min(workers, 9));
        break;
      }
      assert.equal(activeWorkers(), 0);
      const it = l.epoch(1);
      await it.next();
      await l.close();
      assert.equal(activeWorkers(), 0);
    }
  });

  test('resume at batch k equals the tail of a full epoch', async () => {
    for (const worker of [true, false]) {
      const l = new Loader(ds, { batchSize: 7, seed: 11, augment: true, worker });
      const full = await collect(l.epoch(4));
      for (const k of [0, 3, 7, 8]) {
        const tail = await collect(l.epoch(4, { startBatch: k }));
        assert.equal(tail.length, full.length - k);
        tail.forEach((t, i) => {
          assert.equal(t.batch, k + i);
          assert.deepEqual(t.indices, full[k + i]!.indices);
          assert.deepEqual(t.x, full[k + i]!.x);
        });
      }
      assert.throws(() => l.epoch(0, { startBatch: 9 }), RangeError);
    }
  });

  test('subset: an epoch visits exactly the subset, shuffled by (seed, epoch), in worker and in-thread production', async () => {
    const subset = Int32Array.from({ length: 20 }, (_, i) => 2 * i + 1);
    for (const worker of [true, false]) {
      const l = new Loader(ds, { batchSize: 8, seed: 2, subset, worker });
      assert.equal(l.length, 3);
      const seen = (await collect(l.epoch(0))).flatMap((b) => Array.from(b.indices));
      assert.deepEqual([...seen].sort((a, b) => a - b), Array.from(subset));
      assert.notDeepEqual(seen, Array.from(subset)); // shuffled
      // the order is the subset mapped through the permutation of its positions
      assert.deepEqual(seen, Array.from(permutation(20, 2, 0), (p) => subset[p]!));
    }
  });

  test("last batch policies 'keep' and 'drop'", async () => {
    const keep = new Loader(ds, { batchSize: 16, lastBatch: 'keep', shuffle: false });
    const drop = new Loader(ds, { batchSize: 16, lastBatch: 'drop', shuffle: false });
    assert.equal(keep.length, 4);
    assert.equal(drop.length, 3);
    assert.equal(drop.samplesPerEpoch, 48);
    const k = await collect(keep.epoch(0)), d = await collect(drop.epoch(0));
    assert.deepEqual(k.map((b) => b.shape[0]), [16, 16, 16, 2]);
    assert.deepEqual(d.map((b) => b.shape[0]), [16, 16, 16]);
    assert.deepEqual(Array.from(k[3]!.indices), [48, 49]);
    assert.equal(k[3]!.x.length, 2 * 3 * 8 * 8);
    assert.equal(numBatches(48, 16, 'keep'), 3);
    assert.throws(() => new Loader(ds, { batchSize: 0 }), RangeError);
  });

  test('no augmentation: x is the uint8 pixels, NCHW, labels follow; toTensors makes them pixels / 255', async () => {
    // (Batches hand over bytes since the image-folder pipeline work; before, x held the floats v / 255. The
    // floats now come from toTensors, bit for bit the same: checked here and in 'toTensors: bytes → floats'.)
    const [b] = await collect(new Loader(ds, { batchSize: 50, shuffle: false }).epoch(0));
    assert.deepEqual(b!.shape, [50, 3, 8, 8]);
    assert.equal(b!.layout, 'nchw');
    assert.ok(b!.x instanceof Uint8Array);
    assert.deepEqual(Buffer.from(b!.x), Buffer.from(ds.images));
    const t = toTensors(b!);
    const x = t.x.toTypedArray() as Float32Array;
    for (let i = 0; i < ds.images.length; i++) assert.equal(x[i], Math.fround(ds.images[i]! / 255));
    assert.deepEqual(Array.from(t.y.toTypedArray() as BigInt64Array, Number), Array.from(ds.labels));
    t.x.dispose();
    t.y.dispose();
    assert.deepEqual(b!.y, ds.labels);
  });

  test('pad+crop+flip produces the expected pixels on a known image', () => {
    // 1 channel 4x4 image with values 1..16.
    const img = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const out = new Uint8Array(16);
    const px = (o: Uint8Array) => Array.from(o);
    // Centre crop (offsets == pad), no flip: identity.
    padCropFlip(img, 0, 1, 4, 4, { ox: 2, oy: 2, flip: false }, 2, out, 0);
    assert.deepEqual(px(out), Array.from(img));
    // ox=0, oy=0: shifted right/down by 2, zeros on top and left.
    padCropFlip(img, 0, 1, 4, 4, { ox: 0, oy: 0, flip: false }, 2, out, 0);
    assert.deepEqual(px(out), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 5, 6]);
    // ox=3, oy=2 → shifted left by 1; then flipped.
    padCropFlip(img, 0, 1, 4, 4, { ox: 3, oy: 2, flip: false }, 2, out, 0);
    assert.deepEqual(px(out), [2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0, 14, 15, 16, 0]);
    padCropFlip(img, 0, 1, 4, 4, { ox: 3, oy: 2, flip: true }, 2, out, 0);
    assert.deepEqual(px(out), [0, 4, 3, 2, 0, 8, 7, 6, 0, 12, 11, 10, 0, 16, 15, 14]);
    // oy=4 (bottom-most): shifted up by 2, flipped with centre x.
    padCropFlip(img, 0, 1, 4, 4, { ox: 2, oy: 4, flip: true }, 2, out, 0);
    assert.deepEqual(px(out), [12, 11, 10, 9, 16, 15, 14, 13, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  test('loader augmentation = pad 4 + crop + flip with the per-sample seeded parameters', async () => {
    const small = synth(6, 3, 32, 32);
    const l = new Loader(small, { batchSize: 6, seed: 3, augment: true, shuffle: false });
    const [b] = await collect(l.epoch(1));
    const per = 3 * 32 * 32;
    let flips = 0, shifted = 0;
    for (let i = 0; i < 6; i++) {
      const p = padCropFlipParams(sampleRng(3, 1, i), 4);
      assert.ok(p.ox >= 0 && p.ox <= 8 && p.oy >= 0 && p.oy <= 8);
      flips += p.flip ? 1 : 0;
      shifted += p.ox !== 4 || p.oy !== 4 ? 1 : 0;
      // (batches hold bytes; 'toTensors: bytes → floats' checks their conversion)
      const bytes = new Uint8Array(per);
      padCropFlip(small.images, i * per, 3, 32, 32, p, 4, bytes, 0);
      assert.deepEqual(b!.x.subarray(i * per, (i + 1) * per), bytes);
    }
    assert.ok(shifted > 0);
    // Across many samples both flip outcomes occur and every offset in [0, 8] is drawn.
    const seen = new Set<number>();
    let f = 0;
    for (let k = 0; k < 2000; k++) {
      const p = padCropFlipParams(sampleRng(3, 1, k), 4);
      seen.add(p.ox);
      f += p.flip ? 1 : 0;
    }
    assert.equal(seen.size, 9);
    assert.ok(f > 900 && f < 1100);
  });

  test('breaking out of an epoch terminates its worker; an error in the consumer too', async () => {
    const l = new Loader(synth(400), { batchSize: 4, prefetch: 3 });
    let n = 0;
    for await (const _ of l.epoch(0)) {
      assert.equal(activeWorkers(), 1);
      if (++n === 2) break;
    }
    assert.equal(activeWorkers(), 0);
    await assert.rejects(async () => {
      for await (const _ of l.epoch(1)) throw new Error('boom');
    }, /boom/);
    assert.equal(activeWorkers(), 0);
    // An iterator abandoned mid-way is ended by close().
    const it = l.epoch(2);
    await it.next();
    assert.equal(activeWorkers(), 1);
    await l.close();
    assert.equal(activeWorkers(), 0);
    assert.deepEqual(await it.next(), { done: true, value: undefined });
  });

  test('stats: batches, producer time, and little consumer wait once the worker runs ahead', async (t) => {
    const big = synth(2048, 3, 32, 32);
    const busy = (ms: number) => {
      const t0 = performance.now();
      while (performance.now() - t0 < ms) { /* a synchronous "training step" on the main thread */ }
    };
    const l = new Loader(big, { batchSize: 128, augment: true, prefetch: 4 });
    let count = 0;
    let first: { waitMs: number; producedMs: number } | undefined;
    for await (const b of l.epoch(0)) {
      count += b.shape[0];
      first ??= l.stats();
      busy(15);
    }
    const s = l.stats();
    assert.equal(count, 2048);
    assert.equal(s.batches, 16);
    assert.ok(s.producedMs > 0 && first);
    // After the first batch (worker start-up), a 128x3x32x32 batch is produced in a few ms, less than
    // the 15 ms step, so the worker runs ahead and the consumer barely waits.
    const steadyWait = s.waitMs - first.waitMs, steadyProduced = s.producedMs - first.producedMs;
    t.diagnostic(`first batch wait ${first.waitMs.toFixed(1)} ms; then 15 batches: wait ${steadyWait.toFixed(1)} ms, produced ${steadyProduced.toFixed(1)} ms`);
    assert.ok(steadyWait < 0.5 * steadyProduced + 20, `wait ${steadyWait.toFixed(1)} ms vs produced ${steadyProduced.toFixed(1)} ms`);
    l.resetStats();
    assert.deepEqual(l.stats(), { batches: 0, waitMs: 0, producedMs: 0, skipped: 0, workersStarted: 0 });
  });
});

describe('toTensors: bytes → floats', () => {
  const floats = (t: Tensor) => {
    const a = t.toTypedArray();
    t.dispose();
    return a;
  };
  test('the same float32 (and float64) values as the float path of earlier versions, for every byte value and batch size', () => {
    for (const len of [1, 7, 256, 255 * 3 * 37]) {
      const u8 = Uint8Array.from({ length: len }, (_, i) => (i * 97 + 13) & 255);
      if (len >= 256) for (let v = 0; v < 256; v++) u8[v] = v;
      const f32 = new Float32Array(len);
      toFloat(u8, 0, len, f32, 0); // what batches held before
      for (const dtype of ['float32', 'float64'] as const) {
        const before = fromTypedArray(f32, [len, 1, 1, 1], 'float32');
        const want = floats(dtype === 'float32' ? before : before.to(dtype));
        if (dtype !== 'float32') before.dispose();
        const t = toTensors({ x: u8, shape: [len, 1, 1, 1], y: new Int32Array(len) }, undefined, dtype);
        t.y.dispose();
        assert.equal(t.x.dtype, dtype);
        assert.deepEqual(floats(t.x), want, `${len} bytes to ${dtype}`);
      }
    }
  });
  test("layout 'nhwc' is permuted to N×C×H×W; float pixels are still accepted", () => {
    const n = 2, c = 3, h = 4, w = 5;
    const nchw = Uint8Array.from({ length: n * c * h * w }, (_, i) => (i * 31) & 255);
    const nhwc = new Uint8Array(nchw.length);
    for (let b = 0; b < n; b++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) nhwc[((b * h + y) * w + x) * c + ch] = nchw[((b * c + ch) * h + y) * w + x]!;
    const y = Int32Array.from([3, 1]);
    const a = toTensors({ x: nchw, shape: [n, c, h, w], y });
    const b = toTensors({ x: nhwc, shape: [n, c, h, w], y, layout: 'nhwc' });
    const f = toTensors({ x: Float32Array.from(nchw, (v) => v / 255), shape: [n, c, h, w], y });
    assert.deepEqual(b.x.shape, [n, c, h, w]);
    assert.ok(b.x.isContiguous());
    const want = floats(a.x);
    assert.deepEqual(floats(b.x), want);
    assert.deepEqual(floats(f.x), want);
    for (const t of [a.y, b.y, f.y]) t.dispose();
  });
});

describe('validationSplit', () => {
  test('class-balanced, seeded, disjoint from training, independent of everything but the seed', () => {
    const labels = Int32Array.from({ length: 1000 }, (_, i) => (i * 7) % 10 < 7 ? i % 3 : 3 + (i % 7)); // unequal classes
    const counts = (ix: Int32Array) => Array.from({ length: 10 }, (_, c) => ix.filter((i) => labels[i] === c).length);
    const s = validationSplit(labels, 10, 95, 4);
    assert.equal(s.val.length, 95);
    assert.equal(s.train.length, 905);
    assert.deepEqual(new Set([...s.val, ...s.train]).size, 1000);
    const per = counts(s.val);
    assert.ok(Math.max(...per) - Math.min(...per) <= 1, `per class ${per}`);
    assert.equal(per.reduce((a, b) => a + b, 0), 95);
    assert.deepEqual(validationSplit(labels, 10, 95, 4).val, s.val); // seeded
    assert.notDeepEqual(validationSplit(labels, 10, 95, 5).val, s.val);
    assert.ok(s.val.every((v, i) => i === 0 || v > s.val[i - 1]!)); // ascending
    assert.equal(validationSplit(labels, 10, 0, 4).train.length, 1000);
    assert.throws(() => validationSplit(labels, 10, 1000, 4), DataError);
    assert.throws(() => validationSplit(Int32Array.from([0, 0, 0, 1]), 2, 2, 0), /needs 1 of class 1, which has 1/);
  });
});

describe('Progress', () => {
  function fake(isTTY: boolean) {
    const out: string[] = [];
    return { out, stream: { isTTY, write: (s: string) => out.push(s) } };
  }
  test('TTY: one \\r line with bar, counts, rate, ETA; newline at the end', () => {
    let t = 0;
    const { out, stream } = fake(true);
    const p = new Progress({ total: 4, label: 'epoch 1', stream, now: () => t, intervalMs: 0 });
    t = 1000;
    p.tick(100);
    assert.match(out.at(-1)!, /^\repoch 1 \[#{6}-{18}\] 1\/4 {2}100 img\/s {2}ETA 00:03/);
    t = 2000;
    p.tick(100);
    t = 3000;
    p.tick(100);
    t = 4000;
    p.tick(100);
    assert.ok(out.at(-1)!.startsWith('\r') && out.at(-1)!.endsWith('\n'));
    assert.match(out.at(-1)!, /4\/4 {2}100 img\/s {2}00:04 total/);
    assert.ok(out.slice(0, -1).every((s) => !s.includes('\n')));
    p.finish();
    assert.equal(out.length, 4);
  });
  test('non-TTY: plain lines at most every interval', () => {
    let t = 0;
    const { out, stream } = fake(false);
    const p = new Progress({ total: 100, stream, now: () => t, intervalMs: 10_000 });
    for (let i = 0; i < 100; i++) {
      t += 500;
      p.tick(10);
    }
    // Lines at t=0.5 s, 10.5 s, 20.5 s, 30.5 s, 40.5 s and the final one.
    assert.equal(out.length, 6);
    assert.ok(out.every((s) => s.endsWith('\n') && !s.includes('\r')));
    assert.match(out[1]!, /^21\/100 \(21%\) {2}20\.0 img\/s {2}ETA 00:40/);
    assert.match(out.at(-1)!, /100\/100 \(100%\).*00:50 total/);
    assert.equal(formatDuration(3725), '1:02:05');
  });
});
