// Small CNNs for 28×28 grey images.
import { Tensor, ops } from '../torch/index.js';
import { Module, Conv2d, Linear, Normalize } from '../nn/index.js';

/** 2 conv (16, 32 ch, 3×3) + 2 fc: freeadv's default model for Fashion-MNIST/MNIST. */
export class SmallCNN extends Module {
  readonly norm; readonly conv1; readonly conv2; readonly fc1; readonly fc2;
  constructor(opts: { inChannels?: number; size?: number; numClasses?: number; mean?: number[]; std?: number[] } = {}) {
    super();
    const c = opts.inChannels ?? 1;
    const s = (opts.size ?? 28) / 4;
    this.norm = this.module('norm', new Normalize(opts.mean ?? Array(c).fill(0.5), opts.std ?? Array(c).fill(0.5)));
    this.conv1 = this.module('conv1', new Conv2d(c, 16, 3, { padding: 1 }));
    this.conv2 = this.module('conv2', new Conv2d(16, 32, 3, { padding: 1 }));
    this.fc1 = this.module('fc1', new Linear(32 * s * s, 128));
    this.fc2 = this.module('fc2', new Linear(128, opts.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    let h = this.norm.forward(x);
    h = ops.maxPool2d(ops.relu(this.conv1.forward(h)), 2);
    h = ops.maxPool2d(ops.relu(this.conv2.forward(h)), 2);
    h = ops.relu(this.fc1.forward(ops.flatten(h, 1)));
    return this.fc2.forward(h);
  }
}

/** The MNIST-challenge CNN of Madry et al.: conv 5×5×32, pool, conv 5×5×64, pool, fc 1024, fc 10. */
export class MadryCNN extends Module {
  readonly norm; readonly conv1; readonly conv2; readonly fc1; readonly fc2;
  constructor(opts: { inChannels?: number; size?: number; numClasses?: number; mean?: number[]; std?: number[] } = {}) {
    super();
    const c = opts.inChannels ?? 1;
    const s = (opts.size ?? 28) / 4;
    this.norm = this.module('norm', new Normalize(opts.mean ?? Array(c).fill(0.5), opts.std ?? Array(c).fill(0.5)));
    this.conv1 = this.module('conv1', new Conv2d(c, 32, 5, { padding: 2 }));
    this.conv2 = this.module('conv2', new Conv2d(32, 64, 5, { padding: 2 }));
    this.fc1 = this.module('fc1', new Linear(64 * s * s, 1024));
    this.fc2 = this.module('fc2', new Linear(1024, opts.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    let h = this.norm.forward(x);
    h = ops.maxPool2d(ops.relu(this.conv1.forward(h)), 2);
    h = ops.maxPool2d(ops.relu(this.conv2.forward(h)), 2);
    h = ops.relu(this.fc1.forward(ops.flatten(h, 1)));
    return this.fc2.forward(h);
  }
}
