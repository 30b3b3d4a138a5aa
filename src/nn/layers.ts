// Layers, with PyTorch's parameter names and default initialisation (the same RNG calls in the same order as
// torch.nn, so the same manualSeed gives the same weights as PyTorch).
import { Tensor, ops, empty, zeros, ones, fromTypedArray } from '../torch/index.js';
import { Module, chain } from './module.js';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** U(-1/sqrt(fanIn), 1/sqrt(fanIn)): kaiming_uniform_(a=sqrt(5)) for weights and PyTorch's bias init. */
function uniformInit(shape: number[], fanIn: number): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return empty(shape).uniform_(-bound, bound);
}

export class Conv2d extends Module {
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    opts: { stride?: Pair; padding?: Pair; dilation?: Pair; groups?: number; bias?: boolean } = {},
  ) {
    super();
    const [kh, kw] = pair(kernelSize);
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    this.dilation = pair(opts.dilation ?? 1);
    this.groups = opts.groups ?? 1;
    const fanIn = (inChannels / this.groups) * kh * kw;
    this.param('weight', uniformInit([outChannels, inChannels / this.groups, kh, kw], fanIn));
    this.param('bias', opts.bias === false ? undefined : uniformInit([outChannels], fanIn));
  }
  readonly groups: number;
  get weight(): Tensor {
    return this.getParam('weight')!;
  }
  get bias(): Tensor | undefined {
    return this.getParam('bias');
  }
  forward(x: Tensor): Tensor {
    return ops.conv2d(x, this.weight, this.bias, this.stride, this.padding, this.dilation, this.groups);
  }
}

export class Linear extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean } = {}) {
    super();
    this.param('weight', uniformInit([outFeatures, inFeatures], inFeatures));
    this.param('bias', opts.bias === false ? undefined : uniformInit([outFeatures], inFeatures));
  }
  get weight(): Tensor {
    return this.getParam('weight')!;
  }
  get bias(): Tensor | undefined {
    return this.getParam('bias');
  }
  forward(x: Tensor): Tensor {
    return ops.linear(x, this.weight, this.bias);
  }
}

export class BatchNorm2d extends Module {
  constructor(readonly numFeatures: number, readonly opts: { eps?: number; momentum?: number; affine?: boolean } = {}) {
    super();
    const affine = opts.affine ?? true;
    this.param('weight', affine ? ones([numFeatures]) : undefined);
    this.param('bias', affine ? zeros([numFeatures]) : undefined);
    this.buffer('running_mean', zeros([numFeatures]));
    this.buffer('running_var', ones([numFeatures]));
    this.buffer('num_batches_tracked', zeros([], { dtype: 'int64' }));
  }
  forward(x: Tensor): Tensor {
    if (this.training) this.getBuffer('num_batches_tracked').add_(1);
    return ops.batchNorm(
      x,
      this.getParam('weight'),
      this.getParam('bias'),
      this.getBuffer('running_mean'),
      this.getBuffer('running_var'),
      this.training,
      this.opts.momentum ?? 0.1,
      this.opts.eps ?? 1e-5,
      true,
    );
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return ops.relu(x);
  }
}

export class LeakyReLU extends Module {
  constructor(readonly slope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return ops.leakyRelu(x, this.slope);
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernel: Pair, readonly stride: Pair = kernel, readonly padding: Pair = 0) {
    super();
  }
  forward(x: Tensor): Tensor {
    return ops.maxPool2d(x, pair(this.kernel), pair(this.stride), pair(this.padding));
  }
}

export class AvgPool2d extends Module {
  constructor(readonly kernel: Pair, readonly stride: Pair = kernel, readonly padding: Pair = 0) {
    super();
  }
  forward(x: Tensor): Tensor {
    return ops.avgPool2d(x, pair(this.kernel), pair(this.stride), pair(this.padding));
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly size: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return ops.adaptiveAvgPool2d(x, pair(this.size));
  }
}

export class Flatten extends Module {
  constructor(readonly start = 1, readonly end = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return ops.flatten(x, this.start, this.end);
  }
}

export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? ops.dropout(x, this.p, true) : x;
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Children named '0', '1', ... like torch.nn.Sequential. */
export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers.map((m, i) => this.module(String(i), m));
  }
  forward(x: Tensor): Tensor {
    return chain(x, ...this.layers.map((m) => (t: Tensor) => m.forward(t)));
  }
}

/**
 * Per-channel (x - mean) / std inside the model, so that inputs and ε live in [0, 1] pixel space. Its
 * constants are non-persistent buffers: state dicts stay identical to the plain PyTorch architectures.
 */
export class Normalize extends Module {
  constructor(readonly mean: number[], readonly std: number[]) {
    super();
    const c = mean.length;
    this.buffer('mean', fromTypedArray(Float32Array.from(mean), [1, c, 1, 1]), false);
    this.buffer('std', fromTypedArray(Float32Array.from(std), [1, c, 1, 1]), false);
  }
  forward(x: Tensor): Tensor {
    return ops.div(ops.sub(x, this.getBuffer('mean')), this.getBuffer('std'));
  }
}
