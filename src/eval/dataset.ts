// Evaluation of a data set: the first `limit` examples in file order, in batches of `batchSize` (memory is bounded
// by the batch, not the data set), with a progress bar. With several processes each evaluates its share
// (examples rank, rank + N, …, each counted once) and the counts are summed.
import { Writable } from 'node:stream';
import { manualSeed, dist, autocast, type DType, type AutocastDType } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Loader, Progress, type Dataset } from '../data/index.js';
import { toTensors } from '../data/tensor.js';
import { evaluate, type EvalResult, type Batch } from './evaluate.js';

export interface DatasetEvalOptions {
  eps: number;
  attacks: string[];
  /** First examples to evaluate (default all). */
  limit?: number;
  /** Only these examples of the data set (e.g. a validation split of a training set). */
  subset?: Int32Array;
  /** Skip the sanity checks (evaluate.ts). */
  noChecks?: boolean;
  batchSize: number;
  restarts: number;
  seed: number;
  device: string;
  dtype?: DType;
  /** Progress bar stream (default process.stderr; none on ranks other than 0). */
  progress?: NodeJS.WritableStream;
  /** This process's place in a data-parallel job. */
  rank?: dist.Rank;
  /**
   * Evaluate (clean and every attack) under autocast in this type. Off by default: evaluation runs in the
   * model's own type, since attacks in low precision can understate robustness; the result warns when on.
   */
  amp?: AutocastDType;
}

/** The warning an evaluation under autocast carries (printed, and kept in summaries). */
export const attackAmpWarning = (amp: AutocastDType) =>
  `the model was evaluated and attacked under ${amp} autocast (--attack-amp): gradients in low precision can be coarser and attacks weaker, so these robust accuracies can overstate robustness; evaluate in float32 (the default) for the figure to report`;

export async function evaluateDataset(model: Module, data: Dataset, o: DatasetEvalOptions): Promise<EvalResult> {
  const group = o.rank && o.rank.worldSize > 1 ? o.rank : undefined;
  const size = o.subset?.length ?? data.n;
  const all = Math.min(o.limit ?? size, size);
  const shard = group ? { rank: group.rank, count: group.worldSize, pad: false, limit: all } : undefined;
  const limit = group ? Math.max(0, Math.ceil((all - group.rank) / group.worldSize)) : all;
  manualSeed(o.seed + 12345 + (group?.rank ?? 0));
  const loader = new Loader(data, { batchSize: o.batchSize, shuffle: false, augment: false, worker: false, ...(shard && { shard }), ...(o.subset && { subset: o.subset }) });
  const stream = o.progress ?? (group && group.rank !== 0 ? new Writable({ write: (_c, _e, cb) => cb() }) : process.stderr);
  const progress = new Progress({ total: Math.ceil(limit / o.batchSize), label: 'eval', stream: stream as never });
  async function* batches(): AsyncGenerator<Batch> {
    let seen = 0;
    for await (const b of loader.epoch(0)) {
      const take = Math.min(b.shape[0], limit - seen);
      if (take <= 0) break;
      const per = b.shape[1] * b.shape[2] * b.shape[3];
      const t = toTensors({ x: b.x.subarray(0, take * per), shape: [take, b.shape[1], b.shape[2], b.shape[3]], y: b.y.subarray(0, take) }, o.device, o.dtype);
      seen += take;
      try {
        yield t;
      } finally {
        t.x.dispose();
        t.y.dispose();
      }
      progress.tick(take);
      if (seen >= limit) break;
    }
  }
  try {
    const run = () => evaluate(model, batches(), { eps: o.eps, attacks: o.attacks, restarts: o.restarts, ...(o.noChecks && { noChecks: true }) });
    let r = o.amp ? await autocast(o.amp, run, o.device) : await run();
    if (o.amp) {
      r.amp = o.amp;
      r.warnings.unshift(attackAmpWarning(o.amp));
    }
    if (group) r = sumOverRanks(r);
    const skipped = loader.stats().skipped;
    if (skipped) r.warnings.push(`${skipped} undecodable test image(s) were left out (--skip-bad)`);
    return r;
  } finally {
    progress.finish();
    await loader.close();
  }
}

/** Sums each rank's counts into the result over the whole evaluated set (identical on all ranks). */
function sumOverRanks(r: EvalResult): EvalResult {
  const names = Object.keys(r.robust_accuracy);
  const counts = [r.examples, r.clean_accuracy * r.examples, ...names.map((k) => r.robust_accuracy[k]! * r.examples)];
  const [n, clean, ...rest] = dist.allReduceNumbers(counts.map(Math.round));
  const secs = dist.allReduceNumbers([r.seconds], 'max')[0]!;
  const acc = (c: number) => (n! > 0 ? c / n! : 0);
  return {
    ...r,
    examples: n!,
    clean_accuracy: acc(clean!),
    robust_accuracy: Object.fromEntries(names.map((k, i) => [k, acc(rest[i]!)])),
    seconds: secs,
  };
}
