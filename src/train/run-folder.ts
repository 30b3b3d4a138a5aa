// A run folder: what `train` writes and `eval`, `report` and `--resume` read. Every file read from one is
// checked: a run folder is something people hand each other.
//
//   config.json         the run's configuration (validated like the command line when read)
//   metrics.jsonl       one line per logged step and one per pass (validation accuracy)
//   latest.safetensors  the last checkpoint; best.safetensors the one with the best validation robust accuracy
//   summary.json        written at the end
import { mkdirSync, existsSync, readFileSync, writeFileSync, unlinkSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../options/index.js';
import { writeJsonAtomic, writeFileAtomic, appendLine, appendTensorBoard } from '../io/index.js';
import { resolveConfig, type TrainConfig } from './options.js';

export const RUN_FILES = { config: 'config.json', metrics: 'metrics.jsonl', latest: 'latest.safetensors', best: 'best.safetensors', summary: 'summary.json' };

export interface Summary {
  method: string;
  /** The method with its settings, e.g. free-4, pgd-7. */
  label: string;
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
  /** --amp of the run (absent: float32), and the precision the final evaluation ran in (float32 unless --attack-amp). */
  amp?: string;
  evaluation_precision?: string;
  /** Free training: the share of exact-zero entries of the input gradient over this session's steps. */
  input_grad_zero_share?: number;
  /** --amp fp16: the gradient scaler's state at the end, and the steps it skipped in this session. */
  grad_scaler?: { scale: number; growth_tracker: number; skipped_steps_this_session: number };
  clean_accuracy: number;
  robust_accuracy: Record<string, number>;
  /** Ensembles (autoattack): robust accuracy after each of their attacks. */
  attack_stages?: Record<string, Record<string, number>>;
  eval_examples: number;
  eval_seconds: number;
  /** Training examples held out for validation (0: none). */
  val_examples: number;
  /** Validation (clean and PGD-10) after the last pass and at the best checkpoint. */
  validation?: { attack: string; last?: { pass: number; clean_accuracy: number; robust_accuracy: number }; best?: { pass: number; clean_accuracy: number; robust_accuracy: number } };
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

/** One line of metrics.jsonl: a training line (loss …) or an end-of-pass line (val_robust_accuracy …). */
export interface MetricLine {
  step: number;
  /** Passes over the training data completed before this line (0-based pass index). */
  pass: number;
  lr?: number;
  loss?: number;
  train_accuracy?: number;
  images_per_second?: number;
  val_clean_accuracy?: number;
  val_robust_accuracy?: number;
  /** Runs written before the validation split: PGD-10 accuracy on the first 512 training images. */
  guard_robust_accuracy?: number;
  pass_seconds?: number;
  /** Share of exact-zero input-gradient entries since the last line (free training). */
  input_grad_zero_share?: number;
  /** --amp fp16: the gradient scaler's scale, and the steps it skipped so far in this session. */
  loss_scale?: number;
  skipped_steps?: number;
}

/** A run folder of this process's job (rank 0 writes its files). */
export class RunFolder {
  readonly dir: string;
  constructor(dir: string, readonly writer = true) {
    this.dir = resolve(dir);
  }
  path(file: keyof typeof RUN_FILES): string {
    return join(this.dir, RUN_FILES[file]);
  }
  has(file: keyof typeof RUN_FILES): boolean {
    return existsSync(this.path(file));
  }

  /** Before any work, without writing: a new run's folder must not hold a run yet. */
  checkNew(cfg: TrainConfig): void {
    if (this.writer && this.has('latest')) throw new ConfigError('out', `${this.dir} already holds a run; use --resume ${cfg.out} or another --out`);
  }

  /** A new run, once its inputs are checked: the folder is created (or must be writable); config.json is written. */
  create(cfg: TrainConfig): void {
    if (!this.writer) return;
    this.checkNew(cfg);
    this.ensureWritable();
    writeJsonAtomic(this.path('config'), cfg);
  }

  /** An existing run to continue: it must have a checkpoint. */
  openForResume(rank?: number): void {
    if (!this.has('latest')) {
      throw new ConfigError('resume', rank ? `rank ${rank} cannot read ${this.path('latest')}: resuming with several machines needs the run folder on a file system every rank sees` : `${this.dir} has no checkpoint (${RUN_FILES.latest}) to resume from`);
    }
    if (this.writer) this.ensureWritable();
  }

  private ensureWritable(): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      const probe = join(this.dir, '.write-test');
      writeFileSync(probe, '');
      unlinkSync(probe);
    } catch (e) {
      throw new ConfigError('out', `run folder ${this.dir} is not writable (${(e as Error).message})`);
    }
  }

  appendMetrics(line: MetricLine & Record<string, unknown>): void {
    if (this.writer) appendLine(this.path('metrics'), JSON.stringify(line));
    if (this.writer) appendTensorBoard(this, line); // the same scalars as TensorBoard events (src/io/tensorboard.ts)
  }

  writeSummary(s: Summary): void {
    if (this.writer) writeJsonAtomic(this.path('summary'), s);
  }

  /**
   * After a crash: drops metric lines past the checkpoint's step (they will be recomputed identically) and
   * temporary files of interrupted checkpoint writes.
   */
  forgetAfter(step: number): void {
    if (!this.writer) return;
    const kept = readMetricLines(this.path('metrics')).filter((l) => l.step <= step);
    if (this.has('metrics')) writeFileAtomic(this.path('metrics'), kept.map((l) => JSON.stringify(l) + '\n').join(''));
    for (const f of readdirSync(this.dir)) if (/^\..*\.tmp-\d+-[0-9a-f]+$/.test(f)) rmSync(join(this.dir, f), { force: true });
  }

  /** When the latest checkpoint was written, for messages. */
  latestWritten(): string | undefined {
    return this.has('latest') ? statSync(this.path('latest')).mtime.toISOString() : undefined;
  }
}

/** Reads and validates a run folder's config.json (refused naming the file and the option). */
export function readRunConfig(dir: string, option = 'run'): TrainConfig {
  const p = join(dir, RUN_FILES.config);
  if (!existsSync(dir)) throw new ConfigError(option, `${dir}: no such folder`);
  if (!statSync(dir).isDirectory()) throw new ConfigError(option, `${dir}: not a folder (give a run folder of freeadv train)`);
  if (!existsSync(p)) throw new ConfigError(option, `${dir}: not a run folder (no ${RUN_FILES.config})`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new ConfigError(option, `${p}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(option, `${p}: expected an object of options`);
  return resolveConfig(json as Record<string, unknown>, p);
}

/** The checkpoint to use: best.safetensors (falling back to latest) or latest; undefined when there is none. */
export function runCheckpoint(dir: string, which: 'best' | 'latest'): string | undefined {
  const order = which === 'best' ? [RUN_FILES.best, RUN_FILES.latest] : [RUN_FILES.latest];
  return order.map((f) => join(dir, f)).find((p) => existsSync(p));
}

/** The lines of a metrics.jsonl (lines torn by a crash, or not metric lines, are left out). */
export function readMetricLines(path: string): MetricLine[] {
  if (!existsSync(path)) return [];
  const out: MetricLine[] = [];
  for (const l of readFileSync(path, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try {
      const m = JSON.parse(l) as MetricLine & { epoch?: number };
      if (typeof m !== 'object' || m === null || typeof m.step !== 'number') continue;
      if (m.pass === undefined && typeof m.epoch === 'number') {
        // written before 'epoch' was renamed 'pass'
        m.pass = m.epoch;
        delete m.epoch;
      }
      out.push(m);
    } catch {
      // a line torn by a crash
    }
  }
  return out;
}

/** summary.json, when the run has finished (undefined before). */
export function readSummary(dir: string): Summary | undefined {
  const p = join(dir, RUN_FILES.summary);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Summary;
  } catch (e) {
    throw new ConfigError('run', `${p}: not valid JSON (${(e as Error).message})`);
  }
}
