// Reading a run folder for the report: its config, metrics, summary and model. Anything that is not a usable
// run folder is refused with a ReportError naming the folder and what is missing.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { RUN_FILES, loadData, type Summary } from '../train/loop.js';
import type { TrainConfig } from '../train/config.js';
import { createModel, checkModel } from '../models/index.js';
import { loadCheckpoint, disposeCheckpoint, CheckpointError } from '../io/index.js';
import { DataError, type Dataset } from '../data/index.js';
import { firstImages } from '../data/tensor.js';
import type { Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';

export class ReportError extends Error {
  override name = 'ReportError';
}

/** One line of metrics.jsonl: a training line (loss …) or an end-of-pass line (guard_robust_accuracy). */
export interface MetricLine {
  step: number;
  epoch: number;
  lr?: number;
  loss?: number;
  train_accuracy?: number;
  images_per_second?: number;
  guard_robust_accuracy?: number;
  pass_seconds?: number;
}

export interface RunInfo {
  dir: string;
  /** A short label: the folder's name. */
  name: string;
  config: TrainConfig;
  summary?: Summary;
  metrics: MetricLine[];
  /** The weights the analyses use: best.safetensors, else latest.safetensors (or as asked). */
  checkpoint: string;
}

/** Reads a run folder; throws ReportError when it is not one. */
export function readRun(dirIn: string, which: 'best' | 'latest' = 'best'): RunInfo {
  const dir = resolve(dirIn);
  if (!existsSync(dir)) throw new ReportError(`${dirIn}: no such folder`);
  if (!statSync(dir).isDirectory()) throw new ReportError(`${dirIn}: not a folder (give a run folder of freeadv train)`);
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new ReportError(`${dirIn}: not a run folder (no config.json)`);
  let config: TrainConfig;
  try {
    config = JSON.parse(readFileSync(cfgPath, 'utf8')) as TrainConfig;
  } catch (e) {
    throw new ReportError(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof config !== 'object' || config === null || typeof config.model !== 'string' || typeof config.dataset !== 'string' || typeof config.method !== 'string' || typeof config.eps !== 'number')
    throw new ReportError(`${cfgPath}: not a freeadv run config (needs method, model, dataset, eps)`);
  const order = which === 'best' ? [RUN_FILES.best, RUN_FILES.latest] : [RUN_FILES.latest];
  const ck = order.map((f) => join(dir, f)).find((p) => existsSync(p));
  if (!ck) throw new ReportError(`${dirIn}: the run has no checkpoint yet (${order.join(' or ')})`);
  let summary: Summary | undefined;
  const sPath = join(dir, RUN_FILES.summary);
  if (existsSync(sPath)) {
    try {
      summary = JSON.parse(readFileSync(sPath, 'utf8')) as Summary;
    } catch (e) {
      throw new ReportError(`${sPath}: not valid JSON (${(e as Error).message})`);
    }
  }
  const metrics: MetricLine[] = [];
  const mPath = join(dir, RUN_FILES.metrics);
  if (existsSync(mPath)) {
    for (const l of readFileSync(mPath, 'utf8').split('\n')) {
      if (!l.trim()) continue;
      try {
        const m = JSON.parse(l) as MetricLine;
        if (typeof m === 'object' && m !== null && typeof m.step === 'number') metrics.push(m);
      } catch {
        // a line torn by a crash: left out
      }
    }
  }
  return { dir, name: basename(dir), config, summary, metrics, checkpoint: ck };
}

/** The run's test set (its data folder, or `dataDir` when the data moved). */
export async function runTestData(run: RunInfo, dataDir?: string): Promise<Dataset> {
  try {
    return await loadData({ ...run.config, dataDir: dataDir ?? run.config.dataDir }, 'test');
  } catch (e) {
    if (e instanceof DataError) throw new ReportError(`${run.name}: cannot read its test data: ${e.message} (give --data-dir when the data moved)`);
    throw e;
  }
}

/** Builds the run's model and loads the checkpoint's weights. The caller disposes the model. */
export function loadRunModel(run: RunInfo, data: Dataset): Module {
  const o = { numClasses: data.numClasses, inChannels: data.c, size: data.h, mean: data.mean, std: data.std };
  const why = checkModel(run.config.model, o);
  if (why) throw new ReportError(`${run.name}: ${why}`);
  const model = createModel(run.config.model, o);
  let ck;
  try {
    ck = loadCheckpoint(run.checkpoint);
  } catch (e) {
    model.dispose();
    if (e instanceof CheckpointError) throw new ReportError(e.message);
    throw e;
  }
  try {
    model.loadStateDict(ck.model);
  } catch (e) {
    model.dispose();
    throw new ReportError(`${run.checkpoint}: ${(e as Error).message}`);
  } finally {
    disposeCheckpoint(ck);
  }
  return model;
}

/** The first n test images in file order (eval transform), as tensors the caller disposes. */
export async function firstTestImages(data: Dataset, n: number): Promise<{ x: Tensor; y: Tensor }> {
  const t = await firstImages(data, n);
  if (!t) throw new ReportError('the test set is empty');
  return t;
}

/** Class names of a data set (indices when it has none). */
export function classNames(data: Dataset): string[] {
  const names = (data as { classNames?: readonly string[] }).classNames;
  return names ? [...names] : Array.from({ length: data.numClasses }, (_, i) => String(i));
}
