// Adapter from loader batches (plain typed arrays) to tensors of the tensor layer.
// (Written against the tensor layer's free function fromTypedArray(data, shape, dtype, device?); the
// brief's `Tensor.fromTypedArray(data, shape, dtype)` has the same signature.)
import { fromTypedArray, type Tensor, type DType } from '../torch/index.js';
import type { Batch, Layout } from './producer.js';
import { Loader, type LoaderDataset } from './loader.js';

/** What toTensors needs of a batch: bytes (or, from older callers, floats in [0, 1]) in `layout` order. */
export interface BatchPixels {
  x: Uint8Array | Float32Array;
  /** [N, C, H, W] whatever the layout. */
  shape: Batch['shape'];
  y: Int32Array;
  /** Default 'nchw'. */
  layout?: Layout;
}

/**
 * x: N×C×H×W floats in [0,1] (float32, or `dtype`); y: int64 [N] (what cross-entropy wants). The caller disposes
 * both. Bytes go to the device as bytes and are converted there, for the whole batch at once: permuted to
 * N×C×H×W when they are N×H×W×C, then x.to(float32).div(255) — the same float32 values as v / 255 computed in
 * JavaScript, bit for bit (tested for every byte) — then to `dtype`.
 */
export function toTensors(batch: BatchPixels, device?: string, dtype: DType = 'float32'): { x: Tensor; y: Tensor } {
  const [n, c, h, w] = batch.shape;
  const owned: Tensor[] = [];
  const step = (t: Tensor) => {
    owned.push(t);
    return t;
  };
  let x: Tensor;
  try {
    if (batch.x instanceof Float32Array) {
      if (batch.layout === 'nhwc') throw new RangeError("toTensors: float pixels must be in 'nchw' layout");
      x = step(fromTypedArray(batch.x, [n, c, h, w], 'float32', device));
    } else {
      let u8 = step(fromTypedArray(batch.x, batch.layout === 'nhwc' ? [n, h, w, c] : [n, c, h, w], 'uint8', device));
      if (batch.layout === 'nhwc') u8 = step(step(u8.permute(0, 3, 1, 2)).contiguous());
      x = step(step(u8.to('float32')).div(255));
    }
    if (dtype !== 'float32') x = step(x.to(dtype));
  } catch (e) {
    for (const t of owned) t.dispose();
    throw e;
  }
  for (const t of owned) if (t !== x) t.dispose();
  const y = fromTypedArray(BigInt64Array.from(batch.y, (v) => BigInt(v)), [n], 'int64', device);
  return { x, y };
}

/**
 * The first `limit` samples a loader's epoch 0 yields, as tensors of at most one loader batch each (toTensors);
 * each batch is disposed when the next one is asked for or the loop ends, so memory is bounded by the batch
 * size, not by `limit`.
 */
export async function* tensorBatches(loader: Loader, limit: number, device?: string, dtype?: DType): AsyncGenerator<{ x: Tensor; y: Tensor }> {
  let seen = 0;
  try {
    for await (const b of loader.epoch(0)) {
      const take = Math.min(b.shape[0], limit - seen);
      if (take <= 0) break;
      const per = b.shape[1] * b.shape[2] * b.shape[3];
      const t = toTensors({ x: b.x.subarray(0, take * per), shape: [take, b.shape[1], b.shape[2], b.shape[3]], y: b.y.subarray(0, take), layout: b.layout }, device, dtype);
      seen += take;
      try {
        yield t;
      } finally {
        t.x.dispose();
        t.y.dispose();
      }
      if (seen >= limit) break;
    }
  } finally {
    await loader.close();
  }
}

/**
 * The first (up to) n images in file order, without augmentation (the eval transform for image folders), in
 * batches of at most `batchSize` (see tensorBatches: each is disposed when the next is asked for).
 */
export function firstImageBatches(data: LoaderDataset, n: number, batchSize: number, device?: string, dtype?: DType): AsyncGenerator<{ x: Tensor; y: Tensor }> {
  const loader = new Loader(data, { batchSize: Math.max(1, Math.min(batchSize, n, data.n)), shuffle: false, augment: false, worker: false });
  return tensorBatches(loader, n, device, dtype);
}
