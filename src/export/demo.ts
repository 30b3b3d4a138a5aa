// `freeadv demo`: a static page that shows a robust model working, in the browser. The run's model (and a natural
// run's, to compare) is exported to ONNX and run by ONNX Runtime Web (its wasm backend, copied into the folder so
// that the page works offline); the first K test images and their adversarial examples — crafted by freeadv against
// each model, white-box, in the robust run's ε-ball — are stored as 8-bit PNG with a manifest holding freeadv's own
// (libtorch) logits on exactly those pixels, so that what the browser computes can be checked against them.
// The page (assets/demo/) loads over http: browsers refuse ES modules and wasm from file:// pages, so serveDemo
// serves the folder on localhost (any static server does).
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, createReadStream } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromTypedArray, manualSeed, noGrad, scope, setNumThreads, type Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { ConfigError, formatEps } from '../options/index.js';
import { checkAttackName, makeAttack } from '../attacks/index.js';
import { readRun, runTestData, pngBuffers, pngLevels, quantizeInBall, ReportError, type RunInfo } from '../report/index.js';
import { firstImageBatches } from '../data/tensor.js';
import { openModel, headlineRobust, type ModelInfo } from './source.js';
import { exportModelOnnx } from './onnx.js';
import { inputTransform } from './predict.js';
import { freeadvVersion } from './version.js';

/** The first n test images (at most 64: one batch), as tensors the caller disposes. */
async function firstImages(data: Awaited<ReturnType<typeof runTestData>>, n: number): Promise<{ x: Tensor; y: Tensor }> {
  for await (const { x, y } of firstImageBatches(data, n, n)) return { x: x.clone(), y: y.clone() };
  throw new ReportError('the test set is empty');
}

/** The manifest's file name and its `format`: what marks a folder as a demo folder (which --out may replace). */
export const DEMO_MANIFEST = 'manifest.json';
export const DEMO_FORMAT = 'freeadv-demo';
/** The page: index.html, its script and its style sheet (assets/demo/ of the package). */
export const DEMO_PAGE_FILES = ['index.html', 'demo.js', 'demo.css'] as const;
/** ONNX Runtime Web's wasm-only ES module bundle and the WebAssembly build (with its loader) it runs, copied into ort/. */
export const ORT_FILES = ['ort.wasm.bundle.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'] as const;

export interface DemoOptions {
  /** The folder to write (created; a previous demo folder there is replaced). */
  out: string;
  /** Test images shown (the first K of the test set). */
  images: number;
  /** The attack that crafts the adversarial examples, by name (pgd-20, apgd-ce, …), at the robust run's ε. */
  attack: string;
  checkpoint: 'best' | 'latest';
  dataDir?: string;
  seed: number;
  threads?: number;
}

export const DEMO_DEFAULTS: Omit<DemoOptions, 'out'> = { images: 10, attack: 'pgd-20', checkpoint: 'best', seed: 0 };

/** A model of the page. */
export interface DemoModel {
  /** 'robust' (the first run) or 'natural' (the run to compare with). */
  id: 'robust' | 'natural';
  /** The ONNX file, relative to the folder. */
  file: string;
  run: string;
  method: string;
  label?: string;
  model: string;
  /** The run's own evaluation (summary.json), when it finished. */
  cleanAccuracy?: number;
  robustAccuracy?: number;
  robustAttack?: string;
  evalExamples?: number;
}

/** A stored image and what freeadv's model (libtorch) computes on its exact pixels. */
export interface DemoImage {
  /** The PNG, relative to the folder. */
  file: string;
  kind: 'clean' | 'adversarial';
  /** Index in the test set, and its label. */
  index: number;
  label: number;
  /** Adversarial examples: the model they were crafted against. */
  against?: DemoModel['id'];
  /** Per model id: the logits, and the predicted class. */
  logits: Record<string, number[]>;
  predicted: Record<string, number>;
}

export interface DemoManifest {
  format: typeof DEMO_FORMAT;
  freeadv: string;
  onnxruntimeWeb: string;
  dataset: string;
  classNames: string[];
  /** C×H×W of the models' input, pixels in [0, 1]. */
  inputShape: [number, number, number];
  /** An uploaded image's short side is resized to this, then the centre inputShape[1]×inputShape[2] is cropped. */
  resize: number;
  attack: string;
  eps: number;
  epsText: string;
  models: DemoModel[];
  images: DemoImage[];
}

export interface DemoResult {
  out: string;
  manifest: DemoManifest;
  bytes: number;
  seconds: number;
}

/** The package root (dist/src/export/ → ../../..), where assets/ is. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** onnxruntime-web's dist folder and version (the package is a dependency of freeadv). */
export function onnxruntimeWeb(): { dir: string; version: string } {
  let main: string;
  try {
    main = createRequire(import.meta.url).resolve('onnxruntime-web/wasm');
  } catch {
    throw new ConfigError('out', 'the demo page needs ONNX Runtime Web: npm install onnxruntime-web (a dependency of freeadv; reinstall freeadv)');
  }
  const dir = dirname(main);
  const pkg = JSON.parse(readFileSync(join(dir, '..', 'package.json'), 'utf8')) as { version: string };
  for (const f of ORT_FILES) if (!existsSync(join(dir, f))) throw new ConfigError('out', `ONNX Runtime Web ${pkg.version} has no ${f} in ${dir}`);
  return { dir, version: pkg.version };
}

/** Whether a folder was written by freeadv demo (its manifest says so). */
function isDemoFolder(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(dir, DEMO_MANIFEST), 'utf8')) as { format?: unknown }).format === DEMO_FORMAT;
  } catch {
    return false;
  }
}

/** --out must be a new folder in an existing folder, an empty folder, or an earlier demo folder (replaced). */
export function checkDemoOut(out: string): void {
  const parent = dirname(resolve(out));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new ConfigError('out', `${out}: the folder ${parent} does not exist`);
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new ConfigError('out', `${out}: is a file; give a new folder (or an earlier demo folder, which is replaced)`);
  if (readdirSync(out).length && !isDemoFolder(out)) {
    throw new ConfigError('out', `${out}: is a folder that freeadv demo did not write (no ${DEMO_MANIFEST} of a demo); give a new or empty folder, or an earlier demo folder`);
  }
}

/** Logits of the model (eval mode) on 8-bit images n×C×H×W, as rows of numbers. */
function logitsOf(model: Module, bytes: Uint8Array, shape: number[]): number[][] {
  const k = scope(() => noGrad(() => model.forward(fromTypedArray(Float32Array.from(bytes, (v) => v / 255), shape)).toTypedArray() as Float32Array));
  const n = shape[0]!, c = k.length / n;
  return Array.from({ length: n }, (_, i) => Array.from(k.subarray(i * c, (i + 1) * c)));
}
const argmax = (v: number[]) => v.reduce((b, x, i) => (x > v[b]! ? i : b), 0);

function demoModel(id: DemoModel['id'], run: RunInfo, info: ModelInfo): DemoModel {
  const s = run.summary;
  const r = s && Number.isFinite(s.clean_accuracy) ? headlineRobust(s) : undefined;
  return {
    id, file: `${id}.onnx`, run: run.name, method: run.config.method, ...(info.label && { label: info.label }), model: info.model,
    ...(s && Number.isFinite(s.clean_accuracy) && { cleanAccuracy: s.clean_accuracy, evalExamples: s.eval_examples }),
    ...(r && { robustAccuracy: r.accuracy, robustAttack: r.attack }),
  };
}

/** Moves a finished folder into place: an earlier demo folder at `out` is replaced, nothing half-written is left. */
function moveIntoPlace(tmp: string, out: string): void {
  if (!existsSync(out)) return renameSync(tmp, out);
  const old = mkdtempSync(join(dirname(out), `.${basename(out)}.old-`));
  renameSync(out, join(old, 'demo'));
  try {
    renameSync(tmp, out);
  } catch (e) {
    renameSync(join(old, 'demo'), out);
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
}

/**
 * Writes the demo folder of a robust run (and of a natural run to compare with): the models as ONNX, the first K
 * test images and their adversarial examples as PNG, the manifest, the page and ONNX Runtime Web.
 */
export async function buildDemo(robustDir: string, naturalDir: string | undefined, opts: Partial<DemoOptions> & { out: string }, log: (s: string) => void = () => {}): Promise<DemoResult> {
  const o: DemoOptions = { ...DEMO_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as DemoOptions;
  const t0 = performance.now();
  // everything is checked before any work
  const runs = [readRun(robustDir, o.checkpoint), ...(naturalDir !== undefined ? [readRun(naturalDir, o.checkpoint)] : [])];
  checkDemoOut(o.out);
  const ort = onnxruntimeWeb();
  const eps = runs[0]!.config.eps;
  if (o.threads !== undefined) setNumThreads(o.threads);
  const opened: { model: Module; info: ModelInfo }[] = [];
  const out = resolve(o.out);
  let tmp: string | undefined;
  try {
    for (const r of runs) opened.push(openModel({ run: r.dir, checkpoint: o.checkpoint, dataDir: o.dataDir }));
    const [a, b] = opened.map((m) => m.info);
    if (b && (a!.dataset !== b.dataset || a!.inputShape.join() !== b.inputShape.join() || a!.classNames.join('\n') !== b.classNames.join('\n'))) {
      throw new ReportError(`${naturalDir}: its model is for ${b.dataset} (${b.numClasses} classes, input ${b.inputShape.join('×')}), not ${a!.dataset} (${a!.numClasses} classes, input ${a!.inputShape.join('×')}) like ${robustDir}'s`);
    }
    const info = a!;
    const why = checkAttackName(o.attack, info.numClasses);
    if (why) throw new ConfigError('attack', why);
    if (/-l2$/i.test(o.attack.trim())) throw new ConfigError('attack', `the page shows L∞ adversarial examples (the runs' threat model); '${o.attack}' is an L2 attack`);
    const ids: DemoModel['id'][] = ['robust', 'natural'];

    const data = await runTestData(runs[0]!, o.dataDir);
    const { x, y } = await firstImages(data, o.images);
    const shape = [...x.shape];
    const n = shape[0]!;
    const labels = Array.from(y.toTypedArray() as BigInt64Array, Number);
    const clean8 = pngLevels(x); // the clean images' 8-bit levels, the centre of every ε-ball below
    const clean = Uint8Array.from(clean8.toTypedArray() as Float32Array);
    const sets: { kind: DemoImage['kind']; against?: DemoModel['id']; px: Uint8Array }[] = [{ kind: 'clean', px: clean }];
    try {
      for (const [i, { model }] of opened.entries()) {
        log(`${runs[i]!.name}: ${o.attack} (L∞, ε=${formatEps(eps)}) against the ${ids[i]} model on the first ${n} test images…`);
        manualSeed(o.seed);
        // every step taken: an example that only just crosses the decision boundary would often cross back when
        // its pixels are rounded to 8 bits for the PNG
        const adv = scope(() => Uint8Array.from(quantizeInBall(clean8, makeAttack(o.attack, model, { eps, earlyStop: false }).run(x, y), eps).toTypedArray() as Float32Array));
        sets.push({ kind: 'adversarial', against: ids[i]!, px: adv });
      }
    } finally {
      x.dispose();
      y.dispose();
      clean8.dispose();
    }

    tmp = mkdtempSync(join(dirname(out), `.${basename(out)}.partial-`));
    chmodSync(tmp, 0o777 & ~process.umask()); // mkdtemp's folder is private; the page's folder is not
    mkdirSync(join(tmp, 'images'));
    mkdirSync(join(tmp, 'ort'));
    const images: DemoImage[] = [];
    for (const s of sets) {
      const logits = opened.map(({ model }) => logitsOf(model, s.px, shape));
      const t = fromTypedArray(Float32Array.from(s.px, (v) => v / 255), shape);
      const pngs = await pngBuffers(t).finally(() => t.dispose());
      for (let i = 0; i < n; i++) {
        const file = `images/${i}-${s.kind === 'clean' ? 'clean' : `adv-${s.against}`}.png`;
        writeFileSync(join(tmp, file), pngs[i]!);
        images.push({
          file, kind: s.kind, index: i, label: labels[i]!, ...(s.against && { against: s.against }),
          logits: Object.fromEntries(logits.map((l, m) => [ids[m]!, l[i]!])), predicted: Object.fromEntries(logits.map((l, m) => [ids[m]!, argmax(l[i]!)])),
        });
      }
    }
    images.sort((p, q) => p.index - q.index);
    const models = opened.map(({ model, info: mi }, i) => {
      writeFileSync(join(tmp!, `${ids[i]}.onnx`), exportModelOnnx(model, mi));
      return demoModel(ids[i]!, runs[i]!, mi);
    });
    const manifest: DemoManifest = {
      format: DEMO_FORMAT, freeadv: freeadvVersion(), onnxruntimeWeb: ort.version, dataset: info.dataset, classNames: info.classNames,
      inputShape: info.inputShape, resize: inputTransform(info.dataset, info.inputShape).resize, attack: o.attack, eps, epsText: formatEps(eps), models, images,
    };
    writeFileSync(join(tmp, DEMO_MANIFEST), JSON.stringify(manifest));
    for (const f of DEMO_PAGE_FILES) copyFileSync(join(PACKAGE_ROOT, 'assets', 'demo', f), join(tmp, f));
    for (const f of ORT_FILES) copyFileSync(join(ort.dir, f), join(tmp, 'ort', f));
    writeFileSync(join(tmp, 'ort', 'NOTICE.txt'), `ONNX Runtime Web ${ort.version} (onnxruntime-web on npm), MIT License, Copyright (c) Microsoft Corporation.\n`);
    const bytes = folderBytes(tmp);
    moveIntoPlace(tmp, out);
    tmp = undefined;
    return { out, manifest, bytes, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const { model } of opened) model.dispose();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

function folderBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((s, e) => s + (e.isDirectory() ? folderBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream', '.png': 'image/png', '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves a folder's files over http on `host` (default 127.0.0.1; port 0 picks a free one): GET and HEAD of files
 * inside the folder only. Resolves once listening, with the page's address and a close function.
 */
export function serveDemo(dir: string, port = 0, host = '127.0.0.1'): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const root = resolve(dir);
  const server = createServer((req, res) => {
    const send = (code: number, text: string) => res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed');
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return send(400, 'bad request');
    }
    let file = resolve(root, '.' + path);
    if (file !== root && !file.startsWith(root + sep)) return send(404, 'not found');
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file) || !statSync(file).isFile()) return send(404, 'not found');
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size, 'cache-control': 'no-cache' });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => {
      const addr = server.address() as { port: number };
      res({ url: `http://${host}:${addr.port}/`, server, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}
