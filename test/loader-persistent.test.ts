// Persistent loader workers (PyTorch's persistent_workers=True), which `freeadv train` uses: the workers start with
// the first epoch and serve every later one until close(). Checked against loaders that start their workers for
// each epoch (the batches, bit for bit, over several epochs of an image folder and of in-memory data, mid-epoch
// starts and breaks included); that they are started once; that they end — after close(), after an error in a
// worker (a bad image in a later epoch, with the message a fresh loader gives), after a training run that ends
// normally, at --max-steps inside a pass, or by SIGTERM — and that several epochs grow neither the process's
// threads nor its memory. A run stopped inside a pass and resumed ends with the weights of an uninterrupted run.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Loader, activeWorkers, workersStarted, openImageFolder, type Batch } from '../src/data/index.js';
import { loadCheckpoint } from '../src/io/index.js';
import { run } from '../src/cli/main.js';
import { writeImageNetStyleFolder } from './helpers/images.js';
import { rejectsData } from './helpers/data.js';

const here = dirname(fileURLToPath(import.meta.url));
let tmp = '';
let folder = '';
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'freeadv-persist-'));
  folder = join(tmp, 'images');
  // JPEGs (baseline, progressive, grey, CMYK) and PNGs: both decoders
  await writeImageNetStyleFolder(folder, { train: 36, val: 9, classes: 3, seed: 7 });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

/** What identifies a batch: its place, its examples, its bytes. */
const key = (bs: Batch[]) => bs.map((b) => [b.epoch, b.batch, b.shape, Array.from(b.indices), Array.from(b.y), Buffer.from(b.x.buffer, b.x.byteOffset, b.x.byteLength).toString('base64')]);

function synth(n: number, c = 3, h = 8, w = 8) {
  const images = new Uint8Array(n * c * h * w);
  for (let i = 0; i < images.length; i++) images[i] = (i * 7 + (i >> 8)) & 255;
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  return { images, labels, n, c, h, w };
}

describe('Loader with persistent workers', () => {
  test('image folder, 4 epochs, 2 and 3 workers: the batches of loaders started for each epoch, bit for bit; workers started once', async () => {
    const ds = openImageFolder(join(folder, 'train'), { size: 24 });
    const opts = { batchSize: 5, seed: 3, augment: true } as const;
    for (const workers of [2, 3]) {
      const l = new Loader(ds, { ...opts, workers, persistentWorkers: true });
      for (let e = 0; e < 4; e++) {
        const got = await collect(l.epoch(e));
        const fresh = await collect(new Loader(ds, { ...opts, workers }).epoch(e));
        assert.equal(got.length, 8);
        assert.deepEqual(key(got), key(fresh), `epoch ${e}, ${workers} workers`);
        assert.equal(activeWorkers(), workers, 'the workers wait for the next epoch');
      }
      assert.equal(l.stats().workersStarted, workers);
      await l.close();
      assert.equal(activeWorkers(), 0);
    }
  });

  test('in-memory data: a break inside an epoch, a resumed epoch, a second iteration at once, an error in the consumer; close ends them', async () => {
    const ds = synth(60);
    const opts = { batchSize: 6, seed: 9, augment: true, prefetch: 2, workers: 2 } as const;
    const fresh = (e: number, startBatch = 0) => collect(new Loader(ds, opts).epoch(e, { startBatch }));
    const l = new Loader(ds, { ...opts, persistentWorkers: true });
    const started = workersStarted();
    assert.deepEqual(key(await collect(l.epoch(0))), key(await fresh(0)));
    // leave epoch 1 after one batch: the batches asked for it are dropped, epoch 2 is whole and in order
    for await (const b of l.epoch(1)) {
      assert.equal(b.batch, 0);
      break;
    }
    assert.equal(activeWorkers(), 2);
    assert.deepEqual(key(await collect(l.epoch(2))), key(await fresh(2)));
    assert.deepEqual(key(await collect(l.epoch(3, { startBatch: 7 }))), key(await fresh(3, 7)));
    // an iteration while another is open gets workers of its own, which end with it
    const first = l.epoch(4);
    const b0 = await first.next();
    assert.equal(activeWorkers(), 2);
    const second = await collect(l.epoch(5));
    assert.equal(activeWorkers(), 2);
    const rest = await collect(first);
    assert.deepEqual(key([b0.value as Batch, ...rest]), key(await fresh(4)));
    assert.deepEqual(key(second), key(await fresh(5)));
    await assert.rejects(async () => {
      for await (const _ of l.epoch(6)) throw new Error('boom');
    }, /boom/);
    assert.equal(activeWorkers(), 2);
    assert.deepEqual(key(await collect(l.epoch(7))), key(await fresh(7)));
    assert.equal(l.stats().workersStarted, 4, 'twice 2: the persistent ones, and those of the second iteration at once');
    assert.equal(workersStarted() - started, 4 + 2 * 6, "and the 6 fresh loaders' 2 each");
    await l.close();
    assert.equal(activeWorkers(), 0);
    assert.deepEqual(await first.next(), { done: true, value: undefined });
    // a closed loader starts its workers again
    assert.deepEqual(key(await collect(l.epoch(8))), key(await fresh(8)));
    await l.close();
    assert.equal(activeWorkers(), 0);
  });

  test('an image that goes bad after two epochs: the epoch stops with the message a fresh loader gives, after the batches before it, and no worker is left', async () => {
    const dir = join(tmp, 'goes-bad');
    execFileSync('cp', ['-r', folder, dir]);
    const ds = openImageFolder(join(dir, 'train'), { size: 16 });
    const l = new Loader(ds, { batchSize: 4, seed: 1, augment: true, workers: 2, persistentWorkers: true });
    for (let e = 0; e < 2; e++) assert.equal((await collect(l.epoch(e))).length, 9);
    const order = l.order(2);
    const bad = ds.files[order[17]!]!; // in batch 4 of epoch 2
    copyFileSync(bad, `${bad}.good`);
    writeFileSync(bad, 'not an image');
    const message = async (loader: Loader) => {
      const seen: number[] = [];
      try {
        for await (const b of loader.epoch(2)) seen.push(b.batch);
      } catch (e) {
        return { seen, message: (e as Error).message, name: (e as Error).name };
      }
      return { seen, message: '', name: '' };
    };
    const got = await message(l);
    assert.equal(activeWorkers(), 0, 'the failed epoch ended the persistent workers');
    const want = await message(new Loader(ds, { batchSize: 4, seed: 1, augment: true, workers: 2 }));
    assert.deepEqual(got, want);
    assert.deepEqual(got.seen, [0, 1, 2, 3]);
    assert.equal(got.name, 'DataError');
    await rejectsData(collect(l.epoch(2)), bad, /cannot decode image/);
    assert.equal(activeWorkers(), 0);
    copyFileSync(`${bad}.good`, bad);
    assert.equal((await collect(l.epoch(3))).length, 9, 'a later epoch starts workers again');
    await l.close();
    assert.equal(activeWorkers(), 0);
  });

  test("eight epochs of an image folder with 2 persistent workers grow neither the process's threads nor its memory", async (t) => {
    // V8's young generations (each worker's, the main thread's) grow under the allocation rate to their working size,
    // up to 16 MB a semi-space, over the first ten thousand images or so (+40–60 MB here, then flat); held at 1 MB,
    // they leave what the epochs themselves add: the workers' old generations, until a full collection empties them
    // (measured: +9–10 MB over these 8 epochs; over 60, 253 → 281 MB by epoch 47, then 269–270 MB to the end).
    const out = execFileSync(process.execPath, ['--expose-gc', '--max-semi-space-size=1', join(here, 'helpers', 'loader-epochs.js'), join(folder, 'train'), '8', '20'], { encoding: 'utf8' });
    const r = JSON.parse(out) as { threads: number[]; rss: number[]; workersStarted: number; activeAfterClose: number; threadsAfterClose: number };
    const mb = (v: number) => (v / 2 ** 20).toFixed(1);
    t.diagnostic(`threads after each epoch ${r.threads.join(', ')}; RSS (MB) ${r.rss.map(mb).join(', ')}; after close: ${r.threadsAfterClose} threads`);
    assert.equal(r.workersStarted, 2);
    assert.deepEqual(r.threads, r.threads.map(() => r.threads[0]), 'threads after every epoch as after the first');
    assert.equal(r.activeAfterClose, 0);
    assert.equal(r.threadsAfterClose, r.threads[0]! - 2, 'close ends the 2 worker threads');
    const grown = r.rss[r.rss.length - 1]! - r.rss[0]!;
    assert.ok(grown < 16 * 2 ** 20, `RSS grew ${mb(grown)} MB from the first epoch to the last`);
  });
});

describe('freeadv train keeps its loader workers for the whole run', () => {
  const common = () => ['--dataset', 'imagefolder', '--data-dir', folder, '--image-size', '16', '--model', 'resnet-cifar-small', '--method', 'natural', '--batch-size', '8', '--val-size', '6',
    '--eval-limit', '6', '--eval-attacks', 'pgd-2', '--eval-batch-size', '6', '--threads', '1', '--workers', '2', '--seed', '4', '--lr', '0.02', '--lr-schedule', 'constant'];
  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '', err = '';
    const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
    return { code, out, err };
  }
  const state = (dir: string) => {
    const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
    const tensors = Object.fromEntries([...Object.entries(ck.model), ...Object.entries(ck.optimizer).map(([k, v]) => [`opt.${k}`, v] as const)].map(([k, v]) => [k, Buffer.from(v.toBytes())]));
    for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const v of Object.values(g)) v.dispose();
    return { tensors, position: ck.state as Record<string, number> };
  };

  test('3 passes start 2 workers (not 2 a pass) and end them; --max-steps inside a pass too; a run stopped there resumes to the same weights', async () => {
    const full = join(tmp, 'run-full');
    let started = workersStarted();
    const r = await cli(['train', ...common(), '--epochs', '3', '--out', full]);
    assert.equal(r.code, 0, r.err);
    assert.equal(workersStarted() - started, 2);
    assert.equal(activeWorkers(), 0);
    const passes = readFileSync(join(full, 'metrics.jsonl'), 'utf8').trim().split('\n').map((s) => JSON.parse(s)).filter((m) => 'val_clean_accuracy' in m);
    assert.equal(passes.length, 3);
    // 30 training images: 4 batches a pass; 6 steps stop inside pass 2
    const part = join(tmp, 'run-part');
    started = workersStarted();
    const p = await cli(['train', ...common(), '--epochs', '3', '--max-steps', '6', '--out', part]);
    assert.equal(p.code, 0, p.err);
    assert.equal(workersStarted() - started, 2);
    assert.equal(activeWorkers(), 0);
    assert.deepEqual([state(part).position.step, state(part).position.pass, state(part).position.batch], [6, 1, 2]);
    const cfgFile = join(part, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    delete cfg.maxSteps;
    writeFileSync(cfgFile, JSON.stringify(cfg));
    started = workersStarted();
    const q = await cli(['train', '--resume', part]);
    assert.equal(q.code, 0, q.err);
    assert.match(q.out, /resuming .* at SGD step 6 \(pass 2\/3, batch 2\/4\)/);
    assert.equal(workersStarted() - started, 2);
    assert.equal(activeWorkers(), 0);
    const a = state(full), b = state(part);
    assert.equal(b.position.step, 12);
    for (const k of Object.keys(a.tensors)) assert.ok(a.tensors[k]!.equals(b.tensors[k]!), `${k}: the resumed run's equals the uninterrupted run's`);
  });

  test('SIGTERM in the second pass: exit 130, checkpoint written, no worker left', async () => {
    const out = join(tmp, 'run-sig');
    const metrics = join(out, 'metrics.jsonl');
    let sent = false;
    const timer = setInterval(() => {
      // after the first pass's validation line: the signal handlers are installed and the workers idle or busy
      if (!sent && existsSync(metrics) && readFileSync(metrics, 'utf8').includes('val_clean_accuracy')) {
        sent = true;
        process.kill(process.pid, 'SIGTERM');
      }
    }, 5);
    try {
      const r = await cli(['train', ...common(), '--epochs', '50', '--out', out]);
      assert.ok(sent);
      assert.equal(r.code, 130, r.err);
      assert.match(r.err, /Resume with: freeadv train --resume/);
    } finally {
      clearInterval(timer);
    }
    assert.equal(activeWorkers(), 0);
    const p = state(out).position;
    assert.ok(p.step >= 4 && p.step < 200, JSON.stringify(p));
  });
});
