// IDX and CIFAR binary readers: exact round-trips of generated files, every bad-input case, real Fashion-MNIST.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rejectsData, pattern, cifarRecords } from './helpers/data.js';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  DataError, loadDataset, loadIdx, readIdxImages, readIdxLabels, loadCifar10Bin, loadCifar100Bin, defaultFashionMnistDir,
  NORMALIZATION, CIFAR10_CLASSES,
} from '../src/data/index.js';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'freeadv-data-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function sub(name: string): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
}

function idxImages(n: number, h: number, w: number, pix: Uint8Array, magic = 0x803): Buffer {
  const b = Buffer.alloc(16 + pix.length);
  b.writeUInt32BE(magic, 0);
  b.writeUInt32BE(n, 4);
  b.writeUInt32BE(h, 8);
  b.writeUInt32BE(w, 12);
  b.set(pix, 16);
  return b;
}
function idxLabels(labels: number[], magic = 0x801): Buffer {
  const b = Buffer.alloc(8 + labels.length);
  b.writeUInt32BE(magic, 0);
  b.writeUInt32BE(labels.length, 4);
  b.set(labels, 8);
  return b;
}
/** Writes an MNIST-style folder; returns the pixels and labels written. */
function writeIdxDir(dir: string, gz: boolean, n = 7, h = 5, w = 4) {
  const train = pattern(n * h * w, 1), test = pattern(3 * h * w, 2);
  const trainL = Array.from({ length: n }, (_, i) => (i * 3) % 10), testL = [9, 0, 4];
  const put = (name: string, data: Buffer) => writeFileSync(join(dir, gz ? name + '.gz' : name), gz ? gzipSync(data) : data);
  put('train-images-idx3-ubyte', idxImages(n, h, w, train));
  put('train-labels-idx1-ubyte', idxLabels(trainL));
  put('t10k-images-idx3-ubyte', idxImages(3, h, w, test));
  put('t10k-labels-idx1-ubyte', idxLabels(testL));
  return { train, test, trainL, testL };
}


describe('IDX', () => {
  for (const gz of [true, false]) {
    test(`loads ${gz ? 'gzipped' : 'raw'} files exactly`, async () => {
      const dir = sub(gz ? 'idx-gz' : 'idx-raw');
      const w = writeIdxDir(dir, gz);
      const tr = loadIdx(dir, 'train');
      assert.deepEqual([tr.n, tr.c, tr.h, tr.w], [7, 1, 5, 4]);
      assert.deepEqual(Buffer.from(tr.images), Buffer.from(w.train));
      assert.deepEqual(Array.from(tr.labels), w.trainL);
      const ds = await loadDataset({ name: 'mnist', dataDir: dir, split: 'test' });
      assert.equal(ds.n, 3);
      assert.deepEqual(Buffer.from(ds.images), Buffer.from(w.test));
      assert.deepEqual(Array.from(ds.labels), w.testL);
      assert.deepEqual(ds.mean, [...NORMALIZATION.mnist.mean]);
      assert.equal(ds.numClasses, 10);
    });
  }

  test('wrong magic number', async () => {
    const dir = sub('idx-magic');
    writeIdxDir(dir, false);
    const f = join(dir, 'train-images-idx3-ubyte');
    writeFileSync(f, idxImages(7, 5, 4, pattern(140, 1), 0x801));
    await rejectsData(() => loadIdx(dir, 'train'), f, /magic number 0x00000801/);
    const lf = join(dir, 'train-labels-idx1-ubyte');
    writeFileSync(lf, idxLabels([1, 2], 0x803));
    await rejectsData(() => readIdxLabels(lf), lf, /magic/);
  });

  test('truncated files (raw and gzip)', async () => {
    const dir = sub('idx-trunc');
    const f = join(dir, 'img');
    writeFileSync(f, idxImages(7, 5, 4, pattern(140, 1)).subarray(0, 100));
    await rejectsData(() => readIdxImages(f), f, /truncated.*7 images/);
    writeFileSync(f, Buffer.alloc(9));
    await rejectsData(() => readIdxImages(f), f, /truncated/);
    const g = join(dir, 'img.gz');
    const gzd = gzipSync(idxImages(7, 5, 4, pattern(140, 1)));
    writeFileSync(g, gzd.subarray(0, gzd.length - 10));
    await rejectsData(() => readIdxImages(g), g, /gzip/);
    const l = join(dir, 'lbl');
    writeFileSync(l, idxLabels([1, 2, 3]).subarray(0, 10));
    await rejectsData(() => readIdxLabels(l), l, /truncated.*3 labels/);
  });

  test('image/label count mismatch', async () => {
    const dir = sub('idx-count');
    writeIdxDir(dir, true);
    const lf = join(dir, 'train-labels-idx1-ubyte.gz');
    writeFileSync(lf, gzipSync(idxLabels([1, 2, 3])));
    await rejectsData(() => loadIdx(dir, 'train'), lf, /count mismatch.*7 images.*3 labels/);
  });

  test('label out of range', async () => {
    const dir = sub('idx-range');
    const lf = join(dir, 'l');
    writeFileSync(lf, idxLabels([1, 2, 10]));
    await rejectsData(() => readIdxLabels(lf, 10), lf, /label 10 of item 2 is out of range/);
  });

  test('missing folder and missing file', async () => {
    const missing = join(tmp, 'nope');
    await rejectsData(loadDataset({ name: 'mnist', dataDir: missing, split: 'train' }), missing, /does not exist/);
    const dir = sub('idx-missing');
    await rejectsData(() => loadIdx(dir, 'train'), dir, /train-images-idx3-ubyte/);
  });
});

describe('CIFAR binary', () => {
  test('CIFAR-10: five train batches + test batch, plain and in cifar-10-batches-bin/', async () => {
    for (const nested of [false, true]) {
      const top = sub(nested ? 'c10-nested' : 'c10');
      const dir = nested ? join(top, 'cifar-10-batches-bin') : top;
      mkdirSync(dir, { recursive: true });
      const parts: Uint8Array[] = [];
      const labels: number[] = [];
      for (let b = 1; b <= 5; b++) {
        const r = cifarRecords(b, 1, (i) => [(b + i) % 10], b);
        writeFileSync(join(dir, `data_batch_${b}.bin`), r.buf);
        parts.push(r.pix);
        for (let i = 0; i < b; i++) labels.push((b + i) % 10);
      }
      const t = cifarRecords(4, 1, (i) => [9 - i], 9);
      writeFileSync(join(dir, 'test_batch.bin'), t.buf);
      const tr = await loadDataset({ name: 'cifar10', dataDir: top, split: 'train' });
      assert.equal(tr.format, 'cifar-bin');
      assert.deepEqual([tr.n, tr.c, tr.h, tr.w, tr.numClasses], [15, 3, 32, 32, 10]);
      assert.deepEqual(Buffer.from(tr.images), Buffer.concat(parts));
      assert.deepEqual(Array.from(tr.labels), labels);
      assert.deepEqual(tr.classNames, [...CIFAR10_CLASSES]);
      assert.deepEqual(tr.std, [...NORMALIZATION.cifar10.std]);
      const te = loadCifar10Bin(top, 'test');
      assert.deepEqual(Buffer.from(te.images), Buffer.from(t.pix));
      assert.deepEqual(Array.from(te.labels), [9, 8, 7, 6]);
    }
  });

  test('CIFAR-100: fine (default) and coarse labels', async () => {
    const dir = sub('c100');
    const r = cifarRecords(6, 2, (i) => [i % 20, 50 + i], 3);
    writeFileSync(join(dir, 'train.bin'), r.buf);
    writeFileSync(join(dir, 'test.bin'), cifarRecords(2, 2, () => [19, 99], 4).buf);
    const fine = await loadDataset({ name: 'cifar100', dataDir: dir, split: 'train' });
    assert.deepEqual(Array.from(fine.labels), [50, 51, 52, 53, 54, 55]);
    assert.equal(fine.numClasses, 100);
    assert.deepEqual(Buffer.from(fine.images), Buffer.from(r.pix));
    assert.deepEqual(fine.mean, [...NORMALIZATION.cifar100.mean]);
    const coarse = loadCifar100Bin(dir, 'train', 'coarse');
    assert.deepEqual(Array.from(coarse.labels), [0, 1, 2, 3, 4, 5]);
    const coarseDs = await loadDataset({ name: 'cifar100', dataDir: dir, split: 'test', cifar100Labels: 'coarse' });
    assert.equal(coarseDs.numClasses, 20);
    assert.deepEqual(Array.from(coarseDs.labels), [19, 19]);
  });

  test('truncated record, empty file, label out of range, missing batch', async () => {
    const dir = sub('c10-bad');
    for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), cifarRecords(2, 1, () => [1], b).buf);
    const f3 = join(dir, 'data_batch_3.bin');
    writeFileSync(f3, cifarRecords(2, 1, () => [1], 3).buf.subarray(0, 3073 + 1000));
    await rejectsData(() => loadCifar10Bin(dir, 'train'), f3, /truncated.*1 whole records \+ 1000 bytes/);
    writeFileSync(f3, Buffer.alloc(0));
    await rejectsData(() => loadCifar10Bin(dir, 'train'), f3, /empty/);
    writeFileSync(f3, cifarRecords(2, 1, (i) => [i === 1 ? 10 : 0], 3).buf);
    await rejectsData(() => loadCifar10Bin(dir, 'train'), f3, /label 10 of record 1 is out of range/);
    rmSync(f3);
    await rejectsData(() => loadCifar10Bin(dir, 'train'), dir, /missing CIFAR file data_batch_3.bin/);
    const d100 = sub('c100-bad');
    const tf = join(d100, 'train.bin');
    writeFileSync(tf, cifarRecords(1, 2, () => [3, 100], 1).buf);
    await rejectsData(() => loadCifar100Bin(d100, 'train'), tf, /label 100 of record 0/);
    const empty = sub('c10-empty');
    await rejectsData(loadDataset({ name: 'cifar10', dataDir: empty, split: 'train' }), empty, /no CIFAR-10 data/);
  });
});

test('FREEADV_FASHION_MNIST names the default Fashion-MNIST folder (a machine without the Debian package); a folder without the files is refused naming the variable', async () => {
  const dir = sub('fmnist-env');
  const images = new Uint8Array(3 * 784).map((_, i) => (i * 7) % 256);
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxImages(3, 28, 28, images));
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxLabels([4, 0, 9]));
  const before = process.env.FREEADV_FASHION_MNIST;
  try {
    process.env.FREEADV_FASHION_MNIST = dir;
    assert.equal(defaultFashionMnistDir(), dir);
    const d = await loadDataset({ name: 'fashion-mnist', split: 'train' });
    assert.equal(d.kind, 'memory');
    if (d.kind !== 'memory') return;
    assert.deepEqual([d.n, d.h, d.w, [...d.labels]], [3, 28, 28, [4, 0, 9]]);
    assert.deepEqual([...d.images.subarray(0, 4)], [0, 7, 14, 21]);
    const empty = sub('fmnist-env-empty');
    process.env.FREEADV_FASHION_MNIST = empty;
    assert.throws(() => defaultFashionMnistDir(), (e: unknown) => e instanceof DataError && e.message.includes(`FREEADV_FASHION_MNIST=${empty}`));
  } finally {
    if (before === undefined) delete process.env.FREEADV_FASHION_MNIST;
    else process.env.FREEADV_FASHION_MNIST = before;
  }
});

describe('real Fashion-MNIST', () => {
  let dir: string | undefined;
  try {
    dir = defaultFashionMnistDir();
  } catch (e) {
    assert.ok(e instanceof DataError && /apt-get install dataset-fashion-mnist/.test(e.message));
  }
  test('loads 60,000 / 10,000 images of 28x28', { skip: dir ? false : 'dataset-fashion-mnist not installed' }, async () => {
    assert.ok(existsSync(dir!));
    const t0 = performance.now();
    const tr = await loadDataset({ name: 'fashion-mnist', split: 'train' });
    const te = await loadDataset({ name: 'fashion-mnist', split: 'test' });
    const ms = performance.now() - t0;
    assert.deepEqual([tr.n, tr.c, tr.h, tr.w, tr.images.length], [60000, 1, 28, 28, 60000 * 784]);
    assert.deepEqual([te.n, te.h, te.w], [10000, 28, 28]);
    const counts = new Array(10).fill(0);
    for (const l of tr.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(6000));
    let sum = 0;
    for (let i = 0; i < tr.images.length; i++) sum += tr.images[i]!;
    const mean = sum / tr.images.length / 255;
    assert.ok(Math.abs(mean - NORMALIZATION['fashion-mnist'].mean[0]!) < 1e-3, `mean ${mean}`);
    assert.ok(ms < 5000, `loading took ${ms} ms`);
  });
});
