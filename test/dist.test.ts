// Data-parallel training over c10d (Gloo on loopback, 2 processes): native collectives, gradient averaging
// overlapped with backward (c10d's Reducer) against averaging after it, 2 ranks × B/2 = 1 × B with either,
// free training end to end with --nproc 2, a killed or hung rank ends the job within the timeout, and resuming a
// 2-process run with 1 process.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/cli/main.js';
import { version } from '../src/torch/index.js';
import { freePort } from '../src/cli/launch.js';
import { loadCheckpoint } from '../src/io/index.js';
import { shardOf, permutation } from '../src/data/index.js';
import { gradSyncFromEnv } from '../src/train/distributed.js';
import { smallFashionMnist } from './helpers/data.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', '..', 'bin', 'freeadv.js');
const WORKER = join(here, 'helpers', 'dist-worker.js');
const REDUCER_WORKER = join(here, 'helpers', 'reducer-worker.js');
let data = '';
let small = '';
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-dist-'));
// 512 + 64 and 256 + 32 training images: validation takes the extra ones, so that the training sets divide
// into whole global batches (the layouts agree exactly only without DistributedSampler's padding)
before(async () => {
  data = await smallFashionMnist(576, 200);
  small = await smallFashionMnist(288, 50);
});

const common = () => ['--data-dir', data, '--val-size', '64', '--batch-size', '128', '--seed', '3', '--log-every', '2'];

// Layout equivalence (2 ranks × B/2 = 1 process × B, overlapped = after-backward averaging, resumed = uninterrupted)
// is checked in float64. Two layouts sum the same terms in another order, so in float32 they land ~1e-5 apart, by
// an amount that depends on which kernels the CPU gets (measured 2.7e-5 with AVX-512, below 1e-5 with AVX2), and in
// free training a rounding-level difference can flip the sign of a near-zero input-gradient element, a full ε step
// of δ. float64's rounding is 2^29 times finer: the layouts then agree to ~1e-13 whatever the kernels, so 1e-9
// leaves four orders of magnitude, while a real fault (a batch on the wrong rank, a lost δ, momentum or data
// position on resume, an unaveraged gradient) moves the weights by 1e-3 to 1e-2.
const F64 = ['--dtype', 'float64'];
const LAYOUT_TOL = 1e-9;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; seconds: number }>;
}
function start(args: string[], env: NodeJS.ProcessEnv = {}, command = process.execPath): Proc {
  const t0 = performance.now();
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; seconds: number }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal, seconds: (performance.now() - t0) / 1000 })),
  );
  return { child, out: () => out, err: () => err, exit };
}

const rankEnv = (rank: number, world: number, port: number) => ({ RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Weights = Record<string, Float32Array | Float64Array>;
function model(dir: string): Weights {
  const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
  const out = Object.fromEntries(Object.entries(ck.model).map(([k, t]) => [k, t.toTypedArray() as Float32Array | Float64Array]));
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
  return out;
}

function relDiff(a: Weights, b: Weights): number {
  assert.deepEqual(Object.keys(b), Object.keys(a));
  let worst = 0;
  for (const k of Object.keys(a)) {
    const x = a[k]!, y = b[k]!;
    let d = 0, m = 0;
    for (let i = 0; i < x.length; i++) {
      d = Math.max(d, Math.abs(x[i]! - y[i]!));
      m = Math.max(m, Math.abs(x[i]!));
    }
    worst = Math.max(worst, d / Math.max(m, 1e-12));
  }
  return worst;
}

const summary = (dir: string) => JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));

test('DistributedSampler shards: disjoint, padded to equal length, batch k of the shards = batch k of one process', () => {
  const order = permutation(10, 1, 0);
  const s = [0, 1, 2].map((rank) => shardOf(order, { rank, count: 3, pad: true }));
  assert.deepEqual(s.map((x) => x.length), [4, 4, 4]);
  const all = [...s[0]!, ...s[1]!, ...s[2]!];
  assert.deepEqual(new Set(all), new Set(order)); // all covered; 2 padded duplicates
  const two = [0, 1].map((rank) => shardOf(order, { rank, count: 2, pad: true }));
  // global batch of 4 at k=1 is order[4..8): union of each shard's batch of 2 at k=1
  assert.deepEqual(new Set([...two[0]!.subarray(2, 4), ...two[1]!.subarray(2, 4)]), new Set(order.subarray(4, 8)));
  // evaluation shards: no padding, each example exactly once
  const ev = [0, 1].map((rank) => shardOf(order, { rank, count: 2, pad: false, limit: 7 }));
  assert.deepEqual([...ev[0]!, ...ev[1]!].sort(), [...order.subarray(0, 7)].sort());
});

test('FREEADV_GRAD_SYNC and FREEADV_BUCKET_MB: defaults, values, bad values named', () => {
  assert.deepEqual(gradSyncFromEnv({}), { mode: 'overlap' });
  assert.deepEqual(gradSyncFromEnv({}, false), { mode: 'after-backward' }); // an addon without the Reducer
  assert.throws(() => gradSyncFromEnv({ FREEADV_GRAD_SYNC: 'overlap' }, false), /FREEADV_GRAD_SYNC=overlap: this build of the native addon has no c10d Reducer/);
  assert.deepEqual(gradSyncFromEnv({ FREEADV_GRAD_SYNC: 'after-backward', FREEADV_BUCKET_MB: '0.5' }), { mode: 'after-backward', bucketBytes: 524288 });
  assert.throws(() => gradSyncFromEnv({ FREEADV_GRAD_SYNC: 'later' }), /FREEADV_GRAD_SYNC must be 'overlap' or 'after-backward', got 'later'/);
  assert.throws(() => gradSyncFromEnv({ FREEADV_BUCKET_MB: '0' }), /FREEADV_BUCKET_MB must be a number of MiB > 0, got '0'/);
});

test('native c10d collectives across 2 processes; a dead peer becomes a DistError, not a hang', async () => {
  for (const mode of ['ok', 'die']) {
    const port = await freePort();
    const ps = [0, 1].map((r) => start([WORKER, mode], { ...rankEnv(r, 2, port), TIMEOUT_MS: '20000' }));
    const ex = await Promise.all(ps.map((p) => p.exit));
    assert.equal(ex[0]!.code, 0, ps[0]!.err());
    if (mode === 'ok') assert.equal(ex[1]!.code, 0, ps[1]!.err());
    for (const p of ps) {
      const r = JSON.parse(p.out().split('\n')[0]!);
      assert.equal(r.info.worldSize, 2);
      assert.equal(r.info.backend, 'gloo');
      assert.deepEqual(r.sum, [3, 30, -1]);
      assert.deepEqual(r.sum2, [[3, 6], [9, 12]]);
      assert.deepEqual(r.max, [1, 0]);
      assert.deepEqual(r.bcast, [7, 8, 9]);
      assert.deepEqual(r.gather, [[0, 0], [1, 2]]);
      assert.deepEqual(r.numbers, [2, 2]);
      assert.deepEqual(r.avg, [[1.5, 1.5, 1.5], [[3, 3], [3, 3]], 2, 28]);
    }
    if (mode === 'die') {
      const e = JSON.parse(ps[0]!.out().trim().split('\n')[1]!);
      assert.equal(e.error, 'DistError');
      assert.match(e.message, /allReduce.*(peer|closed|timed out)/i);
      assert.ok(e.seconds < 20, `failed after ${e.seconds} s`);
    }
  }
});

test('overlapped gradient averaging (c10d Reducer): the old averager\'s means, several buckets, input gradients and unarmed passes stay per rank, unused parameters refused or handled, a dead peer is a DistError', async () => {
  for (const mode of ['ok', 'die']) {
    const port = await freePort();
    const ps = [0, 1].map((r) => start([REDUCER_WORKER, mode], { ...rankEnv(r, 2, port), TIMEOUT_MS: '20000' }));
    const ex = await Promise.all(ps.map((p) => p.exit));
    assert.equal(ex[0]!.code, 0, ps[0]!.err());
    if (mode === 'ok') assert.equal(ex[1]!.code, 0, ps[1]!.err());
    const rs = ps.map((p) => JSON.parse(p.out().split('\n')[0]!));
    for (const r of rs) {
      assert.equal(r.bucketsBefore, 4); // small-cnn's 8 tensors in 4 KiB buckets
      assert.ok(r.buckets.length >= 2, `buckets after the first step: ${JSON.stringify(r.buckets)}`);
      assert.deepEqual(r.buckets.flat().sort(), [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.equal(r.calls, 3);
      for (const [i, s] of r.steps.entries()) {
        assert.ok(s.local_vs_mean > 1e-3, `step ${i}: the ranks' gradients differ (${s.local_vs_mean})`);
        // both average the same two float32 values per element: at most a rounding or two apart (2^-23 ≈ 1.2e-7)
        assert.ok(s.overlapped_vs_old <= 1e-6 * s.grad_scale, `step ${i}: overlapped vs after-backward means differ by ${s.overlapped_vs_old}`);
        assert.equal(s.unarmed_vs_local, 0, `step ${i}: an unarmed backward was reduced`);
        assert.equal(s.input_grad_vs_local, 0, `step ${i}: the input gradient was not the rank's own`);
      }
      assert.equal(r.unusedRefused?.name, 'DistError');
      assert.match(r.unusedRefused.message, /parameter\(s\) u got no gradient .*findUnusedParameters/);
      for (const h of r.unusedHandled) assert.deepEqual(h, { w: [[3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]], u: 'undefined', v: [1, 1, 1] });
    }
    assert.equal(rs[0].weights, rs[1].weights); // the same update on both ranks
    if (mode === 'die') {
      const e = JSON.parse(ps[0]!.out().trim().split('\n')[1]!);
      assert.equal(e.error, 'DistError');
      assert.match(e.message, /allReduce.*(peer|closed|timed out)/i);
      assert.ok(e.seconds < 20, `failed after ${e.seconds} s`);
    }
  }
});

test('natural training: 2 ranks × batch 64 give the weights of 1 process × batch 128', async (t) => {
  const args = [...common(), ...F64, '--method', 'natural', '--eps', '0', '--epochs', '2', '--lr-schedule', 'constant', '--eval-limit', '50', '--eval-attacks', 'fgsm'];
  const one = join(tmp, 'nat1'), two = join(tmp, 'nat2');
  let r = await cli(['train', ...args, '--threads', '2', '--out', one]);
  assert.equal(r.code, 0, r.err);
  r = await cli(['train', ...args, '--nproc', '2', '--out', two]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /2 pass\(es\) × 4 batches, 8 SGD steps, 1 threads × 2 processes \(batch 64 each\)/);
  assert.match(r.out, /run folder: .*nat2\n$/); // rank 0's last line reaches the launcher's output; no other rank prints
  const d = relDiff(model(one), model(two));
  t.diagnostic(`2 × 64 vs 1 × 128: relative weight difference ${d}`);
  assert.ok(d < LAYOUT_TOL, `relative weight difference ${d}`);
  // rank 0 alone wrote the run folder: the same files as one process, metric lines over the global batch
  assert.deepEqual(readdirSync(two).sort(), readdirSync(one).sort());
  const m1 = readFileSync(join(one, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const m2 = readFileSync(join(two, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(m2.length, m1.length);
  m1.forEach((l, i) => {
    if ('loss' in l) assert.ok(Math.abs(l.loss - m2[i].loss) < LAYOUT_TOL && l.train_accuracy === m2[i].train_accuracy, `metrics line ${i}`);
  });
  const s1 = summary(one), s2 = summary(two);
  assert.equal(s2.sgd_steps, s1.sgd_steps);
  assert.equal(s2.eval_examples, 50); // sharded evaluation, counts summed
  assert.equal(s2.clean_accuracy, s1.clean_accuracy);
  assert.equal(s2.distributed.world_size, 2);
  assert.equal(s2.distributed.grad_sync, 'overlap');
  // 1.6 MB of float64 gradients, taken in reverse order into buckets of 25 MiB but the first of 1 MiB: fc2 and
  // fc1 fill the first, the convolutions make the second
  assert.equal(s2.distributed.buckets, 2);
  assert.ok(s2.distributed.allreduce_bytes_per_step > 0);
  // several buckets (re-formed after the first step), and the old after-backward averager: the same weights
  for (const [env, grad_sync, buckets] of [[{ FREEADV_BUCKET_MB: '0.004' }, 'overlap', 4], [{ FREEADV_GRAD_SYNC: 'after-backward' }, 'after-backward', 1]] as const) {
    const dir = join(tmp, `nat2-${grad_sync}`);
    Object.assign(process.env, env); // the launcher passes its environment to the ranks
    try {
      r = await cli(['train', ...args, '--nproc', '2', '--out', dir]);
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
    assert.equal(r.code, 0, r.err);
    assert.deepEqual({ ...summary(dir).distributed, allreduce_ms_per_step: 0 }, { ...s2.distributed, grad_sync, buckets, allreduce_ms_per_step: 0 });
    const dd = relDiff(model(one), model(dir));
    t.diagnostic(`${grad_sync}, ${buckets} bucket(s): relative weight difference ${dd}`);
    assert.ok(dd < LAYOUT_TOL, `${JSON.stringify(env)}: relative weight difference ${dd}`);
  }
});

test('PGD training with --nproc 2 (attack steps are backward passes too): overlapped and after-backward averaging give the same weights', async (t) => {
  const args = [...common(), ...F64, '--data-dir', small, '--val-size', '32', '--method', 'pgd', '--attack-steps', '2', '--epochs', '2', '--eval-limit', '20', '--eval-attacks', 'fgsm', '--nproc', '2'];
  const dirs: string[] = [];
  for (const sync of ['after-backward', 'overlap']) {
    const dir = join(tmp, `pgd-${sync}`);
    process.env.FREEADV_GRAD_SYNC = sync;
    try {
      const r = await cli(['train', ...args, '--out', dir]);
      assert.equal(r.code, 0, r.err);
    } finally {
      delete process.env.FREEADV_GRAD_SYNC;
    }
    assert.equal(summary(dir).distributed.grad_sync, sync);
    dirs.push(dir);
  }
  const d = relDiff(model(dirs[0]!), model(dirs[1]!));
  t.diagnostic(`relative weight difference ${d}`);
  assert.ok(d < LAYOUT_TOL, `relative weight difference ${d}`);
});

test('two launchers as two machines (--nnodes 2 --node-rank 0/1 --master-addr/--master-port) train one model', async (t) => {
  const args = [...common(), ...F64, '--method', 'natural', '--eps', '0', '--epochs', '2', '--lr-schedule', 'constant', '--eval-limit', '50', '--eval-attacks', 'fgsm'];
  const port = await freePort();
  const out = join(tmp, 'nodes');
  const node = (k: number) => start([BIN, 'train', ...args, '--nnodes', '2', '--node-rank', String(k), '--nproc', '1', '--master-addr', '127.0.0.1', '--master-port', String(port), '--out', out], { FREEADV_RENDEZVOUS_TOKEN: '' });
  const ps = [node(0), node(1)];
  const ex = await Promise.all(ps.map((p) => p.exit));
  assert.equal(ex[0]!.code, 0, ps[0]!.err());
  assert.equal(ex[1]!.code, 0, ps[1]!.err());
  assert.match(ps[0]!.err(), /started rank 0 of 2/);
  assert.match(ps[1]!.err(), /started rank 1 of 2/);
  // no FREEADV_RENDEZVOUS_TOKEN given to several machines: each launcher says what that leaves open
  for (const p of ps) assert.match(p.err(), /warning: FREEADV_RENDEZVOUS_TOKEN is not set: any process that reaches 127\.0\.0\.1:\d+ can join this job's rendezvous/);
  assert.equal(summary(out).distributed.world_size, 2);
  const d = relDiff(model(join(tmp, 'nat1')), model(out)); // the 1-process run of the test above
  t.diagnostic(`relative weight difference ${d}`);
  assert.ok(d < LAYOUT_TOL, `relative weight difference ${d}`);
});

test('free training with --nproc 2 runs end to end; robust accuracy in line with one process; δ saved in the 1-process layout', async () => {
  // free-4 with a budget of 8 epochs: 2 passes × 4 batches × 4 replays = 32 SGD steps (about 63% clean, 29% PGD-10)
  const args = [...common(), '--method', 'free', '--replays', '4', '--epochs', '8', '--eval-limit', '200', '--eval-attacks', 'pgd-10'];
  const one = join(tmp, 'free1'), two = join(tmp, 'free2');
  let r = await cli(['train', ...args, '--threads', '2', '--out', one]);
  assert.equal(r.code, 0, r.err);
  r = await cli(['train', ...args, '--nproc', '2', '--out', two]);
  assert.equal(r.code, 0, r.err);
  const s1 = summary(one), s2 = summary(two);
  assert.equal(s2.sgd_steps, 32);
  assert.equal(s2.eval_examples, 200);
  assert.ok(s1.robust_accuracy['pgd-10'] >= 0.15, `the 1-process run learned robustness (${s1.robust_accuracy['pgd-10']})`);
  assert.ok(Math.abs(s2.robust_accuracy['pgd-10'] - s1.robust_accuracy['pgd-10']) <= 0.05, `robust ${s2.robust_accuracy['pgd-10']} vs ${s1.robust_accuracy['pgd-10']}`);
  assert.ok(Math.abs(s2.clean_accuracy - s1.clean_accuracy) <= 0.05, `clean ${s2.clean_accuracy} vs ${s1.clean_accuracy}`);
  const ck = loadCheckpoint(join(two, 'latest.safetensors'));
  const delta = ck.tensors.delta!;
  assert.deepEqual(delta.shape, [128, 1, 28, 28]);
  assert.ok(delta.abs().max().item() <= 0.1 + 1e-7 && delta.abs().max().item() > 0);
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
});

test('bad launcher input is refused naming the option', async () => {
  const cases: [string[], RegExp][] = [
    [['--nproc', '3'], /--batch-size: the global batch 128 is not divisible by the 3 processes/],
    [['--nproc', '0'], /--nproc: must be in \[1, 1024\], got '0'/],
    [['--nproc', '2', '--dist-timeout=-1'], /--dist-timeout: must be in \(0, 604800\], got '-1'/],
    [['--master-port', '70000'], /--master-port: must be in \[1, 65535\], got '70000'/],
    [['--dist-timeout', '1e309'], /--dist-timeout: expected a number/],
    [['--nnodes', '2', '--node-rank', '2'], /--node-rank: must be below --nnodes 2/],
    [['--nnodes', '2', '--node-rank', '1'], /--master-addr: is required with --nnodes 2/],
  ];
  for (const [extra, re] of cases) {
    const r = await cli(['train', ...common(), '--out', join(tmp, 'bad'), ...extra]);
    assert.equal(r.code, 2, extra.join(' '));
    assert.match(r.err, re);
  }
  assert.ok(!existsSync(join(tmp, 'bad')));
});

test('a killed rank makes the job exit non-zero within the timeout, naming the rank; the checkpoint stays valid', async () => {
  const out = join(tmp, 'killed');
  const p = start([BIN, 'train', ...common(), '--method', 'natural', '--eps', '0', '--epochs', '40', '--checkpoint-every', '2', '--nproc', '2', '--dist-timeout', '10', '--out', out]);
  await waitFor(() => /started rank 1 of 2 \(pid \d+/.test(p.err()), 20_000);
  await waitFor(() => existsSync(join(out, 'latest.safetensors')), 60_000);
  const pid = Number(/started rank 1 of 2 \(pid (\d+)/.exec(p.err())![1]);
  const t0 = performance.now();
  process.kill(pid, 'SIGKILL');
  const e = await p.exit;
  const secs = (performance.now() - t0) / 1000;
  assert.notEqual(e.code, 0);
  assert.ok(secs < 20, `exited ${secs} s after the kill`);
  assert.match(p.err(), /rank 1 was killed by SIGKILL/);
  const ck = loadCheckpoint(join(out, 'latest.safetensors'));
  for (const t of Object.values(ck.model)) assert.ok(t.isfinite().all().item());
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
});

/** The TCP sockets a process listens on (from /proc/PID/fd and /proc/net/tcp{,6}), as "address:port". */
function listening(pid: number): string[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch { /* closed meanwhile */ }
  }
  const out: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').trim().split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== '0A' || !inodes.has(f[9]!)) continue; // 0A: LISTEN
      const [hex, port] = f[1]!.split(':');
      const addr = hex!.length === 8 ? hex!.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join('.') : hex === '00000000000000000000000001000000' ? '::1' : hex === '0'.repeat(32) ? '::' : `[${hex}]`;
      out.push(`${addr}:${parseInt(port!, 16)}`);
    }
  }
  return out;
}

test('one machine (--nproc 2): no socket listens beyond loopback (none at all once training runs, with libtorch 1.13), and the rendezvous folder is removed', async (t) => {
  const out = join(tmp, 'loopback');
  const tmpDir = mkdtempSync(join(tmp, 'tmpdir-'));
  const p = start([BIN, 'train', ...common(), '--method', 'natural', '--eps', '0', '--epochs', '3', '--eval-limit', '20', '--nproc', '2', '--out', out], { TMPDIR: tmpDir });
  await waitFor(() => /started rank 1 of 2 \(pid \d+/.test(p.err()), 20_000);
  const pids = [0, 1].map((r) => Number(new RegExp(`started rank ${r} of 2 \\(pid (\\d+)`).exec(p.err())![1]));
  // sampled from the rendezvous on (Gloo listens on loopback while it connects its pairs) until training runs
  const seen = new Set<string>();
  const sample = () => pids.flatMap((pid) => { try { return listening(pid); } catch { return []; } });
  await waitFor(() => {
    for (const a of sample()) seen.add(a);
    return existsSync(join(out, 'metrics.jsonl'));
  }, 60_000);
  const sockets = [...seen];
  t.diagnostic(`listening during the rendezvous: ${sockets.join(', ') || 'none seen'}`);
  assert.deepEqual(sockets.filter((a) => !a.startsWith('127.') && !a.startsWith('::1:')), [], `listening beyond loopback: ${sockets.join(', ')}`);
  // while training: Debian's libtorch 1.13 (its Gloo) closes the pair listeners once the ranks are connected;
  // libtorch 2.x's Gloo keeps them open, on loopback
  const training = sample();
  assert.deepEqual(training.filter((a) => !a.startsWith('127.') && !a.startsWith('::1:')), [], `listening beyond loopback while training: ${training.join(', ')}`);
  if (Number(version().torch.split('.')[0]) < 2) assert.deepEqual(training, [], 'nothing listens while training');
  const e = await p.exit;
  assert.equal(e.code, 0, p.err());
  assert.equal(summary(out).distributed.world_size, 2);
  assert.deepEqual(readdirSync(tmpDir), [], 'the rendezvous folder is removed');
});

test('an explicit --master-addr (the TCP rendezvous): rank 0 listens on that address only, with every libtorch', async (t) => {
  const port = await freePort();
  const out = join(tmp, 'bound');
  const p = start([BIN, 'train', ...common(), '--method', 'natural', '--eps', '0', '--epochs', '3', '--eval-limit', '20', '--nproc', '2', '--master-addr', '127.0.0.1', '--master-port', String(port), '--out', out], { FREEADV_RENDEZVOUS_TOKEN: '' });
  await waitFor(() => /started rank 0 of 2 \(pid \d+/.test(p.err()), 20_000);
  const pid = Number(/started rank 0 of 2 \(pid (\d+)/.exec(p.err())![1]);
  const seen = new Set<string>();
  await waitFor(() => {
    try { for (const a of listening(pid)) seen.add(a); } catch { /* not yet started */ }
    return existsSync(join(out, 'metrics.jsonl'));
  }, 60_000);
  const store = [...seen].filter((a) => a.endsWith(`:${port}`));
  t.diagnostic(`rank 0 listening: ${[...seen].join(', ')}`);
  assert.deepEqual(store, [`127.0.0.1:${port}`], `the rendezvous port is bound to --master-addr only: ${store.join(', ')}`);
  assert.equal((await p.exit).code, 0, p.err());
});

test('ranks started directly (torchrun contract): a hung peer stops rank 0 with a clear error after --dist-timeout', async () => {
  const port = await freePort();
  const out = join(tmp, 'hung');
  const args = [BIN, 'train', ...common(), '--method', 'natural', '--eps', '0', '--epochs', '40', '--threads', '1', '--dist-timeout', '4', '--out', out];
  const ps = [0, 1].map((r) => start(args, rankEnv(r, 2, port)));
  try {
    await waitFor(() => existsSync(join(out, 'metrics.jsonl')), 60_000);
    const t0 = performance.now();
    ps[1]!.child.kill('SIGSTOP');
    const e = await ps[0]!.exit;
    const secs = (performance.now() - t0) / 1000;
    assert.equal(e.code, 1, ps[0]!.err());
    assert.ok(secs < 15, `rank 0 stopped ${secs} s after its peer hung`);
    assert.match(ps[0]!.err(), /freeadv: error: .*(timed out|Timed out)/);
  } finally {
    ps[1]!.child.kill('SIGKILL');
    await ps[1]!.exit;
  }
});

test('resume with another number of processes: free training stopped at 2 → resumed with 1, and 1 → 2, both end like an uninterrupted run (δ included)', async (t) => {
  // 256 images: 2 batches per pass, 4 passes of 2 replays = 16 SGD steps; a checkpoint every 2 steps
  const args = [...common(), ...F64, '--data-dir', small, '--val-size', '32', '--method', 'free', '--replays', '2', '--epochs', '8', '--lr', '0.02', '--eval-limit', '50', '--eval-attacks', 'fgsm', '--checkpoint-every', '2'];
  const full = join(tmp, 'free-full');
  assert.equal((await cli(['train', ...args, '--threads', '2', '--out', full])).code, 0);
  // And uninterrupted with 2 processes: in float64 the two layouts take the same δ signs and end together, so a
  // resumed run must end within LAYOUT_TOL of both.
  const full2 = join(tmp, 'free-full-2proc');
  assert.equal((await cli(['train', ...args, '--nproc', '2', '--dist-timeout', '30', '--out', full2])).code, 0);
  const [ref1, ref2] = [model(full), model(full2)];
  t.diagnostic(`uninterrupted, 1 vs 2 processes: relative weight difference ${relDiff(ref1, ref2)}`);
  for (const [from, to] of [[2, 1], [1, 2]] as const) {
    const part = join(tmp, `free-resume-${from}-${to}`);
    const p = start([BIN, 'train', ...args, ...(from > 1 ? ['--nproc', String(from), '--dist-timeout', '30'] : ['--threads', '2']), '--out', part]);
    await waitFor(() => existsSync(join(part, 'latest.safetensors')), 60_000);
    p.child.kill('SIGTERM');
    const e = await p.exit;
    assert.equal(e.code, 130, p.err());
    assert.match(p.err(), /Resume with: freeadv train --resume/);
    const stopped = loadCheckpoint(join(part, 'latest.safetensors'));
    const step = (stopped.state as { step: number }).step;
    assert.deepEqual(stopped.tensors.delta!.shape, [128, 1, 28, 28]);
    for (const g of [stopped.model, stopped.optimizer, stopped.tensors]) for (const t of Object.values(g)) t.dispose();
    assert.ok(step > 0 && step < 16, `stopped at step ${step}`);
    const r = await cli(['train', '--resume', part, ...(to > 1 ? ['--nproc', String(to), '--dist-timeout', '30'] : [])]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`resuming .* at SGD step ${step} `));
    assert.equal(summary(part).sgd_steps, 16);
    const [d1, d2] = [relDiff(ref1, model(part)), relDiff(ref2, model(part))];
    t.diagnostic(`${from} → ${to} processes: relative weight difference ${d1} from the 1-process run, ${d2} from the 2-process run`);
    assert.ok(Math.max(d1, d2) < LAYOUT_TOL, `${from} → ${to}: relative weight difference ${d1} from the 1-process run, ${d2} from the 2-process run`);
  }
});
