// The addon's JPEG decoder (native/jpeg.cc, libjpeg-turbo) against PIL on the same files: full-scale and DCT-scaled
// decodes bit for bit, crops equal to the window of the full decode, training crops (RandomResizedCrop + flip) and
// the eval transform against torchvision's PIL operations, and bad input inside and outside the loader's workers.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jpegAvailable, jpegDecode, jpegDecodeAsync } from '../src/torch/index.js';
import { openImageFolder, decodeTrain, decodeEval, randomResizedCropParams, Rng, Loader, activeWorkers, type Batch } from '../src/data/index.js';
import { rejectsData } from './helpers/data.js';
import { runPython, SKIP_NO_TORCH } from './helpers/python.js';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'freeadv-jpeg-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

// Photo-like JPEGs written by PIL (libjpeg-turbo 2.1.5 on Debian 12): colour ramps, edges, noise; each chroma
// subsampling, progressive, restart markers, greyscale; plus one CMYK. PIL decodes each at full scale and with
// draft() at 1/2, 1/4 and 1/8 into .raw files beside it (RGB rows).
const KINDS = ['420', '422', '444', 'prog', 'restart', 'grey'] as const;
function writeJpegs(dir: string, w: number, h: number): void {
  runPython(`
import sys, numpy as np
from PIL import Image
d, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(5)
y, x = np.mgrid[0:h, 0:w]
a = np.stack([x * 255 // w, y * 255 // h, (x + y) * 3 % 256], -1).astype(np.float64)
a += 60 * np.sin(x / 7.0)[..., None] + 40 * ((x > w // 2) & (y > h // 3))[..., None] + rng.normal(0, 18, a.shape)
im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
im.save(d + '/420.jpg', quality=90, subsampling=2)
im.save(d + '/422.jpg', quality=90, subsampling=1)
im.save(d + '/444.jpg', quality=90, subsampling=0)
im.save(d + '/prog.jpg', quality=85, progressive=True)
im.save(d + '/restart.jpg', quality=90, restart_marker_blocks=3)
im.convert('L').save(d + '/grey.jpg', quality=90)
im.convert('CMYK').save(d + '/cmyk.jpg', quality=90)
for k in ['420', '422', '444', 'prog', 'restart', 'grey']:
    for s in [1, 2, 4, 8]:
        p = Image.open(d + '/' + k + '.jpg')
        if s > 1: p.draft('RGB', (p.size[0] // s, p.size[1] // s))
        p.convert('RGB').save(d + '/' + k + '.' + str(s) + '.png')
        np.asarray(p.convert('RGB')).tofile(d + '/' + k + '.' + str(s) + '.raw')
`, [dir, String(w), String(h)]);
}

const SKIP = !jpegAvailable() ? 'the native addon was built without libjpeg (apt-get install libjpeg62-turbo-dev; npm run build:native)' : SKIP_NO_TORCH;

describe('JPEG decoder (libjpeg-turbo in the addon)', { skip: SKIP }, () => {
  test('full-scale and DCT-scaled decodes equal PIL bit for bit; crops equal the window of the full decode', async () => {
    const dir = join(tmp, 'decode');
    mkdirSync(dir);
    const W = 333, H = 250;
    writeJpegs(dir, W, H);
    const rng = new Rng(11);
    for (const k of KINDS) {
      const bytes = readFileSync(join(dir, `${k}.jpg`));
      for (const d of [1, 2, 4, 8]) {
        const pil = readFileSync(join(dir, `${k}.${d}.raw`));
        const full = jpegDecode(bytes, { denom: d })!;
        assert.equal(full.denom, d);
        assert.deepEqual([full.w, full.h], [Math.ceil(W / d), Math.ceil(H / d)], `${k} 1/${d} size`);
        assert.ok(full.data.equals(pil), `${k} at 1/${d} differs from PIL's ${d > 1 ? 'draft() ' : ''}decode`);
        // windows: the box in stored pixels, at the scale [left/d, ceil((left+width)/d)); every edge case of iMCU
        // alignment (crop_scanline widens the columns, skip_scanlines the rows) is hit by 40 random boxes
        for (let t = 0; t < 40; t++) {
          const left = rng.int(0, W - 1), top = rng.int(0, H - 1);
          const width = rng.int(1, W - left), height = rng.int(1, H - top);
          const flip = t % 3 === 0;
          const c = jpegDecode(bytes, { left, top, width, height, denom: d, flip })!;
          const x0 = Math.floor(left / d), y0 = Math.floor(top / d);
          assert.deepEqual([c.w, c.h], [Math.min(full.w, Math.ceil((left + width) / d)) - x0, Math.min(full.h, Math.ceil((top + height) / d)) - y0]);
          for (let y = 0; y < c.h; y++)
            for (let x = 0; x < c.w; x++) {
              const sx = flip ? c.w - 1 - x : x;
              for (let ch = 0; ch < 3; ch++)
                if (c.data[(y * c.w + x) * 3 + ch] !== full.data[((y0 + y) * full.w + x0 + sx) * 3 + ch])
                  assert.fail(`${k} at 1/${d}: box ${JSON.stringify({ left, top, width, height, flip })} differs from the full decode at (${x}, ${y})`);
            }
        }
      }
      // the async twin (libuv's pool) decodes the same
      const a = (await jpegDecodeAsync(bytes, { left: 17, top: 9, width: 200, height: 150, outW: 64, outH: 48, flip: true }))!;
      const s = jpegDecode(bytes, { left: 17, top: 9, width: 200, height: 150, outW: 64, outH: 48, flip: true })!;
      assert.ok(a.data.equals(s.data) && a.w === 64 && a.h === 48);
    }
    // CMYK is left to the caller (sharp)
    assert.equal(jpegDecode(readFileSync(join(dir, 'cmyk.jpg'))), null);
  });

  test('training crops and the eval transform against torchvision on PIL: exact at full scale, stated error when DCT-scaled', async (t) => {
    // A 1,000 × 760 image (noisy: the hardest case for DCT scaling) and output 224: boxes from 8% to 100% of the
    // area, decoded at 1/1 or 1/2 scale.
    const dir = join(tmp, 'train');
    mkdirSync(join(dir, 'root', 'a'), { recursive: true });
    const W = 1000, H = 760, size = 224;
    writeJpegs(dir, W, H);
    const file = join(dir, 'root', 'a', 'photo.jpg');
    copyFileSync(join(dir, '420.jpg'), file);
    const bytes = readFileSync(file);
    const n = 40;
    const draws: { left: number; top: number; width: number; height: number; flip: boolean }[] = [];
    const got: Uint8Array[] = [];
    const denoms: number[] = [];
    for (let seed = 0; seed < n; seed++) {
      const r = new Rng(seed);
      const box = randomResizedCropParams(W, H, r);
      const flip = r.next() < 0.5;
      draws.push({ ...box, flip });
      const chw = new Uint8Array(3 * size * size);
      await decodeTrain(file, size, new Rng(seed), chw); // the loader's path (main thread: libuv's pool)
      const hwc = jpegDecode(bytes, { ...box, outW: size, outH: size, flip })!;
      denoms.push(hwc.denom);
      for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) assert.equal(chw[c * size * size + i], hwc.data[i * 3 + c]);
      got.push(hwc.data);
    }
    // eval: Resize(256, short side) + CenterCrop(224), always at full scale
    const ev = new Uint8Array(3 * size * size);
    await decodeEval(file, size, 256, ev);
    const out = join(dir, 'pil.bin');
    runPython(`
import json, sys
from PIL import Image
import torchvision.transforms.functional as F
draws, size = json.loads(sys.argv[1]), int(sys.argv[2])
img = Image.open(sys.argv[3]).convert('RGB')
with open(sys.argv[4], 'wb') as f:
    for b in draws:
        c = F.resized_crop(img, b['top'], b['left'], b['height'], b['width'], [size, size])
        if b['flip']: c = F.hflip(c)
        f.write(c.tobytes())
    f.write(F.center_crop(F.resize(img, 256), size).tobytes())
`, [JSON.stringify(draws), String(size), file, out]);
    const pil = readFileSync(out);
    const per = 3 * size * size;
    const stats: Record<number, { n: number; mean: number; max: number }> = {};
    got.forEach((g, e) => {
      let sum = 0, max = 0;
      for (let i = 0; i < per; i++) {
        const diff = Math.abs(g[i]! - pil[e * per + i]!);
        sum += diff;
        max = Math.max(max, diff);
      }
      const s = (stats[denoms[e]!] ??= { n: 0, mean: 0, max: 0 });
      s.n++;
      s.mean = Math.max(s.mean, sum / per);
      s.max = Math.max(s.max, max);
    });
    let evalDiff = 0;
    for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) evalDiff = Math.max(evalDiff, Math.abs(ev[c * size * size + i]! - pil[n * per + i * 3 + c]!));
    t.diagnostic(`per DCT scale: boxes, worst mean and max abs difference to PIL in grey levels: ${JSON.stringify(stats)}; eval max ${evalDiff}`);
    assert.ok(stats[1] && stats[1].n >= 3 && stats[2] && stats[2].n >= 3, JSON.stringify(stats));
    assert.equal(stats[1].max, 0, 'full-scale crops are torchvision-on-PIL exactly');
    assert.equal(evalDiff, 0, 'eval transform is torchvision-on-PIL exactly');
    // DCT scaling averages each 2×2 block before the bilinear filter: on this noisy image 2.2 grey levels off PIL's
    // full-scale resize on average at worst, 29 at most (BENCHMARKS.md)
    assert.ok(stats[2].mean <= 3 && stats[2].max <= 48, `1/2: ${JSON.stringify(stats[2])}`);
  });

  test('bad input: truncated, corrupt, a bomb header, not a JPEG: the file named, in worker threads and not, no worker left', async () => {
    const dir = join(tmp, 'bad');
    mkdirSync(dir);
    writeJpegs(dir, 96, 80);
    const good = readFileSync(join(dir, '420.jpg'));
    const root = join(dir, 'root');
    mkdirSync(join(root, 'a'), { recursive: true });
    for (let i = 0; i < 6; i++) writeFileSync(join(root, 'a', `${i}.jpg`), good);
    const bad = join(root, 'a', '3.jpg');
    // SOF0 at its place in the file: the frame header's height and width
    const sof = good.indexOf(Buffer.from([0xff, 0xc0]));
    const bomb = Buffer.from(good);
    bomb.writeUInt16BE(30000, sof + 5);
    bomb.writeUInt16BE(30000, sof + 7);
    const corrupt = Buffer.from(good);
    const dht = good.indexOf(Buffer.from([0xff, 0xc4]));
    corrupt.fill(0xff, dht + 5, dht + 21); // the Huffman table's counts: more codes than a table can hold
    const cases: [string, Buffer, RegExp][] = [
      ['truncated', good.subarray(0, good.indexOf(Buffer.from([0xff, 0xda])) + 40), /cannot decode image \(JPEG: Premature end of JPEG file\)/],
      ['corrupt', corrupt, /cannot decode image \(JPEG: Bogus Huffman table definition\)/],
      ['bomb', bomb, /cannot decode image \(Input image exceeds pixel limit\)/],
      ['not a JPEG', Buffer.from('this is not a jpeg'), /cannot decode image \(Input file contains unsupported image format\)/],
    ];
    const lazy = openImageFolder(root, { size: 32, resize: 36 });
    for (const [what, bytes, msg] of cases) {
      writeFileSync(bad, bytes);
      for (const worker of [true, false])
        for (const augment of [true, false]) {
          await rejectsData(collect(new Loader(lazy, { batchSize: 2, shuffle: false, augment, worker, workers: 2 }).epoch(0)), bad, msg);
          assert.equal(activeWorkers(), 0, `${what}: workers left running`);
        }
      const skipping = new Loader({ ...lazy, skipBad: true }, { batchSize: 6, shuffle: false, augment: true, workers: 2 });
      assert.deepEqual((await collect(skipping.epoch(0))).map((b) => b.shape[0]), [5], what);
    }
    // the addon's own checks: a box outside the image, bad options, not bytes — typed errors, no crash
    assert.throws(() => jpegDecode(good, { left: 90, top: 0, width: 10, height: 10 }), /the box lies outside the image/);
    assert.throws(() => jpegDecode(good, { denom: 3 }), /denom must be 1, 2, 4 or 8/);
    assert.throws(() => jpegDecode('nope' as unknown as Uint8Array), /expected the file's bytes as a Uint8Array/);
    await assert.rejects(jpegDecodeAsync(good.subarray(0, 100)), /JPEG: /);
  });
});
