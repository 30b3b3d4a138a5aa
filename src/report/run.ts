// Reading a run folder for the report: its config, metrics, summary and model. Anything that is not a usable
// run folder is refused with a ReportError naming the folder and what is missing.
import { basename, join, resolve } from 'node:path';
import { ConfigError } from '../options/index.js';
import { RUN_FILES, readRunConfig, readSummary, readMetricLines, runCheckpoint, type Summary, type MetricLine, type TrainConfig } from '../train/index.js';
import { modelFor } from '../models/index.js';
import { loadWeights, CheckpointError } from '../io/index.js';
import { DataError, loadSplit, type Dataset } from '../data/index.js';
import type { Module } from '../nn/index.js';

export type { MetricLine };

export class ReportError extends Error {
  override name = 'ReportError';
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

/** A run folder's file errors as report errors (the message names the file). */
function asReportError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ConfigError) throw new ReportError(e.message.replace(/^--run: /, ''));
    throw e;
  }
}

/** Reads a run folder; throws ReportError when it is not one. */
export function readRun(dirIn: string, which: 'best' | 'latest' = 'best'): RunInfo {
  const dir = resolve(dirIn);
  const config = asReportError(() => readRunConfig(dir));
  const checkpoint = runCheckpoint(dir, which);
  if (!checkpoint) throw new ReportError(`${dirIn}: the run has no checkpoint yet (${which === 'best' ? `${RUN_FILES.best} or ${RUN_FILES.latest}` : RUN_FILES.latest})`);
  const summary = asReportError(() => readSummary(dir));
  const metrics = asReportError(() => readMetricLines(join(dir, RUN_FILES.metrics)));
  return { dir, name: basename(dir), config, ...(summary && { summary }), metrics, checkpoint };
}

/** The run's test set (its data folder, or `dataDir` when the data moved). */
export async function runTestData(run: RunInfo, dataDir?: string): Promise<Dataset> {
  try {
    return await loadSplit({ ...run.config, dataDir: dataDir ?? run.config.dataDir }, 'test');
  } catch (e) {
    if (e instanceof DataError) throw new ReportError(`${run.name}: cannot read its test data: ${e.message} (give --data-dir when the data moved)`);
    throw e;
  }
}

/** Builds the run's model and loads the checkpoint's weights. The caller disposes the model. */
export function loadRunModel(run: RunInfo, data: Dataset, device?: string): Module {
  let model: Module;
  try {
    model = modelFor(run.config.model, data, device ? { device } : undefined);
  } catch (e) {
    if (e instanceof ConfigError) throw new ReportError(`${run.name}: ${e.message.replace(/^--model: /, '')}`);
    throw e;
  }
  try {
    loadWeights(model, run.checkpoint);
  } catch (e) {
    model.dispose();
    if (e instanceof CheckpointError) throw new ReportError(e.message);
    throw e;
  }
  return model;
}

/** Class names of a data set (indices when it has none). */
export function classNames(data: Dataset): string[] {
  const names = (data as { classNames?: readonly string[] }).classNames;
  return names ? [...names] : Array.from({ length: data.numClasses }, (_, i) => String(i));
}
