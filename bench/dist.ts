// `node dist/bench/dist.js`: data-parallel throughput on this machine, 1 process × T threads vs N processes × T/N
// threads (freeadv train --nproc N, Gloo over loopback), for small-cnn (Fashion-MNIST) and resnet-cifar-small
// (CIFAR-shaped data), natural training at global batch 128; plus the gradient all-reduce per SGD step
// (bytes, and time inside training) and a bare all-reduce of the same bytes between 2 processes.
// Options: --steps N (SGD steps per run, default 40; resnet runs a quarter)  --nproc N (default 2)
//          --threads T (default: all cores)  --rounds R (default 2; the best round counts). Prints JSON.
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
    'allreduce-worker': { type: 'string' },
  },
});

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

function train(args: string[]): Promise<Record<string, any>> {
  const out = join(tmp, `run-${Math.random().toString(36).slice(2)}`);
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [BIN, 'train', ...args, '--out', out, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
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

const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model },
  command: `node dist/bench/dist.js ${process.argv.slice(2).join(' ')}`.trim(),
  note: 'natural training, global batch 128, images/s over training time only (summary.images_per_second), best of the rounds',
  load_average_before: loadavg().map((x) => Number(x.toFixed(2))),
};
for (const [model, dataset, dir, s] of [
  ['small-cnn', 'fashion-mnist', fmDir, steps],
  ['resnet-cifar-small', 'cifar10', cifarDir, Math.max(4, Math.round(steps / 4))],
] as const) {
  const common = ['--dataset', dataset, '--data-dir', dir, '--model', model, '--method', 'natural', '--eps', '0', '--batch-size', '128', '--max-steps', String(s), '--no-augment', '--eval-limit', '1', '--eval-attacks', 'fgsm', '--lr-schedule', 'constant'];
  const per = Math.max(1, Math.floor(threads / nproc));
  let single = 0, multi = 0, singleFew = 0;
  let dist: Record<string, number> = {};
  for (let r = 0; r < rounds; r++) {
    const a = await train([...common, '--threads', String(threads)]);
    single = Math.max(single, a.images_per_second);
    const c = await train([...common, '--threads', String(per)]);
    singleFew = Math.max(singleFew, c.images_per_second);
    const b = await train([...common, '--nproc', String(nproc), '--threads', String(per)]);
    if (b.images_per_second > multi) {
      multi = b.images_per_second;
      dist = b.distributed;
    }
  }
  const bare = await bareAllReduce(dist.allreduce_bytes_per_step!);
  results[model] = {
    steps: s,
    [`1 process × ${threads} threads, images/s`]: Math.round(single),
    [`1 process × ${per} thread(s), images/s`]: Math.round(singleFew),
    [`${nproc} processes × ${per} thread(s), images/s`]: Math.round(multi),
    [`speedup vs 1 × ${threads}`]: Number((multi / single).toFixed(2)),
    [`speedup vs 1 × ${per}`]: Number((multi / singleFew).toFixed(2)),
    allreduce_bytes_per_step: dist.allreduce_bytes_per_step,
    allreduce_ms_per_step_in_training: Number(dist.allreduce_ms_per_step!.toFixed(2)),
    bare_allreduce_ms_2_processes: Number(bare.toFixed(2)),
  };
  process.stderr.write(`${model}: ${JSON.stringify(results[model])}\n`);
}
rmSync(tmp, { recursive: true, force: true });
results.load_average_after = loadavg().map((x) => Number(x.toFixed(2)));
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
