// Small CNNs for 28×28 grey images: two conv + pool stages and two fully connected layers.
import { Tensor, ops } from '../torch/index.js';
import { Module, Conv2d, Linear, Normalize, chain } from '../nn/index.js';

export interface CnnOptions {
  inChannels?: number;
  size?: number;
  numClasses?: number;
  mean?: number[];
  std?: number[];
}

/** conv(k×k, c1) → ReLU → pool 2 → conv(k×k, c2) → ReLU → pool 2 → fc(hidden) → ReLU → fc(classes). */
export class TwoConvNet extends Module {
  readonly norm; readonly conv1; readonly conv2; readonly fc1; readonly fc2;
  constructor(o: CnnOptions, arch: { c1: number; c2: number; kernel: number; hidden: number }) {
    super();
    const c = o.inChannels ?? 1;
    const s = (o.size ?? 28) / 4;
    const pad = (arch.kernel - 1) / 2;
    this.norm = this.module('norm', new Normalize(o.mean ?? Array(c).fill(0.5), o.std ?? Array(c).fill(0.5)));
    this.conv1 = this.module('conv1', new Conv2d(c, arch.c1, arch.kernel, { padding: pad }));
    this.conv2 = this.module('conv2', new Conv2d(arch.c1, arch.c2, arch.kernel, { padding: pad }));
    this.fc1 = this.module('fc1', new Linear(arch.c2 * s * s, arch.hidden));
    this.fc2 = this.module('fc2', new Linear(arch.hidden, o.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    return chain(x, (t) => this.norm.forward(t), (t) => this.conv1.forward(t), ops.relu, (t) => ops.maxPool2d(t, 2),
      (t) => this.conv2.forward(t), ops.relu, (t) => ops.maxPool2d(t, 2), (t) => ops.flatten(t, 1), (t) => this.fc1.forward(t), ops.relu,
      (t) => this.fc2.forward(t));
  }
}

/** 2 conv (16, 32 ch, 3×3) + 2 fc (128): freeadv's default model for Fashion-MNIST/MNIST. */
export class SmallCNN extends TwoConvNet {
  constructor(o: CnnOptions = {}) {
    super(o, { c1: 16, c2: 32, kernel: 3, hidden: 128 });
  }
}

/** The MNIST-challenge CNN of Madry et al.: conv 5×5×32, pool, conv 5×5×64, pool, fc 1024, fc 10. */
export class MadryCNN extends TwoConvNet {
  constructor(o: CnnOptions = {}) {
    super(o, { c1: 32, c2: 64, kernel: 5, hidden: 1024 });
  }
}
