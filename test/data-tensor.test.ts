// The batch → tensor adapter (needs the native addon; skipped when it cannot be loaded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Loader } from '../src/data/index.js';

let adapter: typeof import('../src/data/tensor.js') | undefined;
let why = '';
try {
  adapter = await import('../src/data/tensor.js');
} catch (e) {
  why = `tensor layer not loadable: ${(e as Error).message}`;
}

test('toTensors: float32 NCHW x and int64 y', { skip: adapter ? false : why }, async () => {
  const n = 5;
  const ds = { images: Uint8Array.from({ length: n * 12 }, (_, i) => i), labels: Int32Array.from({ length: n }, (_, i) => (i * 2) % 7), n, c: 3, h: 2, w: 2 };
  const seen: number[] = [];
  for await (const b of new Loader(ds, { batchSize: 2, shuffle: false, worker: false }).epoch(0)) {
    const { x, y } = adapter!.toTensors(b);
    assert.deepEqual(x.shape, b.shape);
    assert.equal(x.dtype, 'float32');
    assert.equal(y.dtype, 'int64');
    // b.x holds bytes since the image-folder pipeline work (it held the floats before): toTensors divides by 255
    assert.deepEqual(Array.from(x.toTypedArray() as Float32Array), Array.from(b.x, (v) => Math.fround(v / 255)));
    seen.push(...Array.from(y.toTypedArray() as BigInt64Array, Number));
    x.dispose();
    y.dispose();
  }
  assert.deepEqual(seen, Array.from(ds.labels));
});
