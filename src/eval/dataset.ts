// Evaluation of a data set: the first `limit` examples in file order, in batches of `batchSize` (memory is bounded
// by the batch, not the data set), with a progress bar. With several processes each evaluates its share
// (examples rank, rank + N, …, each counted once) and the counts are summed. Between batches the event loop gets
// a turn (signal handlers run), and an aborted `signal` stops the evaluation there, on every rank at the same batch;
// inside an attack a signal stops it at its next iteration (evaluate.ts), and with ranks the evaluation then goes on
// to their next agreement.
import { Writable } from 'node:stream';
import { manualSeed, dist, autocast, type DType, type AutocastDType } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Loader, Progress, nextTurn, type Dataset } from '../data/index.js';
import { tensorBatches } from '../data/tensor.js';
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
  /** Stops the evaluation between batches when aborted (throwing its reason); with several ranks, when any is. */
  signal?: AbortSignal;
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
  // Ranks agree on stopping (one all-reduce per batch) over the batches every rank has: the last rank's count.
  const common = group ? Math.ceil(Math.max(0, Math.ceil((all - group.worldSize + 1) / group.worldSize)) / o.batchSize) : Infinity;
  const anyRankAborted = () => dist.allReduceNumbers([o.signal!.aborted ? 1 : 0], 'max')[0]! > 0;
  const stop = (i: number) => (group ? i < common && anyRankAborted() : o.signal!.aborted);
  const stopped = () => (o.signal!.aborted ? o.signal!.reason : new DOMException("stopped: another rank's signal", 'AbortError'));
  async function* batches(): AsyncGenerator<Batch> {
    let i = 0;
    for await (const t of tensorBatches(loader, limit, o.device, o.dtype)) {
      if (o.signal) {
        await nextTurn();
        if (stop(i++)) throw stopped();
      }
      yield t;
      progress.tick(t.y.size(0));
    }
    // ranks agree once more after their last batch: a rank whose signal stopped an attack of a batch no other
    // rank has (or of the last common one) stops them all here
    if (o.signal && group && anyRankAborted()) throw stopped();
  }
  try {
    // a signal stops an attack at its next iteration; ranks then stop together at their next agreement
    const run = () => evaluate(model, batches(), { eps: o.eps, attacks: o.attacks, restarts: o.restarts, ...(o.noChecks && { noChecks: true }), ...(o.signal && { signal: o.signal }), ...(group && { agreeBetweenBatches: true }) });
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
