// The training loop shared by every method: data, learning-rate schedule, metrics, checkpoints, resume,
// interruption, the held-out robustness guard, and the final evaluation. A method supplies only its
// per-minibatch step (method.ts).
import { mkdirSync, existsSync, readFileSync, writeFileSync, unlinkSync, statSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { Tensor, manualSeed, setNumThreads, getNumThreads, getRngState, setRngState, scope, keep, noGrad, fromTypedArray, cuda, dist } from '../torch/index.js';
import { inEvalMode, type Module } from '../nn/index.js';
import { createModel, checkModel } from '../models/index.js';
import { SGD, makeSchedule, type Schedule } from '../optim/index.js';
import { loadDataset, Loader, Progress, DataError, numBatches, type InMemoryDataset, type Dataset } from '../data/index.js';
import { toTensors, firstImages } from '../data/tensor.js';
import { saveCheckpoint, loadCheckpoint, writeJsonAtomic, writeFileAtomic, appendLine } from '../io/index.js';
import { evaluate, type EvalResult, type Batch } from '../eval/index.js';
import { PGD } from '../attacks/index.js';
import { ConfigError, type TrainConfig } from './config.js';
import type { Method, TrainContext } from './method.js';
import { natural } from './natural.js';
import { free } from './free.js';
import { pgd } from './pgd.js';
import { fgsm } from './fgsm.js';
import { isRoot, broadcastModule, gatherRows, localRows, any, reduceEval, gradSyncFromEnv, type DistOptions } from './distributed.js';

export const methods: Record<string, Method> = { natural, free, pgd, fgsm };

export interface Summary {
  method: string;
  model: string;
  dataset: string;
  replays: number;
  eps: number;
  epochs: number;
  passes: number;
  sgd_steps: number;
  backward_passes: number;
  train_seconds: number;
  images_per_second: number;
  clean_accuracy: number;
  robust_accuracy: Record<string, number>;
  eval_examples: number;
  eval_seconds: number;
  warnings: string[];
  stopped_early?: string;
  run_dir: string;
  /**
   * Data-parallel runs: processes; how gradients were averaged (FREEADV_GRAD_SYNC) and in how many buckets;
   * and rank 0's milliseconds per SGD step between the last gradient being ready and the averaged gradients
   * being in place (after-backward: the whole bucketed all-reduce after backward; overlap: from the start of
   * the last bucket's all-reduce to the end of backward, i.e. the communication not hidden behind backward).
   */
  distributed?: { world_size: number; grad_sync: 'overlap' | 'after-backward'; buckets: number; allreduce_bytes_per_step: number; allreduce_ms_per_step: number };
}

export class TrainingError extends Error {
  override name = 'TrainingError';
}

/** What a run folder holds besides config.json: */
export const RUN_FILES = { metrics: 'metrics.jsonl', latest: 'latest.safetensors', best: 'best.safetensors', summary: 'summary.json' };

interface LoopState {
  step: number;
  pass: number;
  /** Next batch of `pass` to train on. */
  batch: number;
  trainSeconds: number;
  images: number;
  bestGuard: number;
  stoppedEarly?: string;
}

export interface TrainOptions {
  /** Where to print progress and messages (default: process.stdout / stderr). */
  log?: (line: string) => void;
  warn?: (line: string) => void;
  /** Progress stream (default process.stderr). */
  progress?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Install SIGINT/SIGTERM handlers that checkpoint and stop (default true). */
  handleSignals?: boolean;
  /** Skip the final evaluation. */
  noEval?: boolean;
  /**
   * Data-parallel training: this process's rank in the process group it has joined (src/torch/dist.ts).
   * cfg.batchSize stays the global batch; each rank trains on batchSize / worldSize of its shard.
   */
  dist?: DistOptions;
}

/** Known input shapes, so that a model that does not fit the data is refused before data is loaded. */
const KNOWN_SHAPES: Record<string, [number, number]> = { 'fashion-mnist': [1, 28], mnist: [1, 28], cifar10: [3, 32], cifar100: [3, 32] };

export async function loadData(cfg: Pick<TrainConfig, 'dataset' | 'dataDir' | 'imageSize' | 'skipBad'>, split: 'train' | 'test'): Promise<Dataset> {
  return loadDataset({ name: cfg.dataset, dataDir: cfg.dataDir, split, size: cfg.imageSize, skipBad: cfg.skipBad });
}

function buildModel(cfg: TrainConfig, data: Dataset): Module {
  const o = { numClasses: data.numClasses, inChannels: data.c, size: data.h, mean: data.mean, std: data.std };
  const why = checkModel(cfg.model, o);
  if (why) throw new ConfigError('model', why);
  const m = createModel(cfg.model, o);
  return cfg.device === 'cpu' ? m : m.to(cfg.device);
}

/** Checks everything that can be checked without touching the data. */
export function precheck(cfg: TrainConfig): void {
  if (!methods[cfg.method]) throw new ConfigError('method', `unknown method '${cfg.method}'`);
  const shape = KNOWN_SHAPES[cfg.dataset];
  if (shape) {
    const why = checkModel(cfg.model, { numClasses: 10, inChannels: shape[0], size: shape[1], mean: [0], std: [1] });
    if (why) throw new ConfigError('model', `${why} (data set ${cfg.dataset} has ${shape[0]}×${shape[1]}×${shape[1]} images)`);
  }
  if (cfg.device.startsWith('cuda') && !cuda.isAvailable())
    throw new ConfigError('device', `${cfg.device} requested but this libtorch has no CUDA (build with LIBTORCH=<CUDA libtorch>)`);
}

/** Trains per cfg into cfg.out (or resumes the run in `resumeDir`), then evaluates. */
export async function train(cfgIn: TrainConfig, opts: TrainOptions & { resume?: boolean } = {}): Promise<Summary> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const warn = opts.warn ?? ((s: string) => process.stderr.write(`warning: ${s}\n`));
  const cfg = { ...cfgIn };
  precheck(cfg);
  const D = opts.dist && opts.dist.worldSize > 1 ? opts.dist : undefined;
  const sync = D ? gradSyncFromEnv() : undefined;
  const root = isRoot(D);
  const N = D?.worldSize ?? 1;
  if (cfg.batchSize % N !== 0) throw new ConfigError('batch-size', `the global batch ${cfg.batchSize} is not divisible by the ${N} processes (each takes batch-size / ${N})`);
  if (D && cfg.skipBad) throw new ConfigError('skip-bad', 'is not supported with several processes (ranks would train on batches of different sizes)');
  const runDir = resolve(cfg.out);
  const latestPath = join(runDir, RUN_FILES.latest);
  if (!root) {
    if (opts.resume && !existsSync(latestPath)) throw new ConfigError('resume', `rank ${D!.rank} cannot read ${latestPath}: resuming with several machines needs the run folder on a file system every rank sees`);
  } else mkdirSync(runDir, { recursive: true });
  if (root) try {
    const probe = join(runDir, '.write-test');
    writeFileSync(probe, '');
    unlinkSync(probe);
  } catch (e) {
    throw new ConfigError('out', `run folder ${runDir} is not writable (${(e as Error).message})`);
  }
  if (!opts.resume && root) {
    if (existsSync(latestPath)) throw new ConfigError('out', `${runDir} already holds a run; use --resume ${cfg.out} or another --out`);
    writeJsonAtomic(join(runDir, 'config.json'), cfg);
  }

  setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  const method = methods[cfg.method]!;
  const trainData = await loadData(cfg, 'train');
  const model = buildModel(cfg, trainData);
  if (D) broadcastModule(model);
  const shard = D ? { rank: D.rank, count: N, pad: true } : undefined;
  const loader = new Loader(trainData, { batchSize: cfg.batchSize / N, seed: cfg.seed, augment: cfg.augment, lastBatch: 'keep', prefetch: 3, ...(shard && { shard }) });
  const batchesPerPass = D ? loader.length : numBatches(trainData.n, cfg.batchSize, 'keep');
  const passes = method.passes(cfg);
  const planned = passes * batchesPerPass * method.stepsPerBatch(cfg);
  const totalSteps = Math.min(planned, cfg.maxSteps ?? Infinity);
  const schedule: Schedule = makeSchedule({ name: cfg.lrSchedule, lr: cfg.lr, totalSteps });
  const opt = new SGD(model.parameters(), { lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay, nesterov: cfg.nesterov });
  // gradient averaging across ranks: overlapped with backward (c10d's Reducer), or after it (FREEADV_GRAD_SYNC)
  const overlapped = sync?.mode === 'overlap'
    ? new dist.OverlappedGradAverager(model.parameters(), { bucketBytes: sync.bucketBytes, names: model.namedParameters().map(([k]) => k) })
    : undefined;
  const averager = sync?.mode === 'after-backward' ? new dist.GradAverager(model.parameters(), N, sync.bucketBytes) : undefined;
  const methodState = new Map<string, Tensor>();
  const st: LoopState = { step: 0, pass: 0, batch: 0, trainSeconds: 0, images: 0, bestGuard: -1 };

  // metrics since the last log line
  let lossSum = 0, correctSum = 0, seen = 0, lastLogT = performance.now(), lastLogImages = 0;
  const ctx: TrainContext = {
    model,
    cfg,
    batchShape: [cfg.batchSize / N, trainData.c, trainData.h, trainData.w],
    state: methodState,
    sgdStep(loss: Tensor) {
      opt.lr = schedule(st.step);
      opt.zeroGrad();
      if (overlapped) overlapped.backward(loss);
      else {
        loss.backward();
        averager?.average();
      }
      opt.step();
      st.step++;
    },
    record(loss: Tensor, logits: Tensor, y: Tensor) {
      const l = loss.item();
      if (!Number.isFinite(l)) throw new TrainingError(`the training loss became ${l} at SGD step ${st.step}`);
      const n = y.size(0);
      lossSum += l * n;
      correctSum += noGrad(() => logits.argmax(1).eq(y).sum().item());
      seen += n;
      st.images += n * N;
      if (st.step % cfg.logEvery === 0) flushMetrics();
    },
  };
  const flushMetrics = () => {
    if (D) [lossSum, correctSum, seen] = dist.allReduceNumbers([lossSum, correctSum, seen]);
    if (!seen || !root) {
      lossSum = correctSum = seen = 0;
      return;
    }
    const now = performance.now();
    const line = {
      step: st.step,
      epoch: st.pass,
      lr: opt.lr,
      loss: lossSum / seen,
      train_accuracy: correctSum / seen,
      images_per_second: ((st.images - lastLogImages) * 1000) / Math.max(1, now - lastLogT),
    };
    appendLine(join(runDir, RUN_FILES.metrics), JSON.stringify(line));
    lossSum = correctSum = seen = 0;
    lastLogT = now;
    lastLogImages = st.images;
  };
  method.init?.(ctx);

  // With several processes, per-position method state (δ) is gathered into the single-process layout first.
  const checkpoint = (path: string) =>
    scope(() => {
      const tensors = D ? Object.fromEntries([...methodState].map(([k, t]) => [k, gatherRows(t, D)])) : Object.fromEntries(methodState);
      if (!root) return;
      saveCheckpoint(path, {
        model: model.stateDict(),
        optimizer: opt.stateDict(),
        tensors: { ...tensors, 'rng.cpu': getRngState() },
        state: { ...st, format: 1 },
      });
    });

  if (opts.resume) {
    if (!existsSync(latestPath)) throw new ConfigError('resume', `${runDir} has no checkpoint (${RUN_FILES.latest}) to resume from`);
    const ck = loadCheckpoint(latestPath);
    try {
      model.loadStateDict(ck.model);
      opt.loadStateDict(ck.optimizer);
      for (const [k, t] of methodState) {
        const s = ck.tensors[k];
        if (!s) throw new TrainingError(`${latestPath}: checkpoint lacks '${k}'`);
        // checkpoints hold the global layout; a rank takes its rows (any number of processes can resume)
        noGrad(() => scope(() => t.copy_(D && s.ndim > 0 && s.size(0) === cfg.batchSize ? localRows(s, D) : s)));
      }
      if (ck.tensors['rng.cpu']) setRngState(ck.tensors['rng.cpu']);
      Object.assign(st, ck.state as Partial<LoopState>);
    } finally {
      for (const group of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(group)) t.dispose();
    }
    if (root) forgetAfter(runDir, st.step);
    log(`resuming ${runDir} at SGD step ${st.step} (pass ${st.pass + 1}/${passes}, batch ${st.batch}/${batchesPerPass})`);
  }

  // Held-out guard: a fixed batch of training images, attacked after every pass (catastrophic-overfitting check).
  // (several processes: each rank attacks its block of the batch and the counts are summed)
  const guard = await guardBatch(trainData, cfg, D);
  let interrupted: string | undefined;
  const onSignal = (sig: string) => {
    if (interrupted) process.exit(130); // second Ctrl-C: give up immediately
    interrupted = sig;
    warn(`${sig} received: finishing the current step and writing a checkpoint (press again to abort without saving)`);
  };
  const handlers = opts.handleSignals !== false;
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  if (handlers) {
    process.on('SIGINT', sigint);
    process.on('SIGTERM', sigterm);
  }

  log(`freeadv train: ${cfg.method}${cfg.method === 'free' ? `-${cfg.replays}` : ''} on ${cfg.dataset} (${trainData.n} images), model ${cfg.model}, ε=${fmtEps(cfg.eps)}, ${passes} pass(es) × ${batchesPerPass} batches, ${totalSteps} SGD steps, ${getNumThreads()} threads${D ? ` × ${N} processes (batch ${cfg.batchSize / N} each)` : ''}, run folder ${runDir}`);
  const progress = new Progress({ total: totalSteps, label: 'train', stream: opts.progress ?? process.stderr, extra: () => `lr ${opt.lr.toExponential(2)}` });
  progress.tick(0, st.step);
  const done = () => st.step >= totalSteps;
  let skippedTrain = 0;
  let buckets = averager?.buckets.length ?? 0;
  try {
    outer: while (st.pass < passes && !done()) {
      const t0 = performance.now();
      for await (const b of loader.epoch(st.pass, { startBatch: st.batch })) {
        const before = st.step;
        if (b.shape[0] === 0) {
          st.batch = b.batch + 1; // every image of this batch was undecodable and left out (--skip-bad)
          continue;
        }
        const tb = performance.now();
        scope(() => {
          const { x, y } = toTensors(b, cfg.device);
          method.batch(ctx, x, y);
        });
        st.trainSeconds += (performance.now() - tb) / 1000;
        st.batch = b.batch + 1;
        progress.tick(b.shape[0] * N * (st.step - before), st.step - before);
        // every rank must stop at the same step: a signal seen by any rank stops all
        if (D ? any(interrupted !== undefined) : interrupted) {
          interrupted ??= 'SIGTERM';
          break outer;
        }
        if (done()) break;
        if (cfg.checkpointEvery > 0 && Math.floor(st.step / cfg.checkpointEvery) > Math.floor(before / cfg.checkpointEvery)) checkpoint(latestPath);
      }
      // end of a pass: held-out guard, best and latest checkpoints
      flushMetrics();
      let g = guardAccuracy(model, guard, cfg);
      if (D) {
        const [c, n] = dist.allReduceNumbers([Math.round(g * guard.y.size(0)), guard.y.size(0)]);
        g = c! / n!;
      }
      if (root) appendLine(join(runDir, RUN_FILES.metrics), JSON.stringify({ step: st.step, epoch: st.pass, guard_robust_accuracy: g, pass_seconds: (performance.now() - t0) / 1000 }));
      st.pass++;
      st.batch = 0;
      if (g >= st.bestGuard) {
        st.bestGuard = g;
        checkpoint(join(runDir, RUN_FILES.best));
      } else if (cfg.method === 'fgsm' && st.bestGuard - g > 0.2) {
        // catastrophic overfitting (Wong et al.): robust accuracy collapsed; restore the best weights and stop
        st.stoppedEarly = `catastrophic overfitting: held-out PGD accuracy fell from ${pct(st.bestGuard)} to ${pct(g)} in pass ${st.pass}; restored the best weights`;
        warn(st.stoppedEarly);
        if (root) restoreWeights(model, join(runDir, RUN_FILES.best));
        if (D) broadcastModule(model);
        checkpoint(latestPath);
        break;
      }
      checkpoint(latestPath);
    }
  } catch (e) {
    progress.finish();
    if (e instanceof TrainingError) {
      const last = existsSync(latestPath) ? `the last good checkpoint is ${latestPath} (written ${statSync(latestPath).mtime.toISOString()})` : 'no checkpoint was written yet';
      throw new TrainingError(`${e.message}; training stopped and ${last}. Lower --lr or check the data.`);
    }
    throw e;
  } finally {
    if (handlers) {
      process.off('SIGINT', sigint);
      process.off('SIGTERM', sigterm);
    }
    skippedTrain = loader.stats().skipped;
    await loader.close();
    if (overlapped) {
      buckets = overlapped.buckets.length;
      overlapped.dispose(); // removes its hooks from the parameters
    }
  }
  const syncStats = averager ?? overlapped;
  progress.finish();
  flushMetrics();
  if (interrupted) {
    checkpoint(latestPath);
    guard.x.dispose(); guard.y.dispose();
    throw new InterruptedError(`stopped by ${interrupted} at SGD step ${st.step}; checkpoint written. Resume with: freeadv train --resume ${cfg.out}`);
  }
  checkpoint(latestPath);
  guard.x.dispose(); guard.y.dispose();

  let ev: EvalResult | undefined;
  if (!opts.noEval) {
    const testData = await loadData(cfg, 'test');
    ev = await evaluateOn(model, testData, cfg, cfg.evalAttacks, root ? process.stderr : nullStream(), D);
  }
  const summary: Summary = {
    method: cfg.method,
    model: cfg.model,
    dataset: cfg.dataset,
    replays: cfg.method === 'free' ? cfg.replays : 1,
    eps: cfg.eps,
    epochs: cfg.epochs,
    passes: st.pass + (st.batch > 0 ? 1 : 0),
    sgd_steps: st.step,
    backward_passes: st.step * method.backwardPerStep(cfg),
    train_seconds: st.trainSeconds,
    images_per_second: st.images / Math.max(1e-9, st.trainSeconds),
    clean_accuracy: ev?.clean_accuracy ?? NaN,
    robust_accuracy: ev?.robust_accuracy ?? {},
    eval_examples: ev?.examples ?? 0,
    eval_seconds: ev?.seconds ?? 0,
    warnings: [
      ...(skippedTrain ? [`undecodable training images were left out ${skippedTrain} time(s) in this session's passes (--skip-bad; counted once per pass)`] : []),
      ...(ev?.warnings ?? []),
    ],
    ...(st.stoppedEarly ? { stopped_early: st.stoppedEarly } : {}),
    run_dir: runDir,
    ...(syncStats && {
      distributed: {
        world_size: N,
        grad_sync: sync!.mode,
        buckets,
        allreduce_bytes_per_step: syncStats.bytesPerStep,
        allreduce_ms_per_step: (syncStats.seconds * 1000) / Math.max(1, syncStats.calls),
      },
    }),
  };
  if (root) writeJsonAtomic(join(runDir, RUN_FILES.summary), summary);
  opt.dispose();
  for (const t of methodState.values()) t.dispose();
  model.dispose();
  return summary;
}

/**
 * After a crash: drops metric lines past the checkpoint's step (they will be recomputed identically) and
 * temporary files of interrupted checkpoint writes.
 */
function forgetAfter(runDir: string, step: number): void {
  const mpath = join(runDir, RUN_FILES.metrics);
  if (existsSync(mpath)) {
    const kept = readFileSync(mpath, 'utf8')
      .split('\n')
      .filter((l) => {
        if (!l.trim()) return false;
        try {
          return (JSON.parse(l) as { step: number }).step <= step;
        } catch {
          return false; // a line torn by the crash
        }
      });
    writeFileAtomic(mpath, kept.map((l) => l + '\n').join(''));
  }
  for (const f of readdirSync(runDir)) if (/^\..*\.tmp-\d+-[0-9a-f]+$/.test(f)) rmSync(join(runDir, f), { force: true });
}

export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

function restoreWeights(model: Module, path: string): void {
  const ck = loadCheckpoint(path);
  try {
    model.loadStateDict(ck.model);
  } finally {
    for (const group of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(group)) t.dispose();
  }
}

/** The first (up to) 512 training images in file order, without augmentation (eval transform for image folders). */
async function guardBatch(d: Dataset, cfg: TrainConfig, dd?: DistOptions): Promise<{ x: Tensor; y: Tensor }> {
  const t = await firstImages(d, 512, cfg.device);
  if (!t) throw new DataError('the training set yielded no images');
  if (!dd) return keep(t);
  const n = t.y.size(0);
  const lo = Math.floor((dd.rank * n) / dd.worldSize), hi = Math.floor(((dd.rank + 1) * n) / dd.worldSize);
  const part = scope(() => ({ x: t.x.narrow(0, lo, hi - lo).contiguous(), y: t.y.narrow(0, lo, hi - lo).contiguous() }));
  t.x.dispose();
  t.y.dispose();
  return keep(part);
}

function guardAccuracy(model: Module, g: { x: Tensor; y: Tensor }, cfg: TrainConfig): number {
  if (cfg.eps === 0 || g.y.size(0) === 0) return 0;
  return scope(() => {
    const atk = new PGD(model, { eps: cfg.eps, steps: 10 });
    const adv = atk.run(g.x, g.y);
    return inEvalMode(model, () => noGrad(() => model.forward(adv).argmax(1).eq(g.y).float().mean().item()));
  });
}

/** Evaluates on a test set (first evalLimit examples) with the given attacks, printing a progress bar. */
export async function evaluateOn(model: Module, data: Dataset, cfg: Pick<TrainConfig, 'eps' | 'evalLimit' | 'evalBatchSize' | 'evalRestarts' | 'device' | 'seed'>, attacks: string[], progressStream: NodeJS.WritableStream = process.stderr, d?: DistOptions): Promise<EvalResult> {
  const D = d && d.worldSize > 1 ? d : undefined;
  const all = Math.min(cfg.evalLimit ?? data.n, data.n);
  // several processes: rank r evaluates examples r, r+N, ... (no padding, so each is counted once); counts are summed
  const shard = D ? { rank: D.rank, count: D.worldSize, pad: false, limit: all } : undefined;
  const limit = D ? Math.max(0, Math.ceil((all - D.rank) / D.worldSize)) : all;
  manualSeed(cfg.seed + 12345 + (D?.rank ?? 0));
  const loader = new Loader(data, { batchSize: cfg.evalBatchSize, shuffle: false, augment: false, worker: false, ...(shard && { shard }) });
  const progress = new Progress({ total: Math.ceil(limit / cfg.evalBatchSize), label: 'eval', stream: progressStream as never });
  async function* batches(): AsyncGenerator<Batch> {
    let seen = 0;
    for await (const b of loader.epoch(0)) {
      const take = Math.min(b.shape[0], limit - seen);
      if (take <= 0) break;
      const per = b.shape[1] * b.shape[2] * b.shape[3];
      const t = toTensors({ x: b.x.subarray(0, take * per), shape: [take, b.shape[1], b.shape[2], b.shape[3]], y: b.y.subarray(0, take) }, cfg.device);
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
    let r = await evaluate(model, batches(), { eps: cfg.eps, attacks, restarts: cfg.evalRestarts });
    if (D) r = reduceEval(r);
    const skipped = loader.stats().skipped;
    if (skipped) r.warnings.push(`${skipped} undecodable test image(s) were left out (--skip-bad)`);
    return r;
  } finally {
    progress.finish();
    await loader.close();
  }
}

export const fmtEps = (e: number) => {
  const k = e * 255;
  return Math.abs(k - Math.round(k)) < 1e-6 && e < 0.5 && Math.round(k) !== 0 && ![0.1, 0.2, 0.3].includes(e) ? `${Math.round(k)}/255` : String(e);
};
const pct = (v: number) => `${(v * 100).toFixed(2)}%`;

/** Reads a run folder's config.json. */
export function readRunConfig(dir: string): TrainConfig {
  const p = join(dir, 'config.json');
  if (!existsSync(p)) throw new ConfigError('resume', `${dir} is not a run folder (no config.json)`);
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as TrainConfig;
  } catch (e) {
    throw new ConfigError('resume', `${p}: ${(e as Error).message}`);
  }
}

/** A writable that discards everything (progress of ranks other than 0). */
function nullStream(): NodeJS.WritableStream {
  return new Writable({ write: (_c, _e, cb) => cb() });
}
