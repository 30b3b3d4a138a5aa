// Training configuration: defaults per data set, parsing of user values (ε as '0.1' or '8/255'), and
// validation that refuses bad options before any work starts, naming the option.
import { cpus } from 'node:os';
import type { ScheduleName } from '../optim/index.js';

export type MethodName = 'free' | 'pgd' | 'fgsm' | 'natural';
export type DatasetChoice = 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'imagefolder';

export interface TrainConfig {
  dataset: DatasetChoice;
  dataDir?: string;
  model: string;
  method: MethodName;
  /** free: minibatch replays m. */
  replays: number;
  eps: number;
  /** Attack/perturbation step; default ε (free), 1.25ε (fgsm), 2.5ε/k (pgd). */
  stepSize?: number;
  /** pgd: steps k. */
  attackSteps: number;
  /** Budget in natural-training epochs (free makes ceil(epochs/m) passes). */
  epochs: number;
  batchSize: number;
  lr: number;
  lrSchedule: ScheduleName;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
  seed: number;
  threads: number;
  device: string;
  out: string;
  evalAttacks: string[];
  evalLimit?: number;
  evalBatchSize: number;
  evalRestarts: number;
  maxSteps?: number;
  augment: boolean;
  /** imagefolder: side of the square training crop / eval centre crop (default 224). */
  imageSize?: number;
  /** imagefolder: leave out (and count) undecodable images instead of stopping. */
  skipBad?: boolean;
  /** SGD steps between metric lines. */
  logEvery: number;
  /** SGD steps between checkpoints (besides the end of every pass). 0: only at pass ends. */
  checkpointEvery: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly option: string, message: string) {
    super(`--${option}: ${message}`);
  }
}

/** Parses a number or a fraction such as '8/255'. */
export function parseNumber(option: string, v: unknown): number {
  if (typeof v === 'number') return v;
  const s = String(v).trim();
  const m = s.match(/^([+-]?[\d.]+(?:e[+-]?\d+)?)\s*\/\s*([\d.]+(?:e[+-]?\d+)?)$/i);
  const n = m ? Number(m[1]) / Number(m[2]) : s === '' ? NaN : Number(s);
  if (!Number.isFinite(n)) throw new ConfigError(option, `expected a number (e.g. 0.1 or 8/255), got '${s}'`);
  return n;
}

function parseInt_(option: string, v: unknown): number {
  const n = parseNumber(option, v);
  if (!Number.isInteger(n)) throw new ConfigError(option, `expected a whole number, got '${v}'`);
  return n;
}

export function datasetDefaults(dataset: DatasetChoice, device = 'cpu'): Partial<TrainConfig> {
  switch (dataset) {
    case 'fashion-mnist':
      return { model: 'small-cnn', eps: 0.1, epochs: 8, batchSize: 128, lr: 0.05, lrSchedule: 'cosine', weightDecay: 5e-4, augment: false };
    case 'mnist':
      return { model: 'small-cnn', eps: 0.3, epochs: 8, batchSize: 128, lr: 0.05, lrSchedule: 'cosine', weightDecay: 5e-4, augment: false };
    case 'cifar10':
    case 'cifar100':
      return { model: device.startsWith('cuda') ? 'preact-resnet18' : 'resnet-cifar-small', eps: 8 / 255, epochs: 40, batchSize: 128, lr: 0.1, lrSchedule: 'multistep', weightDecay: 5e-4, augment: true };
    case 'imagefolder':
      return { model: 'resnet50', eps: 4 / 255, epochs: 90, batchSize: 64, lr: 0.1, lrSchedule: 'multistep', weightDecay: 1e-4, augment: true };
  }
}

const KEYS: Record<string, 'string' | 'number' | 'int' | 'bool' | 'list'> = {
  dataset: 'string', dataDir: 'string', model: 'string', method: 'string', replays: 'int', eps: 'number',
  stepSize: 'number', attackSteps: 'int', epochs: 'number', batchSize: 'int', lr: 'number', lrSchedule: 'string',
  momentum: 'number', weightDecay: 'number', nesterov: 'bool', seed: 'int', threads: 'int', device: 'string',
  out: 'string', evalAttacks: 'list', evalLimit: 'int', evalBatchSize: 'int', evalRestarts: 'int', maxSteps: 'int',
  augment: 'bool', logEvery: 'int', checkpointEvery: 'int', imageSize: 'int', skipBad: 'bool',
};

export const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Builds a full config from user values (CLI options or a config file's keys, kebab- or camelCase). */
export function resolveConfig(user: Record<string, unknown>): TrainConfig {
  const u: Record<string, unknown> = {};
  for (const [k0, v] of Object.entries(user)) {
    if (v === undefined) continue;
    const k = camel(k0);
    const kind = KEYS[k];
    if (!kind) throw new ConfigError(kebab(k), `unknown option (known: ${Object.keys(KEYS).map(kebab).join(', ')})`);
    const o = kebab(k);
    u[k] =
      kind === 'number' ? parseNumber(o, v)
      : kind === 'int' ? parseInt_(o, v)
      : kind === 'bool' ? v === true || v === 'true' || v === '1'
      : kind === 'list' ? (Array.isArray(v) ? v.map(String) : String(v).split(',').map((s) => s.trim()).filter(Boolean))
      : String(v);
  }
  const dataset = (u.dataset ?? 'fashion-mnist') as DatasetChoice;
  if (!['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'imagefolder'].includes(dataset))
    throw new ConfigError('dataset', `unknown data set '${dataset}' (known: fashion-mnist, mnist, cifar10, cifar100, imagefolder)`);
  const device = (u.device as string | undefined) ?? 'cpu';
  const cfg = {
    method: 'free',
    replays: 4,
    attackSteps: 7,
    momentum: 0.9,
    nesterov: false,
    seed: 0,
    threads: cpus().length,
    device,
    out: '',
    evalAttacks: ['pgd-20'],
    evalBatchSize: 500,
    evalRestarts: 1,
    logEvery: 50,
    checkpointEvery: 0,
    ...datasetDefaults(dataset, device),
    ...(u as Partial<TrainConfig>),
    dataset,
  } as TrainConfig;
  validate(cfg);
  return cfg;
}

export function validate(c: TrainConfig): void {
  if (!['free', 'pgd', 'fgsm', 'natural'].includes(c.method)) throw new ConfigError('method', `unknown method '${c.method}' (known: free, pgd, fgsm, natural)`);
  if (!(c.eps >= 0)) throw new ConfigError('eps', `must be >= 0, got ${c.eps}`);
  if (c.eps > 1) throw new ConfigError('eps', `is in pixel units of images in [0, 1]; ${c.eps} > 1 (did you mean ${c.eps}/255?)`);
  if (!(c.replays >= 1)) throw new ConfigError('replays', `m must be >= 1, got ${c.replays}`);
  if (!(c.attackSteps >= 1)) throw new ConfigError('attack-steps', `must be >= 1, got ${c.attackSteps}`);
  if (c.stepSize !== undefined && !(c.stepSize > 0)) throw new ConfigError('step-size', `must be > 0, got ${c.stepSize}`);
  if (!(c.epochs > 0)) throw new ConfigError('epochs', `must be > 0, got ${c.epochs}`);
  if (!(c.batchSize >= 1)) throw new ConfigError('batch-size', `must be >= 1, got ${c.batchSize}`);
  if (!(c.lr > 0)) throw new ConfigError('lr', `must be > 0, got ${c.lr}`);
  if (!(c.momentum >= 0 && c.momentum < 1)) throw new ConfigError('momentum', `must be in [0, 1), got ${c.momentum}`);
  if (!(c.weightDecay >= 0)) throw new ConfigError('weight-decay', `must be >= 0, got ${c.weightDecay}`);
  if (!['constant', 'multistep', 'piecewise', 'cosine', 'cyclic'].includes(c.lrSchedule))
    throw new ConfigError('lr-schedule', `unknown schedule '${c.lrSchedule}' (known: constant, multistep, piecewise, cosine, cyclic)`);
  if (!(c.threads >= 1)) throw new ConfigError('threads', `must be >= 1, got ${c.threads}`);
  if (!/^(cpu|cuda(:\d+)?)$/.test(c.device)) throw new ConfigError('device', `must be cpu, cuda or cuda:N, got '${c.device}'`);
  if (c.maxSteps !== undefined && !(c.maxSteps >= 1)) throw new ConfigError('max-steps', `must be >= 1, got ${c.maxSteps}`);
  if (c.evalLimit !== undefined && !(c.evalLimit >= 1)) throw new ConfigError('eval-limit', `must be >= 1, got ${c.evalLimit}`);
  if (!(c.evalBatchSize >= 1)) throw new ConfigError('eval-batch-size', `must be >= 1, got ${c.evalBatchSize}`);
  if (!(c.logEvery >= 1)) throw new ConfigError('log-every', `must be >= 1, got ${c.logEvery}`);
  if (c.imageSize !== undefined && !(c.imageSize >= 8 && c.imageSize <= 1024)) throw new ConfigError('image-size', `must be in [8, 1024], got ${c.imageSize}`);
  if ((c.imageSize !== undefined || c.skipBad) && c.dataset !== 'imagefolder')
    throw new ConfigError(c.imageSize !== undefined ? 'image-size' : 'skip-bad', `applies to --dataset imagefolder only (data set is ${c.dataset})`);
}
