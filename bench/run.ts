// `npm run bench`: freeadv measured against PyTorch (bench/reference, Debian's python3-torch) on this machine,
// in one run, each figure a ratio or a pair:
//   step      images/s of one free-training step, freeadv vs PyTorch (alternating rounds, median)
//   overhead  a free replay step vs a natural step, interleaved in one process (freeadv and PyTorch)
//   ladder    backward passes and seconds per natural-epoch budget: natural, free-m, FGSM-RS, PGD-7
//   memory    peak RSS of the same step job, freeadv vs PyTorch
//   data      share of step time spent waiting for data (Fashion-MNIST and CIFAR-shaped with augmentation)
//   autoattack  seconds of AutoAttack's standard ensemble on the same weights and test images, freeadv vs the
//            PyTorch twin (bench/reference/autoattack_eval.py), and the robust accuracy each gives
//   pipeline  image-folder input pipeline: images/s and CPU ms per image of freeadv's loader workers vs
//             torchvision ImageFolder + DataLoader (RandomResizedCrop 224 + flip + to float tensors, batch 64)
//             on the same synthetic ImageNet-like JPEGs, per worker count
//   onnx      inference images/s of each small model exported to ONNX and run by ONNX Runtime (onnxruntime-node)
//             vs freeadv's libtorch forward (eval mode, no autograd), batch 1 and 64, one thread and all cores;
//             both from a Float32Array of pixels to one of logits, in one process, alternating, median of rounds;
//             with one thread also per CPU-second (robust to other load on the machine)
// Options: --only step,overhead,ladder,memory,data,autoattack,pipeline,onnx   --quick   --rounds N   --threads N
//          --pipeline-workers 1,2,4 (default: 1, 2, 4, … up to the cores)   --pipeline-images N (default 1024)
//          --models small-cnn,… (step rows of these models only)   --step-scale K (K times the steps per row)
//          --onnx-models small-cnn,resnet-cifar-small,preact-resnet18,wrn-34-10 (default: all four).
// Prints JSON.
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { cpus, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/torch/index.js';
import { createModel } from '../src/models/index.js';
import { SGD } from '../src/optim/index.js';
import { methods, resolveConfig, trainBatch, type Method, type TrainContext } from '../src/train/index.js';
import { loadDataset, Loader, prepareImageFolder, type InMemoryDataset } from '../src/data/index.js';
import { toTensors } from '../src/data/tensor.js';
import { writeSyntheticImageFolder } from './pipeline-data.js';
import { exportOnnx, describeDataset } from '../src/export/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { values: opt } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    models: { type: 'string' },
    'step-scale': { type: 'string', default: '1' },
    threads: { type: 'string', default: String(cpus().length) },
    'pipeline-workers': { type: 'string' },
    'pipeline-images': { type: 'string', default: '1024' },
    'onnx-models': { type: 'string' },
  },
});
const parts = new Set((opt.only ?? 'step,overhead,ladder,memory,data,autoattack,pipeline,onnx').split(','));
const quick = opt.quick!;
const rounds = Number(opt.rounds ?? (quick ? 1 : 3));
const threads = Number(opt.threads);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, threads },
  command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
};
const log = (s: string) => process.stderr.write(s + '\n');

interface StepResult {
  images_per_second: number;
  ms_per_step: number;
  ms_median: Record<string, number>;
  /** Median CPU time of a step (user + system, all threads): the work, whatever share of the cores the process got. */
  cpu_ms_median: Record<string, number>;
  peak_rss_mb: number;
}

function runJson<R = StepResult>(cmd: string, args: string[], env: Record<string, string> = {}): R {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: root, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', ...env }, maxBuffer: 16 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as R;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function stepPair(model: string, batch: number, steps: number, kind = 'free', extra: string[] = []) {
  const ours: StepResult[] = [];
  const theirs: StepResult[] = [];
  const common = ['--model', model, '--batch', String(batch), '--threads', String(threads), '--steps', String(steps), '--warmup', '2', '--kind', kind, ...extra];
  for (let r = 0; r < rounds; r++) {
    ours.push(runJson(process.execPath, [join(here, 'step-worker.js'), ...common]));
    theirs.push(runJson('/usr/bin/python3', [join(root, 'bench', 'reference', 'step_bench.py'), ...common]));
  }
  const a = median(ours.map((o) => o.images_per_second));
  const b = median(theirs.map((o) => o.images_per_second));
  // each round's ratio (round r of freeadv against round r of PyTorch, run back to back): their spread says
  // whether a ratio below 1 is the machine's noise or real
  const ratios = ours.map((o, r) => o.images_per_second / theirs[r]!.images_per_second);
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  return {
    model, batch, kind, steps, rounds,
    ...(extra.length && { variant: extra.join(' ') }),
    freeadv_images_per_second: a,
    pytorch_images_per_second: b,
    ratio: r3(a / b),
    ratio_min: r3(Math.min(...ratios)),
    ratio_max: r3(Math.max(...ratios)),
    // PyTorch's CPU time per step over freeadv's, median of the rounds: on a shared machine, where wall-clock rounds
    // swing with the load, this says which implementation does less work (above 1: freeadv)
    cpu_ratio: r3(median(ours.map((o, r) => theirs[r]!.cpu_ms_median[kind]! / o.cpu_ms_median[kind]!))),
    freeadv_peak_rss_mb: median(ours.map((o) => o.peak_rss_mb)),
    pytorch_peak_rss_mb: median(theirs.map((o) => o.peak_rss_mb)),
  };
}

if (parts.has('step') || parts.has('memory')) {
  const configs: [string, number, number][] = quick
    ? [['small-cnn', 128, 20], ['resnet-cifar-small', 32, 10]]
    : [['small-cnn', 32, 60], ['small-cnn', 128, 30], ['resnet-cifar-small', 32, 30], ['resnet-cifar-small', 128, 10], ['preact-resnet18', 128, 2], ['wrn-34-10', 8, 2]];
  const only = opt.models?.split(',');
  const keep = (m: string) => !only || only.includes(m);
  const scale = Number(opt['step-scale']);
  const rows = [];
  for (const [m, b, s] of configs.filter(([m]) => keep(m))) {
    log(`step: ${m} batch ${b}...`);
    rows.push(stepPair(m, b, Math.round(s * scale)));
  }
  results.step = rows;
  // the same free step under bf16 autocast and with channels-last weights and inputs, each against PyTorch
  // doing the same (torch.autocast('cpu', bfloat16); .to(memory_format=torch.channels_last))
  const variants: [string, number, number, string[]][] = quick
    ? [['small-cnn', 128, 20, ['--amp', 'bf16']], ['resnet-cifar-small', 32, 10, ['--amp', 'bf16']], ['resnet-cifar-small', 32, 10, ['--channels-last']]]
    : [['small-cnn', 128, 30, ['--amp', 'bf16']], ['resnet-cifar-small', 128, 10, ['--amp', 'bf16']], ['resnet-cifar-small', 128, 10, ['--channels-last']], ['resnet-cifar-small', 128, 10, ['--channels-last', '--amp', 'bf16']], ['preact-resnet18', 128, 2, ['--channels-last']], ['preact-resnet18', 128, 2, ['--amp', 'bf16']]];
  const variantRows = [];
  for (const [m, b, s, extra] of variants.filter(([m]) => keep(m))) {
    log(`step: ${m} batch ${b} ${extra.join(' ')}...`);
    variantRows.push(stepPair(m, b, Math.round(s * scale), 'free', extra));
  }
  results.step_variants = variantRows;
  results.memory = rows.map((r) => ({ model: r.model, batch: r.batch, freeadv_peak_rss_mb: r.freeadv_peak_rss_mb, pytorch_peak_rss_mb: r.pytorch_peak_rss_mb, ratio: Math.round((r.freeadv_peak_rss_mb / r.pytorch_peak_rss_mb) * 1000) / 1000 }));
}

if (parts.has('overhead')) {
  // The same pair of steps in freeadv and in PyTorch: the extra cost of a free replay step (the input gradient
  // and the δ update) is a property of the algorithm on this model, so PyTorch's figure is the yardstick.
  // On a small CNN the first layer's input gradient is a visible share of the step; on a ResNet it is not.
  // Each process interleaves natural and free steps one by one and reports each kind's median step time:
  // separate processes of the very same job differ by up to ±25% here, which once passed for a regression.
  const rows = [];
  for (const [model, steps] of [['small-cnn', quick ? 20 : 60], ['resnet-cifar-small', quick ? 6 : 20]] as const) {
    log(`overhead: free vs natural step, ${model}...`);
    const runs: Record<'freeadv' | 'pytorch', { natural: number; free: number }[]> = { freeadv: [], pytorch: [] };
    for (let r = 0; r < Math.max(rounds, 3); r++) {
      const common = ['--model', model, '--batch', '128', '--threads', String(threads), '--steps', String(steps), '--warmup', '3', '--kind', 'natural,free'];
      for (const impl of ['freeadv', 'pytorch'] as const) {
        const res = impl === 'freeadv'
          ? runJson(process.execPath, [join(here, 'step-worker.js'), ...common])
          : runJson('/usr/bin/python3', [join(root, 'bench', 'reference', 'step_bench.py'), ...common]);
        runs[impl].push(res.ms_median as { natural: number; free: number });
      }
    }
    const pct = (f: number, n: number) => Math.round((f / n - 1) * 1000) / 10;
    const summary = (rs: { natural: number; free: number }[]) => ({
      free_ms: median(rs.map((r) => r.free)), natural_ms: median(rs.map((r) => r.natural)),
      overhead_percent: median(rs.map((r) => pct(r.free, r.natural))), overhead_percent_per_process: rs.map((r) => pct(r.free, r.natural)),
    });
    rows.push({ model, batch: 128, steps_per_kind: steps, processes: runs.freeadv.length, freeadv: summary(runs.freeadv), pytorch: summary(runs.pytorch) });
  }
  results.overhead = rows;
}

async function fashion(): Promise<InMemoryDataset> {
  return (await loadDataset({ name: 'fashion-mnist', split: 'train' })) as InMemoryDataset;
}

if (parts.has('ladder')) {
  T.setNumThreads(threads);
  const data = await fashion();
  const batches = Math.ceil(data.n / 128);
  const ladder = [];
  const variants: [string, Partial<Record<string, unknown>>][] = [
    ['natural', { method: 'natural' }],
    ['free-2', { method: 'free', replays: 2 }],
    ['free-4', { method: 'free', replays: 4 }],
    ['free-8', { method: 'free', replays: 8 }],
    ['fgsm', { method: 'fgsm' }],
    ['pgd-7', { method: 'pgd', attackSteps: 7 }],
  ];
  for (const [name, over] of variants) {
    log(`ladder: ${name}...`);
    const cfg = resolveConfig({ ...over, threads });
    const method: Method = methods[cfg.method]!;
    T.manualSeed(0);
    const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: data.mean, std: data.std });
    const sgd = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
    const ctx: TrainContext = {
      model, cfg, batchShape: [128, 1, 28, 28], state: new Map(),
      sgdStep(loss) { sgd.zeroGrad(); loss.backward(); sgd.step(); },
      record() {},
    };
    method.init?.(ctx);
    const loader = new Loader(data, { batchSize: 128, seed: 0, worker: false });
    const n = quick ? 6 : 16;
    let i = 0, ms = 0;
    for await (const b of loader.epoch(0)) {
      const t0 = performance.now();
      T.scope(() => { const { x, y } = toTensors(b); trainBatch(method, ctx, x, y); });
      if (i >= 2) ms += performance.now() - t0; // first batches warm up
      if (++i >= n + 2) break;
    }
    await loader.close();
    const perBatch = ms / n;
    // one natural-epoch budget: free-m makes 1/m of a pass, with m SGD steps per batch
    const share = cfg.method === 'free' ? 1 / cfg.replays : 1;
    ladder.push({
      method: name,
      backward_passes_per_epoch: Math.round(batches * share * method.stepsPerBatch(cfg) * method.backwardPerStep(cfg)),
      seconds_per_epoch: Math.round(((perBatch * batches * share) / 1000) * 10) / 10,
    });
    for (const t of ctx.state.values()) t.dispose();
    sgd.dispose();
    model.dispose();
  }
  const pgd7 = ladder.find((l) => l.method === 'pgd-7')!.seconds_per_epoch;
  results.ladder = ladder.map((l) => ({ ...l, speedup_vs_pgd7: Math.round((pgd7 / l.seconds_per_epoch) * 10) / 10 }));
}

if (parts.has('data')) {
  T.setNumThreads(threads);
  const out = [];
  // Fashion-MNIST with the default model and a free step; CIFAR-shaped uint8 data with augmentation
  const fm = await fashion();
  const n = 5000;
  const cifar: InMemoryDataset = { ...fm, kind: 'memory', name: 'cifar10', c: 3, h: 32, w: 32, n, images: new Uint8Array(new SharedArrayBuffer(n * 3 * 32 * 32)), labels: fm.labels.subarray(0, n), mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
  for (let i = 0; i < cifar.images.length; i++) cifar.images[i] = (i * 2654435761) >>> 24;
  for (const [name, data, model, augment] of [['fashion-mnist', fm, 'small-cnn', false], ['cifar-shaped (augmented)', cifar, 'resnet-cifar-small', true]] as const) {
    log(`data: ${name}...`);
    const cfg = resolveConfig({ method: 'free', replays: 4, threads, dataset: data.c === 1 ? 'fashion-mnist' : 'cifar10', model });
    const m = createModel(model, { numClasses: 10, inChannels: data.c, size: data.h, mean: data.mean, std: data.std });
    const sgd = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9 });
    const ctx: TrainContext = {
      model: m, cfg, batchShape: [128, data.c, data.h, data.w], state: new Map(),
      sgdStep(loss) { sgd.zeroGrad(); loss.backward(); sgd.step(); },
      record() {},
    };
    methods.free!.init!(ctx);
    const loader = new Loader(data, { batchSize: 128, seed: 0, augment, prefetch: 3 });
    const limit = quick ? 15 : 40;
    let i = 0;
    const t0 = performance.now();
    for await (const b of loader.epoch(0)) {
      T.scope(() => { const { x, y } = toTensors(b); trainBatch(methods.free!, ctx, x, y); });
      if (++i >= limit) break;
    }
    const total = performance.now() - t0;
    const s = loader.stats();
    await loader.close();
    out.push({ data: name, model, batches: i, wait_ms: Math.round(s.waitMs), total_ms: Math.round(total), wait_percent: Math.round((s.waitMs / total) * 1000) / 10, produce_ms_per_batch: Math.round((s.producedMs / Math.max(1, s.batches)) * 10) / 10 });
    for (const t of ctx.state.values()) t.dispose();
    sgd.dispose();
    m.dispose();
  }
  results.data = out;
}

if (parts.has('autoattack')) {
  // a small-cnn trained with free-4 for a few hundred steps, so that the ensemble has robust points to work on
  const dir = mkdtempSync(join(tmpdir(), 'freeadv-bench-aa-'));
  const bin = join(root, 'bin', 'freeadv.js');
  const n = quick ? 50 : 200;
  log(`autoattack: training the model (free-4, 300 SGD steps)...`);
  const sh = (args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: root, maxBuffer: 16 * 2 ** 20 });
    if (r.status !== 0) throw new Error(`freeadv ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  sh(['train', '--method', 'free', '--replays', '4', '--max-steps', '300', '--val-size', '0', '--eval-limit', '10', '--threads', String(threads), '--out', join(dir, 'run')]);
  sh(['export', '--run', join(dir, 'run'), '--format', 'safetensors', '--out', join(dir, 'weights.safetensors')]);
  const rows = [];
  for (let r = 0; r < Math.max(1, rounds - 1); r++) {
    log(`autoattack: ${n} test images, freeadv...`);
    const ours = JSON.parse(sh(['eval', '--run', join(dir, 'run'), '--checkpoint', 'latest', '--attacks', 'autoattack', '--limit', String(n), '--threads', String(threads), '--json']).trim().split('\n').pop()!);
    log(`autoattack: ${n} test images, PyTorch...`);
    const theirs = runJson('/usr/bin/python3', [join(root, 'bench', 'reference', 'autoattack_eval.py'), '--weights', join(dir, 'weights.safetensors'), '--n', String(n), '--threads', String(threads)]) as unknown as { seconds: number; robust_accuracy: number; stages: Record<string, number> };
    rows.push({ images: n, freeadv_seconds: ours.seconds, pytorch_seconds: theirs.seconds, ratio: Math.round((theirs.seconds / ours.seconds) * 1000) / 1000, freeadv_stages: ours.stages.autoattack, pytorch_stages: theirs.stages });
  }
  results.autoattack = rows;
  rmSync(dir, { recursive: true, force: true });
}

if (parts.has('pipeline')) {
  // Both sides read the same synthetic JPEGs from a temporary folder, alternating, each run a fresh process
  // timing one shuffled epoch from its start (worker start-up included) and its CPU time (workers included).
  interface PipelineResult { images: number; seconds: number; images_per_second: number; steady_images_per_second: number; cpu_ms_per_image: number; steady_cpu_ms_per_image: number; first_batch_ms: number }
  const dir = mkdtempSync(join(tmpdir(), 'freeadv-pipeline-'));
  try {
    const n = Number(opt['pipeline-images']);
    log(`pipeline: writing ${n} synthetic ImageNet-like JPEGs to ${dir}...`);
    const gen = await writeSyntheticImageFolder(dir, n);
    const counts = opt['pipeline-workers']
      ? opt['pipeline-workers'].split(',').map(Number)
      : [1, 2, 4, 8, 16, 32, 64].filter((w) => w <= Math.max(2, cpus().length));
    const rows = [];
    const r1 = (v: number) => Math.round(v * 10) / 10;
    const r2 = (v: number) => Math.round(v * 100) / 100;
    // the same measurement on `freeadv prepare`'s copy (longer side at most 256), at the most workers
    const prepared = `${dir}-256`;
    const runs: [string, number, string][] = [...counts.map((w): [string, number, string] => ['original', w, dir]), ['prepared, max side 256', Math.max(...counts), prepared]];
    for (const [data, w, from] of runs) {
      if (from === prepared) {
        log(`pipeline: freeadv prepare --max-side 256...`);
        await prepareImageFolder(dir, prepared, { maxSide: 256, quality: 90, concurrency: cpus().length });
      }
      log(`pipeline: ${data}, ${w} worker(s)...`);
      const args = ['--dir', from, '--workers', String(w), '--batch', '64', '--size', '224'];
      const ours: PipelineResult[] = [];
      const theirs: PipelineResult[] = [];
      for (let r = 0; r < rounds; r++) {
        ours.push(runJson<PipelineResult>(process.execPath, [join(here, 'pipeline-worker.js'), ...args], { UV_THREADPOOL_SIZE: String(w + 2) }));
        theirs.push(runJson<PipelineResult>('/usr/bin/python3', [join(root, 'bench', 'reference', 'pipeline_bench.py'), ...args], { OMP_NUM_THREADS: '1' }));
      }
      const ips = (rs: PipelineResult[]) => median(rs.map((x) => x.images_per_second));
      const cpuMs = (rs: PipelineResult[]) => median(rs.map((x) => x.cpu_ms_per_image));
      const a = ips(ours), b = ips(theirs);
      rows.push({
        data, workers: w, rounds, images: n,
        freeadv_images_per_second: r1(a),
        pytorch_images_per_second: r1(b),
        ratio: Math.round((a / b) * 1000) / 1000,
        freeadv_cpu_ms_per_image: r2(cpuMs(ours)),
        pytorch_cpu_ms_per_image: r2(cpuMs(theirs)),
        // after the first batch (the workers' start-up left out: an epoch of ImageNet's size)
        freeadv_steady_cpu_ms_per_image: r2(median(ours.map((x) => x.steady_cpu_ms_per_image))),
        pytorch_steady_cpu_ms_per_image: r2(median(theirs.map((x) => x.steady_cpu_ms_per_image))),
        // per core: images per CPU-second, and the cores that feed a GPU at 2,000 images/s
        freeadv_images_per_cpu_second: r1(1000 / cpuMs(ours)),
        pytorch_images_per_cpu_second: r1(1000 / cpuMs(theirs)),
        freeadv_cores_for_2000_images_per_second: r1((2000 * cpuMs(ours)) / 1000),
        pytorch_cores_for_2000_images_per_second: r1((2000 * cpuMs(theirs)) / 1000),
        per_round: {
          freeadv_images_per_second: ours.map((x) => r1(x.images_per_second)),
          pytorch_images_per_second: theirs.map((x) => r1(x.images_per_second)),
          freeadv_steady_images_per_second: ours.map((x) => r1(x.steady_images_per_second)),
          pytorch_steady_images_per_second: theirs.map((x) => r1(x.steady_images_per_second)),
          freeadv_cpu_ms_per_image: ours.map((x) => r2(x.cpu_ms_per_image)),
          pytorch_cpu_ms_per_image: theirs.map((x) => r2(x.cpu_ms_per_image)),
          freeadv_steady_cpu_ms_per_image: ours.map((x) => r2(x.steady_cpu_ms_per_image)),
          pytorch_steady_cpu_ms_per_image: theirs.map((x) => r2(x.steady_cpu_ms_per_image)),
          freeadv_first_batch_ms: ours.map((x) => Math.round(x.first_batch_ms)),
          pytorch_first_batch_ms: theirs.map((x) => Math.round(x.first_batch_ms)),
        },
      });
    }
    results.pipeline = { images: { count: n, bytes_per_pixel: r2(gen.bytes / gen.pixels), mean_kb: r1(gen.bytes / n / 1024) }, rows };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`${dir}-256`, { recursive: true, force: true });
  }
}

if (parts.has('onnx')) {
  // Random weights (speed does not depend on them; BatchNorm uses its running statistics in both). Each
  // measurement repeats the call until 0.4 s have passed (at least 3 calls, after 2 warm-up calls); the two
  // runtimes alternate, and the median of the rounds is kept.
  const ort = await import('onnxruntime-node');
  const cases: [string, 'fashion-mnist' | 'cifar10', number[]][] = [
    ['small-cnn', 'fashion-mnist', [1, 64]],
    ['resnet-cifar-small', 'cifar10', [1, 64]],
    ['preact-resnet18', 'cifar10', [1, 64]],
    ['wrn-34-10', 'cifar10', [1]],
  ];
  if (opt['onnx-models']) {
    const want = opt['onnx-models'].split(',');
    cases.splice(0, cases.length, ...cases.filter(([name]) => want.includes(name)));
  }
  const threadCounts = [...new Set([1, threads])];
  const rows = [];
  // ms per call, wall clock and the process's CPU time (with one thread, CPU time is the compute time whatever else
  // runs on the machine; with more, it also counts threads that spin while they wait)
  const timeIt = async (f: () => Promise<void>) => {
    for (let i = 0; i < 2; i++) await f();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    let n = 0;
    while (n < 3 || performance.now() - t0 < 400) {
      await f();
      n++;
    }
    const c = process.cpuUsage(c0);
    return { wall: (performance.now() - t0) / n, cpu: (c.user + c.system) / 1000 / n };
  };
  for (const [name, dataset, batches] of cases) {
    const shape = describeDataset(dataset);
    T.manualSeed(0);
    const model = createModel(name, { numClasses: shape.numClasses, inChannels: shape.c, size: shape.h, mean: shape.mean, std: shape.std }).eval();
    const onnx = exportOnnx(model, { inputShape: [shape.c, shape.h, shape.h], numClasses: shape.numClasses });
    for (const th of threadCounts) {
      T.setNumThreads(th);
      const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: th, interOpNumThreads: 1 });
      for (const batch of quick ? batches.slice(0, 1) : batches) {
        log(`onnx: ${name}, batch ${batch}, ${th} thread(s)...`);
        const x = new Float32Array(batch * shape.c * shape.h * shape.h).map((_, i) => ((i * 7919) % 255) / 255);
        const dims = [batch, shape.c, shape.h, shape.h];
        const torchForward = async () => {
          T.scope(() => T.noGrad(() => model.forward(T.fromTypedArray(x, dims)).toTypedArray()));
        };
        const ortForward = async () => {
          const r = await session.run({ input: new ort.Tensor('float32', x, dims) });
          void (r.logits!.data as Float32Array)[0];
        };
        const torchMs: { wall: number; cpu: number }[] = [], ortMs: { wall: number; cpu: number }[] = [];
        for (let r = 0; r < rounds; r++) {
          torchMs.push(await timeIt(torchForward));
          ortMs.push(await timeIt(ortForward));
        }
        const ips = (ms: { wall: number; cpu: number }[], k: 'wall' | 'cpu') => batch / (median(ms.map((m) => m[k])) / 1000);
        const a = ips(ortMs, 'wall'), b = ips(torchMs, 'wall');
        const r1 = (v: number) => Math.round(v * 10) / 10, r3 = (v: number) => Math.round(v * 1000) / 1000;
        rows.push({
          model: name, batch, threads: th, rounds,
          onnxruntime_images_per_second: r1(a),
          libtorch_images_per_second: r1(b),
          ratio: r3(a / b),
          ...(th === 1 && {
            onnxruntime_images_per_cpu_second: r1(ips(ortMs, 'cpu')),
            libtorch_images_per_cpu_second: r1(ips(torchMs, 'cpu')),
            cpu_ratio: r3(ips(ortMs, 'cpu') / ips(torchMs, 'cpu')),
          }),
        });
      }
      await session.release();
    }
    model.dispose();
  }
  T.setNumThreads(threads);
  results.onnx = { onnxruntime: ort.env.versions, libtorch: T.version().torch, rows };
}

process.stdout.write(JSON.stringify(results, null, 2) + '\n');
