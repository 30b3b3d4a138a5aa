// Limits, signals and early checks of `freeadv train`: --max-steps stops at exactly that SGD step (inside a free
// minibatch's replays too) and a run stopped inside a minibatch resumes bit for bit; SIGTERM and SIGINT are
// honoured within a minibatch's replays, during validation and during the final evaluation (inside one long attack on
// one batch too: the native interrupt flag); a test split that the final evaluation could not use is refused before
// the first step, naming its file; per SGD step the loop reads nothing back from the device.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/cli/main.js';
import { loadCheckpoint } from '../src/io/index.js';
import { smallFashionMnist } from './helpers/data.js';
import { native } from '../src/torch/native.js';
import { train, resolveConfig } from '../src/train/index.js';
import { TEST_DEVICE, deviceSkip } from './helpers/device.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'freeadv.js');
let data = '';
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-limits-'));
before(async () => {
  data = await smallFashionMnist(512, 200);
});

const common = () => ['--data-dir', data, '--batch-size', '128', '--threads', '2', '--seed', '3', '--eval-limit', '20'];

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

const summary = (dir: string) => JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
const metricLines = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

/** The checkpoint's weights, free training's δ and loop position. */
function checkpoint(dir: string): { tensors: Record<string, Buffer>; state: Record<string, any> } {
  const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
  const tensors = Object.fromEntries([...Object.entries(ck.model), ...Object.entries(ck.optimizer).map(([k, t]) => [`opt.${k}`, t] as const), ...(ck.tensors.delta ? [['delta', ck.tensors.delta] as const] : [])].map(([k, t]) => [k, Buffer.from(t.toBytes())]));
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
  return { tensors, state: ck.state as Record<string, any> };
}

function start(args: string[]): { child: ChildProcess; err: () => string; exit: Promise<{ code: number | null; signal: string | null; at: number }> } {
  const child = spawn(process.execPath, [BIN, 'train', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  child.stdout!.on('data', () => undefined);
  const exit = new Promise<{ code: number | null; signal: string | null; at: number }>((r) => child.on('exit', (code, signal) => r({ code, signal, at: Date.now() })));
  return { child, err: () => err, exit };
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('--max-steps is exact inside a minibatch: free-8 with --max-steps 2 makes 2 SGD steps', async () => {
  const out = join(tmp, 'max2');
  const r = await cli(['train', ...common(), '--method', 'free', '--replays', '8', '--epochs', '8', '--max-steps', '2', '--log-every', '1', '--val-size', '0', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const s = summary(out);
  assert.equal(s.sgd_steps, 2);
  assert.equal(s.backward_passes, 2);
  assert.deepEqual(metricLines(out).filter((l) => 'loss' in l).map((l) => l.step), [1, 2]);
  const { state } = checkpoint(out);
  assert.deepEqual([state.step, state.pass, state.batch, state.replay], [2, 0, 0, 2]); // 2 of batch 0's 8 replays
});

test('a run stopped inside a minibatch (after replay 2 of 4) resumes there: weights, momentum and δ bit for bit', async () => {
  const args = [...common(), '--method', 'free', '--replays', '4', '--epochs', '8', '--lr', '0.02', '--lr-schedule', 'constant', '--val-size', '0'];
  const full = join(tmp, 'mid-full');
  assert.equal((await cli(['train', ...args, '--max-steps', '11', '--out', full])).code, 0);
  const part = join(tmp, 'mid-part');
  assert.equal((await cli(['train', ...args, '--max-steps', '6', '--out', part])).code, 0);
  const stopped = checkpoint(part).state;
  assert.deepEqual([stopped.step, stopped.batch, stopped.replay], [6, 1, 2]);
  // the same run with a larger step budget (the constant schedule does not depend on it)
  const cfgFile = join(part, 'config.json');
  writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), maxSteps: 11 }));
  const r = await cli(['train', '--resume', part]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /resuming .* at SGD step 6 \(pass 1\/2, batch 1\/4, step 3\/4 of it\)/);
  const a = checkpoint(full), b = checkpoint(part);
  assert.deepEqual([b.state.step, b.state.batch, b.state.replay], [11, 2, 3]);
  assert.deepEqual(Object.keys(b.tensors).sort(), Object.keys(a.tensors).sort());
  for (const k of Object.keys(a.tensors)) assert.ok(a.tensors[k]!.equals(b.tensors[k]!), `${k} is identical after resume`);
});

test('SIGTERM inside a long minibatch (100 replays) stops within a step, checkpointed mid-minibatch', async (t) => {
  const args = [...common(), '--method', 'free', '--replays', '100', '--epochs', '100', '--max-steps', '100', '--log-every', '2', '--val-size', '0'];
  const out = join(tmp, 'sig-replays');
  const p = start([...args, '--out', out]);
  await waitFor(() => existsSync(join(out, 'metrics.jsonl')), 60_000, 'the first steps');
  const sent = Date.now();
  p.child.kill('SIGTERM');
  const e = await p.exit;
  assert.equal(e.code, 130, p.err());
  assert.ok(e.at - sent < 5000, `exited ${e.at - sent} ms after SIGTERM`);
  t.diagnostic(`exited ${e.at - sent} ms after SIGTERM`);
  assert.match(p.err(), /Resume with: freeadv train --resume/);
  const { state } = checkpoint(out);
  assert.ok(state.step >= 2 && state.step < 100 && state.replay === state.step && state.batch === 0, JSON.stringify(state));

});

test('SIGTERM during validation and during the final evaluation: exit 130, checkpoint kept; resume completes', async (t) => {
  // validation: 2 batches of training, then PGD-10 on 300 held-out images in batches of 10
  const val = join(tmp, 'sig-val');
  const args = [...common(), '--method', 'natural', '--epochs', '1', '--val-size', '300', '--eval-batch-size', '10', '--log-every', '1', '--eval-limit', '10'];
  const p = start([...args, '--out', val]);
  await waitFor(() => existsSync(join(val, 'metrics.jsonl')) && metricLines(val).some((l) => l.step === 2 && 'loss' in l), 60_000, 'the end of the pass');
  p.child.kill('SIGTERM');
  const e = await p.exit;
  assert.equal(e.code, 130, p.err());
  assert.match(p.err(), /stopped by SIGTERM at SGD step 2; checkpoint written/);
  assert.ok(!existsSync(join(val, 'summary.json')));
  const { state } = checkpoint(val);
  assert.deepEqual([state.step, state.pass, state.batch, state.replay], [2, 0, 2, 0]); // the pass's validation is still to do
  const r = await cli(['train', '--resume', val]);
  assert.equal(r.code, 0, r.err);
  assert.equal(summary(val).validation.last.pass, 1);
  assert.equal(summary(val).sgd_steps, 2);

  // final evaluation: one step of training, then PGD-200 on 200 test images in batches of 10
  const ev = join(tmp, 'sig-eval');
  const q = start([...common(), '--method', 'natural', '--max-steps', '1', '--val-size', '0', '--eval-attacks', 'pgd-200', '--eval-limit', '200', '--eval-batch-size', '10', '--out', ev]);
  await waitFor(() => existsSync(join(ev, 'latest.safetensors')), 60_000, 'the final checkpoint');
  const sent = Date.now();
  q.child.kill('SIGTERM');
  const e2 = await q.exit;
  assert.equal(e2.code, 130, q.err());
  assert.ok(e2.at - sent < 5000, `exited ${e2.at - sent} ms after SIGTERM`);
  t.diagnostic(`final evaluation: exited ${e2.at - sent} ms after SIGTERM`);
  assert.match(q.err(), /stopped by SIGTERM during the final evaluation, after all 1 SGD steps \(checkpoint written\)/);
  assert.ok(!existsSync(join(ev, 'summary.json')));
  assert.equal(checkpoint(ev).state.step, 1);
});

// One attack on one batch that runs for minutes: AutoAttack at ε = 0 (nothing can be fooled, so every stage runs
// all its iterations on every correctly classified image) on 200 test images in one batch (about 2 minutes on 2
// cores before the signal could stop it: BENCHMARKS.md, Reliability).
const longAttack = ['--eps', '0', '--eval-attacks', 'autoattack', '--eval-limit', '200', '--eval-batch-size', '200'];

test('SIGTERM inside one long attack on one batch of the final evaluation stops it within seconds: exit 130, checkpoint kept, no summary', async (t) => {
  const out = join(tmp, 'sig-attack');
  const p = start([...common(), '--method', 'natural', '--max-steps', '4', '--val-size', '0', ...longAttack, '--out', out]);
  await waitFor(() => existsSync(join(out, 'latest.safetensors')), 60_000, 'the final checkpoint');
  await new Promise((r) => setTimeout(r, 2000)); // the final evaluation has started: well inside AutoAttack on its batch
  const sent = Date.now();
  p.child.kill('SIGTERM');
  const e = await p.exit;
  t.diagnostic(`exited ${e.at - sent} ms after SIGTERM`);
  assert.equal(e.code, 130, p.err());
  assert.ok(e.at - sent < 3000, `exited ${e.at - sent} ms after SIGTERM`); // 0.2–0.3 s measured; 110 s before
  assert.match(p.err(), /stopped by SIGTERM during the final evaluation, after all 4 SGD steps \(checkpoint written\)/);
  assert.doesNotMatch(p.err(), /eval 1\/1/, 'the batch was not finished');
  assert.ok(!existsSync(join(out, 'summary.json')));
  assert.equal(checkpoint(out).state.step, 4);

  // freeadv eval installs no handlers (it writes nothing): SIGTERM ends it as by default, within the attack too
  const ev = spawn(process.execPath, [BIN, 'eval', '--run', out, '--checkpoint', 'latest', '--data-dir', data, '--eps', '0', '--attacks', 'autoattack', '--limit', '200', '--batch-size', '200', '--threads', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let evOut = '', evErr = '';
  ev.stdout.on('data', (d) => (evOut += d));
  ev.stderr.on('data', (d) => (evErr += d));
  const evExit = new Promise<{ code: number | null; signal: string | null; at: number }>((r) => ev.on('exit', (code, signal) => r({ code, signal, at: Date.now() })));
  await new Promise((r) => setTimeout(r, 3000)); // loading takes about 1 s: well inside AutoAttack on the batch
  const sent2 = Date.now();
  ev.kill('SIGTERM');
  const e2 = await evExit;
  t.diagnostic(`freeadv eval: ended ${e2.at - sent2} ms after SIGTERM`);
  assert.equal(e2.signal, 'SIGTERM', `${e2.code}: ${evErr}`);
  assert.ok(e2.at - sent2 < 2000, `ended ${e2.at - sent2} ms after SIGTERM`);
  assert.equal(evOut, '', 'no result printed');
});

function idxImages(n: number, h: number, w: number): Buffer {
  const head = Buffer.alloc(16);
  head.writeUInt32BE(0x803, 0);
  head.writeUInt32BE(n, 4);
  head.writeUInt32BE(h, 8);
  head.writeUInt32BE(w, 12);
  return Buffer.concat([head, Buffer.alloc(n * h * w, 7)]);
}
function idxLabels(n: number): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(0x801, 0);
  head.writeUInt32BE(n, 4);
  return Buffer.concat([head, Buffer.from(Array.from({ length: n }, (_, i) => i % 10))]);
}

test('a test split the final evaluation cannot use is refused before the first step, naming its file (exit 2, nothing written)', async () => {
  const cases: [string, number, number, RegExp][] = [
    ['empty', 0, 28, /t10k-images-idx3-ubyte: the test split has no examples/],
    ['32px', 20, 32, /t10k-images-idx3-ubyte: the test split has 1×32×32 images, the training images are 1×28×28/],
  ];
  for (const [name, n, side, re] of cases) {
    const dir = join(tmp, `data-${name}`);
    cpSync(data, dir, { recursive: true });
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idxImages(n, side, side));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxLabels(n));
    const out = join(tmp, `late-${name}`);
    const t0 = Date.now();
    const r = await cli(['train', ...common(), '--data-dir', dir, '--method', 'natural', '--epochs', '1', '--out', out]);
    assert.equal(r.code, 2, `${name}: ${r.err}`);
    assert.match(r.err, re);
    assert.ok(!existsSync(out), `${name}: nothing was written`);
    assert.ok(Date.now() - t0 < 10_000, `${name}: refused before training`);
  }
});

test(`per SGD step the training loop reads nothing back from the device (each read makes the host wait for a GPU): every method, and under --amp bf16 (${TEST_DEVICE})`, { skip: deviceSkip, timeout: 300_000 }, async () => {
  // every way a value reaches JavaScript: item(), a copy of the data, an operator that returns a number or a boolean
  let reads = 0;
  const spied = ['item', 'toBuffer', 'call'] as const;
  const saved = spied.map((k) => native[k]);
  for (const [i, k] of spied.entries()) {
    const f = saved[i] as (...a: unknown[]) => unknown;
    (native as unknown as Record<string, unknown>)[k] = (...a: unknown[]) => {
      const r = f(...a);
      if (k !== 'call' || typeof r === 'number' || typeof r === 'boolean') reads++;
      return r;
    };
  }
  try {
    const readsFor = async (method: string, steps: number, amp: string) => {
      reads = 0;
      const cfg = resolveConfig({ dataDir: data, device: TEST_DEVICE, method, replays: 2, attackSteps: 2, epochs: 8, maxSteps: steps, batchSize: 32, valSize: 0, logEvery: 1000, amp, seed: 1, threads: 2, out: join(tmp, `reads-${method}-${amp}-${steps}`) });
      await train(cfg, { noEval: true, handleSignals: false, log: () => {}, warn: () => {}, progress: new (await import('node:stream')).Writable({ write: (_c, _e, cb) => cb() }) });
      return reads;
    };
    for (const [method, amp] of [['natural', 'none'], ['free', 'none'], ['fgsm', 'none'], ['pgd', 'none'], ['free', 'bf16']] as const) {
      const few = await readsFor(method, 2, amp);
      const more = await readsFor(method, 8, amp);
      assert.ok(few > 0, `${method}: the spy sees the reads of the metrics line and the checkpoint`);
      assert.equal(more, few, `${method}${amp === 'none' ? '' : ` --amp ${amp}`}: ${more} reads in 8 SGD steps, ${few} in 2`);
    }
  } finally {
    for (const [i, k] of spied.entries()) (native as unknown as Record<string, unknown>)[k] = saved[i];
  }
});
