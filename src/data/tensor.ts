// Adapter from loader batches (plain typed arrays) to tensors of the tensor layer.
// (Written against the tensor layer's free function fromTypedArray(data, shape, dtype, device?); the
// brief's `Tensor.fromTypedArray(data, shape, dtype)` has the same signature.)
import { fromTypedArray, type Tensor } from '../torch/index.js';
import type { Batch } from './producer.js';

/** x: float32 N×C×H×W in [0,1]; y: int64 [N] (what cross-entropy wants). The caller disposes both. */
export function toTensors(batch: Pick<Batch, 'x' | 'shape' | 'y'>, device?: string): { x: Tensor; y: Tensor } {
  const n = batch.shape[0];
  const x = fromTypedArray(batch.x, [...batch.shape], 'float32', device);
  const y = fromTypedArray(BigInt64Array.from(batch.y, (v) => BigInt(v)), [n], 'int64', device);
  return { x, y };
}
