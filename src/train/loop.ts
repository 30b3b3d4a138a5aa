// The training loop shared by every method: passes over the data, the learning-rate schedule, metrics,
// checkpoints at pass ends (and every --checkpoint-every steps), validation after each pass, interruption, and
// the final evaluation. A method supplies only its per-minibatch step (method.ts); the run folder
// (run-folder.ts), the checkpoint contents (state.ts), validation (validation.ts) and data parallelism
// (distributed.ts) live beside it.
import { Tensor, manualSeed, setNumThreads, getNumThreads, scope, noGrad, cuda, dist } from '../torch/index.js';
import { modelFor, checkModel } from '../models/index.js';
import { SGD, GradScaler, makeSchedule } from '../optim/index.js';
import { loadSplit, Loader, Progress, numBatches } from '../data/index.js';
import { toTensors } from '../data/tensor.js';
import { evaluateDataset, type EvalResult } from '../eval/index.js';
import { checkAttackName } from '../attacks/index.js';
import { ConfigError, formatEps } from '../options/index.js';
import { ampType, type TrainConfig } from './options.js';
import type { TrainContext } from './method.js';
import { methods } from './methods.js';
import { RunFolder, type Summary } from './run-folder.js';
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
}

/** Input shapes known before loading, so that a model that does not fit the data is refused before any work. */
const KNOWN_SHAPES: Record<string, { c: number; h: number }> = { 'fashion-mnist': { c: 1, h: 28 }, mnist: { c: 1, h: 28 }, cifar10: { c: 3, h: 32 }, cifar100: { c: 3, h: 32 } };

/** Checks what can be checked without touching the data. */
export function precheck(cfg: TrainConfig): void {
  const shape = KNOWN_SHAPES[cfg.dataset];
  const why = shape && checkModel(cfg.model, { numClasses: 10, inChannels: shape.c, size: shape.h, mean: [0], std: [1] });
  if (why) throw new ConfigError('model', `${why} (data set ${cfg.dataset} has ${shape!.c}×${shape!.h}×${shape!.h} images)`);
  if (cfg.device.startsWith('cuda') && !cuda.isAvailable())
    throw new ConfigError('device', `${cfg.device} requested but this libtorch has no CUDA (build with LIBTORCH=<CUDA libtorch>)`);
}

/** Trains per cfg into cfg.out (or resumes the run there), then evaluates. */
export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<Summary> {
  const log = opts.log ?? ((s: string) => process.stdout.write(s + '\n'));
  const warn = opts.warn ?? ((s: string) => process.stderr.write(`warning: ${s}\n`));
  precheck(cfg);
  const group = opts.dist && opts.dist.worldSize > 1 ? opts.dist : undefined;
  const ranks = group?.worldSize ?? 1;
  if (cfg.batchSize % ranks !== 0) throw new ConfigError('batch-size', `the global batch ${cfg.batchSize} is not divisible by the ${ranks} processes (each takes batch-size / ${ranks})`);
  if (group && cfg.skipBad) throw new ConfigError('skip-bad', 'is not supported with several processes (ranks would train on batches of different sizes)');
  const run = new RunFolder(cfg.out, isRoot(group));
  if (opts.resume) run.openForResume(group?.rank);
  else run.checkNew(cfg);

  setNumThreads(cfg.threads);
  manualSeed(cfg.seed);
  const method = methods[cfg.method]!;
  const trainData = await loadSplit(cfg, 'train');
  const split = trainingSplit(trainData, cfg, warn);
  for (const a of cfg.evalAttacks) {
    const why = checkAttackName(a, trainData.numClasses);
    if (why) throw new ConfigError('eval-attacks', why);
  }
  const model = modelFor(cfg.model, trainData, { device: cfg.device, dtype: cfg.dtype });
  if (!opts.resume) initModel(model, cfg, trainData.numClasses, log); // --init, --num-classes (fine-tuning)
  if (cfg.channelsLast) model.channelsLast();
  if (!opts.resume) run.create(cfg); // the inputs are checked: nothing is written for a run refused before here
  if (group) broadcastModule(model);
  const shard = group ? { rank: group.rank, count: ranks, pad: true } : undefined;
  const subset = split.val.length ? split.train : undefined;
  const loader = new Loader(trainData, { batchSize: cfg.batchSize / ranks, seed: cfg.seed, augment: cfg.augment, lastBatch: 'keep', prefetch: 3, ...(shard && { shard }), ...(subset && { subset }) });
  const batchesPerPass = group ? loader.length : numBatches(split.train.length, cfg.batchSize, 'keep');
  const passes = method.passes(cfg);
  const totalSteps = Math.min(passes * batchesPerPass * method.stepsPerBatch(cfg), cfg.maxSteps ?? Infinity);
  const schedule = makeSchedule({ name: cfg.lrSchedule, lr: cfg.lr, totalSteps });
  const opt = new SGD(model.parameters(), { lr: cfg.lr, momentum: cfg.momentum, weightDecay: cfg.weightDecay, nesterov: cfg.nesterov });
  const sync = gradientSync(model, group);
  // float16's range needs loss scaling (bfloat16 has float32's range and does not)
  const scaler = cfg.amp === 'fp16' ? new GradScaler() : undefined;
  const zeros = new ZeroShare();
  const flushMetrics = () => metrics.flush(position, opt.lr, { ...zeros.flush(), ...(scaler && { loss_scale: scaler.scaleValue, skipped_steps: scaler.skipped }) });
  const methodState = new Map<string, Tensor>();
  const position: LoopState = { step: 0, pass: 0, batch: 0, trainSeconds: 0, images: 0 };
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
      const l = loss.item();
      if (!Number.isFinite(l)) throw new TrainingError(`the training loss became ${l} at SGD step ${position.step}`);
      metrics.add(l, noGrad(() => logits.argmax(1).eq(y).sum().item()), y.size(0));
      position.images += y.size(0) * ranks;
      if (position.step % cfg.logEvery === 0) flushMetrics();
    },
  };
  method.init?.(ctx);
  const parts = { model, opt, methodState, position, group, batchSize: cfg.batchSize, ...(scaler && { scaler }) };
  const checkpoint = (path: string) => saveState(path, parts);

  if (opts.resume) {
    restoreState(run.path('latest'), parts);
    run.forgetAfter(position.step);
    log(`resuming ${run.dir} at SGD step ${position.step} (pass ${position.pass + 1}/${passes}, batch ${position.batch}/${batchesPerPass})`);
  }

  const validation = new Validation(trainData, split.val, { eps: cfg.eps, batchSize: cfg.evalBatchSize, seed: cfg.seed, device: cfg.device, dtype: cfg.dtype, ...(group && { rank: group }) });
  const interrupts = new Interrupts(warn, opts.handleSignals !== false);
  log(`freeadv train: ${method.label(cfg)} on ${cfg.dataset} (${split.train.length} images${split.val.length ? `; ${split.val.length} more held out for validation` : ''}), model ${cfg.model}, ε=${formatEps(cfg.eps)}, ${passes} pass(es) × ${batchesPerPass} batches, ${totalSteps} SGD steps, ${getNumThreads()} threads${group ? ` × ${ranks} processes (batch ${cfg.batchSize / ranks} each)` : ''}, run folder ${run.dir}`);
  const progress = new Progress({ total: totalSteps, label: 'train', stream: opts.progress ?? process.stderr, extra: () => `lr ${opt.lr.toExponential(2)}` });
  progress.tick(0, position.step);
  const done = () => position.step >= totalSteps;
  let skippedTrain = 0;
  try {
    outer: while (position.pass < passes && !done()) {
      const passStart = performance.now();
      for await (const b of loader.epoch(position.pass, { startBatch: position.batch })) {
        const before = position.step;
        if (b.shape[0] === 0) {
          position.batch = b.batch + 1; // every image of this batch was undecodable and left out (--skip-bad)
          continue;
        }
        const t0 = performance.now();
        scope(() => {
          const { x, y } = toTensors(b, cfg.device, cfg.dtype);
          method.batch(ctx, cfg.channelsLast ? x.channelsLast() : x, y);
        });
        position.trainSeconds += (performance.now() - t0) / 1000;
        position.batch = b.batch + 1;
        progress.tick(b.shape[0] * ranks * (position.step - before), position.step - before);
        // every rank must stop at the same step: a signal seen by any rank stops all
        if (group ? any(interrupts.requested !== undefined) : interrupts.requested) {
          interrupts.requested ??= 'SIGTERM'; // another rank's signal
          break outer;
        }
        if (done()) break;
        if (cfg.checkpointEvery > 0 && Math.floor(position.step / cfg.checkpointEvery) > Math.floor(before / cfg.checkpointEvery)) checkpoint(run.path('latest'));
      }
      // end of a pass: validation, best and latest checkpoints
      flushMetrics();
      const passSeconds = (performance.now() - passStart) / 1000;
      const val = await validation.run(model);
      run.appendMetrics({ step: position.step, pass: position.pass, ...(val && { val_clean_accuracy: val.clean_accuracy, val_robust_accuracy: val.robust_accuracy }), pass_seconds: passSeconds });
      position.pass++;
      position.batch = 0;
      const now: PassValidation | undefined = val && { pass: position.pass, ...val };
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
    }
  } catch (e) {
    progress.finish();
    if (e instanceof TrainingError) {
      const when = run.latestWritten();
      const last = when ? `the last good checkpoint is ${run.path('latest')} (written ${when})` : 'no checkpoint was written yet';
      throw new TrainingError(`${e.message}; training stopped and ${last}. Lower --lr or check the data.`);
    }
    throw e;
  } finally {
    interrupts.uninstall();
    skippedTrain = loader.stats().skipped;
    await loader.close();
    sync.dispose();
  }
  progress.finish();
  flushMetrics();
  checkpoint(run.path('latest'));
  if (interrupts.requested) {
    throw new InterruptedError(`stopped by ${interrupts.requested} at SGD step ${position.step}; checkpoint written. Resume with: freeadv train --resume ${cfg.out}`);
  }

  let ev: EvalResult | undefined;
  if (!opts.noEval) {
    const testData = await loadSplit(cfg, 'test');
    ev = await evaluateDataset(model, testData, {
      eps: cfg.eps, attacks: cfg.evalAttacks, limit: cfg.evalLimit, batchSize: cfg.evalBatchSize, restarts: cfg.evalRestarts,
      seed: cfg.seed, device: cfg.device, dtype: cfg.dtype, ...(group && { rank: group }),
      ...(cfg.attackAmp && { amp: ampType(cfg.amp) }),
    });
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
    passes: position.pass + (position.batch > 0 ? 1 : 0),
    sgd_steps: position.step,
    backward_passes: position.step * method.backwardPerStep(cfg),
    train_seconds: position.trainSeconds,
    images_per_second: position.images / Math.max(1e-9, position.trainSeconds),
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

/** Loss and accuracy on the training inputs since the last metrics line (summed over ranks when written). */
class StepMetrics {
  private loss = 0;
  private correct = 0;
  private seen = 0;
  private lastTime = performance.now();
  private lastImages = 0;
  constructor(private readonly run: RunFolder, private readonly group: dist.Rank | undefined) {}

  add(loss: number, correct: number, n: number): void {
    this.loss += loss * n;
    this.correct += correct;
    this.seen += n;
  }

  flush(position: LoopState, lr: number, extra: Record<string, number> = {}): void {
    if (this.group) [this.loss, this.correct, this.seen] = dist.allReduceNumbers([this.loss, this.correct, this.seen]);
    if (this.seen && this.run.writer) {
      const now = performance.now();
      this.run.appendMetrics({
        step: position.step,
        pass: position.pass,
        lr,
        loss: this.loss / this.seen,
        train_accuracy: this.correct / this.seen,
        images_per_second: ((position.images - this.lastImages) * 1000) / Math.max(1, now - this.lastTime),
        ...extra,
      });
      this.lastTime = now;
      this.lastImages = position.images;
    }
    this.loss = this.correct = this.seen = 0;
  }
}

/**
 * The share of exact-zero entries of the input gradient a method steps on (free training's g_x): where it is 0,
 * sign() is 0 and δ stays put. Low precision makes more of them (float16 underflow, bfloat16's short mantissa).
 */
class ZeroShare {
  private zero = 0;
  private n = 0;
  readonly total = { zero: 0, n: 0 };
  add(g: Tensor): void {
    const z = noGrad(() => scope(() => g.eq(0).sum().item()));
    this.zero += z;
    this.n += g.numel;
    this.total.zero += z;
    this.total.n += g.numel;
  }
  /** The share since the last flush, for a metrics line (nothing when no gradient was recorded). */
  flush(): { input_grad_zero_share?: number } {
    const r = this.n > 0 ? { input_grad_zero_share: this.zero / this.n } : {};
    this.zero = this.n = 0;
    return r;
  }
}

const pct = (v: number) => `${(v * 100).toFixed(2)}%`;
