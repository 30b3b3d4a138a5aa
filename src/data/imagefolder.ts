// ImageFolder (torchvision layout: root/<class>/**/<image>; class names sorted → labels 0..K-1), decoded with
// sharp to RGB uint8 in CHW order, with torchvision's transforms:
//   train: RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) + RandomHorizontalFlip
//   eval:  Resize(resize, short side) + CenterCrop(size)
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { DataError } from './errors.js';
import { allocShared, mapLimit } from './util.js';
import type { Rng } from './prng.js';

export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff'];

export interface ImageFolderScan {
  root: string;
  classNames: string[];
  /** Absolute paths, grouped by class in label order, sorted within each class. */
  files: string[];
  labels: Int32Array;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function walkImages(dir: string, exts: readonly string[], out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walkImages(p, exts, out);
    else if ((e.isFile() || e.isSymbolicLink()) && exts.some((x) => e.name.toLowerCase().endsWith(x))) out.push(p);
  }
}

export interface ScanOptions {
  extensions?: readonly string[];
  /**
   * The required class names in label order. When given, the sub-folders must be exactly these names
   * (in any order on disk) and label i is classOrder[i]; otherwise the sorted folder names are used.
   */
  classOrder?: readonly string[];
}

/** Lists the classes and image files of an ImageFolder tree, classes interleaved (see below). */
export function scanImageFolder(root: string, opts: ScanOptions = {}): ImageFolderScan {
  const exts = opts.extensions ?? IMAGE_EXTENSIONS;
  if (!existsSync(root)) throw new DataError('image folder does not exist', root);
  if (!isDir(root)) throw new DataError('not a folder', root);
  const found = readdirSync(root).filter((d) => !d.startsWith('.') && isDir(join(root, d))).sort();
  if (found.length === 0) throw new DataError('no class sub-folders (expected one folder per class with images inside)', root);
  let classNames: string[];
  if (opts.classOrder) {
    const want = new Set(opts.classOrder);
    const extra = found.filter((d) => !want.has(d));
    const missing = opts.classOrder.filter((c) => !found.includes(c));
    if (extra.length || missing.length) {
      throw new DataError(
        `class folders do not match the expected classes [${opts.classOrder.join(', ')}]` +
          (missing.length ? `; missing: ${missing.join(', ')}` : '') + (extra.length ? `; unexpected: ${extra.join(', ')}` : ''),
        root,
      );
    }
    classNames = [...opts.classOrder];
  } else {
    classNames = found;
  }
  const perClass = classNames.map((cls) => {
    const dir = join(root, cls);
    const mine: string[] = [];
    walkImages(dir, exts, mine);
    if (mine.length === 0) throw new DataError(`class folder '${cls}' has no images (${exts.join(', ')})`, dir);
    return mine;
  });
  // Round-robin over the classes (the first file of every class, then the second, ...), so that the first N
  // examples of a split — an evaluation limit, a report gallery — cover every class, as the first
  // N of the official CIFAR test file do, instead of being the first class only.
  const files: string[] = [];
  const labels: number[] = [];
  const longest = Math.max(...perClass.map((f) => f.length));
  for (let i = 0; i < longest; i++) {
    perClass.forEach((mine, li) => {
      if (i < mine.length) {
        files.push(mine[i]!);
        labels.push(li);
      }
    });
  }
  return { root, classNames, files, labels: Int32Array.from(labels) };
}

/** Copies interleaved HWC pixels with 1-4 channels into 3-channel CHW (grey replicated, alpha dropped). */
export function hwcToChw(src: Uint8Array, channels: number, h: number, w: number, dst: Uint8Array, dstOffset = 0): void {
  const plane = h * w;
  if (channels === 3) {
    for (let i = 0, s = 0; i < plane; i++, s += 3) {
      dst[dstOffset + i] = src[s]!;
      dst[dstOffset + plane + i] = src[s + 1]!;
      dst[dstOffset + 2 * plane + i] = src[s + 2]!;
    }
    return;
  }
  const grey = channels <= 2;
  for (let i = 0, s = 0; i < plane; i++, s += channels) {
    const r = src[s]!;
    dst[dstOffset + i] = r;
    dst[dstOffset + plane + i] = grey ? r : src[s + 1]!;
    dst[dstOffset + 2 * plane + i] = grey ? r : src[s + 2]!;
  }
}

async function rawRgb(img: sharp.Sharp, file: string): Promise<{ data: Buffer; w: number; h: number; channels: number }> {
  try {
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels < 1 || info.channels > 4) throw new Error(`unsupported channel count ${info.channels}`);
    return { data, w: info.width, h: info.height, channels: info.channels };
  } catch (e) {
    throw new DataError(`cannot decode image (${(e as Error).message})`, file, { cause: e });
  }
}

async function dims(img: sharp.Sharp, file: string): Promise<{ w: number; h: number }> {
  try {
    const m = await img.metadata();
    if (!m.width || !m.height) throw new Error('no image dimensions');
    return { w: m.width, h: m.height };
  } catch (e) {
    throw new DataError(`cannot decode image (${(e as Error).message})`, file, { cause: e });
  }
}

function open(file: string): sharp.Sharp {
  // 8-bit sRGB output; 16-bit PNGs are reduced to 8 bits.
  return sharp(file, { failOn: 'error' }).toColourspace('srgb');
}

/** Decodes a whole image to 3-channel CHW uint8. */
export async function decodeImage(file: string): Promise<{ data: Uint8Array; h: number; w: number }> {
  const r = await rawRgb(open(file), file);
  const data = new Uint8Array(3 * r.h * r.w);
  hwcToChw(r.data, r.channels, r.h, r.w, data);
  return { data, h: r.h, w: r.w };
}

/** Eval transform: Resize(resize, short side) + CenterCrop(size), written as 3×size×size CHW into dst at offset. */
export async function decodeEval(file: string, size: number, resize: number, dst: Uint8Array, offset = 0): Promise<void> {
  const img = open(file);
  const { w, h } = await dims(img, file);
  // torchvision Resize(int): the short side becomes `resize`, the long side int(resize * long / short).
  let ow = w, oh = h;
  if (!(Math.min(w, h) === resize)) {
    if (w <= h) {
      ow = resize;
      oh = Math.floor((resize * h) / w);
    } else {
      oh = resize;
      ow = Math.floor((resize * w) / h);
    }
    img.resize(ow, oh, { fit: 'fill', kernel: 'linear' });
  }
  if (ow < size || oh < size) {
    throw new DataError(`image of ${w}x${h} resized to ${ow}x${oh} is smaller than the ${size}x${size} centre crop`, file);
  }
  const top = Math.round((oh - size) / 2), left = Math.round((ow - size) / 2);
  if (ow !== size || oh !== size) img.extract({ left, top, width: size, height: size });
  const r = await rawRgb(img, file);
  if (r.w !== size || r.h !== size) throw new DataError(`decoded to ${r.w}x${r.h}, expected ${size}x${size}`, file);
  hwcToChw(r.data, r.channels, r.h, r.w, dst, offset);
}

export interface CropBox { top: number; left: number; height: number; width: number }

/** torchvision's RandomResizedCrop.get_params: 10 tries at a random area/aspect, then a clamped central crop. */
export function randomResizedCropParams(w: number, h: number, rng: Rng, scale: [number, number] = [0.08, 1], ratio: [number, number] = [3 / 4, 4 / 3]): CropBox {
  const area = w * h;
  const logR = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let t = 0; t < 10; t++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const ar = Math.exp(rng.uniform(logR[0], logR[1]));
    const cw = Math.round(Math.sqrt(target * ar));
    const ch = Math.round(Math.sqrt(target / ar));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      return { top: rng.int(0, h - ch), left: rng.int(0, w - cw), height: ch, width: cw };
    }
  }
  const inRatio = w / h;
  let cw: number, ch: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    cw = w;
    ch = Math.round(cw / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    ch = h;
    cw = Math.round(ch * Math.max(ratio[0], ratio[1]));
  } else {
    cw = w;
    ch = h;
  }
  return { top: Math.floor((h - ch) / 2), left: Math.floor((w - cw) / 2), height: ch, width: cw };
}

export interface TrainTransformOptions {
  scale?: [number, number];
  ratio?: [number, number];
  /** Horizontal flip probability (default 0.5). */
  flip?: number;
}

/** Train transform: RandomResizedCrop(size) + horizontal flip, written as 3×size×size CHW into dst at offset. */
export async function decodeTrain(file: string, size: number, rng: Rng, dst: Uint8Array, offset = 0, opts: TrainTransformOptions = {}): Promise<void> {
  const img = open(file);
  const { w, h } = await dims(img, file);
  const box = randomResizedCropParams(w, h, rng, opts.scale, opts.ratio);
  const flip = rng.next() < (opts.flip ?? 0.5);
  if (box.left !== 0 || box.top !== 0 || box.width !== w || box.height !== h) img.extract(box);
  if (box.width !== size || box.height !== size) img.resize(size, size, { fit: 'fill', kernel: 'linear' });
  if (flip) img.flop();
  const r = await rawRgb(img, file);
  if (r.w !== size || r.h !== size) throw new DataError(`decoded to ${r.w}x${r.h}, expected ${size}x${size}`, file);
  hwcToChw(r.data, r.channels, r.h, r.w, dst, offset);
}

/** A lazily decoded ImageFolder: plain data (structured-cloneable), images are decoded per batch by the loader. */
export interface LazyImageDataset {
  kind: 'lazy';
  root: string;
  files: string[];
  labels: Int32Array;
  n: number;
  c: 3;
  h: number;
  w: number;
  numClasses: number;
  classNames: string[];
  mean: number[];
  std: number[];
  /** Output side length (crop size). */
  size: number;
  /** Short side for the eval transform's Resize (torchvision: 256 for size 224). */
  resize: number;
  scale: [number, number];
  ratio: [number, number];
  /** Skip (and count) undecodable images instead of throwing. */
  skipBad: boolean;
}

export interface ImageFolderOptions {
  size?: number;
  resize?: number;
  scale?: [number, number];
  ratio?: [number, number];
  skipBad?: boolean;
  extensions?: readonly string[];
  classOrder?: readonly string[];
  mean?: number[];
  std?: number[];
}

const IMAGENET_MEAN = [0.485, 0.456, 0.406], IMAGENET_STD = [0.229, 0.224, 0.225];

/** Scans an ImageFolder and returns a lazy dataset (nothing is decoded yet). */
export function openImageFolder(root: string, opts: ImageFolderOptions = {}): LazyImageDataset {
  const scan = scanImageFolder(root, { extensions: opts.extensions, classOrder: opts.classOrder });
  const size = opts.size ?? 224;
  const resize = opts.resize ?? Math.round((size * 256) / 224);
  return {
    kind: 'lazy', root, files: scan.files, labels: scan.labels, n: scan.files.length, c: 3, h: size, w: size,
    numClasses: scan.classNames.length, classNames: scan.classNames,
    mean: opts.mean ?? IMAGENET_MEAN, std: opts.std ?? IMAGENET_STD,
    size, resize, scale: opts.scale ?? [0.08, 1], ratio: opts.ratio ?? [3 / 4, 4 / 3], skipBad: opts.skipBad ?? false,
  };
}

export interface Skipped { file: string; reason: string }

/**
 * Decodes all images with the eval transform into one uint8 array (for small ImageFolders that fit in
 * memory). Undecodable images throw, or with skipBad are left out and listed in `skipped`.
 */
export async function decodeAllEval(ds: LazyImageDataset, concurrency = 8): Promise<{ images: Uint8Array; labels: Int32Array; n: number; skipped: Skipped[]; files: string[] }> {
  const per = 3 * ds.size * ds.size;
  const tmp = allocShared(ds.n * per);
  const ok = await mapLimit(ds.files, concurrency, async (f, i) => {
    try {
      await decodeEval(f, ds.size, ds.resize, tmp, i * per);
      return null;
    } catch (e) {
      if (!ds.skipBad) throw e;
      return { file: f, reason: (e as Error).message };
    }
  });
  const skipped = ok.filter((s): s is Skipped => s !== null);
  if (skipped.length === 0) return { images: tmp, labels: ds.labels, n: ds.n, skipped, files: ds.files };
  const keep = ok.map((s, i) => (s === null ? i : -1)).filter((i) => i >= 0);
  const images = allocShared(keep.length * per);
  keep.forEach((src, dstI) => images.set(tmp.subarray(src * per, (src + 1) * per), dstI * per));
  return { images, labels: Int32Array.from(keep, (i) => ds.labels[i]!), n: keep.length, skipped, files: keep.map((i) => ds.files[i]!) };
}

export function relativeName(root: string, file: string): string {
  return relative(root, file);
}
