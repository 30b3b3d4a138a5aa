// Validation: examples taken out of the training set (seeded, class-balanced; --val-size) and evaluated after
// every pass, clean and under PGD-10. Their robust accuracy picks best.safetensors (early stopping against robust
// overfitting, Rice et al. 2020) and stops methods that overfit catastrophically (FGSM). It runs in batches of
// --eval-batch-size, with its own random stream (training's, the CPU's and a GPU's, is left as it was), split over
// the ranks of a job.
import { Writable } from 'node:stream';
import { getRngState, setRngState, type DType, type dist } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { validationSplit, type Dataset, type TrainValSplit } from '../data/index.js';
import { evaluateDataset } from '../eval/index.js';
import { ConfigError } from '../options/index.js';
import { gpuOf } from './state.js';

export const VALIDATION_ATTACK = 'pgd-10';

/** The default size: 2% of the training set, at most 1,000 examples (Rice et al. held out 1,000 of CIFAR-10). */
export function defaultValSize(n: number): number {
  return Math.min(1000, Math.floor(0.02 * n));
}

/** The training/validation split of a training set; a size that does not fit is refused naming --val-size. */
export function splitTraining(data: Dataset, size: number, seed: number): TrainValSplit {
  if (size >= data.n) throw new ConfigError('val-size', `${size} validation examples do not leave any of the ${data.n} training examples to train on`);
  try {
    return validationSplit(data.labels, data.numClasses, size, seed);
  } catch (e) {
    throw new ConfigError('val-size', (e as Error).message);
  }
}

/**
 * The split a run trains with: --val-size, or the default, which falls back to none (with a warning) on a
 * training set too small to give every class its share.
 */
export function trainingSplit(data: Dataset, cfg: { valSize?: number; seed: number }, warn: (s: string) => void): TrainValSplit {
  if (cfg.valSize !== undefined) return splitTraining(data, cfg.valSize, cfg.seed);
  const size = defaultValSize(data.n);
  try {
    return splitTraining(data, size, cfg.seed);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    warn(`no validation split: the training set is too small for the default of ${size} examples, class-balanced (${e.message.replace(/^--val-size: /, '')}); give --val-size`);
    return splitTraining(data, 0, cfg.seed);
  }
}

export interface ValidationResult {
  clean_accuracy: number;
  robust_accuracy: number;
}

export class Validation {
  constructor(
    private readonly data: Dataset,
    readonly indices: Int32Array,
    private readonly o: { eps: number; batchSize: number; seed: number; device: string; dtype: DType; rank?: dist.Rank },
  ) {}

  get size(): number {
    return this.indices.length;
  }

  /** Clean and PGD-10 accuracy on the validation examples (robust = clean when ε is 0); `signal` stops it between batches. */
  async run(model: Module, signal?: AbortSignal): Promise<ValidationResult | undefined> {
    if (!this.size) return undefined;
    // training's random streams as they were: the CPU's, and on a GPU that GPU's generator, which draws the GPU
    // tensors' random numbers (evaluateDataset seeds both)
    const gpu = gpuOf(model);
    const rng = getRngState();
    const gpuRng = gpu ? getRngState(gpu) : undefined;
    try {
      const attacks = this.o.eps > 0 ? [VALIDATION_ATTACK] : [];
      const r = await evaluateDataset(model, this.data, {
        eps: this.o.eps, attacks, subset: this.indices, batchSize: this.o.batchSize, restarts: 1, seed: this.o.seed, device: this.o.device,
        dtype: this.o.dtype, noChecks: true, progress: new Writable({ write: (_c, _e, cb) => cb() }), ...(this.o.rank && { rank: this.o.rank }), ...(signal && { signal }),
      });
      return { clean_accuracy: r.clean_accuracy, robust_accuracy: attacks.length ? r.robust_accuracy[VALIDATION_ATTACK]! : r.clean_accuracy };
    } finally {
      setRngState(rng);
      rng.dispose();
      if (gpuRng) {
        setRngState(gpuRng, gpu);
        gpuRng.dispose();
      }
    }
  }
}
