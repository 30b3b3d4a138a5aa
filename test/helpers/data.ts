// Small real data sets for tests: the first images of Debian's Fashion-MNIST written back as IDX files.
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { loadDataset, DataError, type InMemoryDataset } from '../../src/data/index.js';

/** A deterministic byte pattern (differs with seed) standing for image pixels. */
export function pattern(len: number, seed: number): Uint8Array {
  const a = new Uint8Array(len);
  for (let i = 0; i < len; i++) a[i] = (i * 31 + seed * 17 + (i >> 5)) & 255;
  return a;
}

/** n CIFAR binary records (labelBytes label bytes, then 3072 pixel bytes from `pattern`); the pixels written too. */
export function cifarRecords(n: number, labelBytes: number, label: (i: number) => number[], seed: number): { buf: Buffer; pix: Uint8Array } {
  const rec = labelBytes + 3072;
  const buf = Buffer.alloc(n * rec);
  const pix = pattern(n * 3072, seed);
  for (let i = 0; i < n; i++) {
    buf.set(label(i), i * rec);
    buf.set(pix.subarray(i * 3072, (i + 1) * 3072), i * rec + labelBytes);
  }
  return { buf, pix };
}

function idx(images: Uint8Array, n: number, h: number, w: number): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt32BE(0x803, 0);
  head.writeUInt32BE(n, 4);
  head.writeUInt32BE(h, 8);
  head.writeUInt32BE(w, 12);
  return Buffer.concat([head, Buffer.from(images.subarray(0, n * h * w))]);
}
function idxLabels(labels: Int32Array, n: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(0x801, 0);
  head.writeUInt32BE(n, 4);
  return Buffer.concat([head, Buffer.from(Uint8Array.from(labels.subarray(0, n)))]);
}

/** A folder holding the first nTrain/nTest Fashion-MNIST images as uncompressed IDX files. */
export async function smallFashionMnist(nTrain: number, nTest: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'freeadv-fmnist-'));
  for (const [split, n, prefix] of [['train', nTrain, 'train'], ['test', nTest, 't10k']] as const) {
    const d = (await loadDataset({ name: 'fashion-mnist', split })) as InMemoryDataset;
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), idx(d.images, n, 28, 28));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), idxLabels(d.labels, n));
  }
  return dir;
}

/**
 * A folder in ImageFolder layout (train/<class>/<i>.png, test/<class>/<i>.png) holding real Fashion-MNIST images of
 * the given classes, written as 8-bit PNGs (the loader decodes them to RGB).
 */
export async function fashionImageFolder(classes: number[], nTrain: number, nTest: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'freeadv-imgfolder-'));
  for (const split of ['train', 'test'] as const) {
    const d = (await loadDataset({ name: 'fashion-mnist', split })) as InMemoryDataset;
    const want = split === 'train' ? nTrain : nTest;
    for (const c of classes) {
      const folder = join(dir, split, d.classNames![c]!.replace(/[^a-z]/gi, '_'));
      mkdirSync(folder, { recursive: true });
      let k = 0;
      for (let i = 0; i < d.n && k < want; i++) {
        if (d.labels[i] !== c) continue;
        const px = Buffer.from(d.images.subarray(i * 784, (i + 1) * 784));
        await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(folder, `${k++}.png`));
      }
    }
  }
  return dir;
}

/** Asserts that a load (a promise or a function) fails with a DataError naming `file` and matching `re`. */
export async function rejectsData(p: Promise<unknown> | (() => unknown), file: string, re: RegExp) {
  const fn = typeof p === 'function' ? async () => p() : () => p;
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message "${e.message}" should name ${file}`);
    assert.match(e.message, re);
    return true;
  });
}
