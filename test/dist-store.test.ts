// The TCP rendezvous (native/store.cc): rank 0's server for jobs that meet over the network. Its store semantics
// against PyTorch's own TCPStore on the same operations; a stranger that connects (a wrong token, junk, a request
// without a hello) is refused, changes no key and does not count as a rank; a flood of held connections beyond
// the open-file limit leaves the job running to the weights of an unflooded run. The bind to --master-addr is
// checked in test/dist.test.ts ("rank 0 listens on that address only").
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/cli/launch.js';
import { loadCheckpoint } from '../src/io/index.js';
import { smallFashionMnist } from './helpers/data.js';
import { hasTorchPython, pythonJson } from './helpers/python.js';

const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, '..', '..', 'bin', 'freeadv.js');
const WORKER = join(here, 'helpers', 'store-worker.js');
const PY_OPS = join(here, '..', '..', 'test', 'helpers', 'store_ops.py');
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-store-'));
let data = '';
before(async () => {
  data = await smallFashionMnist(576, 200);
});

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
function start(command: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return { child, out: () => out, err: () => err, exit };
}
const rankEnv = (rank: number, port: number, token: string, extra: NodeJS.ProcessEnv = {}) => ({
  RANK: String(rank), LOCAL_RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), FREEADV_RENDEZVOUS_TOKEN: token, ...extra,
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A connection to the port; resolves once connected (or with undefined if it was refused or reset). */
function open(port: number): Promise<Socket | undefined> {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => res(s));
    s.on('error', () => res(undefined));
  });
}
async function whenListening(port: number, ms: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const s = await open(port);
    if (s) return void s.destroy();
    if (Date.now() - t0 > ms) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A hello as the protocol of native/store.cc spells it (written out here on its own). */
function hello(rank: number, world: number, token: string): Buffer {
  const t = Buffer.from(token);
  const b = Buffer.alloc(20 + t.length);
  b.writeUInt32LE(0x56444146, 0); // "FADV"
  b.writeUInt32LE(1, 4);
  b.writeUInt32LE(rank, 8);
  b.writeUInt32LE(world, 12);
  b.writeUInt32LE(t.length, 16);
  t.copy(b, 20);
  return b;
}
/** A SET request for key = value. */
function setRequest(key: string, value: string): Buffer {
  const k = Buffer.from(key), v = Buffer.from(value);
  const b = Buffer.alloc(9 + k.length + v.length);
  b.writeUInt8(1, 0);
  b.writeUInt32LE(k.length, 1);
  k.copy(b, 5);
  b.writeUInt32LE(v.length, 5 + k.length);
  v.copy(b, 9 + k.length);
  return b;
}
/** Sends bytes and collects what comes back until the server closes the connection (or ms pass). */
function exchange(port: number, bytes: Buffer, ms = 8000): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); res({ reply: Buffer.concat(got), closed: false }); }, ms);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d) => got.push(d));
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); res({ reply: Buffer.concat(got), closed: true }); });
  });
}

test('rendezvous store: PyTorch TCPStore\'s answers to the same operations; add is a running sum over the ranks; a wait times out naming its keys', async (t) => {
  const port = await freePort();
  const ps = [0, 1].map((r) => start(process.execPath, [WORKER], rankEnv(r, port, 'semantics')));
  const ex = await Promise.all(ps.map((p) => p.exit));
  ex.forEach((e, r) => assert.equal(e.code, 0, ps[r]!.err()));
  const [r0, r1] = ps.map((p) => JSON.parse(p.out().trim()));
  if (hasTorchPython()) assert.deepEqual(r0.ops, pythonJson<{ ops: unknown[] }>(readFileSync(PY_OPS, 'utf8'), [String(await freePort())]).ops);
  else t.skip('PyTorch for the system Python is missing (apt-get install python3-torch): no comparison with its TCPStore');
  assert.deepEqual(r0.ops.slice(0, 4), [3, 7, 5, '5']);
  assert.equal(r1.add, 15);
  assert.equal(r0.n, '15');
  assert.equal(r1.n, '15');
  assert.equal(r0.wait.name, 'DistError');
  assert.match(r0.wait.message, /waiting for key\(s\) 'never', 'n' in the rendezvous at 127\.0\.0\.1:\d+ timed out after 300 ms/);
  assert.ok(r0.wait.ms >= 300 && r0.wait.ms < 3000, `the wait gave up after ${r0.wait.ms} ms`);
});

test('a stranger at the rendezvous port: a wrong token, a wrong world size or junk is refused, sets no key and does not count as a rank', async (t) => {
  const token = 'the-job-token';
  // rank 0 alone (world 2): strangers claim rank 1; it must still be waiting for rank 1, then give up naming it
  let port = await freePort();
  let r0 = start(process.execPath, [WORKER], rankEnv(0, port, token, { TIMEOUT_MS: '4000' }));
  await whenListening(port, 20_000);
  const wrong = await exchange(port, Buffer.concat([hello(1, 2, 'not-the-token'), setRequest('intruder', 'x')]));
  assert.equal(wrong.reply[0], 1, 'refused');
  assert.match(wrong.reply.subarray(5).toString(), /wrong job token/);
  assert.ok(wrong.closed, 'and closed');
  const world = await exchange(port, hello(1, 3, token));
  assert.equal(world.reply[0], 1);
  assert.match(world.reply.subarray(5).toString(), /rank 1 of 3 does not fit this job of 2 ranks/);
  const junk = await exchange(port, Buffer.concat([setRequest('intruder', 'x'), Buffer.from('GET / HTTP/1.0\r\n\r\n')]));
  assert.deepEqual([junk.reply.length, junk.closed], [0, true], 'a request without a hello: closed without an answer');
  const e0 = await r0.exit;
  assert.equal(e0.code, 1);
  assert.match(JSON.parse(r0.out()).error, /rank\(s\) 1 did not join the rendezvous at 127\.0\.0\.1:\d+ within 4000 ms/);

  // the same strangers, then the real rank 1: the job runs and the strangers' key does not exist
  port = await freePort();
  r0 = start(process.execPath, [WORKER], rankEnv(0, port, token));
  await whenListening(port, 20_000);
  await exchange(port, Buffer.concat([hello(1, 2, 'not-the-token'), setRequest('intruder', 'x')]));
  await exchange(port, setRequest('intruder', 'x'));
  const silent = await exchange(port, Buffer.alloc(0), 7000); // says nothing: dropped after the hello deadline
  t.diagnostic(`a silent connection: closed by the server ${silent.closed}`);
  assert.ok(silent.closed, 'a connection that says nothing is closed within the hello deadline');
  const r1 = start(process.execPath, [WORKER], rankEnv(1, port, token));
  const ex = await Promise.all([r0.exit, r1.exit]);
  assert.equal(ex[0].code, 0, r0.err());
  assert.equal(ex[1].code, 0, r1.err());
  assert.equal(JSON.parse(r0.out()).intruder, false);
});

test('a master address that is not rank 0\'s machine, or does not resolve: a clear error at once, not a wait until the timeout', async () => {
  const port = await freePort();
  // 192.0.2.1 (TEST-NET-1, RFC 5737) is no address of this machine
  const cases: [number, string, RegExp][] = [
    [0, '192.0.2.1', /rank 0 cannot listen on 192\.0\.2\.1:\d+ \(the master address must be one of this machine's\)/],
    [1, 'no-such-host.invalid', /no-such-host\.invalid does not resolve|the address does not resolve/],
  ];
  for (const [rank, addr, re] of cases) {
    const t0 = performance.now();
    const p = start(process.execPath, [WORKER], { ...rankEnv(rank, port, 'x'), MASTER_ADDR: addr, TIMEOUT_MS: '20000' });
    const e = await p.exit;
    assert.equal(e.code, 1, p.err());
    assert.match(JSON.parse(p.out()).error, re);
    if (rank === 0) assert.ok(performance.now() - t0 < 15_000, 'at once');
  }
});

function weights(dir: string): Record<string, number[]> {
  const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
  const out = Object.fromEntries(Object.entries(ck.model).map(([k, t]) => [k, Array.from(t.toTypedArray() as Float64Array)]));
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
  return out;
}

test('a flood of held connections beyond the open-file limit (256) during the rendezvous and the training: the job ends with the weights of an unflooded run', async (t) => {
  const LIMIT = 256, FLOOD = 400;
  const args = (out: string) => [BIN, 'train', '--data-dir', data, '--val-size', '64', '--batch-size', '128', '--seed', '3', '--dtype', 'float64', '--method', 'natural', '--eps', '0',
    '--epochs', '3', '--eval-limit', '50', '--eval-attacks', 'fgsm', '--threads', '1', '--dist-timeout', '60', '--out', out];
  const job = async (out: string, flood: boolean) => {
    const port = await freePort();
    // ranks under a lowered open-file limit (Node raises its soft limit only up to the hard one)
    const rank = (r: number) => start('bash', ['-c', `ulimit -n ${LIMIT} && exec "$0" "$@"`, process.execPath, ...args(out)], rankEnv(r, port, 'flood-test'));
    const held: Socket[] = [];
    let peak = 0;
    const wave = async () => {
      const socks = await Promise.all(Array.from({ length: FLOOD }, () => open(port)));
      socks.forEach((s, i) => {
        if (!s) return;
        s.on('error', () => {});
        held.push(s);
        // some say nothing, some send junk, some a wrong hello, some a long stream
        if (i % 4 === 1) s.write(Buffer.from('\x00\x01garbage that is no hello'));
        else if (i % 4 === 2) s.write(hello(1, 2, 'wrong'));
        else if (i % 4 === 3) s.write(Buffer.alloc(200_000, 7));
      });
    };
    const r0 = rank(0);
    let r1: Proc | undefined;
    const pid = r0.child.pid!;
    const sample = setInterval(() => { try { peak = Math.max(peak, readdirSync(`/proc/${pid}/fd`).length); } catch { /* exited */ } }, 50);
    try {
      await whenListening(port, 30_000);
      if (flood) await wave(); // during the rendezvous: rank 1 is not there yet
      r1 = rank(1);
      if (flood) {
        await waitFor(() => existsSync(join(out, 'metrics.jsonl')) || r0.child.exitCode !== null || r0.child.signalCode !== null, 60_000).catch(() =>
          assert.fail(`no training step within 60 s of the flood; rank 0 says: ${r0.err().slice(-1500)}`),
        );
        await wave(); // and while training
      }
      const ex = await Promise.all([r0.exit, r1.exit]);
      return { ex, r0, r1, peak, held: held.length };
    } finally {
      clearInterval(sample);
      held.forEach((s) => s.destroy());
      for (const p of [r0, r1]) if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
  };
  const quiet = await job(join(tmp, 'quiet'), false);
  assert.equal(quiet.ex[0]!.code, 0, quiet.r0.err());
  const flooded = await job(join(tmp, 'flooded'), true);
  t.diagnostic(`flood: ${flooded.held} connections opened; rank 0 held at most ${flooded.peak} descriptors (unflooded: ${quiet.peak})`);
  assert.equal(flooded.ex[0]!.code, 0, `rank 0: ${flooded.ex[0]!.code} ${flooded.ex[0]!.signal} ${flooded.r0.err().slice(-2000)}`);
  assert.equal(flooded.ex[1]!.code, 0, flooded.r1.err().slice(-2000));
  assert.ok(flooded.held > LIMIT, `${flooded.held} connections opened`);
  assert.ok(flooded.peak < LIMIT - 32, `rank 0 held ${flooded.peak} descriptors`);
  assert.deepEqual(weights(join(tmp, 'flooded')), weights(join(tmp, 'quiet')));
});
