// Mixed precision (like torch.autocast): inside autocast(dtype, fn), the operators on libtorch's autocast lists
// run in the low-precision type — convolutions and matrix products in bfloat16 or float16, with their inputs
// cast on the way in; reductions, softmax and losses in float32 — and every other operator in the type of its
// inputs. The casting is libtorch's own (the dispatcher's Autocast key, thread-local state set in the addon),
// so every operator freeadv calls is covered; nothing is cast in TypeScript. Backward passes run outside
// autocast (the addon turns it off around backward and autograd.grad), as PyTorch recommends.
//
//   const loss = autocast('bfloat16', () => ops.crossEntropy(model.forward(x), y));   // bf16 convs, fp32 loss
//   loss.backward();
import { native } from './native.js';
import { dtypeCode, dtypeName, type DType } from './dtype.js';

/** The low-precision types autocast can compute in. */
export type AutocastDType = 'bfloat16' | 'float16';

/** The device type ('cpu' or 'cuda') of a device string such as 'cuda:1'. */
export const deviceType = (device: string): 'cpu' | 'cuda' => (device.startsWith('cuda') ? 'cuda' : 'cpu');

/** Autocast's state for a device type: whether it is on, and its low-precision type. */
export function autocastState(device = 'cpu'): { enabled: boolean; dtype: DType } {
  const [enabled, code] = native.getAutocast(deviceType(device));
  return { enabled, dtype: dtypeName(code) };
}

/** Whether autocast is on for the device type of `device` (default CPU). */
export const isAutocastEnabled = (device = 'cpu'): boolean => autocastState(device).enabled;

/**
 * libtorch's CPU autocast before 2.x casts to bfloat16 only (1.13 refuses float16 with "AutocastCPU only support
 * Bfloat16"). Returns why `dtype` cannot be used on `device` with this libtorch, or undefined when it can.
 */
export function autocastUnsupported(dtype: AutocastDType, device = 'cpu'): string | undefined {
  const major = Number(native.version().torch.split('.')[0]);
  if (dtype === 'float16' && deviceType(device) === 'cpu' && major < 2)
    return `float16 autocast on CPU needs libtorch 2.x; this one is ${native.version().torch}, whose CPU autocast computes in bfloat16 only`;
  return undefined;
}

function enter(device: string, on: boolean, dtype: DType): () => void {
  const type = deviceType(device);
  const [wasOn, wasCode] = native.getAutocast(type);
  native.setAutocast(type, on, on ? dtypeCode(dtype) : wasCode);
  if (on) native.autocastEnter();
  return () => {
    if (on) native.autocastExit(); // the outermost exit clears autocast's cache of cast weights
    native.setAutocast(type, wasOn, wasCode);
  };
}

/**
 * Runs fn with autocast on in `dtype` (or off, with dtype false) for the device type of `device`, then restores
 * the previous state. Nestable. fn may be async: autocast is the main thread's state, and it stays on until
 * the returned promise settles (do not run other libtorch work concurrently meanwhile).
 */
export function autocast<T>(dtype: AutocastDType | false, fn: () => T, device = 'cpu'): T {
  if (dtype) {
    const why = autocastUnsupported(dtype, device);
    if (why) throw new RangeError(`autocast: ${why}`);
  }
  const exit = enter(device, dtype !== false, dtype || 'float32');
  let async = false;
  try {
    const r = fn();
    if (r instanceof Promise) {
      async = true;
      return r.finally(exit) as T;
    }
    return r;
  } finally {
    if (!async) exit();
  }
}
