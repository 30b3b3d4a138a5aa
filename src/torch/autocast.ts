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
 * Whether this libtorch's CPU autocast takes float16, asked of libtorch itself: in older ones (1.13 to at least 2.0)
 * set_autocast_cpu_dtype refuses anything but bfloat16 ("Currently, AutocastCPU only support Bfloat16 as the
 * autocast_cpu_dtype"); later ones (2.14 here) compute in float16 on CPU too. The probe
 * sets the CPU dtype to float16 without touching whether autocast is on, then puts the dtype back. Returns
 * libtorch's refusal, or undefined. Asked once per process.
 */
let cpuFloat16: { refusal?: string } | undefined;
function cpuFloat16Refusal(): string | undefined {
  if (!cpuFloat16) {
    const [on, code] = native.getAutocast('cpu');
    try {
      native.setAutocast('cpu', on, dtypeCode('float16'));
      native.setAutocast('cpu', on, code);
      cpuFloat16 = {};
    } catch (e) {
      cpuFloat16 = { refusal: e instanceof Error ? e.message : String(e) };
    }
  }
  return cpuFloat16.refusal;
}

/** Returns why `dtype` cannot be used on `device` with this libtorch, or undefined when it can. */
export function autocastUnsupported(dtype: AutocastDType, device = 'cpu'): string | undefined {
  const refusal = dtype === 'float16' && deviceType(device) === 'cpu' ? cpuFloat16Refusal() : undefined;
  if (refusal)
    return `float16 autocast on CPU needs a libtorch whose CPU autocast takes float16 (recent 2.x releases; 2.14 does); this one is ${native.version().torch}, which refuses it ("${refusal.split('\n')[0]}") and computes in bfloat16 only`;
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
