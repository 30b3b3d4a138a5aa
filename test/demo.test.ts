// `freeadv demo`: the folder it writes (ONNX models, PNG test images and adversarial examples inside the ε-ball,
// a manifest with freeadv's logits on exactly those pixels), the page itself in real headless Chromium (Debian's
// chromium through playwright-core) served from localhost — ONNX Runtime Web's predictions equal libtorch's on
// every stored image and on an uploaded one, no console errors, no request outside the page's origin, class names
// shown as text — and bad input refused with exit code 2, nothing half-written. A screenshot is kept in
// test-artifacts/demo.png.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { loadWeights } from '../src/io/index.js';
import { modelFor } from '../src/models/index.js';
import { runCheckpoint } from '../src/train/index.js';
import { describeDataset, serveDemo, softmaxRows, ORT_FILES, type DemoManifest } from '../src/export/index.js';
import { loadDataset, FASHION_MNIST_CLASSES, type InMemoryDataset } from '../src/data/index.js';
import { smallFashionMnist } from './helpers/data.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARTIFACTS = join(ROOT, 'test-artifacts');
const CHROMIUM = process.env.FREEADV_CHROMIUM ?? '/usr/bin/chromium';
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-demo-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let data = '';
const nat = join(tmp, 'nat'), free = join(tmp, 'free');
const K = 8;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

/** A PNG's pixels as 8-bit grey values (it must be a 28×28 1-channel image). */
async function greyPixels(file: string): Promise<Uint8Array> {
  const meta = await sharp(file).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels, meta.depth], ['png', 28, 28, 1, 'uchar'], `${file} is a 28×28 8-bit grey PNG`);
  const { data: px } = await sharp(file).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return new Uint8Array(px);
}

/** The run's model (built here from its checkpoint: best, else latest) on 8-bit images: softmax rows. */
function libtorchProbs(runDir: string, px: Uint8Array, n: number): Float32Array {
  const model = modelFor('small-cnn', describeDataset('fashion-mnist'));
  try {
    loadWeights(model, runCheckpoint(runDir, 'best')!);
    model.eval();
    return T.scope(() => T.noGrad(() => model.forward(T.fromTypedArray(Float32Array.from(px, (v) => v / 255), [n, 1, 28, 28])).softmax(1).toTypedArray() as Float32Array));
  } finally {
    model.dispose();
  }
}

before(async () => {
  T.setNumThreads(2);
  data = await smallFashionMnist(1024, 64);
  const common = ['--data-dir', data, '--batch-size', '64', '--eval-limit', '32', '--eval-attacks', 'pgd-10', '--threads', '2', '--seed', '1', '--val-size', '0'];
  for (const [dir, extra] of [[nat, ['--method', 'natural', '--epochs', '2']], [free, ['--method', 'free', '--replays', '2', '--epochs', '3']]] as const) {
    const r = await cli(['train', ...common, ...extra, '--out', dir]);
    assert.equal(r.code, 0, r.err);
  }
});

test('freeadv demo writes the models, the images inside the ε-ball and freeadv’s logits on their exact pixels; the page in headless Chromium agrees with libtorch', async (t) => {
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}: install Debian's chromium (bash scripts/setup.sh --tests), or set FREEADV_CHROMIUM`);
  const out = join(tmp, 'page');
  const live = T.liveTensors();
  // a first demo, then a second one over it (an earlier demo folder is replaced)
  const r0 = await cli(['demo', free, '--out', out, '--images', '3', '--threads', '2']);
  assert.equal(r0.code, 0, r0.err);
  assert.ok(!existsSync(join(out, 'natural.onnx')));
  const r = await cli(['demo', free, nat, '--out', out, '--images', String(K), '--threads', '2']);
  assert.equal(r.code, 0, r.err);
  assert.equal(T.liveTensors(), live, 'the demo frees every tensor it creates');
  assert.match(r.out, /robust \(free\): right on \d+ of 8 test images, on \d+ of their pgd-20 examples \(ε=0\.1\) against it/);
  assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('.')), [], 'no partial or old folder is left beside --out');
  for (const f of ['index.html', 'demo.js', 'demo.css', 'manifest.json', 'robust.onnx', 'natural.onnx', ...ORT_FILES.map((f) => `ort/${f}`)]) assert.ok(existsSync(join(out, f)), `${f} is written`);

  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as DemoManifest;
  assert.equal(m.format, 'freeadv-demo');
  assert.deepEqual(m.classNames, [...FASHION_MNIST_CLASSES]);
  assert.deepEqual(m.inputShape, [1, 28, 28]);
  assert.equal(m.eps, 0.1);
  assert.equal(m.attack, 'pgd-20');
  assert.deepEqual(m.models.map((d) => [d.id, d.run, d.method]), [['robust', 'free', 'free'], ['natural', 'nat', 'natural']]);
  assert.equal(m.images.length, 3 * K);
  const test28 = (await loadDataset({ name: 'fashion-mnist', dataDir: data, split: 'test' })) as InMemoryDataset;
  const all = new Uint8Array(m.images.length * 784);
  for (const [k, im] of m.images.entries()) {
    const px = await greyPixels(join(out, im.file));
    all.set(px, k * 784);
    const clean = test28.images.subarray(im.index * 784, (im.index + 1) * 784);
    assert.equal(im.label, test28.labels[im.index]);
    if (im.kind === 'clean') assert.deepEqual(px, clean, `${im.file} holds test image ${im.index}'s own pixels`);
    else {
      // inside the ε-ball of 0.1: at most ⌊25.5⌋ = 25 levels from the clean pixel, and not the clean image
      let worst = 0, moved = 0;
      for (let i = 0; i < 784; i++) {
        worst = Math.max(worst, Math.abs(px[i]! - clean[i]!));
        if (px[i] !== clean[i]) moved++;
      }
      assert.ok(worst <= 25, `${im.file}: ${worst} levels from the clean image`);
      // the attack stops on an image the model already gets wrong; the others it moves
      const cleanRight = m.images.find((c) => c.kind === 'clean' && c.index === im.index)!.predicted[im.against!] === im.label;
      if (cleanRight) assert.ok(moved > 50, `${im.file}: the attack moved ${moved} pixels`);
    }
  }
  // freeadv's logits in the manifest are the models' on exactly the stored pixels
  const ids = ['robust', 'natural'] as const;
  const probs = { robust: libtorchProbs(free, all, m.images.length), natural: libtorchProbs(nat, all, m.images.length) };
  for (const id of ids)
    for (const [k, im] of m.images.entries()) {
      const mine = softmaxRows(Float32Array.from(im.logits[id]!), 10);
      for (let c = 0; c < 10; c++) assert.ok(Math.abs(mine[c]! - probs[id][k * 10 + c]!) < 1e-5, `${im.file}, ${id} model, class ${c}`);
    }
  // PGD-20 against a model lowers its accuracy on the same images
  for (const id of ids) {
    const right = (kind: string) => m.images.filter((im) => (kind === 'clean' ? im.kind === 'clean' : im.against === id) && im.predicted[id] === im.label).length;
    assert.ok(right('adv') <= right('clean'), `${id}: ${right('adv')} right on its adversarial examples, ${right('clean')} on the clean images`);
  }

  // the page, served from localhost
  const server = await serveDemo(out);
  const origin = new URL(server.url).origin;
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    p.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    p.on('response', (q) => {
      if (q.status() >= 400) problems.push(`HTTP ${q.status()}: ${q.url()}`);
    });
    p.on('request', (q) => {
      if (new URL(q.url()).origin !== origin) problems.push(`request outside the page's origin: ${q.url()}`);
    });
    const t0 = performance.now();
    await p.goto(server.url);
    await p.waitForSelector('html[data-ready="1"], html[data-error]', { timeout: 60_000 });
    t.diagnostic(`page ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const page = (await p.evaluate('window.freeadvDemo')) as { images: { file: string; probabilities: Record<string, number[]>; predicted: Record<string, number> }[] };
    assert.equal(await p.evaluate('document.documentElement.dataset.error'), undefined);
    assert.equal(page.images.length, m.images.length);
    let worst = 0;
    for (const [k, im] of m.images.entries()) {
      const b = page.images[k]!;
      assert.equal(b.file, im.file);
      for (const id of ids) {
        assert.equal(b.predicted[id], im.predicted[id], `${im.file}: the browser's ${id} prediction`);
        for (let c = 0; c < 10; c++) worst = Math.max(worst, Math.abs(b.probabilities[id]![c]! - probs[id][k * 10 + c]!));
      }
    }
    t.diagnostic(`largest probability difference, ONNX Runtime Web vs libtorch: ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `probabilities within 1e-4 (${worst})`);
    // every stored image is shown, with each model's top 3
    assert.equal(await p.locator('#example-rows figure').count(), 3 * K);
    assert.equal(await p.locator('#example-rows .pred').count(), 3 * K * 2);
    assert.equal(await p.evaluate('[...document.images].filter((i) => !(i.complete && i.naturalWidth === 28)).length'), 0);
    // an uploaded image (a test image not among the stored ones, as a PNG) is classified as libtorch does
    const upload = join(tmp, 'upload.png');
    const px = test28.images.slice(40 * 784, 41 * 784);
    await sharp(Buffer.from(px), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(upload);
    await p.setInputFiles('#upload', upload);
    await p.waitForSelector('html[data-uploads="1"]', { timeout: 15_000 });
    const up = (await p.evaluate('window.freeadvDemo.upload')) as { name: string; probabilities: Record<string, number[]> };
    assert.equal(up.name, 'upload.png');
    for (const id of ids) {
      const want = libtorchProbs(id === 'robust' ? free : nat, px, 1);
      for (let c = 0; c < 10; c++) assert.ok(Math.abs(up.probabilities[id]![c]! - want[c]!) < 1e-4, `uploaded image, ${id} model, class ${c}`);
    }
    assert.equal(await p.locator('#try-result .pred').count(), 2);
    // picking a stored image shows it in the same panel
    await p.selectOption('#pick', '1');
    await p.waitForFunction(`document.querySelector('#try-result figcaption')?.textContent.startsWith('pgd-20 against the robust model')`);
    assert.deepEqual(problems, []);
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'demo.png');
    await p.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);
    t.diagnostic(`screenshot: ${shot}`);

    // class names come from a run folder: they are shown as text, never parsed as HTML
    const hostile = '<img id="pwn" src="x" onerror="window.pwned = 1">';
    writeFileSync(join(out, 'manifest.json'), JSON.stringify({ ...m, classNames: m.classNames.map((c, i) => (i === m.images[0]!.label ? hostile : c)) }));
    await p.reload();
    await p.waitForSelector('html[data-ready="1"], html[data-error]', { timeout: 60_000 });
    assert.equal(await p.evaluate(`document.getElementById('pwn')`), null);
    assert.equal(await p.evaluate('window.pwned'), undefined);
    assert.ok(((await p.evaluate('document.body.textContent')) as string).includes(hostile), 'the name is on the page as text');

    // opened from disk, the page says how to serve it instead of failing silently
    const f = await browser.newPage();
    await f.goto(pathToFileURL(join(out, 'index.html')).href);
    assert.match((await f.textContent('#status'))!, /freeadv demo … --serve/);
  } finally {
    await browser.close();
    await server.close();
  }
});

test('freeadv demo refuses bad input with exit code 2, naming the folder or option, and leaves nothing half-written', async () => {
  const noCk = join(tmp, 'no-checkpoint');
  mkdirSync(noCk);
  writeFileSync(join(noCk, 'config.json'), readFileSync(join(free, 'config.json')));
  const other = join(tmp, 'other');
  mkdirSync(other);
  writeFileSync(join(other, 'keep.txt'), 'mine');
  const file = join(tmp, 'a-file.txt');
  writeFileSync(file, 'mine too');
  const out = join(tmp, 'bad-out');
  const cases: [string[], RegExp][] = [
    [['demo', '--out', out], /give the robust run folder/],
    [['demo', free], /--out: is required/],
    [['demo', free, nat, free, '--out', out], /at most two run folders/],
    [['demo', noCk, '--out', out], /no-checkpoint: the run has no checkpoint yet/],
    [['demo', join(tmp, 'missing'), '--out', out], /missing: no such folder/],
    [['demo', free, noCk, '--out', out], /no-checkpoint: the run has no checkpoint yet/],
    [['demo', free, '--out', file], /--out: .*a-file\.txt: is a file/],
    [['demo', free, '--out', other], /--out: .*other: is a folder that freeadv demo did not write/],
    [['demo', free, '--out', join(tmp, 'no', 'such', 'dir')], /--out: .*does not exist/],
    [['demo', free, '--out', out, '--attack', 'pgd-0'], /--attack: .*steps must be in \[1, 10000\]/],
    [['demo', free, '--out', out, '--images', '0'], /--images: must be in \[1, 64\]/],
    [['demo', free, '--out', out, '--attack', 'pgd-20-l2'], /--attack: .*'pgd-20-l2' is an L2 attack/],
    // found wrong only after the models are loaded: the data folder is not there
    [['demo', free, '--out', out, '--data-dir', join(tmp, 'no-data')], /cannot read its test data/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.doesNotMatch(r.err, /internal error/);
  }
  assert.ok(!existsSync(out), 'nothing written at --out');
  assert.equal(readFileSync(join(other, 'keep.txt'), 'utf8'), 'mine');
  assert.deepEqual(readdirSync(other), ['keep.txt']);
  assert.equal(readFileSync(file, 'utf8'), 'mine too');
  assert.deepEqual(readdirSync(tmp).filter((f) => f.startsWith('.')), [], 'no partial folder is left');
  const h = await cli(['demo', '--help']);
  assert.equal(h.code, 0);
  for (const o of ['--out', '--images', '--attack', '--checkpoint', '--serve', '--port', '--data-dir']) assert.ok(h.out.includes(o), `demo --help lists ${o}`);
  assert.match((await cli(['--help'])).out, /demo\s+a page/);
});

test('freeadv demo --serve serves the folder on localhost until SIGTERM, and only the files inside it', async () => {
  const out = join(tmp, 'served');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'freeadv.js'), 'demo', free, '--out', out, '--images', '2', '--threads', '1', '--serve', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((res, rej) => {
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /serving .* on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stdout);
      if (m) res(m[1]!);
    });
    child.once('exit', (code) => rej(new Error(`exited with ${code} before serving: ${stderr}`)));
  });
  try {
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    assert.equal(await page.text(), readFileSync(join(out, 'index.html'), 'utf8'));
    const wasm = await fetch(new URL('ort/ort-wasm-simd-threaded.wasm', url));
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.equal((await wasm.arrayBuffer()).byteLength, statSync(join(out, 'ort', 'ort-wasm-simd-threaded.wasm')).size);
    for (const path of ['missing.png', '..%2fconfig.json', '%2e%2e/%2e%2e/etc/passwd', 'images/..%2f..%2f..%2fetc%2fpasswd']) {
      assert.equal((await fetch(url + path)).status, 404, path);
    }
    assert.equal((await fetch(url, { method: 'POST' })).status, 405);
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise((res) => (child.exitCode !== null ? res(child.exitCode) : child.once('exit', res)));
  assert.equal(code, 0, stderr);
});

