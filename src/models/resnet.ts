// Residual networks: PreAct ResNet-18 (fast adversarial training's CIFAR baseline), Wide ResNet (the paper's
// CIFAR model, WRN-32-10 = wrn-34-10 here), a CPU-sized CIFAR ResNet, and torchvision's ResNet-50 (ImageNet).
// Key names follow the reference PyTorch implementations so that state dicts load in either direction.
import { Tensor, ops } from '../torch/index.js';
import { Module, Conv2d, Linear, BatchNorm2d, Normalize, Sequential, chain, release } from '../nn/index.js';

const relu = (x: Tensor) => ops.relu(x);

/**
 * The pre-activation residual unit (PreAct ResNet, Wide ResNet): o = relu(bn1(x)),
 * y = conv2(relu(bn2(conv1(o)))) + (shortcut(o) or x). Intermediates are freed as soon as they are consumed
 * (chain/release, see nn/module.ts).
 */
function preActUnit(b: { bn1: Module; conv1: Module; bn2: Module; conv2: Module }, x: Tensor, shortcut?: Module): Tensor {
  const o = chain(x, (t) => b.bn1.forward(t), relu);
  const sc = shortcut ? shortcut.forward(o) : x;
  const h = chain(o, (t) => b.conv1.forward(t), (t) => b.bn2.forward(t), relu, (t) => b.conv2.forward(t));
  release(o);
  const y = ops.add(h, sc);
  release(h, sc === x ? undefined : sc);
  return y;
}

/**
 * The post-activation residual sum (ResNet's basic and bottleneck blocks): relu(h + (shortcut(x) or x)), freeing h,
 * the shortcut's output and the sum once consumed.
 */
function addRelu(h: Tensor, x: Tensor, shortcut?: Module): Tensor {
  const sc = shortcut ? shortcut.forward(x) : x;
  const sum = ops.add(h, sc);
  release(h, sc === x ? undefined : sc);
  const y = relu(sum);
  release(sum);
  return y;
}

export class PreActBlock extends Module {
  readonly bn1; readonly conv1; readonly bn2; readonly conv2; readonly shortcut?: Sequential;
  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.bn1 = this.module('bn1', new BatchNorm2d(inPlanes));
    this.conv1 = this.module('conv1', new Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.module('bn2', new BatchNorm2d(planes));
    this.conv2 = this.module('conv2', new Conv2d(planes, planes, 3, { padding: 1, bias: false }));
    if (stride !== 1 || inPlanes !== planes)
      this.shortcut = this.module('shortcut', new Sequential(new Conv2d(inPlanes, planes, 1, { stride, bias: false })));
  }
  forward(x: Tensor): Tensor {
    return preActUnit(this, x, this.shortcut);
  }
}

/** PreActResNet-18 as in locuslab/fast_adversarial (11.17 M parameters for 10 classes). */
export class PreActResNet18 extends Module {
  readonly norm; readonly conv1; readonly layers: Sequential[]; readonly bn; readonly linear;
  constructor(opts: { numClasses?: number; mean?: number[]; std?: number[] } = {}) {
    super();
    this.norm = this.module('norm', new Normalize(opts.mean ?? [0.4914, 0.4822, 0.4465], opts.std ?? [0.2471, 0.2435, 0.2616]));
    this.conv1 = this.module('conv1', new Conv2d(3, 64, 3, { padding: 1, bias: false }));
    let inPlanes = 64;
    this.layers = [64, 128, 256, 512].map((planes, i) => {
      const blocks = [new PreActBlock(inPlanes, planes, i === 0 ? 1 : 2), new PreActBlock(planes, planes, 1)];
      inPlanes = planes;
      return this.module(`layer${i + 1}`, new Sequential(...blocks));
    });
    this.bn = this.module('bn', new BatchNorm2d(512));
    this.linear = this.module('linear', new Linear(512, opts.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    return chain(x, (t) => this.norm.forward(t), (t) => this.conv1.forward(t), ...this.layers.map((l) => (t: Tensor) => l.forward(t)),
      (t) => this.bn.forward(t), relu, (t) => ops.adaptiveAvgPool2d(t, 1), (t) => ops.flatten(t, 1), (t) => this.linear.forward(t));
  }
}

export class WideBasic extends Module {
  readonly bn1; readonly conv1; readonly bn2; readonly conv2; readonly convShortcut?: Conv2d;
  constructor(readonly inPlanes: number, readonly outPlanes: number, stride: number) {
    super();
    this.bn1 = this.module('bn1', new BatchNorm2d(inPlanes));
    this.conv1 = this.module('conv1', new Conv2d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.module('bn2', new BatchNorm2d(outPlanes));
    this.conv2 = this.module('conv2', new Conv2d(outPlanes, outPlanes, 3, { padding: 1, bias: false }));
    if (inPlanes !== outPlanes)
      this.convShortcut = this.module('convShortcut', new Conv2d(inPlanes, outPlanes, 1, { stride, bias: false }));
  }
  forward(x: Tensor): Tensor {
    return preActUnit(this, x, this.convShortcut);
  }
}

export class WideStage extends Module {
  readonly layer;
  constructor(n: number, inPlanes: number, outPlanes: number, stride: number) {
    super();
    const blocks = Array.from({ length: n }, (_, i) => new WideBasic(i === 0 ? inPlanes : outPlanes, outPlanes, i === 0 ? stride : 1));
    this.layer = this.module('layer', new Sequential(...blocks));
  }
  forward(x: Tensor): Tensor {
    return this.layer.forward(x);
  }
}

/**
 * Wide ResNet (Zagoruyko & Komodakis) in the layout used by the robustness literature (block1.layer.0.conv1,
 * ...). depth 34, width 10 is the paper's "WRN 32-10": filters 16/160/320/640, 5 units per stage.
 */
export class WideResNet extends Module {
  readonly norm; readonly conv1; readonly block1; readonly block2; readonly block3; readonly bn1; readonly fc;
  constructor(opts: { depth?: number; width?: number; numClasses?: number; mean?: number[]; std?: number[] } = {}) {
    super();
    const depth = opts.depth ?? 34;
    const k = opts.width ?? 10;
    if ((depth - 4) % 6 !== 0) throw new RangeError(`wide-resnet depth must be 6n+4, got ${depth}`);
    const n = (depth - 4) / 6;
    const ch = [16, 16 * k, 32 * k, 64 * k];
    this.norm = this.module('norm', new Normalize(opts.mean ?? [0.4914, 0.4822, 0.4465], opts.std ?? [0.2471, 0.2435, 0.2616]));
    this.conv1 = this.module('conv1', new Conv2d(3, ch[0]!, 3, { padding: 1, bias: false }));
    this.block1 = this.module('block1', new WideStage(n, ch[0]!, ch[1]!, 1));
    this.block2 = this.module('block2', new WideStage(n, ch[1]!, ch[2]!, 2));
    this.block3 = this.module('block3', new WideStage(n, ch[2]!, ch[3]!, 2));
    this.bn1 = this.module('bn1', new BatchNorm2d(ch[3]!));
    this.fc = this.module('fc', new Linear(ch[3]!, opts.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    return chain(x, (t) => this.norm.forward(t), (t) => this.conv1.forward(t), (t) => this.block1.forward(t), (t) => this.block2.forward(t),
      (t) => this.block3.forward(t), (t) => this.bn1.forward(t), relu, (t) => ops.adaptiveAvgPool2d(t, 1), (t) => ops.flatten(t, 1), (t) => this.fc.forward(t));
  }
}

export class BasicBlock extends Module {
  readonly conv1; readonly bn1; readonly conv2; readonly bn2; readonly shortcut?: Sequential;
  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.conv1 = this.module('conv1', new Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.module('bn1', new BatchNorm2d(planes));
    this.conv2 = this.module('conv2', new Conv2d(planes, planes, 3, { padding: 1, bias: false }));
    this.bn2 = this.module('bn2', new BatchNorm2d(planes));
    if (stride !== 1 || inPlanes !== planes)
      this.shortcut = this.module('shortcut', new Sequential(new Conv2d(inPlanes, planes, 1, { stride, bias: false }), new BatchNorm2d(planes)));
  }
  forward(x: Tensor): Tensor {
    const h = chain(x, (t) => this.conv1.forward(t), (t) => this.bn1.forward(t), relu, (t) => this.conv2.forward(t), (t) => this.bn2.forward(t));
    return addRelu(h, x, this.shortcut);
  }
}

/** A CPU-sized CIFAR ResNet: 16/32/64 channels, one basic block per stage (about 25 MFLOP per 32×32 image). */
export class ResNetCifarSmall extends Module {
  readonly norm; readonly conv1; readonly bn1; readonly layers: Sequential[]; readonly fc;
  constructor(opts: { numClasses?: number; mean?: number[]; std?: number[]; blocks?: number } = {}) {
    super();
    this.norm = this.module('norm', new Normalize(opts.mean ?? [0.4914, 0.4822, 0.4465], opts.std ?? [0.2471, 0.2435, 0.2616]));
    this.conv1 = this.module('conv1', new Conv2d(3, 16, 3, { padding: 1, bias: false }));
    this.bn1 = this.module('bn1', new BatchNorm2d(16));
    let inPlanes = 16;
    const perStage = opts.blocks ?? 1;
    this.layers = [16, 32, 64].map((planes, i) => {
      const blocks = Array.from({ length: perStage }, (_, j) => new BasicBlock(j === 0 ? inPlanes : planes, planes, j === 0 && i > 0 ? 2 : 1));
      inPlanes = planes;
      return this.module(`layer${i + 1}`, new Sequential(...blocks));
    });
    this.fc = this.module('fc', new Linear(64, opts.numClasses ?? 10));
  }
  forward(x: Tensor): Tensor {
    return chain(x, (t) => this.norm.forward(t), (t) => this.conv1.forward(t), (t) => this.bn1.forward(t), relu,
      ...this.layers.map((l) => (t: Tensor) => l.forward(t)), (t) => ops.adaptiveAvgPool2d(t, 1), (t) => ops.flatten(t, 1), (t) => this.fc.forward(t));
  }
}

export class Bottleneck extends Module {
  readonly conv1; readonly bn1; readonly conv2; readonly bn2; readonly conv3; readonly bn3; readonly downsample?: Sequential;
  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.conv1 = this.module('conv1', new Conv2d(inPlanes, planes, 1, { bias: false }));
    this.bn1 = this.module('bn1', new BatchNorm2d(planes));
    this.conv2 = this.module('conv2', new Conv2d(planes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.module('bn2', new BatchNorm2d(planes));
    this.conv3 = this.module('conv3', new Conv2d(planes, planes * 4, 1, { bias: false }));
    this.bn3 = this.module('bn3', new BatchNorm2d(planes * 4));
    if (stride !== 1 || inPlanes !== planes * 4)
      this.downsample = this.module('downsample', new Sequential(new Conv2d(inPlanes, planes * 4, 1, { stride, bias: false }), new BatchNorm2d(planes * 4)));
  }
  forward(x: Tensor): Tensor {
    const h = chain(x, (t) => this.conv1.forward(t), (t) => this.bn1.forward(t), relu, (t) => this.conv2.forward(t), (t) => this.bn2.forward(t), relu,
      (t) => this.conv3.forward(t), (t) => this.bn3.forward(t));
    return addRelu(h, x, this.downsample);
  }
}

/** torchvision's ResNet-50 (v1.5: stride in the 3×3 conv), same key names: 25,557,032 parameters. */
export class ResNet50 extends Module {
  readonly norm; readonly conv1; readonly bn1; readonly layers: Sequential[]; readonly fc;
  constructor(opts: { numClasses?: number; mean?: number[]; std?: number[] } = {}) {
    super();
    this.norm = this.module('norm', new Normalize(opts.mean ?? [0.485, 0.456, 0.406], opts.std ?? [0.229, 0.224, 0.225]));
    this.conv1 = this.module('conv1', new Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.module('bn1', new BatchNorm2d(64));
    let inPlanes = 64;
    this.layers = ([[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]] as const).map(([planes, n, stride], i) => {
      const blocks = Array.from({ length: n }, (_, j) => new Bottleneck(j === 0 ? inPlanes : planes * 4, planes, j === 0 ? stride : 1));
      inPlanes = planes * 4;
      return this.module(`layer${i + 1}`, new Sequential(...blocks));
    });
    this.fc = this.module('fc', new Linear(2048, opts.numClasses ?? 1000));
  }
  forward(x: Tensor): Tensor {
    return chain(x, (t) => this.norm.forward(t), (t) => this.conv1.forward(t), (t) => this.bn1.forward(t), relu, (t) => ops.maxPool2d(t, 3, 2, 1),
      ...this.layers.map((l) => (t: Tensor) => l.forward(t)), (t) => ops.adaptiveAvgPool2d(t, 1), (t) => ops.flatten(t, 1), (t) => this.fc.forward(t));
  }
}
