// `node dist/bench/dist.js`: data-parallel throughput on this machine, 1 process × T threads vs N processes × T/N
// threads (freeadv train --nproc N, Gloo over loopback), for small-cnn (Fashion-MNIST) and resnet-cifar-small
// (CIFAR-shaped data), natural training at global batch 128; the N-process runs once per way of averaging
// gradients (FREEADV_GRAD_SYNC=after-backward; overlap with the default 25 MiB buckets; overlap with small
// buckets), interleaved within each round; plus the gradient all-reduce per SGD step (bytes, and time inside
// training between the last gradient and the averaged gradients) and a bare all-reduce of the same bytes.
// Options: --steps N (SGD steps per run, default 40; resnet runs a quarter)  --nproc N (default 2)
//          --threads T (default: all cores)  --rounds R (default 2)  --small-bucket-mb M (default 0.1)
//          --sync-only (skip the 1-process runs). Prints JSON: best round (images/s) and the median step time.
// --ab: instead, one pair of processes per model times SGD steps (forward, backward, gradient averaging; batch 64
//       per rank) with each way of averaging in turn, step after step, after a barrier each (so that both ranks
//       start together and every way sees the same machine load); prints the median step time of each way and
//       of a local backward without averaging. --ab-steps N: steps per way (default 40; resnet a quarter).
import { spawn, spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { cpus, tmpdir, loadavg } from 'node:os';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDataset, type InMemoryDataset } from '../src/data/index.js';
import { freePort } from '../src/cli/launch.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', '..', 'bin', 'freeadv.js');
const { values: opt } = parseArgs({
  options: {
    steps: { type: 'string', default: '40' },
    nproc: { type: 'string', default: '2' },
    threads: { type: 'string', default: String(cpus().length) },
    rounds: { type: 'string', default: '2' },
    'small-bucket-mb': { type: 'string', default: '0.1' },
    'sync-only': { type: 'boolean', default: false },
    'allreduce-worker': { type: 'string' },
    ab: { type: 'boolean', default: false },
    'ab-steps': { type: 'string', default: '40' },
    'ab-worker': { type: 'string' },
  },
});

// ---- worker mode: one rank of the interleaved step-time comparison (--ab) ----
if (opt['ab-worker']) {
  const T = await import('../src/torch/index.js');
  const { rendezvousFromEnv, GradAverager, OverlappedGradAverager } = await import('../src/torch/dist.js');
  const { createModel } = await import('../src/models/index.js');
  const name = opt['ab-worker'];
  const g = T.dist.init({ ...rendezvousFromEnv()!, timeoutMs: 120_000 });
  T.setNumThreads(1);
  T.manualSeed(0);
  const [c, size] = name === 'small-cnn' ? [1, 28] : [3, 32];
  const model = createModel(name, { numClasses: 10, inChannels: c, size, mean: Array(c).fill(0.5), std: Array(c).fill(0.25) });
  const params = model.parameters();
  T.manualSeed(1 + g.rank);
  const x = T.rand([64, c, size, size]);
  const y = T.randint(0, 10, [64]);
  const small = Number(opt['small-bucket-mb']) * 2 ** 20;
  const old = new GradAverager(params, g.worldSize);
  const ov = new OverlappedGradAverager(params);
  const ovSmall = new OverlappedGradAverager(params, { bucketBytes: small });
  const ways: [string, (loss: InstanceType<typeof T.Tensor>) => void][] = [
    ['local backward, no averaging', (l) => l.backward()],
    ['after-backward', (l) => (l.backward(), old.average())],
    ['overlap', (l) => ov.backward(l)],
    [`overlap, ${opt['small-bucket-mb']} MiB buckets`, (l) => ovSmall.backward(l)],
  ];
  const times = ways.map(() => [] as number[]);
  const n = Number(opt['ab-steps']);
  for (let i = -3; i < n; i++) {
    if (i === 0) for (const a of [old, ov, ovSmall]) a.seconds = a.calls = 0; // after 3 warm-up steps
    for (let k = 0; k < ways.length; k++) {
      const w = (k + Math.max(0, i)) % ways.length;
      T.dist.barrier();
      const t0 = performance.now();
      T.scope(() => {
        for (const p of params) p.grad = undefined;
        ways[w]![1](T.ops.crossEntropy(model.forward(x), y));
      });
      if (i >= 0) times[w]!.push(performance.now() - t0);
    }
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  process.stdout.write(JSON.stringify({
    rank: g.rank,
    step_ms: Object.fromEntries(ways.map(([k], i) => [k, Number(med(times[i]!).toFixed(1))])),
    buckets: { overlap: ov.buckets.length, [`overlap, ${opt['small-bucket-mb']} MiB buckets`]: ovSmall.buckets.length },
    exposed_allreduce_ms: { overlap: Number(((ov.seconds * 1000) / ov.calls).toFixed(2)), small: Number(((ovSmall.seconds * 1000) / ovSmall.calls).toFixed(2)), 'after-backward': Number(((old.seconds * 1000) / old.calls).toFixed(2)) },
  }) + '\n');
  T.dist.barrier();
  T.dist.destroy();
  process.exit(0);
}

if (opt.ab) {
  const out: Record<string, unknown> = {
    date: new Date().toISOString(),
    command: `node dist/bench/dist.js ${process.argv.slice(2).join(' ')}`.trim(),
    load_average_before: loadavg().map((x) => Number(x.toFixed(2))),
  };
  for (const [model, steps] of [['small-cnn', Number(opt['ab-steps'])], ['resnet-cifar-small', Math.max(5, Math.round(Number(opt['ab-steps']) / 4))]] as const) {
    const port = await freePort();
    const rs = await Promise.all([0, 1].map((r) => new Promise<unknown>((res, rej) => {
      const c = spawn(process.execPath, [join(here, 'dist.js'), '--ab-worker', model, '--ab-steps', String(steps), '--small-bucket-mb', String(opt['small-bucket-mb'])], {
        env: { ...process.env, RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let o = '';
      c.stdout.on('data', (d) => (o += d));
      c.on('exit', (code) => (code === 0 ? res(JSON.parse(o)) : rej(new Error(`ab worker exited ${code}`))));
    })));
    out[model] = { steps_per_way: steps, ranks: rs };
    process.stderr.write(`${model}: ${JSON.stringify(out[model])}\n`);
  }
  out.load_average_after = loadavg().map((x) => Number(x.toFixed(2)));
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  process.exit(0);
}

// ---- worker mode: one rank of the bare all-reduce measurement ----
if (opt['allreduce-worker']) {
  const T = await import('../src/torch/index.js');
  const { rendezvousFromEnv } = await import('../src/torch/dist.js');
  const bytes = Number(opt['allreduce-worker']);
  T.dist.init({ ...rendezvousFromEnv()!, timeoutMs: 60_000 });
  T.setNumThreads(1);
  const t = T.zeros([Math.ceil(bytes / 4)]);
  const times: number[] = [];
  for (let i = 0; i < 25; i++) {
    T.dist.barrier();
    const t0 = performance.now();
    T.dist.allReduce([t]);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ median_ms: times[Math.floor(times.length / 2)] }) + '\n');
  T.dist.destroy();
  process.exit(0);
}

const steps = Number(opt.steps);
const nproc = Number(opt.nproc);
const threads = Number(opt.threads);
const rounds = Number(opt.rounds);
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-bench-dist-'));

// Data: 2,560 Fashion-MNIST images as IDX; the same images as a CIFAR-10-format folder (padded to 32×32, grey → RGB).
const fm = (await loadDataset({ name: 'fashion-mnist', split: 'train' })) as InMemoryDataset;
const n = 2560; // 5 CIFAR batch files of 512
const fmDir = join(tmp, 'fmnist');
const cifarDir = join(tmp, 'cifar');
for (const d of [fmDir, cifarDir]) spawnSync('mkdir', ['-p', d]);
{
  const head = Buffer.alloc(16);
  head.writeUInt32BE(0x803, 0); head.writeUInt32BE(n, 4); head.writeUInt32BE(28, 8); head.writeUInt32BE(28, 12);
  const lh = Buffer.alloc(8);
  lh.writeUInt32BE(0x801, 0); lh.writeUInt32BE(n, 4);
  for (const p of ['train', 't10k']) {
    writeFileSync(join(fmDir, `${p}-images-idx3-ubyte`), Buffer.concat([head, Buffer.from(fm.images.subarray(0, n * 784))]));
    writeFileSync(join(fmDir, `${p}-labels-idx1-ubyte`), Buffer.concat([lh, Buffer.from(Uint8Array.from(fm.labels.subarray(0, n)))]));
  }
  const per = n / 5;
  for (let b = 1; b <= 6; b++) {
    const m = b === 6 ? 256 : per;
    const buf = Buffer.alloc(m * 3073);
    for (let i = 0; i < m; i++) {
      const k = ((b - 1) * per + i) % n;
      buf[i * 3073] = fm.labels[k]!;
      for (let c = 0; c < 3; c++)
        for (let y = 0; y < 28; y++)
          for (let x = 0; x < 28; x++) buf[i * 3073 + 1 + c * 1024 + (y + 2) * 32 + (x + 2)] = fm.images[k * 784 + y * 28 + x]!;
    }
    writeFileSync(join(cifarDir, b === 6 ? 'test_batch.bin' : `data_batch_${b}.bin`), buf);
  }
}

function train(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Record<string, any>> {
  const out = join(tmp, `run-${Math.random().toString(36).slice(2)}`);
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [BIN, 'train', ...args, '--out', out, '--json'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.stdout.resume();
    c.on('exit', (code) => {
      if (code !== 0) return rej(new Error(`freeadv train ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
      rmSync(out, { recursive: true, force: true });
      res(s);
    });
  });
}

async function bareAllReduce(bytes: number): Promise<number> {
  const port = await freePort();
  const runs = [0, 1].map(
    (r) =>
      new Promise<number>((res, rej) => {
        const c = spawn(process.execPath, [join(here, 'dist.js'), '--allreduce-worker', String(bytes)], {
          env: { ...process.env, RANK: String(r), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('exit', (code) => (code === 0 ? res(JSON.parse(out).median_ms) : rej(new Error(`all-reduce worker exited ${code}`))));
      }),
  );
  return Math.max(...(await Promise.all(runs)));
}

const small = String(opt['small-bucket-mb']);
const SYNC: [string, NodeJS.ProcessEnv][] = [
  ['after-backward', { FREEADV_GRAD_SYNC: 'after-backward' }],
  ['overlap', { FREEADV_GRAD_SYNC: 'overlap' }],
  [`overlap, ${small} MiB buckets`, { FREEADV_GRAD_SYNC: 'overlap', FREEADV_BUCKET_MB: small }],
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model },
  command: `node dist/bench/dist.js ${process.argv.slice(2).join(' ')}`.trim(),
  note: 'natural training, global batch 128, images/s over training time only (summary.images_per_second), best of the rounds; step_ms: median over the rounds of 128 / images_per_second',
  load_average_before: loadavg().map((x) => Number(x.toFixed(2))),
};
for (const [model, dataset, dir, s] of [
  ['small-cnn', 'fashion-mnist', fmDir, steps],
  ['resnet-cifar-small', 'cifar10', cifarDir, Math.max(4, Math.round(steps / 4))],
] as const) {
  const common = ['--dataset', dataset, '--data-dir', dir, '--model', model, '--method', 'natural', '--eps', '0', '--val-size', '0', '--batch-size', '128', '--max-steps', String(s), '--no-augment', '--eval-limit', '1', '--eval-attacks', 'fgsm', '--lr-schedule', 'constant'];
  const per = Math.max(1, Math.floor(threads / nproc));
  let single = 0, singleFew = 0;
  const runs = SYNC.map(() => [] as Record<string, any>[]);
  for (let r = 0; r < rounds; r++) {
    if (!opt['sync-only']) {
      const a = await train([...common, '--threads', String(threads)]);
      single = Math.max(single, a.images_per_second);
      const c = await train([...common, '--threads', String(per)]);
      singleFew = Math.max(singleFew, c.images_per_second);
    }
    for (let k = 0; k < SYNC.length; k++) {
      const v = (k + r) % SYNC.length; // rotate the order from round to round
      runs[v]!.push(await train([...common, '--nproc', String(nproc), '--threads', String(per)], SYNC[v]![1]));
    }
  }
  const best = runs.map((rs) => rs.reduce((a, b) => (b.images_per_second > a.images_per_second ? b : a)));
  const bare = await bareAllReduce(best[0]!.distributed.allreduce_bytes_per_step);
  const multi = best[1]!.images_per_second;
  results[model] = {
    steps: s,
    ...(!opt['sync-only'] && {
      [`1 process × ${threads} threads, images/s`]: Math.round(single),
      [`1 process × ${per} thread(s), images/s`]: Math.round(singleFew),
      [`speedup of ${nproc} × ${per} (overlap) vs 1 × ${threads}`]: Number((multi / single).toFixed(2)),
      [`speedup of ${nproc} × ${per} (overlap) vs 1 × ${per}`]: Number((multi / singleFew).toFixed(2)),
    }),
    [`${nproc} processes × ${per} thread(s)`]: Object.fromEntries(
      SYNC.map(([name], i) => [
        name,
        {
          images_per_second: Math.round(best[i]!.images_per_second),
          step_ms: Number(median(runs[i]!.map((x) => (128 / x.images_per_second) * 1000)).toFixed(1)),
          step_ms_rounds: runs[i]!.map((x) => Number(((128 / x.images_per_second) * 1000).toFixed(1))),
          buckets: best[i]!.distributed.buckets,
          allreduce_ms_per_step_in_training: Number(median(runs[i]!.map((x) => x.distributed.allreduce_ms_per_step)).toFixed(2)),
        },
      ]),
    ),
    allreduce_bytes_per_step: best[0]!.distributed.allreduce_bytes_per_step,
    bare_allreduce_ms_2_processes: Number(bare.toFixed(2)),
  };
  process.stderr.write(`${model}: ${JSON.stringify(results[model])}\n`);
}
rmSync(tmp, { recursive: true, force: true });
results.load_average_after = loadavg().map((x) => Number(x.toFixed(2)));
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
