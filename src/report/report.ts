// `freeadv report`: one self-contained HTML page from one or more run folders. The analyses are computed by
// freeadv on each run's model and a fixed set of test images (the first K, fixed seed) and cached in the run
// folder (report-cache.json), so a re-render is instant.
import { mkdirSync, existsSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { manualSeed, setNumThreads, scope, keep, fromTypedArray, type Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { evaluateDataset } from '../eval/index.js';
import { writeFileAtomic } from '../io/index.js';
import type { Dataset } from '../data/index.js';
import { S } from '../options/index.js';
import { firstImageBatches } from '../data/tensor.js';
import { readRun, runTestData, loadRunModel, classNames, ReportError, type RunInfo } from './run.js';
import { adversarialGallery, saliency, lossSurface, surfaceAxis, surfaceRng, targetedAttack, type LossSurface } from './analysis.js';
import { pngDataUris } from './png.js';
import { cacheKey, cacheGet, cachePut, cacheFind } from './cache.js';
import { renderHtml } from './html.js';
import { GENERATOR } from './markup.js';

export interface ReportOptions {
  /** The HTML file to write (default report.html). */
  out: string;
  checkpoint: 'best' | 'latest';
  /** Test images in the gallery and the analyses (default 6). */
  images: number;
  /** PGD steps of the gallery's adversarial examples (default 20). */
  attackSteps: number;
  surfacePoints: number;
  /** In multiples of the run's ε (default 2). */
  surfaceRange: number;
  /** Radius of the large-ε targeted attacks; default 4ε (L∞) or ε·√d (L2). */
  targetEps?: number;
  targetNorm: 'linf' | 'l2';
  targetSteps: number;
  /** Target class of every image (index or class name); default (label + 1) mod classes. */
  targetClass?: number | string;
  /** Compute (or reuse) the robustness curve. */
  robustnessCurve: boolean;
  /** The curve's ε values as multiples of the run's ε. */
  curveEps: number[];
  curveSteps: number;
  /** Test images of the robustness curve (default 200). */
  limit: number;
  dataDir?: string;
  seed: number;
  threads?: number;
  /** Where the analyses and the curve run (default cpu). */
  device: string;
  useCache: boolean;
  title?: string;
  /**
   * Examples per batch of every analysis and of the robustness curve, and loss-surface grid points per batch
   * (memory is bounded by it); default the run's --eval-batch-size.
   */
  evalBatchSize?: number;
}

/** The batch when neither the options nor a run give one (training's default --eval-batch-size). */
const DEFAULT_BATCH = 500;

export const REPORT_DEFAULTS: ReportOptions = {
  out: 'report.html',
  checkpoint: 'best',
  images: 6,
  attackSteps: 20,
  surfacePoints: 11,
  surfaceRange: 2,
  targetNorm: 'linf',
  targetSteps: 40,
  robustnessCurve: false,
  curveEps: [0, 0.25, 0.5, 0.75, 1, 1.5, 2],
  curveSteps: 10,
  device: 'cpu',
  limit: 200,
  seed: 0,
  useCache: true,
};

/** Everything the page shows about the analyses of one run (JSON: it is what the cache holds). */
export interface Analyses {
  eps: number;
  attack: string;
  labels: number[];
  classNames: string[];
  images: { clean: string[]; adversarial: string[]; perturbation: string[]; saliency: string[]; targeted: string[] };
  cleanPred: number[];
  advPred: number[];
  targets: number[];
  targetPred: number[];
  targetEps: number;
  targetNorm: 'linf' | 'l2';
  surface: LossSurface;
  seconds: number;
}

const PNG_URI = S.str(10_000_000, /^data:image\/png;base64,[A-Za-z0-9+/]*={0,2}$/, 'a PNG data: URI');
const INDICES = S.arr(S.int(0), 64);
/** An Analyses as report-cache.json holds it; the lists are per test image and the loss surface is K × P × P. */
const ANALYSES_SCHEMA = S.obj(
  {
    eps: S.num(0), attack: S.str(100), labels: INDICES, classNames: S.arr(S.str(200), 100_000),
    images: S.obj({ clean: S.arr(PNG_URI, 64), adversarial: S.arr(PNG_URI, 64), perturbation: S.arr(PNG_URI, 64), saliency: S.arr(PNG_URI, 64), targeted: S.arr(PNG_URI, 64) }),
    cleanPred: INDICES, advPred: INDICES, targets: INDICES, targetPred: INDICES,
    targetEps: S.num(0), targetNorm: S.choice('linf', 'l2'),
    surface: S.obj({ a: S.arr(S.num(), 1001), b: S.arr(S.num(), 1001), loss: S.arr(S.arr(S.arr(S.num()))) }),
    seconds: S.num(0),
  },
  [],
  (v) => {
    const a = v as unknown as Analyses;
    const k = a.labels.length, p = a.surface.a.length;
    const perImage = [...Object.values(a.images), a.cleanPred, a.advPred, a.targets, a.targetPred, a.surface.loss];
    if (perImage.some((l) => l.length !== k)) return `holds lists of different lengths (${k} test images)`;
    if (a.surface.b.length !== p || a.surface.loss.some((g) => g.length !== p || g.some((row) => row.length !== p))) return `has a loss surface that is not ${k} × ${p} × ${p}`;
    return undefined;
  },
);
const CURVE_SCHEMA = S.obj({ eps: S.arr(S.num(0), 1000), accuracy: S.arr(S.num(0, 1), 1000), attack: S.str(100), examples: S.int(0), seconds: S.num(0) }, [], (v) =>
  (v.eps as number[]).length !== (v.accuracy as number[]).length ? 'has as many ε values as accuracies' : undefined,
);

export interface RobustnessCurve {
  eps: number[];
  accuracy: number[];
  attack: string;
  examples: number;
  seconds: number;
}

export interface ReportRun extends RunInfo {
  analyses: Analyses;
  curve?: RobustnessCurve;
}

export interface ReportResult {
  out: string;
  runs: ReportRun[];
  /** Which results came from the cache. */
  cached: { analyses: boolean; curve: boolean | undefined }[];
  seconds: number;
}

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

function targetEpsFor(o: ReportOptions, eps: number, data: Dataset): number {
  if (o.targetEps !== undefined) return o.targetEps;
  return o.targetNorm === 'l2' ? eps * Math.sqrt(data.c * data.h * data.w) : 4 * eps;
}

/** A class given by index or by name (case-insensitive), checked against the data set's classes. */
function resolveClass(c: number | string | undefined, names: string[]): number | undefined {
  if (c === undefined) return undefined;
  if (typeof c === 'number') {
    if (Number.isInteger(c) && c >= 0 && c < names.length) return c;
    throw new ReportError(`--target-class: ${c} is not a class of the data set (0…${names.length - 1})`);
  }
  const i = names.findIndex((n) => n.toLowerCase() === c.toLowerCase());
  if (i < 0) throw new ReportError(`--target-class: '${c}' is not a class of the data set (${names.join(', ')})`);
  return i;
}

/**
 * Computes the analyses of one run (no cache) on the first `images` test images, `evalBatchSize` at a time
 * (also the most loss-surface grid points evaluated at once): memory is bounded by the batch, not the images.
 */
export async function computeAnalyses(model: Module, data: Dataset, eps: number, o: ReportOptions): Promise<Analyses> {
  const t0 = performance.now();
  manualSeed(o.seed);
  const batch = o.evalBatchSize ?? DEFAULT_BATCH;
  const names = classNames(data);
  const target = resolveClass(o.targetClass, names);
  const targetEps = targetEpsFor(o, eps, data);
  const rng = surfaceRng(o.seed); // one stream over all batches: the directions do not depend on the batch size
  const labels: number[] = [], targets: number[] = [], cleanPred: number[] = [], advPred: number[] = [], targetPred: number[] = [];
  const uris: Analyses['images'] = { clean: [], adversarial: [], perturbation: [], saliency: [], targeted: [] };
  const surface: LossSurface = { a: surfaceAxis({ eps, range: o.surfaceRange, points: o.surfacePoints }), b: [], loss: [] };
  surface.b = surface.a.slice();
  for await (const { x, y } of firstImageBatches(data, o.images, batch, o.device)) {
    const ls = Array.from(y.toTypedArray() as BigInt64Array, Number);
    const ts = ls.map((l) => target ?? (l + 1) % data.numClasses);
    const t = scope(() => {
      const gallery = adversarialGallery(model, x, y, { eps, steps: o.attackSteps });
      const grads = saliency(model, x, y);
      const targetTensor = fromTypedArray(BigInt64Array.from(ts, BigInt), [ts.length], 'int64', x.device);
      const targeted = targetedAttack(model, x, targetTensor, { eps: targetEps, norm: o.targetNorm, steps: o.targetSteps });
      return keep({ gallery, grads, targeted });
    });
    try {
      surface.loss.push(...lossSurface(model, x, y, { eps, range: o.surfaceRange, points: o.surfacePoints, rng, batchSize: batch }).loss);
      uris.clean.push(...(await pngDataUris(t.gallery.clean)));
      uris.adversarial.push(...(await pngDataUris(t.gallery.adv)));
      uris.perturbation.push(...(await pngDataUris(t.gallery.perturbation)));
      uris.saliency.push(...(await pngDataUris(t.grads.display)));
      uris.targeted.push(...(await pngDataUris(t.targeted.adv)));
    } finally {
      for (const v of [t.gallery.clean, t.gallery.adv, t.gallery.perturbation, t.grads.grad, t.grads.display, t.targeted.adv] as Tensor[]) v.dispose();
    }
    labels.push(...ls);
    targets.push(...ts);
    cleanPred.push(...t.gallery.cleanPred);
    advPred.push(...t.gallery.advPred);
    targetPred.push(...t.targeted.pred);
  }
  if (!labels.length) throw new ReportError('the test set is empty');
  return {
    eps,
    attack: `pgd-${o.attackSteps}`,
    labels,
    classNames: names,
    images: uris,
    cleanPred,
    advPred,
    targets,
    targetPred,
    targetEps,
    targetNorm: o.targetNorm,
    surface,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Accuracy under PGD-k (L∞) at each ε of the grid, on the first `limit` test images, `evalBatchSize` at a time. */
export async function computeRobustnessCurve(model: Module, data: Dataset, eps: number, o: Pick<ReportOptions, 'curveEps' | 'curveSteps' | 'limit' | 'seed' | 'evalBatchSize'> & { device?: string }): Promise<RobustnessCurve> {
  const t0 = performance.now();
  const grid = [...new Set(o.curveEps.map((m) => m * eps))].sort((a, b) => a - b);
  const accuracy: number[] = [];
  let examples = 0;
  for (const e of grid) {
    const attacks = e > 0 ? [`pgd-${o.curveSteps}`] : [];
    const r = await evaluateDataset(model, data, { eps: e, attacks, limit: o.limit, batchSize: o.evalBatchSize ?? DEFAULT_BATCH, restarts: 1, device: o.device ?? 'cpu', seed: o.seed, progress: sink() });
    accuracy.push(e > 0 ? r.robust_accuracy[`pgd-${o.curveSteps}`]! : r.clean_accuracy);
    examples = r.examples;
  }
  return { eps: grid, accuracy, attack: `pgd-${o.curveSteps}`, examples, seconds: (performance.now() - t0) / 1000 };
}

/**
 * --out creates a new file or replaces a page that `freeadv report` wrote (its generator mark in the first
 * bytes); anything else there (a checkpoint, another program's file, a folder) is refused and left as it is.
 */
export function checkReportOut(out: string): void {
  if (existsSync(out)) {
    const st = statSync(out);
    if (!st.isFile()) throw new ReportError(`--out: ${out} is ${st.isDirectory() ? 'a folder' : 'not a regular file'}; give the name of the HTML file to write`);
    const fd = openSync(out, 'r');
    const head = Buffer.alloc(4096);
    let n: number;
    try {
      n = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    if (!head.subarray(0, n).toString('utf8').includes(`<meta name="generator" content="${GENERATOR}">`))
      throw new ReportError(`--out: ${out} exists and is not a page written by freeadv report; it is left as it is: give another --out`);
    return;
  }
  let up = dirname(out);
  while (!existsSync(up) && up !== dirname(up)) up = dirname(up);
  if (existsSync(up) && !statSync(up).isDirectory()) throw new ReportError(`--out: ${out}: ${up} is a file, not a folder`);
}

/** Builds the report of `dirs` and writes it to opts.out. */
export async function buildReport(dirs: string[], opts: Partial<ReportOptions> = {}, log: (s: string) => void = () => {}, warn: (s: string) => void = log): Promise<ReportResult> {
  const o: ReportOptions = { ...REPORT_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  if (!dirs.length) throw new ReportError('give at least one run folder');
  const t0 = performance.now();
  const out = resolve(o.out);
  checkReportOut(out);
  const infos = dirs.map((d) => readRun(d, o.checkpoint)); // every folder checked before any work
  if (o.threads !== undefined) setNumThreads(o.threads);
  const runs: ReportRun[] = [];
  const cached: ReportResult['cached'] = [];
  for (const info of infos) {
    const eps = info.config.eps;
    const ro: ReportOptions = { ...o, evalBatchSize: o.evalBatchSize ?? info.config.evalBatchSize };
    // the batch is in the keys: the gallery's PGD draws its random starts batch by batch; `gallery` marks
    // galleries of 8-bit images with predictions on them (entries of earlier freeadv predicted on unrounded images)
    const aKey = cacheKey('analyses', info.checkpoint, {
      gallery: '8-bit', eps, images: o.images, evalBatchSize: ro.evalBatchSize, attackSteps: o.attackSteps, surfacePoints: o.surfacePoints, surfaceRange: o.surfaceRange,
      targetEps: o.targetEps ?? null, targetNorm: o.targetNorm, targetSteps: o.targetSteps, targetClass: o.targetClass ?? null, seed: o.seed,
    });
    const cKey = cacheKey('robustness-curve', info.checkpoint, { eps, curveEps: o.curveEps, curveSteps: o.curveSteps, limit: o.limit, seed: o.seed, evalBatchSize: ro.evalBatchSize });
    let analyses = o.useCache ? cacheGet<Analyses>(info.dir, aKey, ANALYSES_SCHEMA, warn) : undefined;
    let curve = o.robustnessCurve ? (o.useCache ? cacheGet<RobustnessCurve>(info.dir, cKey, CURVE_SCHEMA, warn) : undefined) : cacheFind<RobustnessCurve>(info.dir, 'robustness-curve', info.checkpoint, CURVE_SCHEMA, warn);
    const hit = { analyses: analyses !== undefined, curve: o.robustnessCurve ? curve !== undefined : undefined };
    if (!analyses || (o.robustnessCurve && !curve)) {
      const data = await runTestData(info, o.dataDir);
      const model = loadRunModel(info, data, o.device);
      try {
        if (!analyses) {
          log(`${info.name}: analyses of ${Math.min(o.images, data.n)} test images (gallery, saliency, loss surface, targeted attacks)…`);
          analyses = await computeAnalyses(model, data, eps, ro);
          cachePut(info.dir, aKey, analyses, warn);
        }
        if (o.robustnessCurve && !curve) {
          log(`${info.name}: robustness curve, pgd-${o.curveSteps} at ${o.curveEps.length} values of ε on ${Math.min(o.limit, data.n)} test images…`);
          curve = await computeRobustnessCurve(model, data, eps, ro);
          cachePut(info.dir, cKey, curve, warn);
        }
      } finally {
        model.dispose();
      }
    }
    runs.push({ ...info, analyses, ...(curve ? { curve } : {}) });
    cached.push(hit);
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileAtomic(out, renderHtml(runs, { title: o.title, robustnessHint: !runs.some((r) => r.curve) }));
  return { out, runs, cached, seconds: (performance.now() - t0) / 1000 };
}
