// Models by name. Every model takes images in [0, 1] and normalises them itself (mean/std of the data set).
import { Module } from '../nn/index.js';
import { ConfigError } from '../options/index.js';
import type { DType } from '../torch/index.js';
import { SmallCNN, MadryCNN } from './cnn.js';
import { PreActResNet18, WideResNet, ResNetCifarSmall, ResNet50 } from './resnet.js';

export { SmallCNN, MadryCNN, PreActResNet18, WideResNet, ResNetCifarSmall, ResNet50 };

export interface ModelOptions {
  numClasses: number;
  /** Input channels and square size, e.g. 1 and 28 for Fashion-MNIST. */
  inChannels: number;
  size: number;
  mean: number[];
  std: number[];
}

interface Entry {
  build: (o: ModelOptions) => Module;
  /** Which inputs the architecture accepts (message for the user when not). */
  accepts: (o: ModelOptions) => string | undefined;
  summary: string;
}

const grey28 = (o: ModelOptions) =>
  o.size % 4 !== 0 ? `needs an image size divisible by 4 (got ${o.size})` : undefined;
const rgb = (min: number) => (o: ModelOptions) =>
  o.inChannels !== 3 ? `needs 3-channel (RGB) images, the data have ${o.inChannels}` : o.size < min ? `needs images of at least ${min}×${min}, got ${o.size}×${o.size}` : undefined;

const registry: Record<string, Entry> = {
  'small-cnn': { build: (o) => new SmallCNN(o), accepts: grey28, summary: '2 conv (16, 32) + 2 fc; default for 28×28 data' },
  'madry-cnn': { build: (o) => new MadryCNN(o), accepts: grey28, summary: 'MNIST-challenge CNN (conv 32, conv 64, fc 1024)' },
  'resnet-cifar-small': { build: (o) => new ResNetCifarSmall(o), accepts: rgb(8), summary: 'CPU-sized CIFAR ResNet (16/32/64, 1 block per stage); default for CIFAR on CPU' },
  'preact-resnet18': { build: (o) => new PreActResNet18(o), accepts: rgb(8), summary: 'PreAct ResNet-18 (fast adversarial training baseline)' },
  'wrn-28-10': { build: (o) => new WideResNet({ ...o, depth: 28, width: 10 }), accepts: rgb(8), summary: 'Wide ResNet 28-10' },
  'wrn-34-10': { build: (o) => new WideResNet({ ...o, depth: 34, width: 10 }), accepts: rgb(8), summary: 'Wide ResNet 34-10 (the paper\'s "WRN 32-10")' },
  resnet50: { build: (o) => new ResNet50(o), accepts: rgb(32), summary: 'torchvision ResNet-50 (ImageNet)' },
};

export function modelNames(): string[] {
  return Object.keys(registry);
}

export function describeModels(): string {
  return Object.entries(registry).map(([n, e]) => `  ${n.padEnd(20)} ${e.summary}`).join('\n');
}

/** Why a model cannot take the data, or undefined when it can. Unknown names are reported too. */
export function checkModel(name: string, o: ModelOptions): string | undefined {
  const e = registry[name];
  if (!e) return `unknown model '${name}' (known: ${modelNames().join(', ')})`;
  const why = e.accepts(o);
  return why ? `model '${name}' ${why}` : undefined;
}

export function createModel(name: string, o: ModelOptions): Module {
  const why = checkModel(name, o);
  if (why) throw new RangeError(why);
  return registry[name]!.build(o);
}

/** The shape and statistics of a data set, as a model needs them. */
export interface DataShape {
  numClasses: number;
  c: number;
  h: number;
  mean: number[];
  std: number[];
}

/** Model `name` for images of a data set, in `dtype` on `device`; a model that cannot take them is refused (--model). */
export function modelFor(name: string, data: DataShape, o: { device?: string; dtype?: DType } = {}): Module {
  const opts = { numClasses: data.numClasses, inChannels: data.c, size: data.h, mean: data.mean, std: data.std };
  const why = checkModel(name, opts);
  if (why) throw new ConfigError('model', why);
  const m = createModel(name, opts);
  if (o.dtype && o.dtype !== 'float32') m.to(o.dtype);
  if (o.device && o.device !== 'cpu') m.to(o.device);
  return m;
}
