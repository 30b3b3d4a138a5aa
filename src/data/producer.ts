// Batch production shared by the loader's worker threads and its in-thread fallback: epoch order, batch
// slicing, augmentation of in-memory uint8 data, and per-batch decoding of lazy ImageFolder data. Batches are
// bytes; toTensors converts them to floats with libtorch.
import { availableParallelism } from 'node:os';
import { padCropFlip, padCropFlipParams } from './augment.js';
import { DataError } from './errors.js';
import { hashSeed, permutation, Rng, STREAM_AUGMENT } from './prng.js';
import type { LazyImageDataset } from './imagefolder.js';
import { mapLimit } from './util.js';

export type LastBatch = 'keep' | 'drop';

/** Uint8 images in memory (N×C×H×W) with labels. */
export interface MemorySource {
  kind: 'memory';
  images: Uint8Array;
  labels: Int32Array;
  n: number;
  c: number;
  h: number;
  w: number;
}

export type Source = MemorySource | LazyImageDataset;

export interface LoaderConfig {
  batchSize: number;
  shuffle: boolean;
  seed: number;
  lastBatch: LastBatch;
  /** Training augmentation: pad+crop+flip for in-memory data, RandomResizedCrop+flip for lazy ImageFolders. */
  augment: boolean;
  /** Zero padding of the pad+crop augmentation (default 4). */
  pad: number;
  /** Horizontal flips (default true) in the in-memory augmentation. */
  flip: boolean;
  /** Decodes in flight per batch being built, for lazy data. */
  decodeConcurrency: number;
  /** This process's shard of every epoch (data-parallel training); absent: the whole epoch. */
  shard?: Shard;
  /** Only these examples of the data set (a split, e.g. training without the validation examples). */
  subset?: Int32Array;
}

/**
 * DistributedSampler semantics: the epoch's order (first `limit` positions if given) is padded by wrapping
 * around to a multiple of `count` when `pad` is set, and shard `rank` takes positions rank, rank+count, ...
 * With pad, every shard has the same length, and the union of the shards' k-th batches of size B/count is
 * the unsharded k-th batch of size B.
 */
export interface Shard {
  rank: number;
  count: number;
  pad: boolean;
  limit?: number;
}

/** The order of a batch's bytes: N×C×H×W (the loader's), or N×H×W×C (image folders' decoded rows, when asked for). */
export type Layout = 'nchw' | 'nhwc';

export interface Batch {
  /**
   * The pixels as bytes 0..255 in `layout` order; toTensors makes them N×C×H×W floats in [0, 1] (v / 255, the
   * very floats earlier versions handed over).
   */
  x: Uint8Array;
  /** [N, C, H, W], whatever the layout. */
  shape: [number, number, number, number];
  /** 'nchw' from the loader; 'nhwc' only when makeBatch is asked for it (image folders). */
  layout: Layout;
  y: Int32Array;
  /** Dataset indices of the batch's samples. */
  indices: Int32Array;
  /** The batch's position in its epoch. */
  batch: number;
  epoch: number;
  /** Samples of this batch left out because they could not be decoded (lazy data with skipBad). */
  skipped: number;
}

export function numBatches(n: number, batchSize: number, lastBatch: LastBatch): number {
  return lastBatch === 'drop' ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

export function epochOrder(total: number, cfg: Pick<LoaderConfig, 'shuffle' | 'seed'> & { shard?: Shard; subset?: Int32Array }, epoch: number): Int32Array {
  const n = cfg.subset?.length ?? total;
  let p: Int32Array;
  if (cfg.shuffle) p = permutation(n, cfg.seed, epoch);
  else {
    p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
  }
  if (cfg.subset) for (let i = 0; i < n; i++) p[i] = cfg.subset[p[i]!]!;
  return cfg.shard ? shardOf(p, cfg.shard) : p;
}

/** Shard `s` of an epoch order (see Shard). */
export function shardOf(order: Int32Array, s: Shard): Int32Array {
  if (!(Number.isInteger(s.count) && s.count >= 1 && Number.isInteger(s.rank) && s.rank >= 0 && s.rank < s.count)) throw new RangeError(`shard ${s.rank} of ${s.count} is not valid`);
  const m = Math.min(order.length, s.limit ?? order.length);
  const len = s.pad ? Math.ceil(m / s.count) : Math.max(0, Math.ceil((m - s.rank) / s.count));
  const out = new Int32Array(len);
  for (let i = 0; i < len; i++) out[i] = order[(i * s.count + s.rank) % Math.max(1, m)]!;
  return out;
}

/** Samples per epoch for this config (its shard's length when sharded). */
export function epochLength(total: number, cfg: { shard?: Shard; subset?: Int32Array }): number {
  const n = cfg.subset?.length ?? total;
  const s = cfg.shard;
  if (!s) return n;
  const m = Math.min(n, s.limit ?? n);
  return s.pad ? Math.ceil(m / s.count) : Math.max(0, Math.ceil((m - s.rank) / s.count));
}

/** The augmentation stream of one sample in one epoch: independent of batch size, order and resumption. */
export function sampleRng(seed: number, epoch: number, index: number): Rng {
  return new Rng(hashSeed(seed, epoch, index, STREAM_AUGMENT));
}

/**
 * Loader worker threads for an image folder when none are asked for: one per core but one (left to the
 * training thread), per process of a data-parallel job on this machine (LOCAL_WORLD_SIZE), at least 1.
 */
export function defaultWorkers(): number {
  const local = Math.max(1, Math.floor(Number(process.env.LOCAL_WORLD_SIZE)) || 1);
  return Math.max(1, Math.floor(availableParallelism() / local) - 1);
}

export function defaultConfig(partial: Partial<LoaderConfig> & { batchSize: number }): LoaderConfig {
  if (!Number.isInteger(partial.batchSize) || partial.batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${partial.batchSize}`);
  return {
    shuffle: true, seed: 0, lastBatch: 'keep', augment: false, pad: 4, flip: true,
    decodeConcurrency: Math.max(2, availableParallelism()),
    ...partial,
  };
}

/**
 * Produces batch b of an epoch whose sample order is `order`. Image folders' pixels come from the addon as planes
 * (N×C×H×W, copied as they are: no per-pixel JavaScript, no permute in toTensors), or with `layout` 'nhwc' as RGB
 * rows; in-memory data is always 'nchw'.
 */
export async function makeBatch(src: Source, cfg: LoaderConfig, epoch: number, order: Int32Array, b: number, layout: Layout = 'nchw'): Promise<Batch> {
  const start = b * cfg.batchSize;
  const end = Math.min(order.length, start + cfg.batchSize);
  const idx = order.subarray(start, end);
  const { c, h, w } = src;
  const per = c * h * w;
  if (src.kind === 'memory') {
    const n = idx.length;
    const x = new Uint8Array(n * per);
    const y = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const k = idx[i]!;
      y[i] = src.labels[k]!;
      if (cfg.augment) {
        const p = padCropFlipParams(sampleRng(cfg.seed, epoch, k), cfg.pad);
        if (!cfg.flip) p.flip = false;
        padCropFlip(src.images, k * per, c, h, w, p, cfg.pad, x, i * per);
      } else {
        x.set(src.images.subarray(k * per, (k + 1) * per), i * per);
      }
    }
    return { x, shape: [n, c, h, w], layout: 'nchw', y, indices: Int32Array.from(idx), batch: b, epoch, skipped: 0 };
  }
  // Lazy ImageFolder: decode this batch's files now.
  const { trainPixels, evalPixels, hwcToChw, hwcToRgb } = await import('./imagefolder.js');
  const planar = layout === 'nchw'; // the addon writes the planes itself
  const u8 = new Uint8Array(idx.length * per);
  const ok = await mapLimit(Array.from(idx), cfg.decodeConcurrency, async (k, i) => {
    try {
      const r = cfg.augment
        ? await trainPixels(src.files[k]!, src.size, sampleRng(cfg.seed, epoch, k), { scale: src.scale, ratio: src.ratio, planar })
        : await evalPixels(src.files[k]!, src.size, src.resize, planar);
      if (r.planar) u8.set(r.data, i * per);
      else (planar ? hwcToChw : hwcToRgb)(r.data, r.channels, r.h, r.w, u8, i * per);
      return true;
    } catch (e) {
      if (src.skipBad && e instanceof DataError) return false;
      throw e;
    }
  });
  const kept = ok.reduce((s, v) => s + (v ? 1 : 0), 0);
  const x = kept === idx.length ? u8 : new Uint8Array(kept * per);
  const y = new Int32Array(kept);
  const indices = new Int32Array(kept);
  let j = 0;
  ok.forEach((good, i) => {
    if (!good) return;
    if (x !== u8) x.set(u8.subarray(i * per, (i + 1) * per), j * per);
    y[j] = src.labels[idx[i]!]!;
    indices[j] = idx[i]!;
    j++;
  });
  return { x, shape: [kept, c, h, w], layout, y, indices, batch: b, epoch, skipped: idx.length - kept };
}
