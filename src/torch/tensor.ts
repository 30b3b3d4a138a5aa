// The Tensor class: a typed, disposable handle to a libtorch tensor. Methods mirror PyTorch's names in
// camelCase; numbers are accepted wherever PyTorch accepts Python scalars. In-place methods end in '_' and
// return `this`. Every method throws TensorDisposedError on a disposed tensor and TorchError on libtorch errors.
import { native, type Handle } from './native.js';
import { setTensorFactory } from './call.js';
import { track, keep as keepValue } from './scope.js';
import { TensorDisposedError, rethrow } from './errors.js';
import { dtypeCode, dtypeName, typedArrayFor, MemoryFormat, type DType, type TypedArray, type MemoryFormatName } from './dtype.js';
import * as ops from './ops.js';

export type Scalar = number | boolean;
type TensorOrNumber = Tensor | number;

function dimsOf(d: number | number[] | undefined, ndim: number): number[] {
  if (d === undefined) return [...Array(ndim).keys()];
  return typeof d === 'number' ? [d] : d;
}

export class Tensor {
  #h: Handle | null;

  /** @internal Wraps a native handle; use the creation functions (tensor, zeros, ...) instead. */
  constructor(h: Handle) {
    this.#h = h;
    track(this);
  }

  /** The native handle; throws if the tensor was disposed. */
  get handle(): Handle {
    if (this.#h === null) throw new TensorDisposedError();
    return this.#h;
  }

  /** Frees the native tensor now. Idempotent. */
  dispose(): void {
    if (this.#h !== null) {
      native.dispose(this.#h);
      this.#h = null;
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  get isDisposed(): boolean {
    return this.#h === null;
  }
  /** Exempts this tensor from scope cleanup; the caller must dispose it. */
  keep(): this {
    return keepValue(this);
  }

  // ---- metadata ----
  get shape(): number[] {
    return native.shape(this.handle);
  }
  get strides(): number[] {
    return native.strides(this.handle);
  }
  get ndim(): number {
    return native.dim(this.handle);
  }
  get numel(): number {
    return native.numel(this.handle);
  }
  get dtype(): DType {
    return dtypeName(native.dtype(this.handle));
  }
  get device(): string {
    return native.device(this.handle);
  }
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`size(${dim}): tensor has ${s.length} dimensions`);
    return s[d]!;
  }
  isContiguous(format: MemoryFormatName = 'contiguous'): boolean {
    return native.isContiguous(this.handle, MemoryFormat[format]);
  }
  toString(): string {
    return this.isDisposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- data out ----
  /** A copy of the data as a typed array (float16/bfloat16 are converted to float32; bool to Uint8Array). */
  toTypedArray(): TypedArray {
    const d = this.dtype;
    if (d === 'float16' || d === 'bfloat16') {
      const f = ops.toDtype(this, dtypeCode('float32'));
      try {
        return f.toTypedArray();
      } finally {
        f.dispose();
      }
    }
    return typedArrayFor(d, native.toBuffer(this.handle));
  }
  /** The raw little-endian bytes of a contiguous copy (any dtype, float16/bfloat16 included). */
  toBytes(): Uint8Array {
    return new Uint8Array(native.toBuffer(this.handle));
  }
  /** The data as (nested) JS arrays of numbers (int64 as numbers). */
  toArray(): any {
    const flat = Array.from(this.toTypedArray() as ArrayLike<number | bigint>, (v) => (typeof v === 'bigint' ? Number(v) : v));
    const shape = this.shape;
    if (shape.length === 0) return flat[0];
    const build = (off: number, d: number): any => {
      const n = shape[d]!;
      if (d === shape.length - 1) return flat.slice(off, off + n);
      const stride = shape.slice(d + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: n }, (_, i) => build(off + i * stride, d + 1));
    };
    return build(0, 0);
  }
  /** The value of a one-element tensor. */
  item(): number {
    try {
      return native.item(this.handle);
    } catch (e) {
      rethrow(e, 'item');
    }
  }

  // ---- conversion ----
  /** nonBlocking: a copy from pinned host memory to a GPU (or back) that does not wait for the GPU. */
  to(target: DType | string, opts: { copy?: boolean; nonBlocking?: boolean } = {}): Tensor {
    if (/^(cpu|cuda|mps|meta)/.test(target)) return ops.toDevice(this, target, native.dtype(this.handle), opts.nonBlocking ?? false, opts.copy ?? false);
    return ops.toDtype(this, dtypeCode(target as DType), false, opts.copy ?? false);
  }
  float(): Tensor {
    return this.to('float32');
  }
  long(): Tensor {
    return this.to('int64');
  }
  clone(format?: MemoryFormatName): Tensor {
    return ops.clone(this, format ? MemoryFormat[format] : undefined);
  }
  detach(): Tensor {
    return ops.detach(this);
  }
  contiguous(format: MemoryFormatName = 'contiguous'): Tensor {
    return ops.contiguous(this, MemoryFormat[format]);
  }
  /** NHWC storage (same logical shape) — faster convolutions on CPU with oneDNN. */
  channelsLast(): Tensor {
    return ops.contiguous(this, MemoryFormat.channelsLast);
  }

  // ---- views and shape ----
  view(...shape: number[]): Tensor {
    return ops.view(this, shape);
  }
  reshape(...shape: number[]): Tensor {
    return ops.reshape(this, shape);
  }
  permute(...dims: number[]): Tensor {
    return ops.permute(this, dims);
  }
  transpose(d0: number, d1: number): Tensor {
    return ops.transpose(this, d0, d1);
  }
  get T(): Tensor {
    return ops.transpose(this, 0, 1);
  }
  flatten(start = 0, end = -1): Tensor {
    return ops.flatten(this, start, end);
  }
  squeeze(dim: number): Tensor {
    return ops.squeeze(this, dim);
  }
  unsqueeze(dim: number): Tensor {
    return ops.unsqueeze(this, dim);
  }
  expand(...shape: number[]): Tensor {
    return ops.expand(this, shape);
  }
  repeat(...times: number[]): Tensor {
    return ops.repeat(this, times);
  }
  flip(...dims: number[]): Tensor {
    return ops.flip(this, dims);
  }

  // ---- indexing ----
  select(dim: number, index: number): Tensor {
    return ops.select(this, dim, index);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return ops.narrow(this, dim, start, length);
  }
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return ops.slice(this, dim, start, end, step);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return ops.indexSelect(this, dim, index);
  }
  /** Advanced indexing, like x[i0, i1, ...] with index tensors (null keeps a dimension). */
  index(indices: (Tensor | null)[]): Tensor {
    return ops.index(this, indices);
  }
  gather(dim: number, index: Tensor): Tensor {
    return ops.gather(this, dim, index);
  }
  maskedFill(mask: Tensor, value: Scalar): Tensor {
    return ops.maskedFill(this, mask, value);
  }
  maskedSelect(mask: Tensor): Tensor {
    return ops.maskedSelect(this, mask);
  }

  // ---- arithmetic ----
  add(o: TensorOrNumber, alpha = 1): Tensor {
    return typeof o === 'number' ? ops.addScalar(this, o, alpha) : ops.add(this, o, alpha);
  }
  sub(o: TensorOrNumber, alpha = 1): Tensor {
    return typeof o === 'number' ? ops.subScalar(this, o, alpha) : ops.sub(this, o, alpha);
  }
  mul(o: TensorOrNumber): Tensor {
    return typeof o === 'number' ? ops.mulScalar(this, o) : ops.mul(this, o);
  }
  div(o: TensorOrNumber): Tensor {
    return typeof o === 'number' ? ops.divScalar(this, o) : ops.div(this, o);
  }
  pow(e: number): Tensor {
    return ops.pow(this, e);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  abs(): Tensor {
    return ops.abs(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  square(): Tensor {
    return ops.square(this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  sin(): Tensor {
    return ops.sin(this);
  }
  cos(): Tensor {
    return ops.cos(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  sign(): Tensor {
    return ops.sign(this);
  }
  floor(): Tensor {
    return ops.floor(this);
  }
  /** Clamp to scalar or elementwise tensor bounds; pass null/undefined for no bound. */
  clamp(min?: TensorOrNumber | null, max?: TensorOrNumber | null): Tensor {
    if (min instanceof Tensor || max instanceof Tensor) {
      return ops.clampTensor(this, min as Tensor | null, max as Tensor | null);
    }
    return ops.clamp(this, min, max);
  }
  minimum(o: Tensor): Tensor {
    return ops.minimum(this, o);
  }
  maximum(o: Tensor): Tensor {
    return ops.maximum(this, o);
  }
  matmul(o: Tensor): Tensor {
    return ops.matmul(this, o);
  }
  relu(): Tensor {
    return ops.relu(this);
  }
  softmax(dim: number): Tensor {
    return ops.softmax(this, dim);
  }
  logSoftmax(dim: number): Tensor {
    return ops.logSoftmax(this, dim);
  }
  isnan(): Tensor {
    return ops.isnan(this);
  }
  isfinite(): Tensor {
    return ops.isfinite(this);
  }

  // ---- comparisons (return bool tensors) ----
  eq(o: TensorOrNumber): Tensor {
    return typeof o === 'number' ? ops.eqScalar(this, o) : ops.eq(this, o);
  }
  ne(o: Tensor): Tensor {
    return ops.ne(this, o);
  }
  lt(o: TensorOrNumber): Tensor {
    return typeof o === 'number' ? ops.ltScalar(this, o) : ops.lt(this, o);
  }
  le(o: Tensor): Tensor {
    return ops.le(this, o);
  }
  gt(o: TensorOrNumber): Tensor {
    return typeof o === 'number' ? ops.gtScalar(this, o) : ops.gt(this, o);
  }
  ge(o: Tensor): Tensor {
    return ops.ge(this, o);
  }
  logicalAnd(o: Tensor): Tensor {
    return ops.logicalAnd(this, o);
  }
  logicalOr(o: Tensor): Tensor {
    return ops.logicalOr(this, o);
  }
  logicalNot(): Tensor {
    return ops.logicalNot(this);
  }
  allclose(o: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return ops.allclose(this, o, rtol, atol);
  }
  equal(o: Tensor): boolean {
    return ops.equal(this, o);
  }

  // ---- reductions ----
  sum(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined ? ops.sumAll(this) : ops.sum(this, dimsOf(dim, 0), keepdim);
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined ? ops.meanAll(this) : ops.mean(this, dimsOf(dim, 0), keepdim);
  }
  /** Max over everything, or [values, indices] along a dimension. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? ops.maxAll(this) : ops.maxDim(this, dim, keepdim);
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return dim === undefined ? ops.minAll(this) : ops.minDim(this, dim, keepdim);
  }
  amax(dim: number | number[], keepdim = false): Tensor {
    return ops.amax(this, dim, keepdim);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return ops.argmax(this, dim, keepdim);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return ops.argmin(this, dim, keepdim);
  }
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined ? ops.normAll(this, p) : ops.norm(this, p, dim, keepdim);
  }
  var(dim: number | number[], unbiased = true, keepdim = false): Tensor {
    return ops.varDim(this, dim, unbiased, keepdim);
  }
  std(dim: number | number[], unbiased = true, keepdim = false): Tensor {
    return ops.stdDim(this, dim, unbiased, keepdim);
  }
  all(): Tensor {
    return ops.all(this);
  }
  any(): Tensor {
    return ops.any(this);
  }
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] {
    return ops.topk(this, k, dim, largest, true);
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    return ops.sort(this, dim, descending);
  }

  // ---- in place ----
  add_(o: TensorOrNumber, alpha = 1): this {
    typeof o === 'number' ? ops.addScalar_(this, o, alpha) : ops.add_(this, o, alpha);
    return this;
  }
  sub_(o: Tensor, alpha = 1): this {
    ops.sub_(this, o, alpha);
    return this;
  }
  mul_(o: TensorOrNumber): this {
    typeof o === 'number' ? ops.mulScalar_(this, o) : ops.mul_(this, o);
    return this;
  }
  div_(o: TensorOrNumber): this {
    typeof o === 'number' ? ops.divScalar_(this, o) : ops.div_(this, o);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    ops.addcmul_(this, t1, t2, value);
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    ops.addcdiv_(this, t1, t2, value);
    return this;
  }
  clamp_(min?: TensorOrNumber | null, max?: TensorOrNumber | null): this {
    if (min instanceof Tensor || max instanceof Tensor) ops.clampTensor_(this, min as Tensor | null, max as Tensor | null);
    else ops.clamp_(this, min, max);
    return this;
  }
  sign_(): this {
    ops.sign_(this);
    return this;
  }
  relu_(): this {
    ops.relu_(this);
    return this;
  }
  zero_(): this {
    ops.zero_(this);
    return this;
  }
  fill_(v: Scalar): this {
    ops.fill_(this, v);
    return this;
  }
  copy_(src: Tensor): this {
    ops.copy_(this, src);
    return this;
  }
  uniform_(from = 0, to = 1): this {
    ops.uniform_(this, from, to);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    ops.normal_(this, mean, std);
    return this;
  }
  maskedFill_(mask: Tensor, value: Scalar): this {
    ops.maskedFill_(this, mask, value);
    return this;
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.handle, on);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** The accumulated gradient (a new wrapper sharing its storage), or undefined. */
  get grad(): Tensor | undefined {
    const g = native.getGrad(this.handle);
    return g === undefined ? undefined : new Tensor(g);
  }
  set grad(g: Tensor | undefined) {
    native.setGrad(this.handle, g?.handle);
  }
  /** Back-propagates from this (scalar) tensor, accumulating .grad of the leaves that require it. */
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    try {
      native.backward([this.handle], gradient ? [gradient.handle] : undefined, opts.retainGraph ?? false, opts.createGraph ?? false);
    } catch (e) {
      rethrow(e, 'backward');
    }
  }
}

setTensorFactory((h) => new Tensor(h));

/** True when both tensors view the same storage. */
export function sharesStorage(a: Tensor, b: Tensor): boolean {
  return native.sameStorage(a.handle, b.handle);
}
