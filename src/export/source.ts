// The model a trained-model command works on — a run folder's checkpoint, or a weights file with a model and a data
// set — built and loaded without reading the data set (its shape, classes and statistics are known by name), and
// described by the metadata that travels with an exported file: model, data set, classes, input, ε and threat
// model, and the run's accuracy with the attacks named.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ConfigError, formatEps } from '../options/index.js';
import { modelFor, type DataShape } from '../models/index.js';
import type { Module } from '../nn/index.js';
import { loadWeights, readModelWeights, CheckpointError } from '../io/index.js';
import {
  CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES, NORMALIZATION, imageFolderSplitDir, type DatasetName,
} from '../data/index.js';
import { readRunConfig, readSummary, runCheckpoint, classifierOf, RUN_FILES, type Summary } from '../train/index.js';

/** What an exported model is: enough to use it, and to know how robust it was measured to be. */
export interface ModelInfo {
  model: string;
  dataset: DatasetName;
  numClasses: number;
  classNames: string[];
  /** Input C×H×W; pixels in [0, 1], normalised inside the model with mean/std. */
  inputShape: [number, number, number];
  mean: number[];
  std: number[];
  /** L∞ radius in pixel units (the run's, or --eps); undefined for bare weights without --eps. */
  eps?: number;
  threatModel: 'linf';
  /** The weights file the model was loaded from. */
  weights: string;
  /** From a run folder: its folder and summary.json (when the run finished). */
  run?: string;
  method?: string;
  label?: string;
  summary?: Summary;
}

export interface ModelSource {
  run?: string;
  checkpoint?: 'best' | 'latest';
  weights?: string;
  model?: string;
  dataset?: DatasetName;
  /** Where the data are (image folders: class names and count). */
  dataDir?: string;
  imageSize?: number;
  eps?: number;
}

const listDirs = (dir: string) => {
  try {
    return readdirSync(dir).filter((d) => !d.startsWith('.') && statSync(join(dir, d)).isDirectory()).sort();
  } catch {
    return undefined;
  }
};

/** CIFAR-100's fine label names, when its binary distribution's fine_label_names.txt is in the data folder. */
function cifar100Names(dataDir: string | undefined): string[] | undefined {
  if (!dataDir) return undefined;
  for (const p of [join(dataDir, 'fine_label_names.txt'), join(dataDir, 'cifar-100-binary', 'fine_label_names.txt')]) {
    if (!existsSync(p)) continue;
    const names = readFileSync(p, 'utf8').split('\n').map((s) => s.trim()).filter(Boolean);
    if (names.length === 100) return names;
  }
  return undefined;
}

/**
 * A data set's shape, statistics and class names by name alone. Image folders: the class sub-folders of the data
 * folder's training split when it is there, else `numClasses` (read from the weights) with classes named 0…K−1.
 */
export function describeDataset(dataset: DatasetName, o: { dataDir?: string; imageSize?: number; numClasses?: () => number } = {}): DataShape & { classNames: string[] } {
  const numbered = (k: number) => Array.from({ length: k }, (_, i) => String(i));
  switch (dataset) {
    case 'fashion-mnist':
    case 'mnist': {
      const n = NORMALIZATION[dataset];
      return { c: 1, h: 28, numClasses: 10, mean: [...n.mean], std: [...n.std], classNames: [...(dataset === 'mnist' ? MNIST_CLASSES : FASHION_MNIST_CLASSES)] };
    }
    case 'cifar10':
    case 'cifar100': {
      const n = NORMALIZATION[dataset];
      const k = dataset === 'cifar10' ? 10 : 100;
      return { c: 3, h: 32, numClasses: k, mean: [...n.mean], std: [...n.std], classNames: dataset === 'cifar10' ? [...CIFAR10_CLASSES] : cifar100Names(o.dataDir) ?? numbered(k) };
    }
    case 'imagefolder': {
      const n = NORMALIZATION.imagenet;
      const folders = o.dataDir ? listDirs(imageFolderSplitDir(o.dataDir, 'train')) : undefined;
      const classNames = folders?.length ? folders : numbered(o.numClasses?.() ?? 1000);
      return { c: 3, h: o.imageSize ?? 224, numClasses: classNames.length, mean: [...n.mean], std: [...n.std], classNames };
    }
  }
}

/** The number of classes a weights file's classifier has (image folders whose data folder is not at hand). */
function classesInWeights(modelName: string, path: string): number {
  const probe = modelFor(modelName, { c: 3, h: 224, numClasses: 2, mean: [0, 0, 0], std: [1, 1, 1] });
  const head = classifierOf(probe)?.name;
  probe.dispose();
  const sd = readModelWeights(path);
  try {
    const w = head !== undefined ? sd[`${head}.weight`] : undefined;
    if (!w) throw new CheckpointError(`${path}: has no classifier weights '${head}.weight' for model ${modelName}`);
    return w.shape[0]!;
  } finally {
    for (const t of Object.values(sd)) t.dispose();
  }
}

/**
 * Builds the model of a run folder (its best or latest checkpoint) or of a weights file, loads the weights and
 * puts it in eval mode. The caller disposes the model. Bad input is refused naming the option or the file.
 */
export function openModel(src: ModelSource): { model: Module; info: ModelInfo } {
  let weights: string, modelName: string, dataset: DatasetName, dataDir: string | undefined, imageSize: number | undefined, eps: number | undefined;
  let run: string | undefined, summary: Summary | undefined, method: string | undefined, label: string | undefined;
  if (src.run !== undefined) {
    if (src.weights !== undefined) throw new ConfigError('weights', 'give either --run or --weights, not both');
    const cfg = readRunConfig(src.run, 'run');
    const ck = runCheckpoint(src.run, src.checkpoint ?? 'best');
    if (!ck) throw new ConfigError('run', `${src.run}: the run has no checkpoint yet (${RUN_FILES.latest})`);
    run = resolve(src.run);
    weights = ck;
    modelName = src.model ?? cfg.model;
    dataset = src.dataset ?? cfg.dataset;
    dataDir = src.dataDir ?? cfg.dataDir;
    imageSize = src.imageSize ?? cfg.imageSize;
    eps = src.eps ?? cfg.eps;
    summary = readSummary(src.run);
    method = cfg.method;
    label = summary?.label;
  } else {
    if (src.weights === undefined) throw new ConfigError('run', 'give --run <run folder>, or --weights <file> with --model and --dataset');
    if (src.model === undefined) throw new ConfigError('model', `is required with --weights (the architecture of ${src.weights})`);
    if (src.dataset === undefined) throw new ConfigError('dataset', `is required with --weights (the data set ${src.weights} was trained on)`);
    if (!existsSync(src.weights)) throw new ConfigError('weights', `${src.weights}: no such file`);
    if (statSync(src.weights).isDirectory()) throw new ConfigError('weights', `${src.weights}: is a folder, not a weights file (give --run for a run folder)`);
    weights = src.weights;
    modelName = src.model;
    dataset = src.dataset;
    dataDir = src.dataDir;
    imageSize = src.imageSize;
    eps = src.eps;
  }
  const shape = describeDataset(dataset, { dataDir, imageSize, numClasses: () => classesInWeights(modelName, weights) });
  const model = modelFor(modelName, shape);
  try {
    loadWeights(model, weights);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  const info: ModelInfo = {
    model: modelName, dataset, numClasses: shape.numClasses, classNames: shape.classNames, inputShape: [shape.c, shape.h, shape.h],
    mean: shape.mean, std: shape.std, threatModel: 'linf', weights: resolve(weights),
    ...(eps !== undefined && { eps }), ...(run && { run }), ...(method && { method }), ...(label && { label }), ...(summary && { summary }),
  };
  return { model, info };
}

/** The headline robust accuracy of a summary: the worst case over its attacks, and what that was. */
export function headlineRobust(s: Summary): { accuracy: number; attack: string } | undefined {
  const attacks = Object.keys(s.robust_accuracy).filter((k) => k !== 'worst_case');
  if (!attacks.length) return undefined;
  if (attacks.length === 1) return { accuracy: s.robust_accuracy[attacks[0]!]!, attack: attacks[0]! };
  return { accuracy: s.robust_accuracy.worst_case ?? Math.min(...attacks.map((a) => s.robust_accuracy[a]!)), attack: `worst case of ${attacks.join(', ')}` };
}

/**
 * The metadata written into exported files (safetensors __metadata__, ONNX metadata_props): string values,
 * numbers as JSON, lists and records as JSON.
 */
export function exportMetadata(info: ModelInfo, version: string): Record<string, string> {
  const m: Record<string, string> = {
    producer: `freeadv ${version}`,
    model: info.model,
    dataset: info.dataset,
    num_classes: String(info.numClasses),
    class_names: JSON.stringify(info.classNames),
    input_shape: JSON.stringify(info.inputShape),
    input_range: '[0, 1]',
    normalization: 'inside the model: (x - mean) / std per channel',
    mean: JSON.stringify(info.mean),
    std: JSON.stringify(info.std),
    threat_model: info.threatModel,
    source_weights: basename(info.weights),
  };
  if (info.eps !== undefined) {
    m.eps = String(info.eps);
    m.eps_text = formatEps(info.eps);
  }
  if (info.run) m.run = basename(info.run);
  if (info.method) m.method = info.method;
  if (info.label) m.label = info.label;
  const s = info.summary;
  if (s && Number.isFinite(s.clean_accuracy)) {
    m.clean_accuracy = String(s.clean_accuracy);
    const r = headlineRobust(s);
    if (r) {
      m.robust_accuracy = String(r.accuracy);
      m.robust_attack = r.attack;
    }
    m.robust_accuracies = JSON.stringify(s.robust_accuracy);
    m.eval_eps = String(s.eps);
    m.eval_examples = String(s.eval_examples);
    // the run's final evaluation measured the weights at the end of training (latest.safetensors)
    m.evaluated_weights = s.stopped_early ? `${RUN_FILES.best} (restored at the end of training)` : `${RUN_FILES.latest} (end of training)`;
  }
  return m;
}

/** One line about a model, for messages. */
export function describeModelInfo(info: ModelInfo): string {
  const parts = [info.model, info.dataset, `${info.numClasses} classes`, `input ${info.inputShape.join('×')} in [0, 1]`];
  if (info.eps !== undefined) parts.push(`ε=${formatEps(info.eps)} (L∞)`);
  const s = info.summary;
  if (s && Number.isFinite(s.clean_accuracy)) {
    const r = headlineRobust(s);
    parts.push(`clean ${(s.clean_accuracy * 100).toFixed(2)}%${r ? `, ${r.attack} ${(r.accuracy * 100).toFixed(2)}%` : ''}`);
  }
  return parts.join(' · ');
}
