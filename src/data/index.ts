// The data layer's entry: loadDataset() for every supported data set, plus the loader, progress display and
// readers. In-memory data sets (IDX, CIFAR) hold uint8 N×C×H×W pixels; ImageFolder data (ImageNet-sized)
// is lazy: files are decoded per batch by the loader.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { findCifar100BinDir, findCifar10BinDir, loadCifar100Bin, loadCifar10Bin } from './cifar.js';
import { loadCifar10Jpeg, type CifarJpgDataset } from './cifar-jpg.js';
import { CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES, NORMALIZATION, type DatasetName } from './constants.js';
import { DataError } from './errors.js';
import type { MemorySource } from './producer.js';
import { defaultFashionMnistDir, loadIdx } from './idx.js';
import { decodeAllEval, openImageFolder, type LazyImageDataset, type Skipped } from './imagefolder.js';

export { DataError } from './errors.js';
export * from './constants.js';
export { loadIdx, readIdxImages, readIdxLabels, defaultFashionMnistDir, FASHION_MNIST_DEFAULT_DIR, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC } from './idx.js';
export { loadCifar10Bin, loadCifar100Bin, readCifarBin } from './cifar.js';
export { loadCifar10Jpeg, fingerprintFiles, userCacheDir, readCacheHeader, type CifarJpgOptions, type CifarJpgDataset } from './cifar-jpg.js';
export {
  scanImageFolder, openImageFolder, decodeImage, decodeEval, decodeTrain, decodeAllEval, randomResizedCropParams, hwcToChw, hwcToRgb,
  trainPixels, evalPixels, parseImageHeader, readImageHeader, readImageHeaderSync,
  IMAGE_EXTENSIONS, type LazyImageDataset, type ImageFolderOptions, type ImageFolderScan, type CropBox, type Skipped, type RawPixels, type ImageHeader,
} from './imagefolder.js';
export { Loader, activeWorkers, workersStarted, type LoaderOptions, type LoaderStats, type LoaderDataset, type EpochOptions } from './loader.js';
export { numBatches, epochOrder, epochLength, shardOf, sampleRng, defaultWorkers, type Batch, type Layout, type LastBatch, type Shard } from './producer.js';
export { padCropFlip, padCropFlipParams, toFloat, type PadCropFlip } from './augment.js';
export { Rng, hashSeed, permutation, batchRng } from './prng.js';
export { prepareImageFolder, type PrepareOptions, type PrepareResult } from './prepare.js';
export { nextTurn } from './util.js';
export { Progress, formatDuration, type ProgressOptions, type ProgressStream } from './progress.js';

export type Split = 'train' | 'test';

/** uint8 pixels in memory (N×C×H×W, on a SharedArrayBuffer so loader workers read them without a copy). */
export interface InMemoryDataset extends MemorySource {
  name: DatasetName;
  split: Split;
  numClasses: number;
  classNames?: string[];
  mean: number[];
  std: number[];
  /** Where the data came from (folder), and for JPEG CIFAR-10 how the cache was used. */
  dataDir: string;
  /** The file the images were read from, when there is one file (IDX), for messages. */
  source?: string;
  format: 'idx' | 'cifar-bin' | 'cifar-jpg' | 'imagefolder';
  cache?: CifarJpgDataset['cache'];
  /** Images left out as undecodable (ImageFolder with skipBad). */
  skipped?: Skipped[];
}

export type Dataset = InMemoryDataset | LazyImageDataset;

export interface LoadDatasetOptions {
  name: DatasetName;
  /** Folder of the data; Fashion-MNIST defaults to Debian's dataset-fashion-mnist package. */
  dataDir?: string;
  split: Split;
  /** CIFAR-100: which labels (default 'fine', 100 classes; 'coarse' has 20). */
  cifar100Labels?: 'fine' | 'coarse';
  /** CIFAR-10 JPEG cache location (a folder), or false for none. */
  cacheDir?: string | false;
  /** Decodes in flight (CIFAR-10 JPEG prepare, eager ImageFolder). */
  concurrency?: number;
  /** ImageFolder: output size (default 224), eval resize (default 256 for 224), skip undecodable images. */
  size?: number;
  resize?: number;
  skipBad?: boolean;
  /** ImageFolder: loader worker threads that decode it (default cores − 1). */
  workers?: number;
  /** ImageFolder: decode everything now (eval transform) into an in-memory dataset instead of a lazy one. */
  eager?: boolean;
}

function requireDir(name: string, dir: string | undefined): string {
  if (!dir) throw new DataError(`data set '${name}' needs a data folder (--data-dir)`);
  if (!existsSync(dir)) throw new DataError('data folder does not exist', dir);
  if (!statSync(dir).isDirectory()) throw new DataError('not a folder', dir);
  return dir;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The folder of an ImageFolder split: <dir>/<split> (for 'test' also <dir>/val) when present, else <dir>. */
export function imageFolderSplitDir(dir: string, split: Split): string {
  const cands = split === 'train' ? ['train'] : ['test', 'val'];
  for (const c of cands) if (isDir(join(dir, c))) return join(dir, c);
  return dir;
}

export function loadDataset(opts: LoadDatasetOptions & { name: 'imagefolder'; eager?: false }): Promise<LazyImageDataset>;
export function loadDataset(opts: LoadDatasetOptions & { eager: true }): Promise<InMemoryDataset>;
export function loadDataset(opts: LoadDatasetOptions & { name: Exclude<DatasetName, 'imagefolder'> }): Promise<InMemoryDataset>;
export function loadDataset(opts: LoadDatasetOptions): Promise<Dataset>;
export async function loadDataset(opts: LoadDatasetOptions): Promise<Dataset> {
  const { name, split } = opts;
  if (split !== 'train' && split !== 'test') throw new DataError(`split must be 'train' or 'test', got '${String(split)}'`);
  switch (name) {
    case 'fashion-mnist':
    case 'mnist': {
      const dir = name === 'fashion-mnist' && !opts.dataDir ? defaultFashionMnistDir() : requireDir(name, opts.dataDir);
      const d = loadIdx(dir, split, 10);
      return {
        kind: 'memory', name, split, images: d.images, labels: d.labels, n: d.n, c: 1, h: d.h, w: d.w, numClasses: 10,
        classNames: [...(name === 'mnist' ? MNIST_CLASSES : FASHION_MNIST_CLASSES)],
        mean: [...NORMALIZATION[name].mean], std: [...NORMALIZATION[name].std], dataDir: dir, source: d.files.images, format: 'idx',
      };
    }
    case 'cifar10': {
      const dir = requireDir(name, opts.dataDir);
      const norm = { mean: [...NORMALIZATION.cifar10.mean], std: [...NORMALIZATION.cifar10.std] };
      if (findCifar10BinDir(dir)) {
        const d = loadCifar10Bin(dir, split);
        return { kind: 'memory', name, split, images: d.images, labels: d.labels, n: d.n, c: 3, h: 32, w: 32, numClasses: 10, classNames: [...CIFAR10_CLASSES], ...norm, dataDir: dir, format: 'cifar-bin' };
      }
      if (isDir(join(dir, split))) {
        const d = await loadCifar10Jpeg(dir, split, { cacheDir: opts.cacheDir, concurrency: opts.concurrency });
        return { kind: 'memory', name, split, images: d.images, labels: d.labels, n: d.n, c: 3, h: 32, w: 32, numClasses: 10, classNames: d.classNames, ...norm, dataDir: dir, format: 'cifar-jpg', cache: d.cache };
      }
      throw new DataError(`no CIFAR-10 data: expected data_batch_1..5.bin/test_batch.bin (here or in cifar-10-batches-bin/) or a JPEG layout ${split}/<class>/*.jpg`, dir);
    }
    case 'cifar100': {
      const dir = requireDir(name, opts.dataDir);
      if (!findCifar100BinDir(dir)) throw new DataError('no CIFAR-100 binary files (train.bin, test.bin) here or in cifar-100-binary/', dir);
      const which = opts.cifar100Labels ?? 'fine';
      const d = loadCifar100Bin(dir, split, which);
      return {
        kind: 'memory', name, split, images: d.images, labels: d.labels, n: d.n, c: 3, h: 32, w: 32, numClasses: which === 'fine' ? 100 : 20,
        mean: [...NORMALIZATION.cifar100.mean], std: [...NORMALIZATION.cifar100.std], dataDir: dir, format: 'cifar-bin',
      };
    }
    case 'imagefolder': {
      const dir = imageFolderSplitDir(requireDir(name, opts.dataDir), split);
      const lazy = openImageFolder(dir, { size: opts.size, resize: opts.resize, skipBad: opts.skipBad, workers: opts.workers });
      if (!opts.eager) return lazy;
      const d = await decodeAllEval(lazy, opts.concurrency);
      return {
        kind: 'memory', name, split, images: d.images, labels: d.labels, n: d.n, c: 3, h: lazy.size, w: lazy.size,
        numClasses: lazy.numClasses, classNames: lazy.classNames, mean: lazy.mean, std: lazy.std, dataDir: dir, format: 'imagefolder', skipped: d.skipped,
      };
    }
    default:
      throw new DataError(`unknown data set '${String(name)}' (fashion-mnist, mnist, cifar10, cifar100, imagefolder)`);
  }
}

/** A split of the data set a run's configuration names (its data folder, image size, --skip-bad and --workers). */
export function loadSplit(c: { dataset: DatasetName; dataDir?: string; imageSize?: number; skipBad?: boolean; workers?: number }, split: Split): Promise<Dataset> {
  return loadDataset({ name: c.dataset, dataDir: c.dataDir, split, size: c.imageSize, skipBad: c.skipBad, workers: c.workers });
}

/**
 * Checks that a split can be evaluated by a model trained on `train` (before any training, so that a run does not
 * fail only at its end): it has examples, images of the training images' channels and size, and the same classes.
 * A DataError names the split's file or folder.
 */
export function checkEvalSplit(train: Dataset, test: Dataset): void {
  const where = test.kind === 'memory' ? (test.source ?? test.dataDir) : test.root;
  const what = 'the test split';
  if (test.n === 0) throw new DataError(`${what} has no examples (the run's final evaluation needs some)`, where);
  if (test.c !== train.c || test.h !== train.h || test.w !== train.w)
    throw new DataError(`${what} has ${test.c}×${test.h}×${test.w} images, the training images are ${train.c}×${train.h}×${train.w}`, where);
  if (test.numClasses !== train.numClasses) throw new DataError(`${what} has ${test.numClasses} classes, the training split ${train.numClasses}`, where);
  const a = train.classNames, b = test.classNames;
  if (a && b && a.some((c, i) => b[i] !== c)) {
    const i = a.findIndex((c, k) => b[k] !== c);
    throw new DataError(`${what}'s classes differ from the training split's (class ${i} is '${b[i]}' here, '${a[i]}' in training)`, where);
  }
}

export { validationSplit, type TrainValSplit } from './split.js';
