// `freeadv predict`: top-k classes of PNG/JPEG files from a run, from weights and from an exported ONNX file (ONNX
// Runtime); the probabilities are the model's softmax on the data set's own pixels; the eval transform's centre crop
// and grey conversion are exact; bad input is refused naming the file, exit code 2.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { loadWeights } from '../src/io/index.js';
import { modelFor } from '../src/models/index.js';
import { describeDataset, loadImage, inputTransform } from '../src/export/index.js';
import { loadDataset, FASHION_MNIST_CLASSES, type InMemoryDataset } from '../src/data/index.js';
import { smallFashionMnist } from './helpers/data.js';

const tmp = mkdtempSync(join(tmpdir(), 'freeadv-predict-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let runDir = '';
let images = '';
let test28: InMemoryDataset;
const N = 12;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

const pixels = (i: number) => Buffer.from(test28.images.subarray(i * 784, (i + 1) * 784));

before(async () => {
  const data = await smallFashionMnist(512, 64);
  runDir = join(tmp, 'run');
  const r = await cli(['train', '--data-dir', data, '--method', 'natural', '--epochs', '3', '--batch-size', '64', '--eval-limit', '32', '--eval-attacks', 'fgsm',
    '--threads', '2', '--seed', '2', '--out', runDir]);
  assert.equal(r.code, 0, r.err);
  test28 = (await loadDataset({ name: 'fashion-mnist', dataDir: data, split: 'test' })) as InMemoryDataset;
  images = join(tmp, 'images');
  mkdirSync(images);
  for (let i = 0; i < N; i++) {
    const img = sharp(pixels(i), { raw: { width: 28, height: 28, channels: 1 } });
    // PNGs and JPEGs; a third as 3-channel files (the grey conversion must give the same pixels)
    if (i % 3 === 0) await img.toColourspace('srgb').png().toFile(join(images, `${String(i).padStart(2, '0')}.png`));
    else if (i % 3 === 1) await img.png().toFile(join(images, `${String(i).padStart(2, '0')}.png`));
    else await img.jpeg({ quality: 100 }).toFile(join(images, `${String(i).padStart(2, '0')}.jpg`));
  }
});

/** The run's model's softmax on test image i's own pixels. */
function probsOf(idx: number[]): Float32Array {
  const model = modelFor('small-cnn', describeDataset('fashion-mnist'));
  loadWeights(model, join(runDir, 'best.safetensors'));
  model.eval();
  const x = new Float32Array(idx.length * 784);
  idx.forEach((i, k) => test28.images.subarray(i * 784, (i + 1) * 784).forEach((v, j) => (x[k * 784 + j] = v / 255)));
  const p = T.scope(() => T.noGrad(() => model.forward(T.fromTypedArray(x, [idx.length, 1, 28, 28])).softmax(1).toTypedArray() as Float32Array));
  model.dispose();
  return p;
}

test('predict --run on PNG/JPEG files and a folder: the top-k classes with the model\'s probabilities (--json), and text output', async () => {
  const r = await cli(['predict', images, '--run', runDir, '--top', '3', '--json', '--threads', '2']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.model, 'small-cnn');
  assert.equal(j.dataset, 'fashion-mnist');
  assert.equal(j.predictions.length, N);
  const lossless = j.predictions.map((p: { file: string }, i: number) => [p, i] as const).filter(([p]: [{ file: string }]) => p.file.endsWith('.png'));
  const probs = probsOf(lossless.map(([, i]: [unknown, number]) => i));
  let correct = 0;
  lossless.forEach(([p, i]: [{ file: string; top: { index: number; class: string; probability: number }[] }, number], k: number) => {
    assert.equal(p.top.length, 3);
    const row = probs.subarray(k * 10, (k + 1) * 10);
    const best = [...row.keys()].sort((a, b) => row[b]! - row[a]!);
    assert.deepEqual(p.top.map((t) => t.index), best.slice(0, 3), p.file);
    for (const t of p.top) {
      assert.ok(Math.abs(t.probability - row[t.index]!) < 1e-6, `${p.file}: ${t.probability} vs ${row[t.index]}`);
      assert.equal(t.class, FASHION_MNIST_CLASSES[t.index]);
    }
    if (p.top[0]!.index === test28.labels[i]) correct++;
  });
  assert.ok(correct >= lossless.length / 2, `a trained model: ${correct}/${lossless.length} correct`);
  // JPEGs (lossy) still get three classes whose probabilities sum to at most 1
  for (const p of j.predictions.filter((p: { file: string }) => p.file.endsWith('.jpg'))) assert.ok(p.top.reduce((a: number, t: { probability: number }) => a + t.probability, 0) <= 1 + 1e-6);

  const text = await cli(['predict', join(images, '01.png'), join(images, '02.jpg'), '--run', runDir, '--top', '20']);
  assert.equal(text.code, 0, text.err);
  const lines = text.out.trim().split('\n');
  assert.match(lines[0]!, /small-cnn · fashion-mnist · 10 classes/);
  assert.equal(lines.length, 1 + 2 * (1 + 10), '--top beyond the classes lists every class');
  assert.match(lines[2]!, /^ {2}\S.*\d+\.\d\d%$/);
});

test('predict --onnx (ONNX Runtime) and --weights agree with --run', async () => {
  const onnx = join(tmp, 'model.onnx');
  assert.equal((await cli(['export', '--run', runDir, '--out', onnx])).code, 0);
  const a = JSON.parse((await cli(['predict', images, '--run', runDir, '--json', '--top', '10'])).out);
  const o = await cli(['predict', images, '--onnx', onnx, '--json', '--top', '10']);
  assert.equal(o.code, 0, o.err);
  const b = JSON.parse(o.out);
  const w = JSON.parse((await cli(['predict', images, '--weights', join(runDir, 'best.safetensors'), '--model', 'small-cnn', '--dataset', 'fashion-mnist', '--json', '--top', '10'])).out);
  assert.equal(b.model, 'small-cnn');
  for (let i = 0; i < N; i++) {
    for (const other of [b, w]) {
      const [p, q] = [a.predictions[i], other.predictions[i]];
      assert.equal(q.file, p.file);
      assert.deepEqual(q.top.map((t: { class: string }) => t.class), p.top.map((t: { class: string }) => t.class));
      p.top.forEach((t: { probability: number }, k: number) => assert.ok(Math.abs(t.probability - q.top[k].probability) < 1e-5));
    }
  }
});

test('the eval transform: a wider image is centre-cropped, a larger one resized; 3-channel files become grey exactly', async () => {
  // 40×28: the short side is already 28, so the model sees columns 6…33 of it
  const wide = Buffer.alloc(28 * 40);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 40; x++) wide[y * 40 + x] = (x * 7 + y * 3) & 255;
  const file = join(tmp, 'wide.png');
  await sharp(wide, { raw: { width: 40, height: 28, channels: 1 } }).png().toFile(file);
  const t = inputTransform('fashion-mnist', [1, 28, 28]);
  const got = new Float32Array(784);
  await loadImage(file, t, got);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) assert.equal(got[y * 28 + x], Math.fround(wide[y * 40 + x + 6]! / 255));
  // RGB with R = G = B is the grey image itself
  const rgbFile = join(tmp, 'rgb.png');
  await sharp(pixels(5), { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('srgb').png().toFile(rgbFile);
  await loadImage(rgbFile, t, got);
  got.forEach((v, i) => assert.equal(v, Math.fround(test28.images[5 * 784 + i]! / 255)));
  // a 100×80 colour image for a CIFAR model: 3×32×32 in [0, 1]
  const big = join(tmp, 'big.jpg');
  await sharp({ create: { width: 100, height: 80, channels: 3, background: { r: 200, g: 30, b: 90 } } }).jpeg().toFile(big);
  const c = new Float32Array(3 * 32 * 32);
  await loadImage(big, inputTransform('cifar10', [3, 32, 32]), c);
  assert.ok(Math.abs(c[0]! - 200 / 255) < 0.03 && Math.abs(c[1024]! - 30 / 255) < 0.03 && Math.abs(c[2048]! - 90 / 255) < 0.03);
  assert.deepEqual(inputTransform('imagefolder', [3, 224, 224]), { channels: 3, size: 224, resize: 256 });
});

test('predict refuses bad input naming the file or option, exit code 2', async () => {
  const notImage = join(tmp, 'notes.png');
  writeFileSync(notImage, 'not an image');
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  const badOnnx = join(tmp, 'bad.onnx');
  writeFileSync(badOnnx, 'not a protobuf \xff\xff\xff');
  const cases: [string[], RegExp][] = [
    [[join(tmp, 'missing.png'), '--run', runDir], /missing\.png: no such file/],
    [[notImage, '--run', runDir], /notes\.png: cannot decode image/],
    [[join(images, '00.png'), notImage, '--onnx', join(tmp, 'model.onnx')], /notes\.png: cannot decode image/],
    [[empty, '--run', runDir], /empty: no images in this folder/],
    [['--run', runDir], /give the image files/],
    [[join(images, '00.png')], /--run: give --run/],
    [[join(images, '00.png'), '--onnx', badOnnx], /--onnx: .*bad\.onnx: not an/],
    [[join(images, '00.png'), '--onnx', join(tmp, 'nope.onnx')], /--onnx: .*nope\.onnx: no such file/],
    [[join(images, '00.png'), '--onnx', join(tmp, 'model.onnx'), '--run', runDir], /--onnx: takes the model from the ONNX file; drop --run/],
    [[join(images, '00.png'), '--run', runDir, '--top', '0'], /--top: must be/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(['predict', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code} ${r.err}`);
    assert.match(r.err, re, args.join(' '));
  }
});
