// A run folder: what `train` writes and `eval`, `report` and `--resume` read. Every file read from one is
// checked: a run folder is something people hand each other.
//
//   config.json         the run's configuration (validated like the command line when read)
//   metrics.jsonl       one line per logged step and one per pass (validation accuracy)
//   latest.safetensors  the last checkpoint; best.safetensors the one with the best validation robust accuracy
//   summary.json        written at the end
import { mkdirSync, existsSync, readFileSync, writeFileSync, unlinkSync, readdirSync, rmSync, rmdirSync, statSync, openSync, writeSync, closeSync, renameSync, linkSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, S, check } from '../options/index.js';
import { writeJsonAtomic, writeFileAtomic, appendLine, appendTensorBoard, TENSORBOARD_FILE } from '../io/index.js';
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
  /** The memory format of the weights and inputs in training (--channels-last; absent in older summaries). */
  memory_format?: 'channels_last' | 'contiguous';
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

const ACC = S.num(0, 1);
const PASS_VALIDATION = S.obj({ pass: S.int(0), clean_accuracy: ACC, robust_accuracy: ACC });
/** summary.json as train writes it (fields added over time are optional, unknown ones left out). */
export const SUMMARY_SCHEMA = S.obj(
  {
    method: S.str(100), label: S.str(200), model: S.str(100), dataset: S.str(100),
    replays: S.int(0), eps: S.num(0), epochs: S.num(0), passes: S.int(0), sgd_steps: S.int(0), backward_passes: S.int(0),
    train_seconds: S.num(0), images_per_second: S.num(0), memory_format: S.choice('channels_last', 'contiguous'),
    clean_accuracy: S.numOrNull(0, 1), // null: not evaluated (JSON has no NaN)
    robust_accuracy: S.rec(ACC),
    attack_stages: S.rec(S.rec(ACC)),
    eval_examples: S.int(0), eval_seconds: S.num(0), val_examples: S.int(0),
    validation: S.obj({ attack: S.str(100), last: PASS_VALIDATION, best: PASS_VALIDATION }, ['last', 'best']),
    warnings: S.arr(S.str(), 1000),
    stopped_early: S.str(),
    run_dir: S.str(),
    distributed: S.obj({ world_size: S.int(1), grad_sync: S.choice('overlap', 'after-backward'), buckets: S.int(0), allreduce_bytes_per_step: S.num(0), allreduce_ms_per_step: S.num(0) }),
  },
  ['memory_format', 'attack_stages', 'val_examples', 'validation', 'warnings', 'stopped_early', 'distributed'],
);
/** A line of metrics.jsonl. */
export const METRIC_LINE_SCHEMA = S.obj(
  {
    step: S.int(0), pass: S.int(0), lr: S.num(0), loss: S.num(0), train_accuracy: ACC, images_per_second: S.num(0),
    val_clean_accuracy: ACC, val_robust_accuracy: ACC, guard_robust_accuracy: ACC, pass_seconds: S.num(0),
  },
  ['lr', 'loss', 'train_accuracy', 'images_per_second', 'val_clean_accuracy', 'val_robust_accuracy', 'guard_robust_accuracy', 'pass_seconds'],
);

/** The lock file of a run folder: one writer at a time (see RunFolder.lock). */
export const LOCK_FILE = '.lock';
/** The files a run writes, and the temporary files of interrupted atomic writes (src/io/atomic.ts). */
const RUN_OUTPUTS = new Set([...Object.values(RUN_FILES), TENSORBOARD_FILE, LOCK_FILE]);
const TMP_FILE = /^\..*\.tmp-\d+-[0-9a-f]+$/;
export interface LockHolder {
  pid: number;
  host: string;
  started: string;
}
const LOCK_SCHEMA = S.obj({ pid: S.int(1), host: S.str(300), started: S.str(100) });

function readLock(p: string): LockHolder | undefined {
  try {
    return check<LockHolder>(JSON.parse(readFileSync(p, 'utf8')), LOCK_SCHEMA, p);
  } catch {
    return undefined;
  }
}

/** Whether a process of this host is running (EPERM: it runs under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lock file: created exclusively (O_EXCL), holding its process's pid, host and start time. The lock of a process
 * that is gone (same host, pid not running) is taken over with a warning. One home for the run folder's writer
 * lock (RunFolder.lock) and the report cache's (src/report/cache.ts).
 */
export class LockFile {
  private held: LockHolder | undefined;
  /** label: what a warning names (the run folder, the lock file). */
  constructor(readonly path: string, private readonly label: string) {}

  /**
   * Takes the lock if it is free, or held by a process of this host that is gone: then undefined. Else what holds
   * it: its holder, or none when the file is not a lock (or is being written by a process taking it). Errors other
   * than "exists" (a folder that cannot be written) are thrown.
   */
  tryTake(warn: (s: string) => void): { holder: LockHolder | undefined } | undefined {
    if (this.held) return undefined;
    const p = this.path;
    const me: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(p, 'wx');
        try {
          writeSync(fd, JSON.stringify(me));
        } finally {
          closeSync(fd);
        }
        this.held = me;
        return undefined;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const h = readLock(p);
      if (!h || h.host !== me.host || alive(h.pid) || attempt > 0) return { holder: h };
      // stale: move it away, and put back what was moved if it was not that stale lock (another process took over first)
      const away = `${p}.stale-${process.pid}`;
      try {
        renameSync(p, away);
      } catch {
        continue; // gone already: try again
      }
      const moved = readLock(away);
      if (moved && (moved.pid !== h.pid || moved.started !== h.started)) {
        try {
          linkSync(away, p);
        } catch {
          // a third process holds it now; the next attempt says so
        }
      } else warn(`${this.label}: took over the lock of process ${h.pid} (started ${h.started}), which is no longer running`);
      rmSync(away, { force: true });
    }
  }

  /** Releases the lock, only if it is still this process's. */
  release(): void {
    if (!this.held) return;
    const h = readLock(this.path);
    if (h && h.pid === this.held.pid && h.started === this.held.started) rmSync(this.path, { force: true });
    this.held = undefined;
  }
}

/** A run folder of this process's job (rank 0 writes its files). */
export class RunFolder {
  readonly dir: string;
  private held = false;
  private readonly lockFile: LockFile;
  private createdDir = false;
  /** checkNew found a run of the same configuration without a checkpoint: create() replaces its files. */
  private restart = false;
  private readonly onExit = () => this.unlock();
  constructor(dir: string, readonly writer = true) {
    this.dir = resolve(dir);
    this.lockFile = new LockFile(join(this.dir, LOCK_FILE), this.dir);
  }
  path(file: keyof typeof RUN_FILES): string {
    return join(this.dir, RUN_FILES[file]);
  }
  has(file: keyof typeof RUN_FILES): boolean {
    return existsSync(this.path(file));
  }

  /** The folder must be, or be able to become, a folder: not a file, nor under one. */
  checkPath(option: string): void {
    if (!this.writer) return;
    if (existsSync(this.dir)) {
      if (!statSync(this.dir).isDirectory()) throw new ConfigError(option, `${this.dir} is a file, not a folder; give a new or empty folder`);
      return;
    }
    let up = dirname(this.dir);
    while (!existsSync(up) && up !== dirname(up)) up = dirname(up);
    if (existsSync(up) && !statSync(up).isDirectory()) throw new ConfigError(option, `${this.dir}: ${up} is a file, not a folder`);
  }

  /**
   * Before any work, without writing: a new run is written only into a new or empty folder. A folder that holds
   * anything else (a run, a finished run, files freeadv did not write) is refused, naming what it holds.
   */
  checkNew(cfg: TrainConfig): void {
    if (!this.writer || !existsSync(this.dir)) return;
    const held = readdirSync(this.dir).filter((f) => f !== LOCK_FILE || !this.held).sort();
    if (!held.length) return;
    const list = `${held.slice(0, 6).join(', ')}${held.length > 6 ? `, … (${held.length} entries)` : ''}`;
    if (this.has('latest')) throw new ConfigError('out', `${this.dir} already holds a run (${list}); use --resume ${cfg.out} or another --out`);
    if (this.has('summary')) throw new ConfigError('out', `${this.dir} holds a finished run (${list}); give another --out`);
    if (this.has('config')) {
      // a run of this configuration that stopped before its first checkpoint (killed, refused data) starts afresh
      const ours = held.every((f) => RUN_OUTPUTS.has(f) || TMP_FILE.test(f));
      if (!ours) throw new ConfigError('out', `${this.dir} holds files freeadv did not write beside a run that wrote no checkpoint (${list}); give another --out`);
      if (this.sameConfig(cfg)) {
        this.restart = true;
        return;
      }
      throw new ConfigError('out', `${this.dir} holds a run of another configuration that wrote no checkpoint (${list}); remove it or give another --out`);
    }
    throw new ConfigError('out', `${this.dir} is not empty (it holds ${list}); freeadv train writes only into a new or empty folder: give another --out`);
  }

  /** Whether the folder's config.json is `cfg` (but for --out and --threads, which do not change a run). */
  private sameConfig(cfg: TrainConfig): boolean {
    const norm = (c: TrainConfig) => JSON.stringify({ ...c, out: '', threads: 0 });
    try {
      return norm(readRunConfig(this.dir, 'out')) === norm(cfg);
    } catch {
      return false;
    }
  }

  /**
   * One writer per run folder: DIR/.lock is created exclusively (O_EXCL) and holds this process's pid, host and
   * start time. A lock whose process is gone (same host, pid not running) is taken over with a warning; a live
   * one is refused naming its pid. The lock goes with unlock(), called when training ends, fails or is
   * interrupted, and on process exit. Creates the folder if needed (and removes it again, if still empty, on unlock).
   */
  lock(option: string, warn: (s: string) => void): void {
    if (!this.writer || this.held) return;
    if (!existsSync(this.dir)) {
      try {
        mkdirSync(this.dir, { recursive: true });
        this.createdDir = true;
      } catch (e) {
        throw new ConfigError(option, `cannot create the run folder ${this.dir} (${(e as Error).message})`);
      }
    }
    const p = join(this.dir, LOCK_FILE);
    let busy;
    try {
      busy = this.lockFile.tryTake(warn);
    } catch (e) {
      this.removeIfCreated();
      throw new ConfigError(option, `run folder ${this.dir} is not writable (${(e as Error).message})`);
    }
    if (busy) {
      this.removeIfCreated();
      const h = busy.holder;
      if (!h) throw new ConfigError(option, `${this.dir} holds ${LOCK_FILE}, which is not a lock of freeadv train; remove it if no other program writes to the folder`);
      throw new ConfigError(option, `${this.dir} is in use by another freeadv train (pid ${h.pid} on ${h.host}, since ${h.started}); wait for it to end or give another --out${h.host !== hostname() ? ` (remove ${p} if that process is gone)` : ''}`);
    }
    this.held = true;
    process.on('exit', this.onExit);
  }

  /** Releases the lock (only if it is still this process's) and a folder created for it that stayed empty. */
  unlock(): void {
    if (!this.held) return;
    this.lockFile.release();
    this.held = false;
    process.off('exit', this.onExit);
    this.removeIfCreated();
  }

  private removeIfCreated(): void {
    if (!this.createdDir) return;
    try {
      rmdirSync(this.dir); // only if empty
    } catch {
      // it holds the run
    }
    this.createdDir = false;
  }

  /** A new run, once its inputs are checked: the folder is created (or must be writable); config.json is written. */
  create(cfg: TrainConfig): void {
    if (!this.writer) return;
    this.checkNew(cfg);
    this.ensureWritable();
    if (this.restart) for (const f of readdirSync(this.dir)) if ((RUN_OUTPUTS.has(f) && f !== LOCK_FILE) || TMP_FILE.test(f)) rmSync(join(this.dir, f), { force: true });
    writeJsonAtomic(this.path('config'), cfg);
    this.createdDir = false;
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
    for (const f of readdirSync(this.dir)) if (TMP_FILE.test(f)) rmSync(join(this.dir, f), { force: true });
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
  // a config.json written before --channels-last had a computed default ran NCHW: it keeps doing so (added last,
  // so that the keys keep the order they were written in)
  const c = json as Record<string, unknown>;
  return resolveConfig(Object.hasOwn(c, 'channelsLast') ? c : { ...c, channelsLast: false }, p);
}

/** The checkpoint to use: best.safetensors (falling back to latest) or latest; undefined when there is none. */
export function runCheckpoint(dir: string, which: 'best' | 'latest'): string | undefined {
  const order = which === 'best' ? [RUN_FILES.best, RUN_FILES.latest] : [RUN_FILES.latest];
  return order.map((f) => join(dir, f)).find((p) => existsSync(p));
}

/**
 * The lines of a metrics.jsonl, each checked against METRIC_LINE_SCHEMA (a line that is valid JSON but not a
 * metric line is refused, naming the file, the line and the field). Lines torn by a crash (not valid JSON) are
 * left out.
 */
export function readMetricLines(path: string): MetricLine[] {
  if (!existsSync(path)) return [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError('run', `${path}: cannot be read (${(e as Error).message})`);
  }
  const out: MetricLine[] = [];
  for (const [i, l] of text.split('\n').entries()) {
    if (!l.trim()) continue;
    let m: unknown;
    try {
      m = JSON.parse(l);
    } catch {
      continue; // a line torn by a crash
    }
    if (typeof m === 'object' && m !== null && (m as { pass?: unknown }).pass === undefined && 'epoch' in m) {
      // written before 'epoch' was renamed 'pass'
      m = { ...m, pass: (m as { epoch: unknown }).epoch };
    }
    out.push(check<MetricLine>(m, METRIC_LINE_SCHEMA, `${path} line ${i + 1}`));
  }
  return out;
}

/** summary.json, when the run has finished (undefined before), checked against SUMMARY_SCHEMA. */
export function readSummary(dir: string): Summary | undefined {
  const p = join(dir, RUN_FILES.summary);
  if (!existsSync(p)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new ConfigError('run', `${p}: not valid JSON (${(e as Error).message})`);
  }
  return check<Summary>(json, SUMMARY_SCHEMA, p);
}
