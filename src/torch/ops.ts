// The op table: one line per ATen operator, typed for TypeScript. Adding an operator is adding a line here
// (the schema string after 'aten::' is the one `torch._C._jit_get_schemas_for_operator` lists); the native
// layer needs no change. Optional trailing arguments may be omitted: libtorch's schema defaults apply.
import { def, defInplace } from './call.js';
import type { Tensor } from './tensor.js';

type T = Tensor;
type Ints = number | number[];
type S = number | boolean;
type Opt<X> = X | null | undefined;

// creation (dtype is a c10 ScalarType code, device a string such as 'cpu' or 'cuda:0')
export const empty = def<(size: number[], dtype?: number, layout?: null, device?: string, pin?: null, memoryFormat?: number) => T>('aten::empty.memory_format');
export const zeros = def<(size: number[], dtype?: number, layout?: null, device?: string) => T>('aten::zeros');
export const ones = def<(size: number[], dtype?: number, layout?: null, device?: string) => T>('aten::ones');
export const full = def<(size: number[], value: S, dtype?: number, layout?: null, device?: string) => T>('aten::full');
export const arange = def<(start: number, end: number, step: number, dtype?: number, layout?: null, device?: string) => T>('aten::arange.start_step');
export const rand = def<(size: number[], dtype?: number, layout?: null, device?: string) => T>('aten::rand');
export const randn = def<(size: number[], dtype?: number, layout?: null, device?: string) => T>('aten::randn');
export const randint = def<(low: number, high: number, size: number[], dtype?: number, layout?: null, device?: string) => T>('aten::randint.low');
export const randperm = def<(n: number, dtype?: number, layout?: null, device?: string) => T>('aten::randperm');
export const zerosLike = def<(x: T, dtype?: number) => T>('aten::zeros_like');
export const onesLike = def<(x: T, dtype?: number) => T>('aten::ones_like');
export const fullLike = def<(x: T, value: S, dtype?: number) => T>('aten::full_like');
export const randLike = def<(x: T, dtype?: number) => T>('aten::rand_like');
export const randnLike = def<(x: T, dtype?: number) => T>('aten::randn_like');
export const emptyLike = def<(x: T, dtype?: number) => T>('aten::empty_like');
export const bernoulli = def<(x: T, p: number) => T>('aten::bernoulli.p');

// conversion, layout, views
export const toDtype = def<(x: T, dtype: number, nonBlocking?: boolean, copy?: boolean) => T>('aten::to.dtype');
export const toDevice = def<(x: T, device: string, dtype: number, nonBlocking?: boolean, copy?: boolean) => T>('aten::to.device');
export const clone = def<(x: T, memoryFormat?: number) => T>('aten::clone');
export const contiguous = def<(x: T, memoryFormat?: number) => T>('aten::contiguous');
export const detach = def<(x: T) => T>('aten::detach');
export const view = def<(x: T, size: number[]) => T>('aten::view');
export const reshape = def<(x: T, size: number[]) => T>('aten::reshape');
export const permute = def<(x: T, dims: number[]) => T>('aten::permute');
export const transpose = def<(x: T, d0: number, d1: number) => T>('aten::transpose.int');
export const flatten = def<(x: T, start?: number, end?: number) => T>('aten::flatten.using_ints');
export const squeeze = def<(x: T, dim: number) => T>('aten::squeeze.dim');
export const unsqueeze = def<(x: T, dim: number) => T>('aten::unsqueeze');
export const expand = def<(x: T, size: number[]) => T>('aten::expand');
export const repeat = def<(x: T, repeats: number[]) => T>('aten::repeat');
export const flip = def<(x: T, dims: number[]) => T>('aten::flip');
export const pad = def<(x: T, pad: number[], mode?: string, value?: number) => T>('aten::pad');

// indexing
export const select = def<(x: T, dim: number, index: number) => T>('aten::select.int');
export const narrow = def<(x: T, dim: number, start: number, length: number) => T>('aten::narrow');
export const slice = def<(x: T, dim: number, start: Opt<number>, end: Opt<number>, step?: number) => T>('aten::slice.Tensor');
export const indexSelect = def<(x: T, dim: number, index: T) => T>('aten::index_select');
export const index = def<(x: T, indices: (T | null)[]) => T>('aten::index.Tensor');
export const gather = def<(x: T, dim: number, index: T) => T>('aten::gather');
export const scatter = def<(x: T, dim: number, index: T, src: T) => T>('aten::scatter.src');
export const indexCopy = def<(x: T, dim: number, index: T, src: T) => T>('aten::index_copy');
export const indexFill = def<(x: T, dim: number, index: T, value: S) => T>('aten::index_fill.int_Scalar');
export const maskedFill = def<(x: T, mask: T, value: S) => T>('aten::masked_fill.Scalar');
export const maskedSelect = def<(x: T, mask: T) => T>('aten::masked_select');
export const where = def<(cond: T, a: T, b: T) => T>('aten::where.self');
export const cat = def<(xs: T[], dim?: number) => T>('aten::cat');
export const stack = def<(xs: T[], dim?: number) => T>('aten::stack');
export const nonzero = def<(x: T) => T>('aten::nonzero');

// elementwise arithmetic
export const add = def<(a: T, b: T, alpha?: number) => T>('aten::add.Tensor');
export const addScalar = def<(a: T, b: number, alpha?: number) => T>('aten::add.Scalar');
export const sub = def<(a: T, b: T, alpha?: number) => T>('aten::sub.Tensor');
export const subScalar = def<(a: T, b: number, alpha?: number) => T>('aten::sub.Scalar');
export const mul = def<(a: T, b: T) => T>('aten::mul.Tensor');
export const mulScalar = def<(a: T, b: number) => T>('aten::mul.Scalar');
export const div = def<(a: T, b: T) => T>('aten::div.Tensor');
export const divScalar = def<(a: T, b: number) => T>('aten::div.Scalar');
export const pow = def<(a: T, e: number) => T>('aten::pow.Tensor_Scalar');
export const neg = def<(x: T) => T>('aten::neg');
export const abs = def<(x: T) => T>('aten::abs');
export const exp = def<(x: T) => T>('aten::exp');
export const log = def<(x: T) => T>('aten::log');
export const sqrt = def<(x: T) => T>('aten::sqrt');
export const rsqrt = def<(x: T) => T>('aten::rsqrt');
export const square = def<(x: T) => T>('aten::square');
export const sin = def<(x: T) => T>('aten::sin');
export const cos = def<(x: T) => T>('aten::cos');
export const tanh = def<(x: T) => T>('aten::tanh');
export const sigmoid = def<(x: T) => T>('aten::sigmoid');
export const sign = def<(x: T) => T>('aten::sign');
export const floor = def<(x: T) => T>('aten::floor');
export const round = def<(x: T) => T>('aten::round');
export const reciprocal = def<(x: T) => T>('aten::reciprocal');
export const clamp = def<(x: T, min: Opt<number>, max: Opt<number>) => T>('aten::clamp');
export const clampTensor = def<(x: T, min: Opt<T>, max: Opt<T>) => T>('aten::clamp.Tensor');
export const minimum = def<(a: T, b: T) => T>('aten::minimum');
export const maximum = def<(a: T, b: T) => T>('aten::maximum');
export const lerp = def<(a: T, b: T, w: number) => T>('aten::lerp.Scalar');
export const isnan = def<(x: T) => T>('aten::isnan');
export const isfinite = def<(x: T) => T>('aten::isfinite');

// comparisons and logic
export const eq = def<(a: T, b: T) => T>('aten::eq.Tensor');
export const eqScalar = def<(a: T, b: S) => T>('aten::eq.Scalar');
export const ne = def<(a: T, b: T) => T>('aten::ne.Tensor');
export const lt = def<(a: T, b: T) => T>('aten::lt.Tensor');
export const ltScalar = def<(a: T, b: number) => T>('aten::lt.Scalar');
export const le = def<(a: T, b: T) => T>('aten::le.Tensor');
export const gt = def<(a: T, b: T) => T>('aten::gt.Tensor');
export const gtScalar = def<(a: T, b: number) => T>('aten::gt.Scalar');
export const ge = def<(a: T, b: T) => T>('aten::ge.Tensor');
export const logicalAnd = def<(a: T, b: T) => T>('aten::logical_and');
export const logicalOr = def<(a: T, b: T) => T>('aten::logical_or');
export const logicalNot = def<(a: T) => T>('aten::logical_not');
export const allclose = def<(a: T, b: T, rtol?: number, atol?: number) => boolean>('aten::allclose');
export const equal = def<(a: T, b: T) => boolean>('aten::equal');

// reductions
export const sumAll = def<(x: T, dtype?: number) => T>('aten::sum');
export const sum = def<(x: T, dims: Ints, keepdim?: boolean, dtype?: number) => T>('aten::sum.dim_IntList');
export const meanAll = def<(x: T, dtype?: number) => T>('aten::mean');
export const mean = def<(x: T, dims: Ints, keepdim?: boolean, dtype?: number) => T>('aten::mean.dim');
export const maxAll = def<(x: T) => T>('aten::max');
export const minAll = def<(x: T) => T>('aten::min');
export const maxDim = def<(x: T, dim: number, keepdim?: boolean) => [T, T]>('aten::max.dim');
export const minDim = def<(x: T, dim: number, keepdim?: boolean) => [T, T]>('aten::min.dim');
export const amax = def<(x: T, dims: Ints, keepdim?: boolean) => T>('aten::amax');
export const amin = def<(x: T, dims: Ints, keepdim?: boolean) => T>('aten::amin');
export const argmax = def<(x: T, dim?: number, keepdim?: boolean) => T>('aten::argmax');
export const argmin = def<(x: T, dim?: number, keepdim?: boolean) => T>('aten::argmin');
export const topk = def<(x: T, k: number, dim?: number, largest?: boolean, sorted?: boolean) => [T, T]>('aten::topk');
export const sort = def<(x: T, dim?: number, descending?: boolean) => [T, T]>('aten::sort');
export const norm = def<(x: T, p: Opt<number>, dims: Ints, keepdim?: boolean) => T>('aten::norm.ScalarOpt_dim');
export const normAll = def<(x: T, p?: number) => T>('aten::norm.Scalar');
export const varDim = def<(x: T, dims: Ints, unbiased?: boolean, keepdim?: boolean) => T>('aten::var.dim');
export const stdDim = def<(x: T, dims: Ints, unbiased?: boolean, keepdim?: boolean) => T>('aten::std.dim');
export const all = def<(x: T) => T>('aten::all');
export const any = def<(x: T) => T>('aten::any');
export const cumsum = def<(x: T, dim: number) => T>('aten::cumsum');

// linear algebra and network layers
export const matmul = def<(a: T, b: T) => T>('aten::matmul');
export const mm = def<(a: T, b: T) => T>('aten::mm');
export const linear = def<(x: T, w: T, b?: Opt<T>) => T>('aten::linear');
export const conv2d = def<(x: T, w: T, b: Opt<T>, stride?: Ints, padding?: Ints, dilation?: Ints, groups?: number) => T>('aten::conv2d');
export const batchNorm = def<(x: T, w: Opt<T>, b: Opt<T>, runMean: Opt<T>, runVar: Opt<T>, training: boolean, momentum: number, eps: number, cudnn: boolean) => T>('aten::batch_norm');
export const maxPool2d = def<(x: T, kernel: Ints, stride?: Ints, padding?: Ints, dilation?: Ints, ceil?: boolean) => T>('aten::max_pool2d');
export const avgPool2d = def<(x: T, kernel: Ints, stride?: Ints, padding?: Ints, ceil?: boolean, countIncludePad?: boolean) => T>('aten::avg_pool2d');
export const adaptiveAvgPool2d = def<(x: T, size: Ints) => T>('aten::adaptive_avg_pool2d');
export const dropout = def<(x: T, p: number, train: boolean) => T>('aten::dropout');
export const relu = def<(x: T) => T>('aten::relu');
export const leakyRelu = def<(x: T, slope?: number) => T>('aten::leaky_relu');
export const softmax = def<(x: T, dim: number, dtype?: number) => T>('aten::softmax.int');
export const logSoftmax = def<(x: T, dim: number, dtype?: number) => T>('aten::log_softmax.int');
/** reduction: 0 none, 1 mean, 2 sum. */
export const crossEntropy = def<(x: T, target: T, weight?: Opt<T>, reduction?: number, ignoreIndex?: number, labelSmoothing?: number) => T>('aten::cross_entropy_loss');
export const nllLoss = def<(x: T, target: T, weight?: Opt<T>, reduction?: number, ignoreIndex?: number) => T>('aten::nll_loss');
export const mseLoss = def<(x: T, target: T, reduction?: number) => T>('aten::mse_loss');
export const oneHot = def<(x: T, numClasses?: number) => T>('aten::one_hot');
export const interpolateBilinear = def<(x: T, size: number[], alignCorners: boolean, scales?: Opt<number[]>) => T>('aten::upsample_bilinear2d.vec');

// in place (return their first argument)
export const add_ = defInplace<(a: T, b: T, alpha?: number) => T>('aten::add_.Tensor');
export const addScalar_ = defInplace<(a: T, b: number, alpha?: number) => T>('aten::add_.Scalar');
export const sub_ = defInplace<(a: T, b: T, alpha?: number) => T>('aten::sub_.Tensor');
export const mul_ = defInplace<(a: T, b: T) => T>('aten::mul_.Tensor');
export const mulScalar_ = defInplace<(a: T, b: number) => T>('aten::mul_.Scalar');
export const div_ = defInplace<(a: T, b: T) => T>('aten::div_.Tensor');
export const divScalar_ = defInplace<(a: T, b: number) => T>('aten::div_.Scalar');
export const addcmul_ = defInplace<(a: T, t1: T, t2: T, value?: number) => T>('aten::addcmul_');
export const addcdiv_ = defInplace<(a: T, t1: T, t2: T, value?: number) => T>('aten::addcdiv_');
export const clamp_ = defInplace<(x: T, min: Opt<number>, max: Opt<number>) => T>('aten::clamp_');
export const clampTensor_ = defInplace<(x: T, min: Opt<T>, max: Opt<T>) => T>('aten::clamp_.Tensor');
export const sign_ = defInplace<(x: T) => T>('aten::sign_');
export const relu_ = defInplace<(x: T) => T>('aten::relu_');
export const zero_ = defInplace<(x: T) => T>('aten::zero_');
export const fill_ = defInplace<(x: T, v: S) => T>('aten::fill_.Scalar');
export const copy_ = defInplace<(x: T, src: T, nonBlocking?: boolean) => T>('aten::copy_');
export const uniform_ = defInplace<(x: T, from?: number, to?: number) => T>('aten::uniform_');
export const normal_ = defInplace<(x: T, mean?: number, std?: number) => T>('aten::normal_');
export const maskedFill_ = defInplace<(x: T, mask: T, value: S) => T>('aten::masked_fill_.Scalar');
export const requiresGrad_ = defInplace<(x: T, on?: boolean) => T>('aten::requires_grad_');
export const lerp_ = defInplace<(a: T, b: T, w: number) => T>('aten::lerp_.Scalar');
export const sqrt_ = defInplace<(x: T) => T>('aten::sqrt_');
