// ImageFolder (PNG via sharp, JPEG via the addon; transforms against PIL, bad input, lazy loading) and CIFAR-10 as JPEG ImageFolder
// with its decoded-pixel cache.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rejectsData } from './helpers/data.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync, cpSync, readdirSync, symlinkSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename, dirname } from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import {
  loadDataset, openImageFolder, decodeTrain, decodeImage, randomResizedCropParams, Rng, Loader, activeWorkers,
  CIFAR10_CLASSES, NORMALIZATION, readCacheHeader, parseImageHeader, readImageHeader, readImageHeaderSync, type Batch,
} from '../src/data/index.js';
import { toTensors } from '../src/data/tensor.js';
import { defaultConfig, epochOrder, makeBatch, sampleRng } from '../src/data/producer.js';
import { hasTorchPython, runPython, SKIP_NO_TORCH } from './helpers/python.js';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'freeadv-img-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** HWC RGB pixels with a per-image pattern. */
function rgb(w: number, h: number, seed: number): Buffer {
  const b = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) b[(y * w + x) * 3 + c] = (x * 13 + y * 7 + c * 80 + seed * 29) & 255;
  return b;
}
function chw(hwc: Buffer, w: number, h: number, channels = 3): Uint8Array {
  const out = new Uint8Array(3 * w * h);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[c * w * h + i] = hwc[i * channels + (channels < 3 ? 0 : c)]!;
  return out;
}
async function writeImage(file: string, hwc: Buffer, w: number, h: number, channels: 1 | 3 | 4 = 3): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const img = sharp(hwc, { raw: { width: w, height: h, channels } });
  await (file.toLowerCase().endsWith('.png') ? img.png() : img.jpeg({ quality: 95 })).toFile(file);
}
/** A PNG whose header claims w × h pixels, with almost no pixel data. */
function bombPng(w: number, h: number): Buffer {
  const crc32 = (b: Buffer) => {
    let c = ~0;
    for (const x of b) {
      c ^= x;
      for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type), data]);
    const head = Buffer.alloc(4), tail = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    tail.writeUInt32BE(crc32(td));
    return Buffer.concat([head, td, tail]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // 8-bit grey
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1000))), chunk('IEND', Buffer.alloc(0))]);
}
/** A batch's bytes in N×C×H×W order, whatever its layout. */
function chwOf(b: Batch): Uint8Array {
  if (b.layout === 'nchw') return b.x;
  const [n, c, h, w] = b.shape;
  const out = new Uint8Array(b.x.length);
  for (let i = 0; i < n; i++) for (let p = 0; p < h * w; p++) for (let ch = 0; ch < c; ch++) out[(i * c + ch) * h * w + p] = b.x[(i * h * w + p) * c + ch]!;
  return out;
}
async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('ImageFolder', () => {
  let root: string;
  const expected: { label: number; pix: Uint8Array }[] = [];
  before(async () => {
    // Classes on disk in unsorted creation order; labels must follow sorted names: ant=0, cat=1, dog=2.
    root = join(tmp, 'if');
    const spec: [string, string, 1 | 3 | 4][] = [['dog', 'b.png', 3], ['dog', 'a.png', 4], ['cat', 'x.png', 1], ['ant', 'sub/z.PNG', 3], ['ant', 'y.png', 3]];
    let seed = 0;
    for (const [cls, name, ch] of spec) {
      const base = rgb(12, 12, seed++);
      const hwc = Buffer.alloc(12 * 12 * ch);
      for (let i = 0; i < 144; i++) for (let c = 0; c < ch; c++) hwc[i * ch + c] = c < 3 ? base[i * 3 + c]! : 200;
      await writeImage(join(root, 'train', cls, name), hwc, 12, 12, ch);
      expected.push({ label: ['ant', 'cat', 'dog'].indexOf(cls), pix: chw(hwc, 12, 12, ch) });
    }
    writeFileSync(join(root, 'train', 'cat', 'notes.txt'), 'ignored');
  });

  test('PNG pixels and sorted-class labels round-trip exactly (grey replicated, alpha dropped)', async () => {
    const ds = await loadDataset({ name: 'imagefolder', dataDir: root, split: 'train', size: 12, resize: 12, eager: true });
    assert.equal(ds.kind, 'memory');
    assert.deepEqual(ds.classNames, ['ant', 'cat', 'dog']);
    assert.deepEqual([ds.n, ds.c, ds.h, ds.w, ds.numClasses], [5, 3, 12, 12, 3]);
    assert.deepEqual(ds.mean, [...NORMALIZATION.imagenet.mean]);
    // File order, classes round-robin: ant/sub/z.PNG, cat/x.png, dog/a.png, ant/y.png, dog/b.png.
    const order = [3, 2, 1, 4, 0];
    assert.deepEqual(Array.from(ds.labels), order.map((i) => expected[i]!.label));
    order.forEach((src, k) => assert.deepEqual(ds.images.subarray(k * 432, (k + 1) * 432), expected[src]!.pix, `image ${k}`));
  });

  test('lazy dataset + loader (eval) gives the same pixels; train transform is seeded and in range', async () => {
    // (Batches hold bytes, N×C×H×W from the loader — the addon writes the planes; for a while worker threads handed
    // over N×H×W×C rows for toTensors to permute — and toTensors makes the floats v / 255 of them, checked below;
    // makeBatch still builds N×H×W×C batches when asked for them.)
    const lazy = await loadDataset({ name: 'imagefolder', dataDir: root, split: 'train', size: 12, resize: 12 });
    assert.equal(lazy.kind, 'lazy');
    const [b] = await collect(new Loader(lazy, { batchSize: 8, shuffle: false }).epoch(0));
    assert.deepEqual(b!.shape, [5, 3, 12, 12]);
    assert.equal(b!.layout, 'nchw');
    const order = [3, 2, 1, 4, 0];
    const px = chwOf(b!);
    order.forEach((src, k) => assert.deepEqual(px.subarray(k * 432, (k + 1) * 432), expected[src]!.pix));
    const cfg = defaultConfig({ batchSize: 8, shuffle: false });
    const rows = await makeBatch(lazy, cfg, 0, epochOrder(lazy.n, cfg, 0), 0, 'nhwc');
    assert.equal(rows.layout, 'nhwc');
    assert.deepEqual(chwOf(rows), px);
    const t = toTensors(b!);
    assert.deepEqual(Array.from(t.x.toTypedArray() as Float32Array), Array.from(px, (v) => Math.fround(v / 255)));
    t.x.dispose();
    t.y.dispose();
    const tr = { batchSize: 2, seed: 4, augment: true } as const;
    const a1 = await collect(new Loader(lazy, tr).epoch(1));
    const a2 = await collect(new Loader(lazy, { ...tr, worker: false }).epoch(1));
    const a3 = await collect(new Loader(lazy, { ...tr, workers: 3 }).epoch(1));
    assert.deepEqual(a2.map((x) => x.layout), ['nchw', 'nchw', 'nchw']);
    assert.deepEqual(a1.map((x) => Array.from(chwOf(x))), a2.map((x) => Array.from(x.x)));
    assert.deepEqual(a3.map((x) => Array.from(x.x)), a1.map((x) => Array.from(x.x)));
    assert.deepEqual(a1.map((x) => x.shape[0]), [2, 2, 1]);
    assert.equal(activeWorkers(), 0);
  });

  test('eval transform: Resize(short side) + CenterCrop at the right offsets', async () => {
    const hwc = rgb(40, 20, 5);
    const file = join(tmp, 'geom', 'c', 'wide.png');
    await writeImage(file, hwc, 40, 20);
    // resize == short side: no resampling; centre crop 10x10 at left 15, top 5.
    const ds = await loadDataset({ name: 'imagefolder', dataDir: join(tmp, 'geom'), split: 'test', size: 10, resize: 20, eager: true });
    const full = chw(hwc, 40, 20);
    for (let c = 0; c < 3; c++) for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) {
      assert.equal(ds.images[c * 100 + y * 10 + x], full[c * 800 + (y + 5) * 40 + (x + 15)]);
    }
    // A real resize: 40x20 → short side 16 → 32x16, crop 16 at left 8: torchvision's Resize + CenterCrop on PIL.
    const r = await loadDataset({ name: 'imagefolder', dataDir: join(tmp, 'geom'), split: 'test', size: 16, resize: 16, eager: true });
    if (hasTorchPython()) {
      const want = Buffer.from(runPython(`
import sys
from PIL import Image
sys.stdout.write(Image.open(sys.argv[1]).convert('RGB').resize((32, 16), Image.BILINEAR).crop((8, 0, 24, 16)).tobytes().hex())
`, [file]).stdout, 'hex');
      assert.deepEqual(r.images, chw(want, 16, 16));
    }
  });

  test('train transform: RandomResizedCrop box + flip as drawn from the seeded stream', async () => {
    const file = join(tmp, 'geom', 'c', 'wide.png');
    for (const seed of [1, 2, 3, 4]) {
      const r = new Rng(seed);
      const box = randomResizedCropParams(40, 20, r);
      const flip = r.next() < 0.5;
      assert.ok(box.left >= 0 && box.top >= 0 && box.left + box.width <= 40 && box.top + box.height <= 20);
      const area = (box.width * box.height) / 800;
      assert.ok(area >= 0.05 && area <= 1.0, `area ${area}`);
      const got = new Uint8Array(192);
      await decodeTrain(file, 8, new Rng(seed), got);
      if (!hasTorchPython()) continue;
      // torchvision's crop + resize + flip on PIL
      const want = chw(Buffer.from(runPython(`
import sys, json
from PIL import Image
b, flip = json.loads(sys.argv[2]), sys.argv[3] == '1'
c = Image.open(sys.argv[1]).convert('RGB').crop((b['left'], b['top'], b['left'] + b['width'], b['top'] + b['height'])).resize((8, 8), Image.BILINEAR)
sys.stdout.write((c.transpose(Image.FLIP_LEFT_RIGHT) if flip else c).tobytes().hex())
`, [file, JSON.stringify(box), flip ? '1' : '0']).stdout, 'hex'), 8, 8);
      assert.deepEqual(got, want, `seed ${seed} box ${JSON.stringify(box)} flip ${flip}`);
    }
    // Statistics of the crop parameters on a 224-ish image.
    const r = new Rng(9);
    for (let i = 0; i < 500; i++) {
      const b = randomResizedCropParams(300, 200, r);
      const ar = b.width / b.height, area = (b.width * b.height) / 60000;
      assert.ok(area <= 1 && area >= 0.07, `area ${area}`);
      assert.ok(ar >= 0.7 && ar <= 1.45, `ratio ${ar}`);
    }
  });

  test('JPEG decodes close to the written pixels', async () => {
    const w = 16, h = 16;
    const hwc = Buffer.alloc(w * h * 3);
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) hwc[i * 3 + c] = 60 + c * 40 + (i % w) * 3;
    const file = join(tmp, 'jpg', 'k', 'smooth.jpg');
    await writeImage(file, hwc, w, h);
    const d = await decodeImage(file);
    const want = chw(hwc, w, h);
    let err = 0;
    for (let i = 0; i < want.length; i++) err += Math.abs(d.data[i]! - want[i]!);
    assert.ok(err / want.length < 3, `mean abs error ${err / want.length}`);
  });

  test('bad input: missing folder, no class folders, empty class, undecodable image (and skipBad)', async () => {
    const missing = join(tmp, 'missing');
    await rejectsData(loadDataset({ name: 'imagefolder', dataDir: missing, split: 'train' }), missing, /does not exist/);
    const flat = join(tmp, 'flat');
    mkdirSync(flat);
    writeFileSync(join(flat, 'a.png'), '');
    await rejectsData(() => openImageFolder(flat), flat, /no class sub-folders/);
    const emptyCls = join(tmp, 'emptycls');
    await writeImage(join(emptyCls, 'a', '1.png'), rgb(8, 8, 1), 8, 8);
    mkdirSync(join(emptyCls, 'b'));
    await rejectsData(() => openImageFolder(emptyCls), join(emptyCls, 'b'), /class folder 'b' has no images/);
    const bad = join(tmp, 'bad');
    for (let i = 0; i < 3; i++) await writeImage(join(bad, 'a', `${i}.png`), rgb(8, 8, i), 8, 8);
    const junk = join(bad, 'a', '1x.jpg');
    writeFileSync(junk, Buffer.from('this is not a jpeg'));
    const trunc = join(bad, 'a', '2x.png');
    const good = await sharp(rgb(8, 8, 3), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();
    writeFileSync(trunc, good.subarray(0, good.length - 30));
    await rejectsData(loadDataset({ name: 'imagefolder', dataDir: bad, split: 'train', size: 8, resize: 8, eager: true }), junk, /cannot decode image/);
    const ds = await loadDataset({ name: 'imagefolder', dataDir: bad, split: 'train', size: 8, resize: 8, eager: true, skipBad: true });
    assert.equal(ds.n, 3);
    assert.deepEqual(ds.skipped!.map((s) => basename(s.file)).sort(), ['1x.jpg', '2x.png']);
    // Lazy: the loader throws a DataError naming the file, or with skipBad drops and counts the images.
    const lazy = await loadDataset({ name: 'imagefolder', dataDir: bad, split: 'train', size: 8, resize: 8 });
    await rejectsData(collect(new Loader(lazy, { batchSize: 5, shuffle: false }).epoch(0)), junk, /cannot decode image/);
    assert.equal(activeWorkers(), 0);
    const skipping = new Loader({ ...lazy, skipBad: true }, { batchSize: 5, shuffle: false });
    const bs = await collect(skipping.epoch(0));
    assert.deepEqual(bs.map((b) => b.shape[0]), [3]);
    assert.equal(skipping.stats().skipped, 2);
  });

  test('several workers: a bad file stops the epoch with its name after the batches before it; special files refused; skipBad counts', async () => {
    const dir = join(tmp, 'bad-workers');
    for (let i = 0; i < 12; i++) await writeImage(join(dir, 'a', `${String(i).padStart(2, '0')}.jpg`), rgb(24, 20, i), 24, 20);
    const junk = join(dir, 'a', '07.jpg');
    writeFileSync(junk, 'not a jpeg');
    const lazy = await loadDataset({ name: 'imagefolder', dataDir: dir, split: 'train', size: 8, resize: 8 });
    for (const workers of [1, 3]) {
      const got: number[] = [];
      await rejectsData(async () => {
        for await (const b of new Loader(lazy, { batchSize: 2, shuffle: false, augment: true, workers }).epoch(0)) got.push(b.batch);
      }, junk, /cannot decode image \(Input file contains unsupported image format\)/);
      assert.deepEqual(got, [0, 1, 2], `${workers} workers`);
      assert.equal(activeWorkers(), 0);
      const skipping = new Loader({ ...lazy, skipBad: true }, { batchSize: 2, shuffle: false, augment: true, workers });
      const bs = await collect(skipping.epoch(0));
      assert.deepEqual(bs.map((b) => b.shape[0]), [2, 2, 2, 1, 2, 2]);
      assert.equal(skipping.stats().skipped, 1);
      assert.equal(activeWorkers(), 0);
    }
    // A FIFO (here behind a symbolic link, which the listing follows) is refused at once instead of blocking a
    // decoding thread forever; so is a device.
    const fifo = join(dir, 'fifo-target');
    execFileSync('mkfifo', [fifo]);
    rmSync(junk);
    symlinkSync(fifo, junk);
    const dev = join(dir, 'a', '09.jpg');
    rmSync(dev);
    symlinkSync('/dev/zero', dev);
    for (const worker of [true, false]) {
      await rejectsData(collect(new Loader(lazy, { batchSize: 4, shuffle: false, augment: true, worker, workers: 2 }).epoch(0)), junk, /cannot decode image \(not a regular file: a FIFO\)/);
      const ev = new Loader({ ...lazy, skipBad: true }, { batchSize: 4, shuffle: false, worker });
      assert.deepEqual((await collect(ev.epoch(0))).map((b) => b.shape[0]), [4, 3, 3]);
      assert.equal(ev.stats().skipped, 2);
    }
    await rejectsData(decodeTrain(dev, 8, new Rng(1), new Uint8Array(192)), dev, /not a regular file: a character device/);
    // A decompression bomb — a 74-byte PNG that says 30000 × 30000 — is refused by sharp's pixel limit, as before.
    const bomb = join(dir, 'a', '03.jpg');
    writeFileSync(bomb, bombPng(30000, 30000));
    for (const worker of [true, false]) {
      await rejectsData(collect(new Loader(lazy, { batchSize: 2, shuffle: false, augment: !worker, worker, workers: 3 }).epoch(0)), bomb, /cannot decode image \(Input image exceeds pixel limit\)/);
    }
    assert.equal(activeWorkers(), 0);
  });

  test('image headers: JPEG (baseline, progressive, EXIF, grey, CMYK-free) and PNG sizes as sharp reads them', async () => {
    const dir = join(tmp, 'headers');
    mkdirSync(dir, { recursive: true });
    const cases: [string, sharp.Sharp][] = [
      ['base.jpg', sharp(rgb(37, 23, 1), { raw: { width: 37, height: 23, channels: 3 } }).jpeg({ quality: 90 })],
      ['prog.jpg', sharp(rgb(64, 9, 2), { raw: { width: 64, height: 9, channels: 3 } }).jpeg({ progressive: true })],
      ['exif.jpg', sharp(rgb(30, 40, 3), { raw: { width: 30, height: 40, channels: 3 } }).withMetadata({ orientation: 6 }).jpeg()],
      ['grey.jpg', sharp(rgb(50, 20, 4), { raw: { width: 50, height: 20, channels: 3 } }).greyscale().jpeg()],
      ['big.png', sharp(rgb(300, 7, 5), { raw: { width: 300, height: 7, channels: 3 } }).png()],
      ['alpha.png', sharp(Buffer.alloc(5 * 6 * 4, 9), { raw: { width: 5, height: 6, channels: 4 } }).png()],
    ];
    for (const [name, img] of cases) {
      const file = join(dir, name);
      await img.toFile(file);
      const m = await sharp(file).metadata();
      const want = { format: m.format, w: m.width, h: m.height };
      assert.deepEqual(readImageHeaderSync(file), want, name);
      assert.deepEqual(await readImageHeader(file), want, name);
    }
    // A frame header beyond the first 64 KiB (a large APP segment before it) is still found.
    const base = await sharp(rgb(20, 10, 6), { raw: { width: 20, height: 10, channels: 3 } }).jpeg().toBuffer();
    const app = Buffer.alloc(4 + 65000);
    app.writeUInt16BE(0xffe9, 0);
    app.writeUInt16BE(65002, 2);
    const padded = join(dir, 'padded.jpg');
    writeFileSync(padded, Buffer.concat([base.subarray(0, 2), app, app, base.subarray(2)]));
    assert.deepEqual((await sharp(padded).metadata()).width, 20);
    assert.deepEqual(readImageHeaderSync(padded), { format: 'jpeg', w: 20, h: 10 });
    // Anything else is left to sharp: other formats, junk, empty and truncated files.
    assert.equal(parseImageHeader(Buffer.from('GIF89a....')), undefined);
    assert.equal(parseImageHeader(Buffer.alloc(0)), 'more');
    assert.equal(parseImageHeader(base.subarray(0, 40)), 'more');
    const webp = join(dir, 'x.webp');
    await sharp(rgb(8, 8, 1), { raw: { width: 8, height: 8, channels: 3 } }).webp().toFile(webp);
    assert.equal(readImageHeaderSync(webp), undefined);
  });

  for (const ext of ['jpg', 'png'])
  test(`training batches against PIL: RandomResizedCrop + flip on the same boxes, to the bit (${ext === 'jpg' ? 'JPEG: the addon decodes' : 'PNG: sharp decodes'}, the addon resizes)`, { skip: SKIP_NO_TORCH }, async (t) => {
    // A photo-like image (smooth colour fields, edges, noise); at output 128 with scale (0.04, 0.5) about half of the
    // boxes are no larger than the output on a side (upsampled there), the others reduced; no DCT scaling here.
    const W = 300, H = 220, size = 128;
    const px = Buffer.alloc(W * H * 3);
    const noise = new Rng(77);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(120 + 70 * Math.sin((x * (c + 1)) / 37 + y / 23) + (x > 150 && y > 100 ? 40 : 0) + 30 * (noise.next() - 0.5))));
    const root = join(tmp, `pil-${ext}`), file = join(root, 'a', `photo.${ext}`);
    mkdirSync(dirname(file), { recursive: true });
    const img = sharp(px, { raw: { width: W, height: H, channels: 3 } });
    await (ext === 'jpg' ? img.jpeg({ quality: 95 }) : img.png()).toFile(file);
    const lazy = openImageFolder(root, { size, scale: [0.04, 0.5] });
    const seed = 3, epochs = 24;
    const rows: Float32Array[] = [];
    const boxes: { box: ReturnType<typeof randomResizedCropParams>; flip: boolean }[] = [];
    for (const worker of [true, false]) {
      const l = new Loader(lazy, { batchSize: 1, seed, augment: true, worker, workers: 1 });
      for (let e = 0; e < epochs; e++) {
        const [b] = await collect(l.epoch(e));
        const tt = toTensors(b!);
        if (worker) rows.push(tt.x.toTypedArray() as Float32Array);
        else assert.deepEqual(tt.x.toTypedArray(), rows[e], `epoch ${e}: in-thread = worker`);
        tt.x.dispose();
        tt.y.dispose();
        if (worker) {
          const r = sampleRng(seed, e, 0);
          const box = randomResizedCropParams(W, H, r, lazy.scale, lazy.ratio);
          boxes.push({ box, flip: r.next() < 0.5 });
        }
      }
    }
    const out = join(root, 'pil.bin');
    runPython(`
import json, sys
from PIL import Image
boxes = json.loads(sys.argv[1]); size = int(sys.argv[2])
img = Image.open(sys.argv[3]).convert('RGB')
with open(sys.argv[4], 'wb') as f:
    for b in boxes:
        c = img.crop((b['left'], b['top'], b['left'] + b['width'], b['top'] + b['height'])).resize((size, size), Image.BILINEAR)
        if b['flip']: c = c.transpose(Image.FLIP_LEFT_RIGHT)
        f.write(c.tobytes())
`, [JSON.stringify(boxes.map((b) => ({ ...b.box, flip: b.flip }))), String(size), file, out]);
    const pil = readFileSync(out);
    const plane = size * size;
    // PIL's resize, ported (native/jpeg.cc): the same bytes whether upsampled, reduced or both. (Before, libtorch's
    // upsampling in toTensors was within 0.18 grey levels on average, max 1, libvips' reduce 0.26, max 2; and before
    // that libvips' affine upsampling of boxes smaller than the output on one side was 3.5 off on average, 34 at most.)
    let up = 0, oneSide = 0;
    const worst = { up: { mean: 0, max: 0 }, down: { mean: 0, max: 0 } };
    boxes.forEach(({ box }, e) => {
      const w = box.width <= size && box.height <= size ? worst.up : worst.down;
      if (w === worst.up) up++;
      else if (box.width <= size || box.height <= size) oneSide++;
      let sum = 0, max = 0;
      for (let c = 0; c < 3; c++)
        for (let i = 0; i < plane; i++) {
          const d = Math.abs(Math.round(rows[e]![c * plane + i]! * 255) - pil[(e * plane + i) * 3 + c]!);
          sum += d;
          max = Math.max(max, d);
        }
      w.mean = Math.max(w.mean, sum / (3 * plane));
      w.max = Math.max(w.max, max);
    });
    t.diagnostic(`${up}/${epochs} boxes upsampled on both sides (${oneSide} more on one side): worst mean abs difference to PIL ${worst.up.mean.toFixed(2)} grey levels, max ${worst.up.max}; reduced on a side or both: ${worst.down.mean.toFixed(2)}, max ${worst.down.max}`);
    assert.ok(up >= 3 && oneSide >= 1 && up + oneSide <= epochs - 3, `${up} of ${epochs} boxes upsampled, ${oneSide} on one side`);
    assert.deepEqual([worst.up.max, worst.down.max], [0, 0], `crops differ from PIL by ${JSON.stringify(worst)}`);
  });

  test('prepare: a bounded-size copy the loader reads like the original (freeadv prepare)', async () => {
    const src = join(tmp, 'prep-src');
    await sharp(rgb(600, 400, 1), { raw: { width: 600, height: 400, channels: 3 } }).jpeg({ quality: 95 }).toFile((mkdirSync(join(src, 'train', 'a'), { recursive: true }), join(src, 'train', 'a', 'big.jpg')));
    await writeImage(join(src, 'train', 'a', 'small.png'), rgb(40, 30, 2), 40, 30);
    await sharp(rgb(300, 500, 3), { raw: { width: 300, height: 500, channels: 3 } }).png().toFile((mkdirSync(join(src, 'train', 'b'), { recursive: true }), join(src, 'train', 'b', 'tall.png')));
    writeFileSync(join(src, 'train', 'b', 'junk.jpg'), 'not an image');
    await writeImage(join(src, 'val', 'a', 'v.jpg'), rgb(320, 240, 4), 320, 240);
    await writeImage(join(src, 'val', 'b', 'w.jpg'), rgb(64, 64, 5), 64, 64);
    execFileSync('mkfifo', [join(src, 'fifo')]);
    symlinkSync(join(src, 'fifo'), join(src, 'train', 'b', 'pipe.jpg'));
    const out = join(tmp, 'prep-out');
    const { run } = await import('../src/cli/main.js');
    const lines: string[] = [];
    assert.equal(await run(['prepare', src, '--out', out, '--max-side', '256', '--quality', '90'], (s) => lines.push(s), () => undefined), 0);
    assert.match(lines[0]!, /7 files .*: 3 resized to at most 256 px, 3 copied unchanged/);
    assert.match(lines.join('\n'), /1 undecodable file\(s\) copied unchanged: train\/b\/junk\.jpg/);
    assert.match(lines.join('\n'), /1 special file\(s\) left out: train\/b\/pipe\.jpg/);
    const size = async (f: string) => { const m = await sharp(join(out, f)).metadata(); return [m.format, m.width, m.height]; };
    assert.deepEqual(await size('train/a/big.jpg'), ['jpeg', 256, 171]);
    assert.deepEqual(await size('train/b/tall.png'), ['png', 154, 256]);
    assert.deepEqual(await size('val/a/v.jpg'), ['jpeg', 256, 192]);
    for (const f of ['train/a/small.png', 'train/b/junk.jpg', 'val/b/w.jpg']) assert.ok(readFileSync(join(src, f)).equals(readFileSync(join(out, f))), `${f} copied byte for byte`);
    assert.ok(!existsSync(join(out, 'train', 'b', 'pipe.jpg')));
    // The loader reads the copy: same classes and file order; the junk file refused or skipped as in the original.
    const a = openImageFolder(join(src, 'train')), b = openImageFolder(join(out, 'train'));
    assert.deepEqual(b.classNames, a.classNames);
    assert.deepEqual(b.files.map((f) => basename(f)), a.files.map((f) => basename(f)).filter((f) => f !== 'pipe.jpg'));
    const junk = join(out, 'train', 'b', 'junk.jpg');
    await rejectsData(collect(new Loader({ ...b, size: 32, h: 32, w: 32 }, { batchSize: 8, augment: true, workers: 2 }).epoch(0)), junk, /cannot decode image/);
    const bs = await collect(new Loader({ ...b, size: 32, h: 32, w: 32, skipBad: true }, { batchSize: 8, augment: true, workers: 2 }).epoch(0));
    assert.deepEqual(bs.map((x) => x.shape), [[3, 3, 32, 32]]);
    // Refusals: a folder that is not empty, a copy inside the source.
    assert.equal(await run(['prepare', src, '--out', out], () => undefined, (s) => lines.push(s)), 2);
    assert.match(lines.at(-1)!, /exists and is not an empty folder/);
    assert.equal(await run(['prepare', src, '--out', join(src, 'copy')], () => undefined, (s) => lines.push(s)), 2);
    assert.match(lines.at(-1)!, /must not be inside the image folder/);
    assert.equal(activeWorkers(), 0);
  });
});

const ARCHIVE = '/work/shared/data/cifar10-jpg.tar.gz';
test('each image file is opened once per decode, on the main thread and in worker threads (JPEG, PNG, WebP, TIFF; counted by strace)', async (t) => {
  // strace is required: the test fails (it does not skip) without it
  const strace = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));
  assert.ok(strace, 'strace not found: install it (bash scripts/setup.sh --tests, or apt-get install -y strace)');
  // ...but a sandbox may refuse ptrace itself (seccomp, no CAP_SYS_PTRACE): that is the machine, not the loader
  const probe = spawnSync(strace, ['-f', '-qq', '-e', 'trace=none', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0 && /Operation not permitted|PTRACE/i.test(probe.stderr)) {
    t.skip(`this machine refuses ptrace, so strace cannot count opens: ${probe.stderr.trim().split('\n')[0]}`);
    return;
  }
  assert.equal(probe.status, 0, `strace -e trace=none true: ${probe.stderr}`);
  const root = join(tmp, 'opens');
  const files: string[] = [];
  for (const [cls, name, img] of [
    ['a', 'one.jpg', (s: sharp.Sharp) => s.jpeg()],
    ['a', 'two.png', (s: sharp.Sharp) => s.png()],
    ['b', 'three.webp', (s: sharp.Sharp) => s.webp({ lossless: true })],
    ['b', 'four.tiff', (s: sharp.Sharp) => s.tiff()],
  ] as const) {
    mkdirSync(join(root, 'train', cls), { recursive: true });
    const file = join(root, 'train', cls, name);
    await img(sharp(Buffer.alloc(40 * 30 * 3, files.length * 50 + 20), { raw: { width: 40, height: 30, channels: 3 } })).toFile(file);
    files.push(file);
  }
  // one process: each epoch of the loader (eval and training transforms, on this thread and in a worker thread)
  // after a marker (the open of a file that does not exist), so that the opens of each are told apart
  const data = new URL('../src/data/index.js', import.meta.url).href;
  const script = `
    import { openSync } from 'node:fs';
    const { loadDataset, Loader } = await import(${JSON.stringify(data)});
    const lazy = await loadDataset({ name: 'imagefolder', dataDir: ${JSON.stringify(root)}, split: 'train', size: 16, resize: 20 });
    for (const [name, o] of [['main-eval', { worker: false }], ['main-train', { worker: false, augment: true }], ['worker-eval', { workers: 1 }], ['worker-train', { workers: 1, augment: true }]]) {
      try { openSync('/nonexistent-freeadv-mark-' + name); } catch {}
      for await (const b of new Loader(lazy, { batchSize: 4, shuffle: false, ...o }).epoch(0)) if (b.shape[0] !== 4) throw new Error('a batch of ' + b.shape[0]);
    }
    try { openSync('/nonexistent-freeadv-mark-end'); } catch {}`;
  const log = join(tmp, 'opens.strace'), child = join(tmp, 'opens.mjs');
  writeFileSync(child, script);
  execFileSync(strace, ['-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', log, process.execPath, child], { stdio: ['ignore', 'ignore', 'pipe'] });
  const opens: Record<string, Record<string, number>> = {};
  let phase = 'before';
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const mark = /nonexistent-freeadv-mark-([a-z-]+)/.exec(line);
    if (mark) phase = mark[1]!;
    for (const f of files) if (line.includes(`"${f}"`)) ((opens[phase] ??= {})[basename(f)] = (opens[phase]?.[basename(f)] ?? 0) + 1);
  }
  const once = Object.fromEntries(files.map((f) => [basename(f), 1]));
  assert.deepEqual(
    { 'main-eval': opens['main-eval'], 'main-train': opens['main-train'], 'worker-eval': opens['worker-eval'], 'worker-train': opens['worker-train'] },
    { 'main-eval': once, 'main-train': once, 'worker-eval': once, 'worker-train': once },
  );
});

describe('CIFAR-10 as JPEG ImageFolder', { skip: existsSync(ARCHIVE) ? false : `${ARCHIVE} not present` }, () => {
  let dir: string;
  before(() => {
    dir = join(tmp, 'cifar10-jpg');
    mkdirSync(dir);
    // A small subset: 20 train and 10 test images per class.
    execFileSync('tar', ['xzf', ARCHIVE, '-C', dir, '--wildcards', 'train/*/000?.jpg', 'train/*/001?.jpg', 'test/*/000?.jpg']);
  });

  test('loads the subset with labels in CIFAR-10 order, caches, reuses, invalidates', async (t) => {
    const t0 = performance.now();
    const a = await loadDataset({ name: 'cifar10', dataDir: dir, split: 'train' });
    const t1 = performance.now();
    assert.equal(a.format, 'cifar-jpg');
    assert.deepEqual([a.n, a.c, a.h, a.w, a.numClasses], [200, 3, 32, 32, 10]);
    assert.deepEqual(a.classNames, [...CIFAR10_CLASSES]);
    assert.equal(a.cache!.status, 'built');
    assert.equal(a.cache!.decoded, 200);
    assert.equal(a.cache!.path, join(dir, '.freeadv-cifar10-train.u8cache'));
    const counts = new Array(10).fill(0);
    for (const l of a.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(20));
    // Classes interleaved in CIFAR-10 order (so the first N images cover every class): image k is
    // train/<CIFAR10_CLASSES[k % 10]>/<floor(k / 10) as 4 digits>.jpg.
    for (const k of [0, 25, 199]) {
      assert.equal(a.labels[k], k % 10);
      const cls = CIFAR10_CLASSES[k % 10]!;
      const d = await decodeImage(join(dir, 'train', cls, `${String(Math.floor(k / 10)).padStart(4, '0')}.jpg`));
      assert.deepEqual(a.images.subarray(k * 3072, (k + 1) * 3072), d.data);
    }
    let lo = 255, hi = 0, sum = 0;
    for (const v of a.images) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
      sum += v;
    }
    const mean = sum / a.images.length / 255;
    assert.ok(lo <= 10 && hi >= 245 && mean > 0.3 && mean < 0.65, `range ${lo}..${hi}, mean ${mean}`);

    const b = await loadDataset({ name: 'cifar10', dataDir: dir, split: 'train' });
    const t2 = performance.now();
    assert.equal(b.cache!.status, 'hit');
    assert.equal(b.cache!.decoded, 0);
    assert.deepEqual(Buffer.from(b.images), Buffer.from(a.images));
    assert.deepEqual(b.labels, a.labels);
    t.diagnostic(`200 JPEGs: decode+cache ${(t1 - t0).toFixed(0)} ms, cached load ${(t2 - t1).toFixed(0)} ms`);

    const te = await loadDataset({ name: 'cifar10', dataDir: dir, split: 'test' });
    assert.equal(te.n, 100);
    assert.equal(te.cache!.status, 'built');

    // Change one file (content and mtime): the fingerprint changes and the cache is rebuilt.
    const victim = join(dir, 'train', 'cat', '0012.jpg');
    copyFileSync(join(dir, 'train', 'ship', '0015.jpg'), victim);
    const future = new Date(Date.now() + 5000);
    utimesSync(victim, future, future);
    const c = await loadDataset({ name: 'cifar10', dataDir: dir, split: 'train' });
    assert.equal(c.cache!.status, 'built');
    assert.equal(c.cache!.decoded, 200);
    assert.notEqual(c.cache!.fingerprint, a.cache!.fingerprint);
    assert.equal(readCacheHeader(c.cache!.path!).fingerprint, c.cache!.fingerprint);
    const k = 12 * 10 + 3; // cat/0012.jpg
    assert.equal(c.labels[k], 3);
    assert.deepEqual(c.images.subarray(k * 3072, (k + 1) * 3072), c.images.subarray((15 * 10 + 8) * 3072, (15 * 10 + 9) * 3072));
    assert.notDeepEqual(c.images.subarray(k * 3072, (k + 1) * 3072), a.images.subarray(k * 3072, (k + 1) * 3072));
    const d = await loadDataset({ name: 'cifar10', dataDir: dir, split: 'train' });
    assert.equal(d.cache!.status, 'hit');

    // A cache folder given explicitly; and the loader runs on the cached data.
    const cacheDir = join(tmp, 'cache');
    const e = await loadDataset({ name: 'cifar10', dataDir: dir, split: 'test', cacheDir });
    assert.equal(e.cache!.status, 'built');
    assert.equal(dirname(e.cache!.path!), cacheDir);
    const batches = await collect(new Loader(e, { batchSize: 32, augment: true, seed: 1 }).epoch(0));
    assert.deepEqual(batches.map((x) => x.shape[0]), [32, 32, 32, 4]);
  });

  test('class folders that are not CIFAR-10 names give a clear error', async () => {
    const bad = join(tmp, 'cifar-bad');
    cpSync(join(dir, 'test'), join(bad, 'test'), { recursive: true });
    renameSync(join(bad, 'test', 'airplane'), join(bad, 'test', 'plane'));
    await rejectsData(loadDataset({ name: 'cifar10', dataDir: bad, split: 'test' }), join(bad, 'test'), /missing: airplane; unexpected: plane/);
    assert.equal(readdirSync(join(bad, 'test')).length, 10);
  });
});
