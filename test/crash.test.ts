// Crash and resume: `freeadv train` is SIGKILLed at 20 random moments of training (checkpointing every step, so many kills
// land during checkpoint writes) and resumed each time. Every resume must succeed, no checkpoint may ever be
// unreadable, and the final weights must equal those of an uninterrupted run bit for bit.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../src/io/index.js';
import { smallFashionMnist } from './helpers/data.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'freeadv.js');
const KILLS = Number(process.env.FREEADV_CRASH_KILLS ?? 20);
let data = '';
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-crash-'));
before(async () => {
  data = await smallFashionMnist(256, 64);
});

function start(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  let onTraining: () => void = () => {};
  // resolves when the progress line shows that training has begun (start-up takes seconds on a loaded machine)
  const training = new Promise<void>((r) => (onTraining = r));
  child.stderr.on('data', (d) => {
    err += d;
    if (/train \d+\//.test(err)) onTraining();
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }>((r) => child.on('exit', (code, signal) => r({ code, signal, err })));
  void done.then(() => onTraining());
  return { child, done, training };
}

function modelBytes(dir: string): Record<string, Buffer> {
  const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
  const out = Object.fromEntries(Object.entries(ck.model).map(([k, t]) => [k, Buffer.from(t.toBytes())]));
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
  return out;
}

test(`SIGKILL at ${KILLS} random moments, resume each time: same final weights as an uninterrupted run`, async () => {
  const args = ['--data-dir', data, '--method', 'free', '--replays', '2', '--epochs', '100', '--batch-size', '64', '--checkpoint-every', '1', '--eval-limit', '32', '--threads', '1', '--seed', '5', '--log-every', '2'];
  const full = join(tmp, 'full');
  const ref = await start([...args, '--out', full]).done;
  assert.equal(ref.code, 0, ref.err);

  const dir = join(tmp, 'killed');
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  let kills = 0, resumes = 0;
  for (let attempt = 0; ; attempt++) {
    assert.ok(attempt < 3 * KILLS + 5, 'bounded number of attempts');
    const resume = existsSync(join(dir, 'latest.safetensors'));
    if (resume) {
      // whatever moment the last kill hit, the checkpoint on disk must be whole
      assert.doesNotThrow(() => modelBytes(dir), 'the checkpoint left by a kill is readable');
      resumes++;
    }
    const p = start(resume ? ['--resume', dir, '--threads', '1'] : [...args, '--out', dir]);
    if (kills < KILLS) {
      // a random moment in the first ~1.2 s of training (checkpoint writes included), whatever start-up took
      await p.training;
      await new Promise((r) => setTimeout(r, rnd() * 1200));
      p.child.kill('SIGKILL');
    }
    const r = await p.done;
    if (r.signal === 'SIGKILL') {
      kills++;
      continue;
    }
    assert.equal(r.code, 0, r.err);
    break; // finished (after the last kill, or early if the run outpaced the kills)
  }
  assert.ok(kills >= Math.min(KILLS, 10), `killed ${kills} times`);
  assert.ok(resumes >= 1);
  const a = modelBytes(full), b = modelBytes(dir);
  for (const k of Object.keys(a)) assert.ok(a[k]!.equals(b[k]!), `${k} equals the uninterrupted run's`);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary files remain');
});
