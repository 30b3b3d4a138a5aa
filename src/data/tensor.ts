// Adapter from loader batches (plain typed arrays) to tensors of the tensor layer.
// (Written against the tensor layer's free function fromTypedArray(data, shape, dtype, device?); the
// brief's `Tensor.fromTypedArray(data, shape, dtype)` has the same signature.)
import { fromTypedArray, type Tensor, type DType } from '../torch/index.js';
import type { Batch } from './producer.js';
import { Loader, type LoaderDataset } from './loader.js';

/** x: N×C×H×W in [0,1] (float32, or `dtype`); y: int64 [N] (what cross-entropy wants). The caller disposes both. */
export function toTensors(batch: Pick<Batch, 'x' | 'shape' | 'y'>, device?: string, dtype: DType = 'float32'): { x: Tensor; y: Tensor } {
  const n = batch.shape[0];
  const x32 = fromTypedArray(batch.x, [...batch.shape], 'float32', device);
  let x = x32;
  if (dtype !== 'float32') {
    x = x32.to(dtype);
    x32.dispose();
  }
  const y = fromTypedArray(BigInt64Array.from(batch.y, (v) => BigInt(v)), [n], 'int64', device);
  return { x, y };
}

/**
 * The first (up to) n images in file order, without augmentation (the eval transform for image folders), as
 * tensors the caller disposes; undefined when the data set yields no image.
 */
export async function firstImages(data: LoaderDataset, n: number, device?: string, dtype?: DType): Promise<{ x: Tensor; y: Tensor } | undefined> {
  const loader = new Loader(data, { batchSize: Math.min(n, data.n), shuffle: false, augment: false, worker: false });
  try {
    for await (const b of loader.epoch(0)) return toTensors(b, device, dtype);
    return undefined;
  } finally {
    await loader.close();
  }
}
