// The training options, each declared once: the command line, --help, --config files and a run's config.json
// (resumed or evaluated) all go through this table. Defaults that depend on the data set are computed here.
import { cpus } from 'node:os';
import { resolveOptions, type ConfigOf, type OptionTable } from '../options/index.js';
import { modelNames } from '../models/index.js';
import { DATASET_NAMES, type DatasetName } from '../data/index.js';
import { SCHEDULE_NAMES } from '../optim/index.js';
import { attackUsage, checkAttackName } from '../attacks/index.js';
import { cuda } from '../torch/index.js';
import { methods } from './methods.js';
import { autocastUnsupported, type AutocastDType } from '../torch/index.js';

/** Recipes per data set (the paper's and fast_adversarial's settings, scaled to the data). */
const RECIPES: Record<DatasetName, { model: (device: string) => string; eps: number; epochs: number; batchSize: number; evalBatchSize: number; lr: number; lrSchedule: string; weightDecay: number; augment: boolean }> = {
  'fashion-mnist': { model: () => 'small-cnn', eps: 0.1, epochs: 8, batchSize: 128, evalBatchSize: 500, lr: 0.05, lrSchedule: 'cosine', weightDecay: 5e-4, augment: false },
  mnist: { model: () => 'small-cnn', eps: 0.3, epochs: 8, batchSize: 128, evalBatchSize: 500, lr: 0.05, lrSchedule: 'cosine', weightDecay: 5e-4, augment: false },
  cifar10: { model: (d) => (d.startsWith('cuda') ? 'preact-resnet18' : 'resnet-cifar-small'), eps: 8 / 255, epochs: 40, batchSize: 128, evalBatchSize: 500, lr: 0.1, lrSchedule: 'multistep', weightDecay: 5e-4, augment: true },
  cifar100: { model: (d) => (d.startsWith('cuda') ? 'preact-resnet18' : 'resnet-cifar-small'), eps: 8 / 255, epochs: 40, batchSize: 128, evalBatchSize: 500, lr: 0.1, lrSchedule: 'multistep', weightDecay: 5e-4, augment: true },
  imagefolder: { model: () => 'resnet50', eps: 4 / 255, epochs: 90, batchSize: 64, evalBatchSize: 64, lr: 0.1, lrSchedule: 'multistep', weightDecay: 1e-4, augment: true },
};
const recipe = (c: Record<string, unknown>) => RECIPES[(c.dataset as DatasetName | undefined) ?? 'fashion-mnist'];
const DATA = 'Data and model', METHOD = 'Method', OPTIM = 'Optimisation', RUN = 'Run', EVAL = 'Validation and evaluation';
const imageFolderOnly = (_: unknown, c: Record<string, unknown>) => (c.dataset !== 'imagefolder' ? `applies to --dataset imagefolder only (data set is ${String(c.dataset)})` : undefined);
const attackList = (s: string) => checkAttackName(s);
/** --amp: none (float32), bf16, fp16. */
export const AMP_NAMES = ['none', 'bf16', 'fp16'] as const;
/** The autocast type of an --amp value (undefined for none). */
export const ampType = (amp: string): AutocastDType | undefined => (amp === 'bf16' ? 'bfloat16' : amp === 'fp16' ? 'float16' : undefined);
function checkAmp(v: string, c: Record<string, unknown>): string | undefined {
  const t = ampType(v);
  if (!t) return undefined;
  if (c.dtype !== 'float32') return `needs --dtype float32 (autocast lowers float32 computation; the model is ${String(c.dtype)})`;
  const why = autocastUnsupported(t, String(c.device ?? 'cpu'));
  return why && `${why}; use --amp bf16${t === 'float16' ? ' or a CUDA device' : ''}`;
}

/**
 * Where a free step with channels-last (NHWC) weights and inputs measured faster than with NCHW ones, by device
 * type (BENCHMARKS.md, "Channels-last by default"): float32 without autocast only. CUDA is unmeasured (no GPU on
 * the machine that measured), so it is off there until someone measures it.
 */
export const CHANNELS_LAST_WINS: { cpu: readonly string[]; cuda: readonly string[] } = {
  cpu: ['resnet-cifar-small', 'preact-resnet18'],
  cuda: [],
};
/** --channels-last's default for a model on a device (cpu, cuda, cuda:N) in a dtype under --amp. */
export function channelsLastWins(model: string, device: string, dtype: string, amp: string): boolean {
  const wins = device.startsWith('cuda') ? CHANNELS_LAST_WINS.cuda : CHANNELS_LAST_WINS.cpu;
  return dtype === 'float32' && amp === 'none' && wins.includes(model);
}

export const TRAIN_OPTIONS = {
  dataset: { type: 'string', arg: 'NAME', group: DATA, choices: DATASET_NAMES, default: 'fashion-mnist', help: "the data set (fashion-mnist: Debian's dataset-fashion-mnist, or $FREEADV_FASHION_MNIST)" },
  dataDir: { type: 'string', arg: 'DIR', group: DATA, optional: true, help: 'data folder (IDX files; CIFAR binaries or train/<class>/*.jpg; image folders)' },
  imageSize: { type: 'int', arg: 'S', group: DATA, optional: true, min: 8, max: 1024, check: imageFolderOnly, help: 'imagefolder: training crop (RandomResizedCrop + flip) and eval centre-crop side (default 224)' },
  skipBad: { type: 'bool', group: DATA, optional: true, check: (v, c) => (v ? imageFolderOnly(v, c) : undefined), help: 'imagefolder: leave out undecodable images (counted and reported) instead of stopping' },
  workers: { type: 'int', arg: 'N', group: DATA, optional: true, min: 1, max: 1024, check: imageFolderOnly, defaultText: 'cores − 1 per process, at least 1', help: "imagefolder: loader worker threads, like PyTorch's num_workers: each decodes whole training batches, N images at a time in all (the freeadv command sizes libuv's thread pool for them); started once and kept for every pass, as with persistent_workers=True" },
  augment: { type: 'bool', group: DATA, negatable: true, default: (c) => recipe(c).augment, help: 'training augmentation: pad-4 crop + flip (CIFAR), RandomResizedCrop + flip (image folders); default on for those, off for 28×28 data' },
  model: { type: 'string', arg: 'NAME', group: DATA, choices: modelNames, default: (c) => recipe(c).model(String(c.device ?? 'cpu')), defaultText: 'small-cnn for 28×28 data, resnet-cifar-small for CIFAR on CPU (preact-resnet18 on CUDA), resnet50 for image folders', help: 'the architecture' },
  init: { type: 'string', arg: 'FILE', group: DATA, optional: true, help: 'fine-tune: start from these weights (a safetensors state dict with PyTorch names, or a freeadv checkpoint); every tensor must fit the model, except the classifier with --num-classes' },
  numClasses: { type: 'int', arg: 'N', group: DATA, optional: true, min: 1, max: 1000000, help: "the data set's number of classes; with --init, a classifier of another size in the file is replaced by a new, freshly initialised one" },

  method: { type: 'string', arg: 'NAME', group: METHOD, choices: () => Object.keys(methods), default: 'free', help: `the training method — ${Object.entries(methods).map(([n, m]) => `${n}: ${m.help}`).join('; ')}` },
  replays: { type: 'int', arg: 'M', group: METHOD, min: 1, max: 1000, default: 4, help: 'free: minibatch replays m' },
  eps: { type: 'number', arg: 'E', group: METHOD, min: 0, check: (v) => (v > 1 ? `is in pixel units of images in [0, 1]; ${v} > 1 (did you mean ${v}/255?)` : undefined), default: (c) => recipe(c).eps, defaultText: '0.1 for Fashion-MNIST, 0.3 MNIST, 8/255 CIFAR, 4/255 image folders', help: 'L∞ radius in pixel units of images in [0, 1]: 0.1 or 8/255' },
  stepSize: { type: 'number', arg: 'S', group: METHOD, optional: true, min: 0, max: 1, above: true, help: 'perturbation step (default: free ε, fgsm 1.25ε, pgd 2.5ε/k)' },
  attackSteps: { type: 'int', arg: 'K', group: METHOD, min: 1, max: 1000, default: 7, help: 'pgd: attack steps k' },

  epochs: { type: 'number', arg: 'N', group: OPTIM, min: 0, max: 1e6, above: true, default: (c) => recipe(c).epochs, defaultText: '8 for 28×28 data, 40 CIFAR, 90 image folders', help: 'budget in natural-training epochs (free makes ceil(N/m) passes)' },
  batchSize: { type: 'int', arg: 'B', group: OPTIM, min: 1, max: 65536, default: (c) => recipe(c).batchSize, defaultText: '128; 64 for image folders', help: 'the global batch' },
  lr: { type: 'number', arg: 'LR', group: OPTIM, min: 0, above: true, default: (c) => recipe(c).lr, defaultText: '0.05 for 28×28 data, 0.1 otherwise', help: 'peak learning rate' },
  lrSchedule: { type: 'string', arg: 'S', group: OPTIM, choices: SCHEDULE_NAMES, default: (c) => recipe(c).lrSchedule, defaultText: 'cosine for 28×28 data, multistep otherwise', help: 'learning-rate schedule' },
  momentum: { type: 'number', arg: 'M', group: OPTIM, min: 0, max: 0.999999, default: 0.9, help: 'SGD momentum, in [0, 1)' },
  weightDecay: { type: 'number', arg: 'W', group: OPTIM, min: 0, max: 1, default: (c) => recipe(c).weightDecay, defaultText: '5e-4; 1e-4 for image folders', help: 'L2 weight decay' },
  nesterov: { type: 'bool', group: OPTIM, default: false, check: (v, c) => (v && !((c.momentum as number) > 0) ? 'needs --momentum > 0' : undefined), help: 'Nesterov momentum' },
  maxSteps: { type: 'int', arg: 'N', group: OPTIM, optional: true, min: 1, max: Number.MAX_SAFE_INTEGER, help: 'stop after N SGD steps' },

  out: { type: 'string', arg: 'DIR', group: RUN, default: '', defaultText: 'runs/<method>-<dataset>-<time>', help: 'run folder: a new or empty folder (one writer at a time: DIR/.lock)' },
  seed: { type: 'int', arg: 'S', group: RUN, min: 0, max: 2 ** 32 - 1, default: 0, help: 'random seed' },
  threads: { type: 'int', arg: 'T', group: RUN, min: 1, max: 1024, default: () => cpus().length, defaultText: 'all cores', help: 'intra-op threads' },
  device: { type: 'string', arg: 'D', group: RUN, pattern: /^(cpu|cuda(:\d+)?)$/, patternText: 'must be cpu, cuda or cuda:N', check: (v) => cuda.problem(v), default: 'cpu', help: 'cpu, cuda or cuda:N (needs the addon built against a CUDA PyTorch: README, "GPUs")' },
  dtype: { type: 'string', arg: 'T', group: RUN, choices: ['float32', 'float64'] as const, default: 'float32', help: 'floating-point type of weights and computation; float64 for numerical checks (slow)' },
  amp: { type: 'string', arg: 'T', group: RUN, choices: AMP_NAMES, default: 'none', check: checkAmp, help: 'mixed precision for training: bf16 or fp16 autocast of the forward pass and loss (fp16 with a gradient scaler; on CPU this libtorch may offer bf16 only); validation and the final evaluation stay float32 unless --attack-amp' },
  channelsLast: { type: 'bool', group: RUN, negatable: true, default: (c) => channelsLastWins(String(c.model), String(c.device), String(c.dtype), String(c.amp)), defaultText: `auto: on where it measured faster, i.e. ${CHANNELS_LAST_WINS.cpu.join(' and ')} on CPU in float32 without --amp; off elsewhere, and on CUDA until measured there`, help: 'channels-last (NHWC) weights, inputs and δ: oneDNN convolutions without layout conversions; --no-channels-last forces NCHW' },
  logEvery: { type: 'int', arg: 'N', group: RUN, min: 1, max: Number.MAX_SAFE_INTEGER, default: 50, help: 'SGD steps per line of metrics.jsonl' },
  checkpointEvery: { type: 'int', arg: 'N', group: RUN, min: 0, max: Number.MAX_SAFE_INTEGER, default: 0, defaultText: 'at the end of every pass only', help: 'also checkpoint every N SGD steps' },

  valSize: { type: 'int', arg: 'N', group: EVAL, optional: true, min: 0, max: 10_000_000, defaultText: '2% of the training set, at most 1,000; 0: none', help: "training examples taken out for validation (seeded, class-balanced): their clean and PGD-10 accuracy after every pass pick best.safetensors and stop FGSM's catastrophic overfitting" },
  evalAttacks: { type: 'list', arg: 'LIST', group: EVAL, element: attackList, default: ['pgd-20'], help: `attacks on the test set after training: ${attackUsage()}` },
  evalLimit: { type: 'int', arg: 'N', group: EVAL, optional: true, min: 1, max: Number.MAX_SAFE_INTEGER, defaultText: 'all', help: 'evaluate on the first N test images' },
  evalBatchSize: { type: 'int', arg: 'B', group: EVAL, min: 1, max: 65536, default: (c) => recipe(c).evalBatchSize, defaultText: '500; 64 for image folders', help: 'examples per batch of validation and the final evaluation (memory is bounded by it, not by the number of examples)' },
  attackAmp: { type: 'bool', group: EVAL, default: false, check: (v, c) => (v && c.amp === 'none' ? 'needs --amp bf16 or fp16 (the type to attack in)' : undefined), help: 'run the final evaluation (clean and attacks) under --amp autocast too; attacks in low precision can understate robustness, so the result carries a warning' },
  evalRestarts: { type: 'int', arg: 'R', group: EVAL, min: 1, max: 100, default: 1, help: 'restarts per PGD/APGD attack' },
} satisfies OptionTable;

/** A run's configuration: what config.json holds. */
export type TrainConfig = ConfigOf<typeof TRAIN_OPTIONS>;

/** A full, validated configuration from user values (command line, config file or config.json). */
export function resolveConfig(user: Record<string, unknown>, source?: string): TrainConfig {
  return resolveOptions(TRAIN_OPTIONS, user, source ? { source } : {}) as TrainConfig;
}
