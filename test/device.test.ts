// Devices: `--device cuda` where this process cannot use a GPU is refused before any work, in train, eval and
// report alike; and, with FREEADV_TEST_DEVICE=cuda on a GPU machine (the addon built against a CUDA PyTorch,
// FREEADV_ADDON=…), batches reach the GPU as exact floats, validation leaves the GPU's random stream as it was,
// training (its checkpoint keeping the GPU's generator), resume, evaluation (under fp16 autocast too) and the report
// run there, and a one-process NCCL group carries the Reducer's gradient averaging. scripts/device.sh runs this
// file so.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { toTensors } from '../src/data/tensor.js';
import type { InMemoryDataset } from '../src/data/index.js';
import { modelFor } from '../src/models/index.js';
import { Validation } from '../src/train/validation.js';
import { train, resolveConfig } from '../src/train/index.js';
import { loadCheckpoint, disposeCheckpoint } from '../src/io/index.js';
import { smallFashionMnist, pattern } from './helpers/data.js';
import { TEST_DEVICE, deviceSkip, gpuOnlySkip } from './helpers/device.js';

const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-device-'));

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

const noGpu = T.cuda.problem('cuda');

test('cuda.problem: cpu is always usable; cuda says what is missing (a CUDA build, a GPU, the index)', () => {
  assert.equal(T.cuda.problem('cpu'), undefined);
  if (!T.cuda.built()) {
    assert.match(T.cuda.problem('cuda')!, /^cuda: this build of the native addon has no CUDA \(its libtorch .* is CPU-only\); build one against a CUDA PyTorch: bash scripts\/build-pip-torch.sh/);
    assert.equal(T.cuda.isAvailable(), false);
  } else if (!T.cuda.isAvailable()) {
    assert.match(T.cuda.problem('cuda:0')!, /^cuda:0: no CUDA GPU found \(the addon's libtorch .* has CUDA, but the driver reports no device/);
  } else {
    const n = T.cuda.deviceCount();
    assert.equal(T.cuda.problem('cuda'), undefined);
    assert.equal(T.cuda.problem(`cuda:${n - 1}`), undefined);
    assert.match(T.cuda.problem(`cuda:${n}`)!, new RegExp(`^cuda:${n}: this machine has ${n} CUDA device`));
  }
});

test('--device cuda without a usable GPU: exit 2 naming --device, before any data is read, in train, eval and report', { skip: noGpu ? false : 'this machine has a GPU' }, async () => {
  const missing = join(tmp, 'no-such-data'); // read first, this would be the error
  const out = join(tmp, 'refused');
  const cases: [string, string[]][] = [
    ['train', ['train', '--device', 'cuda', '--data-dir', missing, '--out', out]],
    ['train --nproc 2', ['train', '--device', 'cuda', '--nproc', '2', '--data-dir', missing, '--out', out]],
    ['train cuda:1', ['train', '--device', 'cuda:1', '--data-dir', missing, '--out', out]],
    ['eval', ['eval', '--weights', join(tmp, 'no-such.safetensors'), '--model', 'small-cnn', '--data-dir', missing, '--device', 'cuda']],
    ['report', ['report', join(tmp, 'no-such-run'), '--device', 'cuda', '--out', join(tmp, 'r.html')]],
  ];
  for (const [what, args] of cases) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${what}: exit code (stderr: ${r.err})`);
    assert.match(r.err, /--device: cuda(:1)?: (this build of the native addon has no CUDA|no CUDA GPU found)/, `${what}: ${r.err}`);
    assert.doesNotMatch(r.err, /at .*\.js:\d+|internal error/i, `${what}: no stack trace`);
  }
  assert.ok(!existsSync(out), 'no run folder written');
  assert.ok(!existsSync(join(tmp, 'r.html')), 'no report written');
  // a run whose config.json says cuda (as written on a GPU machine) is refused on resume just as early
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const gpuRun = join(tmp, 'gpu-run');
  mkdirSync(gpuRun);
  writeFileSync(join(gpuRun, 'config.json'), JSON.stringify({ method: 'free', device: 'cuda', dataDir: missing }));
  const r = await cli(['train', '--resume', gpuRun]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /device.*cuda: (this build of the native addon has no CUDA|no CUDA GPU found)/);
});

test(`bytes reach ${TEST_DEVICE} as exact floats v/255, both layouts, with int64 labels there`, { skip: deviceSkip }, () => {
  T.scope(() => {
    const n = 2, c = 2, h = 8, w = 8;
    const bytes = Uint8Array.from({ length: n * c * h * w }, (_, i) => i % 256); // every byte value
    for (const layout of ['nchw', 'nhwc'] as const) {
      const { x, y } = toTensors({ x: bytes, shape: [n, c, h, w], y: Int32Array.from([3, 7]), layout }, TEST_DEVICE);
      assert.equal(x.device.replace(/:0$/, ''), TEST_DEVICE.replace(/:0$/, ''));
      assert.equal(y.device, x.device);
      assert.deepEqual(y.toArray(), [3, 7]);
      const got = x.toTypedArray() as Float32Array;
      const want = new Float32Array(n * c * h * w);
      for (let i = 0; i < n; i++)
        for (let ch = 0; ch < c; ch++)
          for (let r = 0; r < h; r++)
            for (let q = 0; q < w; q++) {
              const src = layout === 'nchw' ? ((i * c + ch) * h + r) * w + q : ((i * h + r) * w + q) * c + ch;
              want[((i * c + ch) * h + r) * w + q] = bytes[src]! / 255;
            }
      assert.deepEqual(got, want, layout);
    }
  });
});

test(`validation leaves training's random streams as they were: the CPU's and the training device's generator (${TEST_DEVICE})`, { skip: deviceSkip, timeout: 120_000 }, async () => {
  // 64 made-up 28×28 images (no data set needed)
  const train: InMemoryDataset = { kind: 'memory', name: 'fashion-mnist', split: 'train', format: 'idx', dataDir: '', numClasses: 10, mean: [0.5], std: [0.25], images: pattern(64 * 784, 1), labels: Int32Array.from({ length: 64 }, (_, i) => i % 10), n: 64, c: 1, h: 28, w: 28 };
  const model = modelFor('small-cnn', train, { device: TEST_DEVICE });
  try {
    const indices = Int32Array.from({ length: 64 }, (_, i) => i);
    const validation = new Validation(train, indices, { eps: 0.1, batchSize: 32, seed: 9, device: TEST_DEVICE, dtype: 'float32' });
    const draws = () => T.scope(() => [T.rand([4]).toArray(), T.rand([4], { device: TEST_DEVICE }).toArray()]);
    T.manualSeed(3);
    const want = draws();
    T.manualSeed(3);
    const r = await validation.run(model); // seeds its own stream (PGD-10's random starts) on both generators
    assert.ok(r && r.robust_accuracy <= r.clean_accuracy);
    assert.deepEqual(draws(), want);
  } finally {
    model.dispose();
  }
});

test(`a rank's own device is not the run's: config.json keeps the job's --device cuda while the process trains on its GPU (here ${TEST_DEVICE}), so that --resume can start every rank again`, { skip: deviceSkip, timeout: 120_000 }, async () => {
  const data = await smallFashionMnist(128, 20);
  const out = join(tmp, 'rank-device');
  // what a rank of `train --device cuda --nproc N` has: the job's configuration, and its own cuda:LOCAL_RANK
  const job = { ...resolveConfig({ dataDir: data, method: 'natural', epochs: 1, maxSteps: 2, batchSize: 64, valSize: 0, threads: 2, seed: 5, out }), device: 'cuda' };
  const own = TEST_DEVICE === 'cpu' ? 'cpu' : T.zeros([1], { device: TEST_DEVICE }).device;
  const quiet = () => undefined;
  const s = await train(job, { device: own, noEval: true, handleSignals: false, log: quiet, warn: quiet, progress: new (await import('node:stream')).Writable({ write: (_c, _e, cb) => cb() }) });
  assert.equal(s.sgd_steps, 2);
  assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).device, 'cuda');
});

let data = '';
before(async () => {
  if (!gpuOnlySkip) data = await smallFashionMnist(512, 200);
});

test('on the GPU: free training, resuming it (its checkpoint restored on the GPU), eval (clean, PGD, APGD-CE) and the report run with --device cuda and agree with the CPU', { skip: gpuOnlySkip, timeout: 300_000 }, async () => {
  const common = ['--data-dir', data, '--batch-size', '64', '--eval-limit', '100', '--val-size', '64', '--log-every', '2', '--seed', '5', '--device', TEST_DEVICE, '--model', 'small-cnn'];
  const dir = join(tmp, 'gpu-free');
  let r = await cli(['train', ...common, '--method', 'free', '--replays', '2', '--epochs', '4', '--max-steps', '6', '--out', dir, '--eval-attacks', 'pgd-5']);
  assert.equal(r.code, 0, r.err);
  // the checkpoint keeps the GPU's generator beside the CPU's (FGSM's and PGD's random starts draw from it)
  const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
  try {
    assert.ok(ck.tensors['rng.cpu'] && ck.tensors['rng.cuda'], `checkpoint tensors: ${Object.keys(ck.tensors)}`);
  } finally {
    disposeCheckpoint(ck);
  }
  const resumed = await cli(['train', '--resume', dir]);
  assert.equal(resumed.code, 0, resumed.err);
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(lines.some((l) => Number.isFinite(l.loss)), 'metrics lines with a loss');
  const evals: Record<string, { clean_accuracy: number; robust_accuracy: Record<string, number> }> = {};
  for (const device of [TEST_DEVICE, 'cpu']) {
    r = await cli(['eval', '--run', dir, '--checkpoint', 'latest', '--attacks', 'pgd-10,apgd-ce', '--limit', '100', '--device', device, '--json']);
    assert.equal(r.code, 0, r.err);
    evals[device] = JSON.parse(r.out.trim().split('\n').pop()!);
  }
  const [g, c] = [evals[TEST_DEVICE]!, evals.cpu!];
  assert.ok(Math.abs(g.clean_accuracy - c.clean_accuracy) <= 0.01, `clean ${g.clean_accuracy} vs CPU ${c.clean_accuracy}`);
  for (const a of ['pgd-10', 'apgd-ce']) assert.ok(Math.abs(g.robust_accuracy[a]! - c.robust_accuracy[a]!) <= 0.03, `${a}: ${g.robust_accuracy[a]} vs CPU ${c.robust_accuracy[a]}`);
  // under fp16 autocast the margin losses (CW, Square's) see float16 logits
  r = await cli(['eval', '--run', dir, '--checkpoint', 'latest', '--attacks', 'cw-5,square-50', '--attack-amp', 'fp16', '--limit', '50', '--device', TEST_DEVICE, '--json']);
  assert.equal(r.code, 0, r.err);
  const amp = JSON.parse(r.out.trim().split('\n').pop()!);
  assert.equal(amp.amp, 'float16');
  for (const a of ['cw-5', 'square-50']) assert.ok(amp.robust_accuracy[a] <= amp.clean_accuracy, `${a} under fp16: ${amp.robust_accuracy[a]}`);
  r = await cli(['report', dir, '--device', TEST_DEVICE, '--out', join(tmp, 'gpu.html'), '--images', '2', '--no-cache']);
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(tmp, 'gpu.html')));
});

test('on the GPU: a one-process NCCL group all-reduces CUDA tensors and carries c10d\'s Reducer', { skip: gpuOnlySkip || (!T.dist.ncclAvailable() && 'this build of the native addon has no NCCL'), timeout: 120_000 }, async () => {
  const worker = join(here, 'helpers', 'nccl-worker.js');
  const env = { ...process.env, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(29000 + (process.pid % 1000)), WORLD_SIZE: '1', RANK: '0', LOCAL_RANK: '0' };
  const child = spawn(process.execPath, [worker], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((res) => child.on('close', res));
  assert.equal(code, 0, err);
  const res = JSON.parse(out.trim().split('\n').pop()!);
  assert.equal(res.info.backend, 'nccl');
  assert.deepEqual(res.sum, [1, 2, 3]);
  assert.deepEqual(res.numbers, [2.5, 1]);
  assert.deepEqual(res.bcast, [7, 8, 9]);
  assert.deepEqual(res.gather, [['cuda:0', [4, 5]]]);
  assert.ok(res.reducer.buckets >= 2, 'several buckets');
  assert.equal(res.reducer.device, 'cuda:0');
  assert.ok(res.reducer.maxDiff <= 1e-6, `gradients through the Reducer equal the plain ones: ${res.reducer.maxDiff}`);
});

