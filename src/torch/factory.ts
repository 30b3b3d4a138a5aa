// Creating tensors, and process-wide settings (seed, threads, devices, memory).
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { dtypeCode, dtypeOfTypedArray, bytesPerElement, type DType } from './dtype.js';
import { rethrow } from './errors.js';
import * as ops from './ops.js';

export interface Options {
  dtype?: DType;
  device?: string;
}

const code = (o: Options, d: DType = 'float32') => dtypeCode(o.dtype ?? d);

function shapeOfNested(v: unknown): number[] {
  const s: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    s.push(cur.length);
    cur = cur[0];
  }
  return s;
}

function onDevice(t: Tensor, device?: string): Tensor {
  if (!device || device === 'cpu') return t;
  const moved = t.to(device);
  t.dispose();
  return moved;
}

/** A tensor copied from a typed array with the given shape (dtype follows the array unless given). */
export function fromTypedArray(data: ArrayBufferView, shape: number[], dtype?: DType, device?: string): Tensor {
  const d = dtype ?? dtypeOfTypedArray(data);
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel * bytesPerElement(d) !== data.byteLength)
    throw new RangeError(`fromTypedArray: ${data.byteLength} bytes do not fit shape [${shape}] of ${d}`);
  try {
    if (!device?.startsWith('cuda')) return onDevice(new Tensor(native.fromBuffer(data, shape, dtypeCode(d))), device);
    // to a GPU as PyTorch's DataLoader(pin_memory=True) and .to(device, non_blocking=True) do: the bytes go into
    // pinned host memory and the copy is queued on the GPU's stream without waiting for it (CUDA's caching host
    // allocator keeps the pinned block until the copy has run, so it is freed here at once)
    const host = new Tensor(native.fromBuffer(data, shape, dtypeCode(d), true));
    try {
      return host.to(device, { nonBlocking: true });
    } finally {
      host.dispose();
    }
  } catch (e) {
    rethrow(e, 'fromTypedArray');
  }
}

/**
 * A tensor from a number, nested arrays of numbers/booleans, or a typed array (1-D). On a GPU the data goes as
 * fromTypedArray's does (pinned memory, a copy that does not wait for the GPU), and any dtype conversion runs there.
 */
export function tensor(data: number | boolean | unknown[] | ArrayBufferView, opts: Options = {}): Tensor {
  const device = opts.device;
  if (ArrayBuffer.isView(data)) {
    const ta = data as ArrayBufferView & { length: number };
    const t = fromTypedArray(ta, [ta.length], undefined, device);
    if (opts.dtype && opts.dtype !== t.dtype) {
      const c = t.to(opts.dtype);
      t.dispose();
      return c;
    }
    return t;
  }
  const shape = typeof data === 'object' ? shapeOfNested(data) : [];
  const flat = typeof data === 'object' ? (data as unknown[]).flat(Infinity) : [data];
  const n = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== n) throw new RangeError(`tensor: ragged nested array (expected ${n} elements, got ${flat.length})`);
  const dtype = opts.dtype ?? (typeof flat[0] === 'boolean' ? 'bool' : 'float32');
  switch (dtype) {
    case 'float64': return fromTypedArray(Float64Array.from(flat as number[]), shape, 'float64', device);
    case 'int64': return fromTypedArray(BigInt64Array.from(flat as number[], (v) => BigInt(Math.trunc(Number(v)))), shape, 'int64', device);
    case 'int32': return fromTypedArray(Int32Array.from(flat as number[]), shape, 'int32', device);
    case 'uint8': return fromTypedArray(Uint8Array.from(flat as number[]), shape, 'uint8', device);
    case 'bool': return fromTypedArray(Uint8Array.from(flat as number[], (v) => (v ? 1 : 0)), shape, 'bool', device);
    default: {
      const f = fromTypedArray(Float32Array.from(flat as number[], Number), shape, 'float32', device);
      if (dtype === 'float32') return f;
      const t = f.to(dtype);
      f.dispose();
      return t;
    }
  }
}

export const zeros = (shape: number[], o: Options = {}) => ops.zeros(shape, code(o), null, o.device);
export const ones = (shape: number[], o: Options = {}) => ops.ones(shape, code(o), null, o.device);
export const full = (shape: number[], value: number | boolean, o: Options = {}) => ops.full(shape, value, code(o), null, o.device);
export const empty = (shape: number[], o: Options = {}) => ops.empty(shape, code(o), null, o.device);
export const arange = (start: number, end?: number, step = 1, o: Options = {}) =>
  end === undefined ? ops.arange(0, start, step, code(o, 'int64'), null, o.device) : ops.arange(start, end, step, code(o, Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step) ? 'int64' : 'float32'), null, o.device);
/** Uniform on [0, 1). */
export const rand = (shape: number[], o: Options = {}) => ops.rand(shape, code(o), null, o.device);
/** Standard normal. */
export const randn = (shape: number[], o: Options = {}) => ops.randn(shape, code(o), null, o.device);
/** Integers uniform on [low, high). */
export const randint = (low: number, high: number, shape: number[], o: Options = {}) => ops.randint(low, high, shape, code(o, 'int64'), null, o.device);
export const randperm = (n: number, o: Options = {}) => ops.randperm(n, code(o, 'int64'), null, o.device);
export const zerosLike = (x: Tensor) => ops.zerosLike(x);
export const onesLike = (x: Tensor) => ops.onesLike(x);
export const randLike = (x: Tensor) => ops.randLike(x);
export const randnLike = (x: Tensor) => ops.randnLike(x);
export const cat = (xs: Tensor[], dim = 0) => ops.cat(xs, dim);
export const stack = (xs: Tensor[], dim = 0) => ops.stack(xs, dim);
export const where = (cond: Tensor, a: Tensor, b: Tensor) => ops.where(cond, a, b);

/** Seeds libtorch's CPU (and CUDA) default generators. */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
/**
 * A generator's state (a uint8 tensor on the CPU), for checkpoints: the CPU's, or with `device` 'cuda:N' that GPU's
 * (libtorch has one generator per device, and random draws of GPU tensors come from the GPU's).
 */
export function getRngState(device = 'cpu'): Tensor {
  try {
    return new Tensor(device === 'cpu' ? native.getRngState() : native.getRngState(device));
  } catch (e) {
    rethrow(e, 'getRngState');
  }
}
export function setRngState(state: Tensor, device = 'cpu'): void {
  try {
    if (device === 'cpu') native.setRngState(state.handle);
    else native.setRngState(state.handle, device);
  } catch (e) {
    rethrow(e, 'setRngState');
  }
}

/** Intra-op threads for libtorch (default: all physical cores). */
export function setNumThreads(n: number): void {
  try {
    native.setNumThreads(n);
  } catch (e) {
    rethrow(e, 'setNumThreads');
  }
}
export function getNumThreads(): number {
  return native.getNumThreads();
}

/**
 * Whether ATen may use oneDNN kernels (PyTorch's torch.backends.mkldnn.enabled; default on). Off, bfloat16
 * convolutions and matrix products take ATen's own kernels, as they always do on CPUs without AVX-512.
 */
export const oneDnn = {
  enabled: (): boolean => native.oneDnnEnabled(),
  setEnabled: (on: boolean): void => native.setOneDnnEnabled(on),
};

export const cuda = {
  isAvailable: (): boolean => native.cudaIsAvailable(),
  deviceCount: (): number => native.cudaDeviceCount(),
  /** Whether the addon was built against a CUDA libtorch (a GPU may still be missing: isAvailable). */
  built: (): boolean => native.cudaBuilt(),
  /**
   * Why `device` cannot be used by this process, or undefined when it can (always for 'cpu'): a CUDA device
   * needs an addon built against a CUDA libtorch, a GPU its driver shows, and an index below the GPU count.
   */
  problem(device: string): string | undefined {
    const m = /^cuda(?::(\d+))?$/.exec(device);
    if (!m) return undefined;
    const torch = native.version().torch;
    if (!native.cudaBuilt())
      return `${device}: this build of the native addon has no CUDA (its libtorch ${torch} is CPU-only); build one against a CUDA PyTorch: bash scripts/build-pip-torch.sh (README, "GPUs")`;
    const n = native.cudaDeviceCount();
    if (n === 0) {
      const visible = process.env.CUDA_VISIBLE_DEVICES;
      return `${device}: no CUDA GPU found (the addon's libtorch ${torch} has CUDA, but the driver reports no device${visible !== undefined ? `; CUDA_VISIBLE_DEVICES='${visible}'` : ''})`;
    }
    if (m[1] !== undefined && Number(m[1]) >= n) return `${device}: this machine has ${n} CUDA device${n > 1 ? 's' : ''} (cuda:0${n > 1 ? ` to cuda:${n - 1}` : ''})`;
    return undefined;
  },
};

/** Live native tensors (wrapped and not yet disposed or finalized). */
export function liveTensors(): number {
  return native.liveTensors();
}
export const memory = {
  stats: () => native.memoryStats(),
  emptyCache: () => native.emptyCache(),
  setCacheLimit: (bytes: number) => native.setCacheLimit(bytes),
  resetPeak: () => native.resetPeakMemory(),
  finalized: () => native.finalizedTensors(),
};
export function version(): { torch: string; parallel: string; config: string } {
  return native.version();
}
