// The training loop shared by every method: passes over the data, the learning-rate schedule, metrics,
// checkpoints at pass ends (and every --checkpoint-every steps), validation after each pass, interruption, and
// the final evaluation. It makes one SGD step at a time (a free-training replay is one) and gives the event loop
// a turn after each, so that a signal or --max-steps stops it between any two steps, and a resumed run continues
// at the same step of the same minibatch. Every input the run needs is checked before the first step. A method supplies only its per-minibatch step (method.ts); the run folder
// (run-folder.ts), the checkpoint contents (state.ts), validation (validation.ts) and data parallelism
// (distributed.ts) live beside it.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, manualSeed, setNumThreads, getNumThreads, scope, noGrad, cuda, dist } from '../torch/index.js';
import { modelFor, checkModel } from '../models/index.js';
import { SGD, GradScaler, makeSchedule } from '../optim/index.js';
import { loadSplit, checkEvalSplit, Loader, Progress, numBatches, nextTurn } from '../data/index.js';
import { toTensors } from '../data/tensor.js';
import { evaluateDataset, type EvalResult } from '../eval/index.js';
import { checkAttackName } from '../attacks/index.js';
import { ConfigError, formatEps } from '../options/index.js';
import { ampType, type TrainConfig } from './options.js';
import type { TrainContext } from './method.js';
import { methods } from './methods.js';
import { RunFolder, LOCK_FILE, type Summary } from './run-folder.js';
import { Validation, trainingSplit, VALIDATION_ATTACK } from './validation.js';
import { saveState, restoreState, restoreWeights, type LoopState, type PassValidation } from './state.js';
import { Interrupts } from './signals.js';
import { initModel } from './init.js';
import { TrainingError, InterruptedError } from './errors.js';
import { isRoot, broadcastModule, any, gradientSync } from './distributed.js';

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
  /** Continue the run in cfg.out from its latest checkpoint. */
  resume?: boolean;
  /**
   * Data-parallel training: this process's rank in the process group it has joined (src/torch/dist.ts).
   * cfg.batchSize stays the global batch; each rank trains on batchSize / worldSize of its shard.
   */
  dist?: dist.Rank;
  /**
   * The device this process trains on when it is not cfg.device: a rank of a job on `--device cuda` trains on
   * cuda:LOCAL_RANK, while the run's config.json keeps the job's device (`cuda`), which --resume starts every rank
   * with again.
   */
  device?: string;
}

/** SGD steps within a minibatch between the ranks' agreements on stopping (see stopRequested). */
const AGREE_EVERY = 8;

/** Input shapes known before loading, so that a model that does not fit the data is refused before any work. */
const KNOWN_SHAPES: Record<string, { c: number; h: number }> = { 'fashion-mnist': { c: 1, h: 28 }, mnist: { c: 1, h: 28 }, cifar10: { c: 3, h: 32 }, cifar100: { c: 3, h: 32 } };

/** Checks what can be checked without touching the data. */
export function precheck(cfg: TrainConfig): void {
  const shape = KNOWN_SHAPES[cfg.dataset];
  const why = shape && checkModel(cfg.model, { numClasses: 10, inChannels: shape.c, size: shape.h, mean: [0], std: [1] });
  if (why) throw new ConfigError('model', `${why} (data set ${cfg.dataset} has ${shape!.c}×${shape!.h}×${shape!.h} images)`);
  const noDevice = cuda.problem(cfg.device);
  if (noDevice) throw new ConfigError('device', noDevice);
}

/** Trains per cfg into cfg.out (or resumes the run there), then evaluates. */
export async function train(job: TrainConfig, opts: TrainOptions = {}): Promise<Summary> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const warn = opts.warn ?? ((s: string) => process.stderr.write(`warning: ${s}\n`));
  // the run's configuration (written to config.json) and this process's (its device)
  const cfg = opts.device && opts.device !== job.device ? { ...job, device: opts.device } : job;
  precheck(cfg);
  const group = opts.dist && opts.dist.worldSize > 1 ? opts.dist : undefined;
  const ranks = group?.worldSize ?? 1;
  if (cfg.batchSize % ranks !== 0) throw new ConfigError('batch-size', `the global batch ${cfg.batchSize} is not divisible by the ${ranks} processes (each takes batch-size / ${ranks})`);
  if (group && cfg.skipBad) throw new ConfigError('skip-bad', 'is not supported with several processes (ranks would train on batches of different sizes)');
  const run = new RunFolder(cfg.out, isRoot(group));
  const option = opts.resume ? 'resume' : 'out';
  run.checkPath(option);
  if (!opts.resume && !existsSync(join(run.dir, LOCK_FILE))) run.checkNew(job); // a foreign folder is refused untouched
  run.lock(option, warn); // one writer per folder (rank 0)
  try {
    if (opts.resume) run.openForResume(group?.rank);
    else run.checkNew(job);
    return await trainLocked(cfg, job, opts, run, group, log, warn);
  } finally {
    run.unlock();
  }
}

/** train() once the run folder is this process's. */
async function trainLocked(cfg: TrainConfig, job: TrainConfig, opts: TrainOptions, run: RunFolder, group: dist.Rank | undefined, log: (s: string) => void, warn: (s: string) => void): Promise<Summary> {
  const ranks = group?.worldSize ?? 1;
  setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  const method = methods[cfg.method]!;
  const trainData = await loadSplit(cfg, 'train');
  // the final evaluation's data is read (and checked against the training data) before any training
  const testData = opts.noEval ? undefined : await loadSplit(cfg, 'test');
  if (testData) checkEvalSplit(trainData, testData);
  const split = trainingSplit(trainData, cfg, warn);
  for (const a of cfg.evalAttacks) {
    const why = checkAttackName(a, trainData.numClasses);
    if (why) throw new ConfigError('eval-attacks', why);
  }
  const model = modelFor(cfg.model, trainData, { device: cfg.device, dtype: cfg.dtype });
  if (!opts.resume) initModel(model, cfg, trainData.numClasses, log); // --init, --num-classes (fine-tuning)
  if (cfg.channelsLast) model.channelsLast();
  if (!opts.resume) run.create(job); // the inputs are checked: nothing is written for a run refused before here
  if (group) broadcastModule(model);
  const shard = group ? { rank: group.rank, count: ranks, pad: true } : undefined;
  const subset = split.val.length ? split.train : undefined;
  // its worker threads start with the first pass and serve every pass until the loader is closed below (the batches
  // are those of workers started for each pass; their start-up is paid once, not every pass)
  const loader = new Loader(trainData, { batchSize: cfg.batchSize / ranks, seed: cfg.seed, augment: cfg.augment, lastBatch: 'keep', prefetch: 3, persistentWorkers: true, ...(shard && { shard }), ...(subset && { subset }) });
  const batchesPerPass = group ? loader.length : numBatches(split.train.length, cfg.batchSize, 'keep');
  const passes = method.passes(cfg);
  const stepsPerBatch = method.stepsPerBatch(cfg);
  const totalSteps = Math.min(passes * batchesPerPass * stepsPerBatch, cfg.maxSteps ?? Infinity);
  const schedule = makeSchedule({ name: cfg.lrSchedule, lr: cfg.lr, totalSteps });
  const opt = new SGD(model.parameters(), { lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay, nesterov: cfg.nesterov });
  const sync = gradientSync(model, group);
  // float16's range needs loss scaling (bfloat16 has float32's range and does not)
  const scaler = cfg.amp === 'fp16' ? new GradScaler() : undefined;
  const zeros = new ZeroShare();
  const flushMetrics = () => metrics.flush(position, opt.lr, { ...zeros.flush(), ...(scaler && { loss_scale: scaler.scaleValue, skipped_steps: scaler.skipped }) });
  const methodState = new Map<string, Tensor>();
  const position: LoopState = { step: 0, pass: 0, batch: 0, replay: 0, trainSeconds: 0, images: 0 };
  const metrics = new StepMetrics(run, group);

  const ctx: TrainContext = {
    model,
    cfg,
    batchShape: [cfg.batchSize / ranks, trainData.c, trainData.h, trainData.w],
    state: methodState,
    sgdStep(loss: Tensor) {
      opt.lr = schedule(position.step);
      opt.zeroGrad();
      let stepped = true;
      if (scaler) {
        scope(() => sync.backward(scaler.scale(loss)));
        stepped = scaler.step(opt);
        scaler.update();
      } else {
        sync.backward(loss);
        opt.step();
      }
      position.step++;
      return stepped;
    },
    record(loss: Tensor, logits: Tensor, y: Tensor, inputGrad?: Tensor) {
      if (inputGrad) zeros.add(inputGrad);
      metrics.add(loss, logits, y);
      position.images += y.size(0) * ranks;
      if (position.step % cfg.logEvery === 0) flushMetrics();
    },
  };
  method.init?.(ctx);
  const parts = { model, opt, methodState, position, group, batchSize: cfg.batchSize, ...(scaler && { scaler }) };
  const checkpoint = (path: string) => saveState(path, parts);

  if (opts.resume) {
    restoreState(run.path('latest'), parts, `the run's ${cfg.model} on ${cfg.dataset} (its ${run.path('config')})`);
    run.forgetAfter(position.step);
    position.replay ??= 0; // checkpoints from before steps within a minibatch were saved
    log(`resuming ${run.dir} at SGD step ${position.step} (pass ${position.pass + 1}/${passes}, batch ${position.batch}/${batchesPerPass}${position.replay ? `, step ${position.replay + 1}/${stepsPerBatch} of it` : ''})`);
  }

  const validation = new Validation(trainData, split.val, { eps: cfg.eps, batchSize: cfg.evalBatchSize, seed: cfg.seed, device: cfg.device, dtype: cfg.dtype, ...(group && { rank: group }) });
  const interrupts = new Interrupts(warn, opts.handleSignals !== false);
  log(`freeadv train: ${method.label(cfg)} on ${cfg.dataset} (${split.train.length} images${split.val.length ? `; ${split.val.length} more held out for validation` : ''}), model ${cfg.model}${cfg.channelsLast ? ' (channels-last)' : ''}, ε=${formatEps(cfg.eps)}, ${passes} pass(es) × ${batchesPerPass} batches, ${totalSteps} SGD steps, ${getNumThreads()} threads${group ? ` × ${ranks} processes (batch ${cfg.batchSize / ranks} each)` : ''}, run folder ${run.dir}`);
  const progress = new Progress({ total: totalSteps, label: 'train', stream: opts.progress ?? process.stderr, extra: () => `lr ${opt.lr.toExponential(2)}` });
  progress.tick(0, position.step);
  const done = () => position.step >= totalSteps;
  // every rank must stop at the same step: a signal seen by any rank stops all. Agreeing costs an all-reduce
  // (about 1 ms between 2 processes on 2 cores), so ranks agree at the end of every minibatch and every
  // AGREE_EVERY SGD steps within one; one process checks after every step.
  const stopRequested = (atStep = false) => {
    const seen = interrupts.requested !== undefined;
    if (group && atStep && position.replay !== 0 && position.step % AGREE_EVERY !== 0) return false;
    if (!(group ? any(seen) : seen)) return false;
    interrupts.requested ??= 'SIGTERM'; // another rank's signal
    return true;
  };
  const interrupted = (e: unknown) => e instanceof InterruptedError || (e instanceof Error && e.name === 'AbortError');
  let skippedTrain = 0;
  let ev: EvalResult | undefined;
  try {
    try {
      // (a pass whose batches are done but whose validation is not, when a signal stopped it, is validated first)
      outer: while (position.pass < passes && (!done() || position.batch >= loader.length)) {
        const passStart = performance.now();
        batches: for await (const b of loader.epoch(position.pass, { startBatch: position.batch })) {
          if (b.shape[0] === 0) {
            position.batch = b.batch + 1; // every image of this batch was undecodable and left out (--skip-bad)
            continue;
          }
          const { x: x0, y } = toTensors(b, cfg.device, cfg.dtype);
          const x = cfg.channelsLast ? x0.channelsLast() : x0;
          if (x !== x0) x0.dispose();
          try {
            while (position.batch === b.batch) {
              const before = position.step;
              const t0 = performance.now();
              scope(() => method.step(ctx, x, y, position.replay));
              position.trainSeconds += (performance.now() - t0) / 1000;
              if (++position.replay === stepsPerBatch) {
                position.batch = b.batch + 1;
                position.replay = 0;
              }
              progress.tick(b.shape[0] * ranks * (position.step - before), position.step - before);
              await nextTurn(); // signal handlers run here
              if (stopRequested(true)) break outer;
              if (done()) break batches;
              if (cfg.checkpointEvery > 0 && Math.floor(position.step / cfg.checkpointEvery) > Math.floor(before / cfg.checkpointEvery)) {
                metrics.check(position); // never a checkpoint of weights trained on a non-finite loss
                checkpoint(run.path('latest'));
              }
            }
          } finally {
            x.dispose();
            y.dispose();
          }
        }
        // end of a pass (or of the steps, --max-steps): validation, best and latest checkpoints
        const whole = position.batch >= loader.length && position.replay === 0; // else the position stays mid-pass
        flushMetrics();
        const passSeconds = (performance.now() - passStart) / 1000;
        let val;
        try {
          val = await validation.run(model, interrupts.signal);
        } catch (e) {
          if (!interrupted(e)) throw e;
          interrupts.requested ??= 'SIGTERM';
          break outer; // the pass's validation runs again on resume
        }
        run.appendMetrics({ step: position.step, pass: position.pass, ...(val && { val_clean_accuracy: val.clean_accuracy, val_robust_accuracy: val.robust_accuracy }), pass_seconds: passSeconds });
        const now: PassValidation | undefined = val && { pass: position.pass + 1, ...val };
        if (whole) {
          position.pass++;
          position.batch = 0;
        }
        const best = position.bestVal;
        if (now) position.lastVal = now;
        if (now && (!best || now.robust_accuracy >= best.robust_accuracy)) {
          position.bestVal = now;
          checkpoint(run.path('best'));
        } else if (now && best && method.collapseDrop !== undefined && best.robust_accuracy - now.robust_accuracy > method.collapseDrop) {
          position.stoppedEarly = `catastrophic overfitting: validation PGD-10 accuracy fell from ${pct(best.robust_accuracy)} to ${pct(now.robust_accuracy)} in pass ${position.pass}; restored the best weights (pass ${best.pass})`;
          warn(position.stoppedEarly);
          if (run.writer) restoreWeights(model, run.path('best'));
          if (group) broadcastModule(model);
          checkpoint(run.path('latest'));
          break;
        }
        checkpoint(run.path('latest'));
        if (stopRequested()) break; // a signal during the validation of the last batches
      }
    } catch (e) {
      progress.finish();
      metrics.dispose();
      if (e instanceof TrainingError) {
        const when = run.latestWritten();
        const last = when ? `the last good checkpoint is ${run.path('latest')} (written ${when})` : 'no checkpoint was written yet';
        throw new TrainingError(`${e.message}; training stopped and ${last}. Lower --lr or check the data.`);
      }
      throw e;
    } finally {
      skippedTrain = loader.stats().skipped;
      await loader.close();
      sync.dispose();
    }
    progress.finish();
    try {
      flushMetrics();
    } finally {
      metrics.dispose();
    }
    checkpoint(run.path('latest'));
    if (interrupts.requested) {
      throw new InterruptedError(`stopped by ${interrupts.requested} at SGD step ${position.step}; checkpoint written. Resume with: freeadv train --resume ${cfg.out}`);
    }

    if (testData) {
      try {
        ev = await evaluateDataset(model, testData, {
          eps: cfg.eps, attacks: cfg.evalAttacks, limit: cfg.evalLimit, batchSize: cfg.evalBatchSize, restarts: cfg.evalRestarts,
          seed: cfg.seed, device: cfg.device, dtype: cfg.dtype, ...(group && { rank: group }), signal: interrupts.signal,
          ...(cfg.attackAmp && { amp: ampType(cfg.amp) }),
        });
      } catch (e) {
        if (!interrupted(e)) throw e;
        throw new InterruptedError(`stopped by ${interrupts.requested ?? 'SIGTERM'} during the final evaluation, after all ${position.step} SGD steps (checkpoint written). Evaluate with: freeadv eval --run ${cfg.out}, or finish the run with: freeadv train --resume ${cfg.out}`);
      }
    }
  } finally {
    interrupts.uninstall();
  }
  const distributed = sync.stats();
  const summary: Summary = {
    method: cfg.method,
    label: method.label(cfg),
    model: cfg.model,
    dataset: cfg.dataset,
    replays: method.stepsPerBatch(cfg),
    eps: cfg.eps,
    epochs: cfg.epochs,
    passes: position.pass + (position.batch > 0 || position.replay > 0 ? 1 : 0),
    sgd_steps: position.step,
    backward_passes: position.step * method.backwardPerStep(cfg),
    train_seconds: position.trainSeconds,
    images_per_second: position.images / Math.max(1e-9, position.trainSeconds),
    memory_format: cfg.channelsLast ? 'channels_last' : 'contiguous',
    ...(cfg.amp !== 'none' && { amp: cfg.amp, evaluation_precision: ev?.amp ?? cfg.dtype }),
    ...(zeros.total.n > 0 && { input_grad_zero_share: zeros.total.zero / zeros.total.n }),
    ...(scaler && { grad_scaler: { ...scaler.stateDict(), skipped_steps_this_session: scaler.skipped } }),
    clean_accuracy: ev?.clean_accuracy ?? NaN,
    robust_accuracy: ev?.robust_accuracy ?? {},
    ...(ev?.stages && { attack_stages: ev.stages }),
    eval_examples: ev?.examples ?? 0,
    eval_seconds: ev?.seconds ?? 0,
    val_examples: split.val.length,
    ...(split.val.length && { validation: { attack: cfg.eps > 0 ? VALIDATION_ATTACK : 'none (ε = 0)', ...(position.lastVal && { last: position.lastVal }), ...(position.bestVal && { best: position.bestVal }) } }),
    warnings: [
      ...(skippedTrain ? [`undecodable training images were left out ${skippedTrain} time(s) in this session's passes (--skip-bad; counted once per pass)`] : []),
      ...(ev?.warnings ?? []),
    ],
    ...(position.stoppedEarly ? { stopped_early: position.stoppedEarly } : {}),
    run_dir: run.dir,
    ...(distributed && { distributed: { world_size: ranks, ...distributed } }),
  };
  run.writeSummary(summary);
  opt.dispose();
  for (const t of methodState.values()) t.dispose();
  model.dispose();
  return summary;
}

/**
 * Loss and accuracy on the training inputs since the last metrics line (summed over ranks when written). The sums
 * stay on the training device and are read only when a line is written or a checkpoint is about to be (`check`):
 * reading a GPU value waits for the GPU, so a step never does. A non-finite loss is therefore seen at the next
 * read, before any line or checkpoint of the weights it produced is written.
 */
class StepMetrics {
  private lossSum: Tensor | undefined; // Σ loss·n, float64 on the device
  private correctSum: Tensor | undefined; // Σ correct, int64 on the device
  private seen = 0;
  private lastRead = 0; // the SGD step of the last read (all steps up to it had finite losses)
  private lastTime = performance.now();
  private lastImages = 0;
  constructor(private readonly run: RunFolder, private readonly group: dist.Rank | undefined) {}

  add(loss: Tensor, logits: Tensor, y: Tensor): void {
    noGrad(() =>
      scope(() => {
        const l = loss.detach().to('float64').mul(y.size(0));
        const c = logits.argmax(1).eq(y).sum();
        if (!this.lossSum || !this.correctSum) {
          this.lossSum = l.keep();
          this.correctSum = c.keep();
        } else {
          this.lossSum.add_(l);
          this.correctSum.add_(c);
        }
      }),
    );
    this.seen += y.size(0);
  }

  /** Reads and clears the sums: [Σ loss·n, Σ correct]; a TrainingError if the loss was not finite. */
  private read(position: LoopState): [number, number] {
    const sums: [number, number] = [this.lossSum?.item() ?? 0, this.correctSum?.item() ?? 0];
    this.lossSum?.dispose();
    this.correctSum?.dispose();
    this.lossSum = this.correctSum = undefined;
    if (!Number.isFinite(sums[0])) {
      const when = position.step - this.lastRead <= 1 ? `${position.step}` : `${position.step} or earlier (after step ${this.lastRead}; the loss is read every --log-every steps)`;
      throw new TrainingError(`the training loss became ${sums[0]} at SGD step ${when}`);
    }
    this.lastRead = position.step;
    return sums;
  }

  /** A TrainingError if a loss since the last read was not finite (the sums are kept for the next line). */
  check(position: LoopState): void {
    if (!this.lossSum) return;
    const [loss, correct] = this.read(position);
    this.pending[0] += loss;
    this.pending[1] += correct;
  }
  private pending: [number, number] = [0, 0];

  flush(position: LoopState, lr: number, extra: Record<string, number> = {}): void {
    const [l, c] = this.read(position);
    let [loss, correct, seen] = [this.pending[0] + l, this.pending[1] + c, this.seen];
    if (this.group) [loss, correct, seen] = dist.allReduceNumbers([loss, correct, seen]);
    if (seen && this.run.writer) {
      const now = performance.now();
      this.run.appendMetrics({
        step: position.step,
        pass: position.pass,
        lr,
        loss: loss / seen,
        train_accuracy: correct / seen,
        images_per_second: ((position.images - this.lastImages) * 1000) / Math.max(1, now - this.lastTime),
        ...extra,
      });
      this.lastTime = now;
      this.lastImages = position.images;
    }
    this.pending = [0, 0];
    this.seen = 0;
  }

  dispose(): void {
    this.lossSum?.dispose();
    this.correctSum?.dispose();
  }
}

/**
 * The share of exact-zero entries of the input gradient a method steps on (free training's g_x): where it is 0,
 * sign() is 0 and δ stays put. float16 can add underflowed ones (BENCHMARKS.md: bfloat16 gives fewer than float32 on the main job).
 */
class ZeroShare {
  /** Zero entries since the last flush, summed on the device (read only when a metrics line is written). */
  private zeroSum: Tensor | undefined;
  private n = 0;
  readonly total = { zero: 0, n: 0 };
  add(g: Tensor): void {
    noGrad(() => {
      const z = g.eq(0).sum();
      if (this.zeroSum) {
        this.zeroSum.add_(z);
        z.dispose();
      } else this.zeroSum = z.keep();
    });
    this.n += g.numel;
  }
  /** The share since the last flush, for a metrics line (nothing when no gradient was recorded). */
  flush(): { input_grad_zero_share?: number } {
    if (!this.zeroSum || this.n === 0) return {};
    const zero = this.zeroSum.item();
    this.zeroSum.dispose();
    this.zeroSum = undefined;
    const r = { input_grad_zero_share: zero / this.n };
    this.total.zero += zero;
    this.total.n += this.n;
    this.n = 0;
    return r;
  }
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
