// `freeadv report`: the analyses against direct computations (loss-surface grid = direct loss evaluations,
// saliency = the input gradient, also by finite differences), the targeted attacks, the cache (and its lock, with
// reports running at once in real processes), bad input, and
// the page itself rendered in real headless Chromium (Debian's chromium through playwright-core): every chart
// drawn, every image loaded, no console errors, no network; a screenshot is kept in test-artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, existsSync, readFileSync, writeFileSync, statSync, utimesSync, rmSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir, hostname } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import sharp from 'sharp';
import * as T from '../src/torch/index.js';
import { createModel } from '../src/models/index.js';
import { ceLoss } from '../src/attacks/index.js';
import { loadDataset, type InMemoryDataset } from '../src/data/index.js';
import { lossSurface, surfaceDirections, surfaceRng, saliency, inputGradient, targetedAttack, lossAt, predict, CACHE_FILE, CACHE_LOCK, cacheKey, REPORT_OPTIONS, quantizeInBall, pngLevels, pngBuffers, readRun, runTestData, loadRunModel } from '../src/report/index.js';
import { kebab } from '../src/options/index.js';
import { run } from '../src/cli/main.js';
import type { Module } from '../src/nn/index.js';
import { smallFashionMnist } from './helpers/data.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ARTIFACTS = join(ROOT, 'test-artifacts');
const CHROMIUM = process.env.FREEADV_CHROMIUM ?? '/usr/bin/chromium';
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-report-'));
let data = '';
let model: Module;
let x: T.Tensor, y: T.Tensor;

/** What the page shows, measured in the browser (a string: this project's TypeScript has no DOM types). */
const BROWSER_PROBE = `(() => {
  const canvases = [...document.querySelectorAll('canvas')].map((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let painted = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) painted++;
    return { id: c.id, width: c.width, height: c.height, painted, chart: Boolean(Chart.getChart(c)) };
  });
  const images = [...document.images].map((i) => ({ alt: i.alt, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth }));
  return { canvases, images, charts: Number(document.documentElement.dataset.charts), sections: [...document.querySelectorAll('section')].map((s) => s.id) };
})()`;
interface Probe {
  canvases: { id: string; width: number; height: number; painted: number; chart: boolean }[];
  images: { alt: string; ok: boolean; w: number }[];
  charts: number;
  sections: string[];
}

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

before(async () => {
  T.setNumThreads(2);
  data = await smallFashionMnist(256, 200);
  const d = (await loadDataset({ name: 'fashion-mnist', split: 'test', dataDir: data })) as InMemoryDataset;
  T.manualSeed(11);
  model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: d.mean, std: d.std });
  x = T.fromTypedArray(Float32Array.from(d.images.subarray(0, 4 * 784), (v) => v / 255), [4, 1, 28, 28]).keep();
  y = T.fromTypedArray(BigInt64Array.from(d.labels.subarray(0, 4), (v) => BigInt(v)), [4], 'int64').keep();
});

after(() => {
  model.dispose();
  x.dispose();
  y.dispose();
});

test('loss surface: every grid entry equals a direct loss evaluation at its (a, b)', () => {
  const eps = 0.1;
  const s = lossSurface(model, x, y, { eps, range: 2, points: 5, seed: 7 });
  for (const [i, v] of [-0.2, -0.1, 0, 0.1, 0.2].entries()) assert.ok(Math.abs(s.a[i]! - v) < 1e-12 && Math.abs(s.b[i]! - v) < 1e-12);
  assert.equal(s.loss.length, 4);
  T.scope(() => {
    const { g, r } = surfaceDirections(model, x, y, 7);
    // g is the sign of the input gradient; r is a ±1 direction fixed by the seed
    assert.ok(g.equal(inputGradient(model, x, y).sign()));
    assert.ok(r.abs().eq(1).all().item());
    assert.ok(r.equal(surfaceDirections(model, x, y, 7).r));
    assert.ok(!r.equal(surfaceDirections(model, x, y, 8).r));
    let checked = 0;
    for (let k = 0; k < 4; k++)
      for (let i = 0; i < 5; i++)
        for (let j = 0; j < 5; j++) {
          if ((k + i + j) % 2 && !(i === 2 && j === 2)) continue; // sampled points, and always the centre
          const xi = x.narrow(0, k, 1).add(g.narrow(0, k, 1).mul(s.a[i]!)).add(r.narrow(0, k, 1).mul(s.b[j]!));
          model.eval();
          const direct = T.noGrad(() => ceLoss(model.forward(xi), y.narrow(0, k, 1)).item());
          const grid = s.loss[k]![i]![j]!;
          assert.ok(Math.abs(grid - direct) <= 1e-4 * Math.max(1, Math.abs(direct)), `image ${k}, a=${s.a[i]}, b=${s.b[j]}: grid ${grid} vs direct ${direct}`);
          checked++;
        }
    assert.ok(checked > 40);
    // the centre is the loss of the image itself
    const own = lossAt(model, x, y);
    for (let k = 0; k < 4; k++) assert.ok(Math.abs(s.loss[k]![2]![2]! - own[k]!) < 1e-4);
  });
  assert.throws(() => lossSurface(model, x, y, { eps, points: 4 }), /odd/);
});

test('loss surface in batches: grid points 3 at a time, and the images in two halves continuing one random stream, give the one-call surface', () => {
  const eps = 0.1;
  const whole = lossSurface(model, x, y, { eps, range: 2, points: 5, seed: 7 });
  const chunked = lossSurface(model, x, y, { eps, range: 2, points: 5, seed: 7, batchSize: 3 });
  const rng = surfaceRng(7);
  const halves = [0, 2].flatMap((k) => lossSurface(model, x.narrow(0, k, 2), y.narrow(0, k, 2), { eps, range: 2, points: 5, rng, batchSize: 7 }).loss);
  for (const other of [chunked.loss, halves])
    for (let k = 0; k < 4; k++)
      for (let i = 0; i < 5; i++)
        for (let j = 0; j < 5; j++) {
          const u = whole.loss[k]![i]![j]!, v = other[k]![i]![j]!;
          assert.ok(Math.abs(u - v) <= 1e-5 * Math.max(1, Math.abs(u)), `image ${k}, (${i}, ${j}): ${v} vs ${u}`);
        }
});

test('saliency equals the input gradient (autograd directly, and central finite differences in float64)', () => {
  T.scope(() => {
    const { grad, display } = saliency(model, x, y);
    const xr = x.detach().requiresGrad_();
    model.eval();
    const [direct] = T.autograd.grad(ceLoss(model.forward(xr), y).sum(), [xr]);
    assert.ok(grad.allclose(direct!, 1e-5, 1e-8), 'saliency = ∇ₓ Σ CE');
    // display: 0.5 where the gradient is 0, the largest |∇| of each image at 0 or 1
    assert.ok(display.min().item() >= 0 && display.max().item() <= 1);
    for (let k = 0; k < 4; k++) {
      const d = display.select(0, k);
      assert.ok(Math.abs(d.sub(0.5).abs().max().item() - 0.5) < 1e-6);
    }
  });
  // finite differences on a float64 copy of the model
  T.scope(() => {
    const m64 = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] });
    try {
      m64.loadStateDict(model.stateDict());
      m64.to('float64');
      const x64 = x.to('float64');
      const g = saliency(m64, x64, y).grad;
      const h = 1e-6;
      for (let k = 0; k < 2; k++) {
        // the three pixels with the largest |∇| of image k
        const [, idx] = g.select(0, k).flatten().abs().topk(3);
        for (const p of Array.from(idx.toTypedArray() as BigInt64Array, Number)) {
          const e = T.zeros([1, 1, 28, 28], { dtype: 'float64' });
          e.flatten().narrow(0, p, 1).fill_(h);
          const xk = x64.narrow(0, k, 1), yk = y.narrow(0, k, 1);
          const lp = lossAt(m64, xk.add(e), yk)[0]!, lm = lossAt(m64, xk.sub(e), yk)[0]!;
          const fd = (lp - lm) / (2 * h);
          const an = g.select(0, k).flatten().select(0, p).item();
          assert.ok(Math.abs(fd - an) <= 1e-4 * Math.abs(an) + 1e-8, `image ${k} pixel ${p}: finite difference ${fd} vs gradient ${an}`);
        }
      }
    } finally {
      m64.dispose();
    }
  });
});

test('large-ε targeted attacks stay in their ball and move the prediction to the target', () => {
  T.scope(() => {
    const targets = T.fromTypedArray(BigInt64Array.from(Array.from(y.toTypedArray() as BigInt64Array, (v) => BigInt((Number(v) + 3) % 10))), [4], 'int64');
    const linf = targetedAttack(model, x, targets, { eps: 0.4, norm: 'linf', steps: 40 });
    assert.ok(linf.adv.sub(x).abs().max().item() <= 0.4 + 1e-6);
    assert.ok(linf.adv.min().item() >= 0 && linf.adv.max().item() <= 1);
    const want = Array.from(targets.toTypedArray() as BigInt64Array, Number);
    assert.deepEqual(linf.pred, predict(model, linf.adv));
    assert.ok(linf.pred.filter((p, i) => p === want[i]).length >= 3, `targets ${want}, predictions ${linf.pred}`);
    const l2 = targetedAttack(model, x, targets, { eps: 2.8, norm: 'l2', steps: 40 });
    const norms = Array.from(l2.adv.sub(x).flatten(1).norm(2, 1).toTypedArray() as Float32Array);
    for (const n of norms) assert.ok(n <= 2.8 + 1e-4, `L2 norm ${n}`);
  });
});

/** The pixels of an 8-bit grey PNG (the bytes, or a data URI), decoded by sharp. */
async function pngPixels(png: Buffer | string): Promise<Uint8Array> {
  const buf = typeof png === 'string' ? Buffer.from(png.slice(png.indexOf(',') + 1), 'base64') : png;
  // IHDR: bit depth 8, colour type 0 (grey)
  assert.deepEqual([buf[24], buf[25]], [8, 0], 'an 8-bit grey PNG');
  const { data, info } = await sharp(buf).raw().toBuffer({ resolveWithObject: true });
  const px = new Uint8Array(info.width * info.height);
  for (let i = 0; i < px.length; i++) {
    px[i] = data[i * info.channels]!;
    for (let c = 1; c < info.channels; c++) assert.equal(data[i * info.channels + c], px[i], 'grey pixels decode to equal channels');
  }
  return px;
}

test('adversarial pixels are rounded into the ε-ball of the clean 8-bit image, and the PNG holds those levels', async () => {
  T.scope(() => {
    const clean = T.fromTypedArray(Float32Array.from([0, 100, 255, 128, 128]), [5]);
    // ε = 0.1 is 25.5 levels: at most 25 levels away after rounding (0.3 is 76.5, clipped to 128 − 25)
    const adv = T.fromTypedArray(Float32Array.from([0.1, (100 - 25.5) / 255, 1, (128 + 25.4) / 255, 0.3]), [5]);
    assert.deepEqual([...(quantizeInBall(clean, adv, 0.1).toTypedArray() as Float32Array)], [25, 75, 255, 153, 103]);
    assert.deepEqual([...(quantizeInBall(clean, clean.div(255), 8 / 255).toTypedArray() as Float32Array)], [0, 100, 255, 128, 128]);
    // 8/255 is 8 levels, though 255 · (8/255) is not exactly 8 in floating point
    assert.deepEqual([...(quantizeInBall(clean, clean.add(8.4).div(255), 8 / 255).toTypedArray() as Float32Array)], [8, 108, 255, 136, 136]);
  });
  // pngLevels are the bytes of the PNG, decoded by sharp (ties of x.5 levels included: 127.5 → 128, 0.5 → 0)
  const v = Float32Array.from({ length: 2 * 28 * 28 }, (_, i) => [0.5 / 255, 127.5 / 255, 1.2, -0.1, (i % 997) / 996][i % 5]!);
  const b = T.fromTypedArray(v, [2, 1, 28, 28]);
  try {
    const levels = T.scope(() => pngLevels(b).toTypedArray() as Float32Array);
    const pngs = await pngBuffers(b);
    for (let k = 0; k < 2; k++) assert.deepEqual([...(await pngPixels(pngs[k]!))], [...levels.subarray(k * 784, (k + 1) * 784)]);
  } finally {
    b.dispose();
  }
});

test("the gallery shows the model's prediction on exactly the pixels of its PNGs, inside the ε-ball in 8-bit units; freeadv predict on the saved PNG agrees", async (t) => {
  const dir = join(tmp, 'gallery-run');
  const eps = 0.1; // 25.5 levels: rounding alone can take a pixel 26 levels away
  const r = await cli(['train', '--data-dir', data, '--method', 'natural', '--epochs', '10', '--batch-size', '32', '--val-size', '0', '--eps', String(eps), '--eval-limit', '10', '--eval-attacks', 'pgd-2', '--threads', '2', '--seed', '3', '--out', dir]);
  assert.equal(r.code, 0, r.err);
  const page = join(tmp, 'out', 'gallery.html');
  const k = 16;
  const rep = await cli(['report', dir, '--out', page, '--images', String(k), '--surface-points', '3', '--target-steps', '2', '--threads', '2']);
  assert.equal(rep.code, 0, rep.err);
  const html = readFileSync(page, 'utf8');
  const names = (JSON.parse(readFileSync(join(dir, CACHE_FILE), 'utf8')) as { entries: Record<string, { classNames?: string[] }> }).entries;
  const classNames = Object.values(names).find((e) => e.classNames)!.classNames!;
  // the cells of the gallery: image, then its caption ("label A<br>pred B ✓" or "pred B ✗")
  const cells = new Map<string, { src: string; pred?: number }>();
  for (const m of html.matchAll(/<img class="px" src="([^"]+)" alt="(clean|adversarial|perturbation) (\d+)"[^>]*><div class="cap">(.*?)<\/div>/g)) {
    const pred = /pred (.+?) <span/.exec(m[4]!)?.[1];
    cells.set(`${m[2]} ${m[3]}`, { src: m[1]!, ...(pred !== undefined && { pred: classNames.indexOf(pred) }) });
  }
  assert.equal(cells.size, 3 * k);
  const e = Math.floor(255 * eps); // 25
  assert.match(html, new RegExp(`amplified: −${e}/255 black, 0 grey, \\+${e}/255 white`));

  const info = readRun(dir, 'latest');
  const test = await runTestData(info);
  const model = loadRunModel(info, test);
  const pngDir = join(tmp, 'gallery-png');
  mkdirSync(pngDir, { recursive: true });
  const files: string[] = [], shownAdv: number[] = [];
  let cleanWrong = 0, advWrong = 0;
  try {
    for (let i = 0; i < k; i++) {
      const clean = await pngPixels(cells.get(`clean ${i}`)!.src);
      const adv = await pngPixels(cells.get(`adversarial ${i}`)!.src);
      const pert = await pngPixels(cells.get(`perturbation ${i}`)!.src);
      // the clean PNG is the test image itself; the adversarial one is within ⌊255ε⌋ levels of it
      assert.deepEqual([...clean], [...(test as InMemoryDataset).images.subarray(i * 784, (i + 1) * 784)], `clean image ${i}`);
      let dmax = 0;
      for (let p = 0; p < 784; p++) {
        const d = adv[p]! - clean[p]!;
        dmax = Math.max(dmax, Math.abs(d));
        // the perturbation shown is the difference of the two images shown, ±e levels to black and white (within
        // the PNG's rounding)
        assert.ok(Math.abs(pert[p]! - (127.5 + (127.5 * d) / e)) <= 0.501, `perturbation of image ${i}, pixel ${p}: ${pert[p]} for a difference of ${d} levels`);
      }
      assert.ok(dmax <= e, `adversarial image ${i}: ||adv − clean||∞ = ${dmax} levels > ${e} (ε = ${eps})`);
      // the model on exactly those pixels gives the labels shown
      const [pc, pa] = T.scope(() =>
        [clean, adv].map((px) => {
          model.eval();
          return Number(T.noGrad(() => model.forward(T.fromTypedArray(Float32Array.from(px, (v) => v / 255), [1, 1, 28, 28])).argmax(1)).item());
        }),
      );
      assert.equal(pc, cells.get(`clean ${i}`)!.pred, `clean image ${i}: the page shows ${classNames[cells.get(`clean ${i}`)!.pred!]}, the model says ${classNames[pc!]}`);
      assert.equal(pa, cells.get(`adversarial ${i}`)!.pred, `adversarial image ${i}: the page shows ${classNames[cells.get(`adversarial ${i}`)!.pred!]}, the model on its PNG says ${classNames[pa!]}`);
      const label = (test as InMemoryDataset).labels[i]!;
      if (pc !== label) {
        cleanWrong++;
        // none needed: an image the model gets wrong is shown unperturbed
        assert.deepEqual([...adv], [...clean], `image ${i} is misclassified clean: its adversarial image is itself`);
      }
      if (pa !== label) advWrong++;
      const f = join(pngDir, `adv-${String(i).padStart(2, '0')}.png`);
      writeFileSync(f, Buffer.from(cells.get(`adversarial ${i}`)!.src.split(',')[1]!, 'base64'));
      files.push(f);
      shownAdv.push(pa!);
    }
  } finally {
    model.dispose();
  }
  // a natural model: most of its predictions are changed by the attack
  // the attack works (the labels shown are not all the clean ones): a natural model, most adversarial images misclassified
  const acc = `${k - cleanWrong} of ${k} clean and ${k - advWrong} adversarial images classified correctly`;
  t.diagnostic(acc);
  assert.ok(advWrong >= k / 2 && advWrong > cleanWrong, acc);
  // freeadv predict, in a process of its own, on the PNG files saved from the page
  const p = spawnSync(process.execPath, [join(ROOT, 'bin', 'freeadv.js'), 'predict', ...files, '--run', dir, '--checkpoint', 'latest', '--top', '1', '--json', '--threads', '1'], { encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr);
  const preds = (JSON.parse(p.stdout) as { predictions: { file: string; top: { index: number }[] }[] }).predictions;
  assert.deepEqual(preds.map((q) => q.top[0]!.index), shownAdv);
});

test('freeadv report refuses bad input with exit code 2, naming the folder or option', async () => {
  const notRun = join(tmp, 'not-a-run');
  mkdirSync(notRun, { recursive: true });
  const broken = join(tmp, 'broken');
  mkdirSync(broken, { recursive: true });
  writeFileSync(join(broken, 'config.json'), '{ not json');
  const noCk = join(tmp, 'no-checkpoint');
  mkdirSync(noCk, { recursive: true });
  writeFileSync(join(noCk, 'config.json'), JSON.stringify({ method: 'free', model: 'small-cnn', dataset: 'fashion-mnist', eps: 0.1 }));
  const cases: [string[], RegExp][] = [
    [['report'], /give at least one run folder/],
    [['report', join(tmp, 'missing')], /missing: no such folder/],
    [['report', notRun], /not-a-run: not a run folder \(no config\.json\)/],
    [['report', broken], /broken.*config\.json: not valid JSON/],
    [['report', noCk], /no-checkpoint: the run has no checkpoint yet/],
    [['report', notRun, '--surface-points', '4'], /--surface-points: must be odd/],
    [['report', notRun, '--images', '0'], /--images: must be in \[1, 64\], got '0'/],
    [['report', notRun, '--target-norm', 'l3'], /--target-norm: unknown value 'l3' \(known: linf, l2\)/],
    [['report', notRun, '--checkpoint', 'first'], /--checkpoint: unknown value 'first' \(known: best, latest\)/],
    [['report', notRun, '--curve-eps', '0,x'], /--curve-eps: expected a comma-separated list of multiples of ε >= 0, got 'x'/],
    [['report', notRun, '--bogus'], /Unknown option '--bogus'/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.doesNotMatch(r.err, /internal error/);
  }
  // the help lists every option the command takes
  const h = await cli(['report', '--help']);
  assert.equal(h.code, 0);
  const names = Object.keys(REPORT_OPTIONS).map(kebab);
  assert.ok(names.length >= 18);
  for (const n of names) assert.ok(h.out.includes(`--${n}`), `report --help lists --${n}`);
  assert.match((await cli(['--help'])).out, /report\s+an HTML page/);
});

test('a report of a natural and a free run renders in headless Chromium: all charts drawn, all images loaded, no errors', async (t) => {
  // Debian's chromium is required: the test fails (it does not skip) without it
  assert.ok(
    existsSync(CHROMIUM),
    `Chromium not found at ${CHROMIUM}: install Debian's chromium (bash scripts/setup.sh --tests, or apt-get install -y chromium), or set FREEADV_CHROMIUM to its path`,
  );
  const common = ['--data-dir', data, '--batch-size', '64', '--eval-limit', '50', '--eval-attacks', 'pgd-10', '--threads', '2', '--log-every', '2', '--seed', '1'];
  const nat = join(tmp, 'nat'), free = join(tmp, 'free');
  let tt = performance.now();
  const lap = (what: string) => {
    t.diagnostic(`${what}: ${((performance.now() - tt) / 1000).toFixed(1)} s`);
    tt = performance.now();
  };
  for (const [dir, extra] of [[nat, ['--method', 'natural']], [free, ['--method', 'free', '--replays', '2']]] as const) {
    const r = await cli(['train', ...common, ...extra, '--epochs', '2', '--out', dir]);
    assert.equal(r.code, 0, r.err);
  }
  lap('training two runs');
  const html = join(tmp, 'out', 'report.html');
  const args = ['report', nat, free, '--out', html, '--images', '4', '--robustness-curve', '--curve-eps', '0,0.5,1,2', '--curve-steps', '5', '--limit', '50', '--target-steps', '20', '--threads', '2'];
  const live = T.liveTensors();
  const r1 = await cli(args);
  assert.equal(r1.code, 0, r1.err);
  assert.match(r1.out, /nat: analyses computed .* robustness curve computed/);
  lap('first render');
  for (const l of r1.out.trim().split('\n').filter((l) => /computed|^report:/.test(l))) t.diagnostic(l);
  // at most as many as before: the report frees every tensor it creates (fewer when a garbage collection during
  // it finalised tensors that earlier tests dropped)
  assert.ok(T.liveTensors() <= live, `the report frees every tensor it creates: ${T.liveTensors()} live after it, ${live} before`);
  for (const d of [nat, free]) assert.ok(existsSync(join(d, CACHE_FILE)), `${d} holds ${CACHE_FILE}`);
  // a re-render comes from the cache
  const before = statSync(join(nat, CACHE_FILE)).mtimeMs;
  const t0 = performance.now();
  const r2 = await cli(args);
  assert.equal(r2.code, 0, r2.err);
  assert.ok(performance.now() - t0 < 3000, 're-render is fast');
  lap('second render (from the cache)');
  assert.match(r2.out, /nat: analyses from the cache, robustness curve from the cache/);
  assert.match(r2.out, /free: analyses from the cache, robustness curve from the cache/);
  assert.equal(statSync(join(nat, CACHE_FILE)).mtimeMs, before);
  // the curve: at ε = 0 it is the clean accuracy on those 50 images; attacks only lower it
  const cache = JSON.parse(readFileSync(join(nat, CACHE_FILE), 'utf8')) as { entries: Record<string, { eps?: number[]; accuracy?: number[] }> };
  const curve = Object.entries(cache.entries).find(([k]) => k.includes('"robustness-curve"'))![1];
  assert.deepEqual(curve.eps, [0, 0.05, 0.1, 0.2]);
  assert.ok(curve.accuracy![3]! <= curve.accuracy![0]!);

  // a new checkpoint gets new results: the key names the checkpoint's size and modification time
  const ck = join(nat, 'best.safetensors');
  const k1 = cacheKey('analyses', ck, { images: 4 });
  utimesSync(ck, new Date(), new Date(Date.now() + 5000));
  assert.notEqual(cacheKey('analyses', ck, { images: 4 }), k1);
  // without --robustness-curve, a curve computed before is still shown; a target class can be named
  const html2 = join(tmp, 'out', 'report2.html');
  const r3 = await cli(['report', free, '--out', html2, '--images', '4', '--target-class', 'trouser', '--target-steps', '20', '--threads', '2']);
  assert.equal(r3.code, 0, r3.err);
  const page2 = readFileSync(html2, 'utf8');
  assert.match(page2, /id="chart-robustness"/);
  assert.doesNotMatch(page2, /id="robustness-missing"/);
  assert.deepEqual([...page2.matchAll(/target ([^<]+)<br>pred/g)].map((m) => m[1]), ['Trouser', 'Trouser', 'Trouser', 'Trouser']);
  lap('checks of the cache (one more render, analyses recomputed)');

  const page = readFileSync(html, 'utf8');
  assert.doesNotMatch(page, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'the page loads nothing from the network');
  assert.match(page, /Chart\.js v4/);

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    p.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    p.on('request', (q) => {
      if (!/^(file|data):/.test(q.url())) problems.push(`network request: ${q.url()}`);
    });
    await p.goto(pathToFileURL(html).href);
    await p.waitForSelector('html[data-ready="1"]', { timeout: 15_000 });
    const info = (await p.evaluate(BROWSER_PROBE)) as Probe;
    assert.deepEqual(problems, []);
    assert.deepEqual(info.sections, ['runs', 'training', 'robustness', 'loss-surface', 'gallery', 'saliency', 'targeted']);
    // 5 training charts, 1 robustness chart, 2 loss-surface line charts, 4 heatmaps per run
    const ids = info.canvases.map((c) => c.id);
    for (const id of ['chart-loss', 'chart-train-acc', 'chart-lr', 'chart-ips', 'chart-val', 'chart-robustness', 'chart-surface-adv', 'chart-surface-rand', 'heat-0-0', 'heat-0-3', 'heat-1-0', 'heat-1-3'])
      assert.ok(ids.includes(id), `chart ${id} is on the page`);
    assert.equal(info.canvases.length, 16);
    assert.equal(info.charts, 16);
    for (const c of info.canvases) {
      assert.ok(c.chart, `${c.id} holds a chart`);
      assert.ok(c.width > 0 && c.height > 0 && c.painted > 0.02 * c.width * c.height, `${c.id} is drawn (${c.painted} of ${c.width}×${c.height} pixels painted)`);
    }
    // clean, adversarial, perturbation; image and saliency; image and targeted: 7 rows × 4 images × 2 runs
    assert.equal(info.images.length, 56);
    for (const i of info.images) assert.ok(i.ok && i.w === 28, `image ${i.alt} loaded`);
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'report.png');
    await p.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);
    lap('browser');
    t.diagnostic(`screenshot: ${shot}`);
  } finally {
    await browser.close();
  }
});

/** `freeadv report` in a process of its own. */
function reportProcess(args: string[]): { exit: Promise<{ code: number | null; at: number; out: string; err: string }> } {
  const c = spawn(process.execPath, [join(ROOT, 'bin', 'freeadv.js'), 'report', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  c.stdout.on('data', (d) => (out += d));
  c.stderr.on('data', (d) => (err += d));
  return { exit: new Promise((r) => c.on('exit', (code) => r({ code, at: Date.now(), out, err }))) };
}

test('reports at once on one run keep every cache entry: two processes; a report waits for a held cache lock; a dead holder\'s lock is taken over', async (t) => {
  const dir = join(tmp, 'concurrent');
  const r = await cli(['train', '--data-dir', data, '--method', 'natural', '--batch-size', '64', '--max-steps', '2', '--val-size', '0', '--eval-limit', '10', '--eval-attacks', 'pgd-2', '--threads', '2', '--out', dir]);
  assert.equal(r.code, 0, r.err);
  const quick = ['--images', '2', '--attack-steps', '2', '--surface-points', '3', '--target-steps', '2', '--threads', '1'];
  const entries = () => Object.keys((JSON.parse(readFileSync(join(dir, CACHE_FILE), 'utf8')) as { entries: object }).entries).map((k) => JSON.parse(k) as { kind: string; seed: number });
  const seeds = () => entries().filter((e) => e.kind === 'analyses').map((e) => e.seed).sort();

  // two reports at once, with different seeds: two entries
  const t0 = Date.now();
  const [a, b] = await Promise.all([1, 2].map((seed) => reportProcess([dir, ...quick, '--seed', String(seed), '--out', join(tmp, `concurrent-${seed}.html`)]).exit));
  for (const p of [a!, b!]) {
    assert.equal(p.code, 0, p.err);
    assert.match(p.out, /analyses computed/);
    assert.doesNotMatch(p.err, /warning/);
  }
  t.diagnostic(`two reports at once: ${Date.now() - t0} ms`);
  assert.deepEqual(seeds(), [1, 2]);
  assert.ok(!existsSync(join(dir, CACHE_LOCK)), 'the lock is gone');

  // another live process holds the cache lock: the report computes, then waits for it before adding its entry
  const lock = join(dir, CACHE_LOCK);
  writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), started: new Date().toISOString() }));
  const c = reportProcess([dir, ...quick, '--seed', '3', '--out', join(tmp, 'concurrent-3.html')]);
  let exited: number | undefined;
  void c.exit.then((e) => (exited = e.at));
  await new Promise((res) => setTimeout(res, 6000)); // a report of 2 images takes about 2 s
  assert.equal(exited, undefined, 'the report waits while the lock is held');
  assert.deepEqual(seeds(), [1, 2], 'and has not written the cache');
  const released = Date.now();
  rmSync(lock);
  const e = await c.exit;
  assert.equal(e.code, 0, e.err);
  t.diagnostic(`held lock: the report finished ${e.at - released} ms after it was released`);
  assert.deepEqual(seeds(), [1, 2, 3]);

  // a lock left by a process that is gone is taken over, with a warning
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(lock, JSON.stringify({ pid: dead, host: hostname(), started: '2020-01-01T00:00:00.000Z' }));
  const d = await reportProcess([dir, ...quick, '--seed', '4', '--out', join(tmp, 'concurrent-4.html')]).exit;
  assert.equal(d.code, 0, d.err);
  assert.match(d.err, new RegExp(`warning: ${lock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: took over the lock of process ${dead} \\(started 2020-01-01T00:00:00.000Z\\), which is no longer running`));
  assert.deepEqual(seeds(), [1, 2, 3, 4]);
  assert.ok(!existsSync(lock));
});
