// CIFAR-10 and CIFAR-100 binary releases. CIFAR-10: data_batch_1..5.bin, test_batch.bin, records of 1 label
// byte + 3072 pixel bytes (R plane, G plane, B plane; 32x32). CIFAR-100: train.bin, test.bin, records of a
// coarse label byte, a fine label byte and 3072 pixel bytes.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DataError } from './errors.js';
import { allocShared } from './util.js';

const PIXELS = 3 * 32 * 32;

export interface CifarBinDataset { images: Uint8Array; labels: Int32Array; n: number; c: 3; h: 32; w: 32; files: string[] }

/** Parses CIFAR binary files: labelBytes label bytes per record (label at labelIndex), then 3072 pixels. */
export function readCifarBin(files: string[], labelBytes: 1 | 2, labelIndex: 0 | 1, numClasses: number): CifarBinDataset {
  const rec = labelBytes + PIXELS;
  const bufs = files.map((f) => {
    let b: Buffer;
    try {
      b = readFileSync(f);
    } catch (e) {
      throw new DataError(`cannot read file (${(e as Error).message})`, f, { cause: e });
    }
    if (b.length === 0) throw new DataError('empty CIFAR binary file', f);
    if (b.length % rec !== 0) {
      throw new DataError(`truncated or not a CIFAR binary file: ${b.length} bytes is not a multiple of the ${rec}-byte record size (${Math.floor(b.length / rec)} whole records + ${b.length % rec} bytes)`, f);
    }
    return b;
  });
  const n = bufs.reduce((s, b) => s + b.length / rec, 0);
  const images = allocShared(n * PIXELS);
  const labels = new Int32Array(n);
  let k = 0;
  bufs.forEach((b, fi) => {
    const m = b.length / rec;
    for (let i = 0; i < m; i++, k++) {
      const o = i * rec;
      const l = b[o + labelIndex]!;
      if (l >= numClasses) throw new DataError(`label ${l} of record ${i} is out of range (${numClasses} classes)`, files[fi]);
      if (labelBytes === 2 && labelIndex === 1 && b[o]! >= 20) throw new DataError(`coarse label ${b[o]} of record ${i} is out of range (20 classes)`, files[fi]);
      labels[k] = l;
      images.set(b.subarray(o + labelBytes, o + rec), k * PIXELS);
    }
  });
  return { images, labels, n, c: 3, h: 32, w: 32, files };
}

/** The folder holding CIFAR-10 .bin files: dir itself or its cifar-10-batches-bin/ subfolder; undefined if neither. */
export function findCifar10BinDir(dir: string): string | undefined {
  for (const d of [dir, join(dir, 'cifar-10-batches-bin')]) {
    if (existsSync(join(d, 'data_batch_1.bin')) || existsSync(join(d, 'test_batch.bin'))) return d;
  }
  return undefined;
}

export function findCifar100BinDir(dir: string): string | undefined {
  for (const d of [dir, join(dir, 'cifar-100-binary')]) {
    if (existsSync(join(d, 'train.bin')) || existsSync(join(d, 'test.bin'))) return d;
  }
  return undefined;
}

function requireFiles(dir: string, names: string[]): string[] {
  return names.map((nm) => {
    const f = join(dir, nm);
    if (!existsSync(f) || !statSync(f).isFile()) throw new DataError(`missing CIFAR file ${nm}`, dir);
    return f;
  });
}

export function loadCifar10Bin(dir: string, split: 'train' | 'test'): CifarBinDataset {
  const d = findCifar10BinDir(dir);
  if (!d) throw new DataError('no CIFAR-10 binary files (data_batch_1..5.bin, test_batch.bin) here or in cifar-10-batches-bin/', dir);
  const names = split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
  return readCifarBin(requireFiles(d, names), 1, 0, 10);
}

export function loadCifar100Bin(dir: string, split: 'train' | 'test', labels: 'fine' | 'coarse' = 'fine'): CifarBinDataset {
  const d = findCifar100BinDir(dir);
  if (!d) throw new DataError('no CIFAR-100 binary files (train.bin, test.bin) here or in cifar-100-binary/', dir);
  const files = requireFiles(d, [split === 'train' ? 'train.bin' : 'test.bin']);
  return labels === 'fine' ? readCifarBin(files, 2, 1, 100) : readCifarBin(files, 2, 0, 20);
}
