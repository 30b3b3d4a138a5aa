// IDX files (MNIST, Fashion-MNIST): big-endian header, magic 0x00000803 for images (N, rows, cols) and
// 0x00000801 for labels (N). Either gzipped (.gz) or raw.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DataError } from './errors.js';
import { allocShared, firstExisting, readMaybeGzip } from './util.js';

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxImages { images: Uint8Array; n: number; h: number; w: number }

/** Parses an IDX image file (magic 0x803, dims N, rows, cols). */
export function readIdxImages(file: string): IdxImages {
  const buf = readMaybeGzip(file);
  if (buf.length < 16) throw new DataError(`truncated IDX image file: ${buf.length} bytes, the header alone needs 16`, file);
  const magic = buf.readUInt32BE(0);
  if (magic !== IDX_IMAGES_MAGIC) {
    throw new DataError(`wrong magic number 0x${magic.toString(16).padStart(8, '0')} for an IDX image file (expected 0x00000803)`, file);
  }
  const n = buf.readUInt32BE(4), h = buf.readUInt32BE(8), w = buf.readUInt32BE(12);
  if (h === 0 || w === 0) throw new DataError(`IDX image file has zero-sized images (${h}x${w})`, file);
  const need = 16 + n * h * w;
  if (buf.length < need) throw new DataError(`truncated IDX image file: header says ${n} images of ${h}x${w} (${need} bytes), file has ${buf.length} bytes`, file);
  if (buf.length > need) throw new DataError(`IDX image file has ${buf.length - need} unexpected trailing bytes after ${n} images of ${h}x${w}`, file);
  const images = allocShared(n * h * w);
  images.set(buf.subarray(16, need));
  return { images, n, h, w };
}

/** Parses an IDX label file (magic 0x801, dim N); every label must be < numClasses. */
export function readIdxLabels(file: string, numClasses = 10): Int32Array {
  const buf = readMaybeGzip(file);
  if (buf.length < 8) throw new DataError(`truncated IDX label file: ${buf.length} bytes, the header alone needs 8`, file);
  const magic = buf.readUInt32BE(0);
  if (magic !== IDX_LABELS_MAGIC) {
    throw new DataError(`wrong magic number 0x${magic.toString(16).padStart(8, '0')} for an IDX label file (expected 0x00000801)`, file);
  }
  const n = buf.readUInt32BE(4);
  if (buf.length < 8 + n) throw new DataError(`truncated IDX label file: header says ${n} labels, file has ${buf.length - 8}`, file);
  if (buf.length > 8 + n) throw new DataError(`IDX label file has ${buf.length - 8 - n} unexpected trailing bytes after ${n} labels`, file);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const l = buf[8 + i]!;
    if (l >= numClasses) throw new DataError(`label ${l} of item ${i} is out of range (${numClasses} classes)`, file);
    labels[i] = l;
  }
  return labels;
}

function idxFile(dir: string, stem: string): string {
  const f = firstExisting([join(dir, stem + '.gz'), join(dir, stem)]);
  if (!f) throw new DataError(`missing ${stem}(.gz)`, dir);
  return f;
}

export interface IdxDataset { images: Uint8Array; labels: Int32Array; n: number; c: 1; h: number; w: number; files: { images: string; labels: string } }

/** Loads train-…/t10k-… images and labels from an MNIST-style folder (gzipped or raw). */
export function loadIdx(dir: string, split: 'train' | 'test', numClasses = 10): IdxDataset {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError('data folder does not exist', dir);
  const prefix = split === 'train' ? 'train' : 't10k';
  const imgFile = idxFile(dir, `${prefix}-images-idx3-ubyte`);
  const lblFile = idxFile(dir, `${prefix}-labels-idx1-ubyte`);
  const { images, n, h, w } = readIdxImages(imgFile);
  const labels = readIdxLabels(lblFile, numClasses);
  if (labels.length !== n) throw new DataError(`image/label count mismatch: ${imgFile} has ${n} images, ${lblFile} has ${labels.length} labels`, lblFile);
  return { images, labels, n, c: 1, h, w, files: { images: imgFile, labels: lblFile } };
}

export const FASHION_MNIST_DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';

/**
 * The folder of Fashion-MNIST when no --data-dir is given: FREEADV_FASHION_MNIST where it is set (a machine without
 * Debian's package), else the folder of Debian's dataset-fashion-mnist package, found with
 * `dpkg -L dataset-fashion-mnist` when dpkg knows the package, else /usr/share/datasets/fashion-mnist. Throws a
 * DataError saying how to install it, or naming the variable where it points at no IDX files.
 */
export function defaultFashionMnistDir(): string {
  const fromEnv = process.env.FREEADV_FASHION_MNIST;
  if (fromEnv) {
    if (['train-images-idx3-ubyte.gz', 'train-images-idx3-ubyte'].some((f) => existsSync(join(fromEnv, f)))) return fromEnv;
    throw new DataError(`FREEADV_FASHION_MNIST=${fromEnv}: no train-images-idx3-ubyte(.gz) there`, fromEnv);
  }
  try {
    const out = execFileSync('dpkg', ['-L', 'dataset-fashion-mnist'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const hit = out.split('\n').find((l) => /train-images-idx3-ubyte(\.gz)?$/.test(l.trim()));
    if (hit && existsSync(hit.trim())) return dirname(hit.trim());
  } catch {
    /* no dpkg or package unknown: fall back to the usual path */
  }
  if (existsSync(join(FASHION_MNIST_DEFAULT_DIR, 'train-images-idx3-ubyte.gz')) || existsSync(join(FASHION_MNIST_DEFAULT_DIR, 'train-images-idx3-ubyte'))) {
    return FASHION_MNIST_DEFAULT_DIR;
  }
  throw new DataError(
    'Fashion-MNIST not found. Install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), ' +
      'or pass --data-dir <folder with train-images-idx3-ubyte.gz …>',
    FASHION_MNIST_DEFAULT_DIR,
  );
}
