// freeadv's tensor API over libtorch. All calls must come from the main JavaScript thread (jpeg.ts's excepted).
export { Tensor, sharesStorage, type Scalar } from './tensor.js';
export { scope, openScope, keep, unkeep, carry, Scope, scopeDepth, type Carried } from './scope.js';
export { TorchError, TensorDisposedError } from './errors.js';
export { type DType, isFloating, bytesPerElement, type TypedArray } from './dtype.js';
export * from './factory.js';
export * as autograd from './autograd.js';
export { noGrad, inferenceMode, withGradEnabled, isGradEnabled } from './autograd.js';
export * as ops from './ops.js';
export { autocast, autocastState, isAutocastEnabled, autocastUnsupported, deviceType, type AutocastDType } from './autocast.js';
export { def, defInplace } from './call.js';
export * as dist from './dist.js';
export { armInterrupts, pendingInterrupt } from './interrupt.js';
export { jpegAvailable, jpegDecode, jpegDecodeAsync, resizeRgb, type JpegOptions, type JpegPixels } from './jpeg.js';
