// Trainers and `freeadv train`: cost accounting per method, run folders, bit-exact resume after a real
// SIGTERM, NaN handling, refusal of invalid options before any work, config files.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { loadCheckpoint } from '../src/io/index.js';
import { smallFashionMnist, fashionImageFolder } from './helpers/data.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'freeadv.js');
let data = '';
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-train-'));
before(async () => {
  data = await smallFashionMnist(512, 200);
});

const common = () => ['--data-dir', data, '--batch-size', '128', '--eval-limit', '100', '--threads', '2', '--log-every', '4', '--seed', '3'];

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

function summary(dir: string): Record<string, any> {
  return JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
}

test('free-m makes ceil(N/m) passes and as many SGD steps and backward passes as natural training', async () => {
  const runs: Record<string, Record<string, any>> = {};
  for (const [method, extra] of [['natural', []], ['free', ['--replays', '4']], ['fgsm', []], ['pgd', ['--attack-steps', '3']]] as const) {
    const out = join(tmp, `cost-${method}`);
    const r = await cli(['train', ...common(), '--method', method, ...extra, '--epochs', '4', '--out', out]);
    assert.equal(r.code, 0, r.err);
    runs[method] = summary(out);
  }
  const batches = 4; // 502 / 128 (10 of the 512 images, 2%, are held out for validation)
  assert.equal(runs.natural!.passes, 4);
  assert.equal(runs.free!.passes, 1);
  assert.equal(runs.natural!.sgd_steps, 4 * batches);
  assert.equal(runs.free!.sgd_steps, runs.natural!.sgd_steps);
  assert.equal(runs.free!.backward_passes, runs.natural!.backward_passes);
  assert.equal(runs.fgsm!.backward_passes, 2 * 4 * batches);
  assert.equal(runs.pgd!.backward_passes, 4 * 4 * batches);
  for (const s of Object.values(runs)) {
    for (const k of ['method', 'replays', 'eps', 'epochs', 'passes', 'sgd_steps', 'backward_passes', 'train_seconds', 'clean_accuracy', 'robust_accuracy']) assert.ok(k in s, `summary has ${k}`);
    assert.ok(s.robust_accuracy['pgd-20'] <= s.clean_accuracy);
    assert.equal(s.eval_examples, 100);
    assert.equal(s.eps, 0.1);
    assert.equal(s.val_examples, 10);
    assert.equal(s.validation.attack, 'pgd-10');
    assert.ok(s.validation.best.robust_accuracy >= s.validation.last.robust_accuracy, 'best is the best pass');
    assert.equal(s.validation.last.pass, s.passes);
  }
  const dir = join(tmp, 'cost-free');
  assert.deepEqual(readdirSync(dir).sort(), ['best.safetensors', 'config.json', 'events.out.tfevents.freeadv', 'latest.safetensors', 'metrics.jsonl', 'summary.json']);
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const m = lines.find((l) => 'loss' in l);
  for (const k of ['step', 'pass', 'lr', 'loss', 'train_accuracy', 'images_per_second']) assert.ok(k in m, `metrics line has ${k}`);
  const val = lines.filter((l) => 'val_robust_accuracy' in l);
  assert.equal(val.length, runs.free!.passes); // one validation line per pass
  for (const l of val) assert.ok(l.val_robust_accuracy <= l.val_clean_accuracy && l.val_clean_accuracy >= 0 && l.val_clean_accuracy <= 1);
  // free training's δ is in the checkpoint, within the ε-ball and not zero
  const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
  const delta = ck.tensors.delta!;
  assert.deepEqual(delta.shape, [128, 1, 28, 28]);
  assert.ok(delta.abs().max().item() <= 0.1 + 1e-7 && delta.abs().max().item() > 0);
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
});

function weights(dir: string): Record<string, Buffer> {
  const ck = loadCheckpoint(join(dir, 'latest.safetensors'));
  const out = Object.fromEntries(Object.entries(ck.model).map(([k, t]) => [k, Buffer.from(t.toBytes())]));
  for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
  return out;
}

for (const amp of ['none', 'bf16', 'fp16']) {
// scripts/test-cpus.sh below AVX-512 caps oneDNN while ATen still sees this CPU's AVX-512 and hands oneDNN bfloat16
// kernels it cannot build there (an artefact of the emulation: amp.test.ts checks the path real CPUs take)
const EMULATED = amp === 'bf16' && process.env.FREEADV_TEST_NO_ONEDNN === '1' && 'bfloat16 with oneDNN capped below AVX-512 on an AVX-512 CPU: not what any real CPU runs';
// float16 on CPU needs a libtorch 2.x build (FREEADV_ADDON); Debian's 1.13 refuses it
const NO_FP16 = amp === 'fp16' && T.autocastUnsupported('float16') && `this libtorch (${T.version().torch}) has no float16 CPU autocast`;
test(`SIGTERM writes a checkpoint; --resume ends with the same weights as an uninterrupted run (bit for bit)${amp === 'none' ? '' : `, --amp ${amp}`}`, { skip: EMULATED || NO_FP16 }, async () => {
  const args = [...common(), '--method', 'free', '--replays', '2', '--epochs', '6', '--lr', '0.02', '--eval-limit', '50', '--amp', amp];
  const full = join(tmp, `full-${amp}`);
  assert.equal((await cli(['train', ...args, '--out', full])).code, 0);

  const part = join(tmp, `part-${amp}`);
  const child = spawn(process.execPath, [BIN, 'train', ...args, '--out', part], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  // interrupt once training has begun (the metrics file exists)
  const started = Date.now();
  while (!existsSync(join(part, 'metrics.jsonl')) && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGTERM');
  const code = await new Promise<number>((r) => child.on('exit', (c) => r(c ?? -1)));
  assert.equal(code, 130, err);
  assert.match(err, /Resume with: freeadv train --resume/);
  const r = await cli(['train', '--resume', part]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /resuming/);
  const a = weights(full), b = weights(part);
  assert.deepEqual(Object.keys(b), Object.keys(a));
  for (const k of Object.keys(a)) assert.ok(a[k]!.equals(b[k]!), `${k} is identical after resume`);
  assert.equal(summary(part).sgd_steps, summary(full).sgd_steps);
  if (amp === 'none') return;
  // the final evaluation ran in float32; eval --attack-amp attacks under autocast and says so
  const s = summary(full) as unknown as Record<string, unknown>;
  assert.equal(s.amp, amp);
  assert.equal(s.evaluation_precision, 'float32');
  assert.ok(typeof s.input_grad_zero_share === 'number' && s.input_grad_zero_share >= 0 && s.input_grad_zero_share < 1);
  if (amp === 'fp16') {
    // the scaler's state is checkpointed: the resumed run ends with the uninterrupted one's scale
    const g = (d: string) => (summary(d) as unknown as { grad_scaler: { scale: number; growth_tracker: number } }).grad_scaler;
    assert.deepEqual([g(part).scale, g(part).growth_tracker], [g(full).scale, g(full).growth_tracker]);
    const lines = readFileSync(join(full, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number; loss_scale?: number; skipped_steps?: number });
    assert.ok(lines.filter((l) => l.loss !== undefined).every((l) => l.loss_scale! > 0 && Number.isInteger(l.skipped_steps)), 'metrics lines carry the scale and the skipped steps');
  }
  const dt = amp === 'bf16' ? 'bfloat16' : 'float16';
  const e = await cli(['eval', '--run', full, '--attack-amp', amp, '--limit', '50', '--data-dir', data, '--json']);
  assert.equal(e.code, 0, e.err);
  const j = JSON.parse(e.out) as { amp: string; warnings: string[] };
  assert.equal(j.amp, dt);
  assert.match(j.warnings[0]!, new RegExp(`${dt} autocast \\(--attack-amp\\).*overstate robustness`));
});
}

test('determinism: same seed and threads give identical metrics, weights and results; another seed does not', async () => {
  const args = [...common(), '--method', 'free', '--replays', '2', '--epochs', '4', '--eval-limit', '50'];
  const dirs = ['det-a', 'det-b', 'det-c'].map((d) => join(tmp, d));
  for (const [i, d] of dirs.entries()) assert.equal((await cli(['train', ...args, ...(i === 2 ? ['--seed', '4'] : []), '--out', d])).code, 0);
  // Everything but wall-clock fields must be equal.
  const metrics = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const { images_per_second: _a, pass_seconds: _b, ...rest } = JSON.parse(l);
    return rest;
  });
  assert.deepEqual(metrics(dirs[1]!), metrics(dirs[0]!));
  const [a, b, c] = dirs.map(weights);
  for (const k of Object.keys(a!)) assert.ok(a![k]!.equals(b![k]!), `${k} identical for the same seed`);
  assert.ok(Object.keys(a!).some((k) => !a![k]!.equals(c![k]!)), 'another seed gives other weights');
  for (const k of ['clean_accuracy', 'robust_accuracy', 'sgd_steps']) assert.deepEqual(summary(dirs[1]!)[k], summary(dirs[0]!)[k], k);
});

test('a NaN loss stops the run with a clear message and keeps the last good checkpoint', async () => {
  const out = join(tmp, 'nan');
  const r = await cli(['train', ...common(), '--method', 'natural', '--epochs', '3', '--lr', '1e30', '--lr-schedule', 'constant', '--out', out]);
  assert.equal(r.code, 1);
  assert.match(r.err, /training loss became (NaN|Infinity|-Infinity) at SGD step \d+/);
  if (existsSync(join(out, 'latest.safetensors'))) {
    const ck = loadCheckpoint(join(out, 'latest.safetensors'));
    for (const t of Object.values(ck.model)) assert.ok(t.isfinite().all().item(), 'the kept checkpoint has finite weights');
    for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
  }
});

test('invalid options are refused before any work, naming the option', async () => {
  const cases: [string[], RegExp][] = [
    [['--eps=-0.1'], /--eps: must be >= 0/],
    [['--eps', '8'], /--eps: .*did you mean 8\/255/],
    [['--eps', 'abc'], /--eps: expected a number/],
    [['--replays', '0'], /--replays: must be in \[1, 1000\], got '0'/],
    [['--model', 'resnet9000'], /--model: unknown value 'resnet9000' \(known: small-cnn, /],
    [['--model', 'preact-resnet18'], /--model: model 'preact-resnet18' needs 3-channel/],
    [['--dataset', 'svhn'], /--dataset: unknown value 'svhn' \(known: fashion-mnist, /],
    [['--method', 'trades'], /--method: unknown value 'trades' \(known: free, pgd, fgsm, natural\)/],
    [['--lr-schedule', 'exp'], /--lr-schedule: unknown value 'exp'/],
    [['--device', 'tpu'], /--device: must be cpu, cuda/],
    [['--device', 'cuda'], /--device: cuda: (this build of the native addon has no CUDA|no CUDA GPU found)/],
    [['--eval-attacks', 'pgd-x'], /--eval-attacks: unknown attack 'pgd-x'/],
    [['--batch-size', '1.5'], /--batch-size: expected a whole number/],
    [['--val-size=-1'], /--val-size: must be in \[0, /],
    [['--val-size', '512'], /--val-size: 512 validation examples do not leave any of the 512 training examples/],
    [['--bogus', '1'], /Unknown option '--bogus'/],
  ];
  for (const [args, re] of cases) {
    if (args.includes('cuda') && T.cuda.isAvailable()) continue;
    const out = join(tmp, 'bad-' + args.join('_').replace(/[^a-z0-9]/gi, ''));
    const r = await cli(['train', ...common(), ...args, '--out', out]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.ok(!existsSync(out), 'nothing was written');
  }
  const notDir = join(tmp, 'a-file');
  writeFileSync(notDir, 'x');
  const r = await cli(['train', ...common(), '--out', join(notDir, 'run')]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /a-file/);
  const missing = await cli(['train', '--data-dir', join(tmp, 'nowhere')]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /nowhere/);
  const resumeNothing = await cli(['train', '--resume', join(tmp, 'nowhere')]);
  assert.equal(resumeNothing.code, 2);
  assert.match(resumeNothing.err, /--resume: .*nowhere: no such folder/);
  const resumeNotRun = await cli(['train', '--resume', tmp]);
  assert.equal(resumeNotRun.code, 2);
  assert.match(resumeNotRun.err, /--resume: .*: not a run folder \(no config\.json\)/);
  const twice = await cli(['train', ...common(), '--epochs', '1', '--method', 'natural', '--out', join(tmp, 'cost-natural')]);
  assert.equal(twice.code, 2);
  assert.match(twice.err, /already holds a run/);
});

test('a YAML config file gives the same keys; options override it', async () => {
  const cfg = join(tmp, 'cfg.yaml');
  writeFileSync(cfg, `method: natural\nepochs: 1\neps: 8/255\nlr-schedule: multistep\nweightDecay: 0\n`);
  const out = join(tmp, 'yaml');
  const r = await cli(['train', ...common(), '--config', cfg, '--epochs', '2', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const c = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(c.method, 'natural');
  assert.equal(c.epochs, 2);
  assert.ok(Math.abs(c.eps - 8 / 255) < 1e-12);
  assert.equal(c.lrSchedule, 'multistep');
  assert.equal(c.weightDecay, 0);
  writeFileSync(cfg, 'method: [oops');
  const bad = await cli(['train', '--config', cfg]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--config: .*cfg\.yaml/);
});

test('help texts list every option', async () => {
  const r = await cli(['train', '--help']);
  assert.equal(r.code, 0);
  for (const o of ['--dataset', '--data-dir', '--model', '--method', '--replays', '--eps', '--step-size', '--attack-steps', '--epochs', '--batch-size', '--lr', '--lr-schedule', '--momentum', '--weight-decay', '--seed', '--threads', '--device', '--out', '--resume', '--eval-attacks', '--eval-limit', '--max-steps', '--config', '--image-size', '--skip-bad'])
    assert.ok(r.out.includes(o), `train --help mentions ${o}`);
  const e = await cli(['eval', '--help']);
  for (const o of ['--run', '--weights', '--model', '--dataset', '--data-dir', '--eps', '--attacks', '--restarts', '--limit', '--batch-size', '--seed', '--json']) assert.ok(e.out.includes(o), `eval --help mentions ${o}`);
  assert.equal((await cli(['nope'])).code, 2);
});

test('freeadv eval on a run folder and on bare weights, with --json', async () => {
  const runDir = join(tmp, 'cost-free');
  const r = await cli(['eval', '--run', runDir, '--data-dir', data, '--attacks', 'fgsm,pgd-10,apgd-ce-10', '--limit', '64', '--batch-size', '32', '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim().split('\n').pop()!);
  assert.equal(j.examples, 64);
  assert.equal(j.eps, 0.1);
  for (const k of ['fgsm', 'pgd-10', 'apgd-ce-10', 'worst_case']) assert.ok(k in j.robust_accuracy, k);
  assert.ok(j.robust_accuracy.worst_case <= Math.min(j.robust_accuracy.fgsm, j.robust_accuracy['pgd-10'], j.robust_accuracy['apgd-ce-10']));
  const w = await cli(['eval', '--weights', join(runDir, 'best.safetensors'), '--model', 'small-cnn', '--data-dir', data, '--eps', '8/255', '--limit', '32']);
  assert.equal(w.code, 0, w.err);
  assert.match(w.out, /clean/);
  const wrong = await cli(['eval', '--weights', join(runDir, 'best.safetensors'), '--model', 'madry-cnn', '--data-dir', data, '--limit', '8']);
  assert.equal(wrong.code, 2);
  assert.match(wrong.err, /best\.safetensors: .*shape mismatches/);
});

test('--dataset imagefolder trains on lazily decoded images (RandomResizedCrop + flip), skips bad files, evaluates, resumes', async () => {
  // Real Fashion-MNIST images of three classes (trouser, sneaker, bag) as PNG files; one undecodable file.
  const dir = await fashionImageFolder([1, 7, 8], 60, 20);
  const bad = join(dir, 'train', readdirSync(join(dir, 'train')).sort()[0]!, 'zz-broken.png');
  writeFileSync(bad, 'not a png');
  const args = ['--dataset', 'imagefolder', '--data-dir', dir, '--image-size', '28', '--model', 'small-cnn', '--method', 'free', '--replays', '2',
    '--epochs', '8', '--batch-size', '25', '--lr', '0.05', '--threads', '2', '--eps', '0.05', '--seed', '1'];
  const stop = await cli(['train', ...args, '--out', join(tmp, 'if-strict')]);
  assert.equal(stop.code, 2, stop.err);
  assert.match(stop.err, /zz-broken\.png: cannot decode image/);
  const out = join(tmp, 'if-run');
  const r = await cli(['train', ...args, '--skip-bad', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const s = summary(out);
  assert.equal(s.passes, 4);
  assert.equal(s.sgd_steps, 4 * 8 * 2); // 4 passes × 8 batches (181 files, the bad one left out of its batch) × m = 2
  assert.equal(s.eval_examples, 60);
  assert.ok(s.clean_accuracy > 0.6, `clean accuracy ${s.clean_accuracy} on 3 classes`);
  assert.ok(s.warnings.some((w: string) => /undecodable training images were left out 4 time\(s\)/.test(w)), JSON.stringify(s.warnings)); // 1 file × 4 passes
  // the summary evaluates the final weights; `eval --run` takes the best checkpoint unless told otherwise
  const e = await cli(['eval', '--run', out, '--checkpoint', 'latest', '--json']);
  assert.equal(e.code, 0, e.err);
  const j = JSON.parse(e.out.trim().split('\n').pop()!);
  assert.equal(j.clean_accuracy, s.clean_accuracy);
  const wrongFlag = await cli(['train', '--image-size', '28', '--out', join(tmp, 'if-flag')]);
  assert.equal(wrongFlag.code, 2);
  assert.match(wrongFlag.err, /--image-size: applies to --dataset imagefolder only/);
});

test('a disk that fills up mid-run: a clear message, exit 1, the previous checkpoint and the metrics intact; resume then completes', async () => {
  const args = [...common(), '--method', 'free', '--replays', '2', '--epochs', '8', '--checkpoint-every', '2', '--eval-limit', '50'];
  const dir = join(tmp, 'diskfull');
  // A first part of the run, interrupted after its first checkpoint.
  const child = spawn(process.execPath, [BIN, 'train', ...args, '--out', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const started = Date.now();
  while (!existsSync(join(dir, 'latest.safetensors')) && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGTERM');
  assert.equal(await new Promise<number>((r) => child.on('exit', (c) => r(c ?? -1))), 130);
  const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
  const before = sha(join(dir, 'latest.safetensors'));
  // Resume with files capped at 256 KiB (the checkpoint is ~1.6 MB): the kernel refuses the write (EFBIG), as a full
  // disk refuses it with ENOSPC. SIGXFSZ is ignored so that the write fails instead of killing the process.
  const full = spawn('bash', ['-c', 'trap "" XFSZ; ulimit -f 256; exec "$0" "$@"', process.execPath, BIN, 'train', '--resume', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  full.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number>((r) => full.on('exit', (c) => r(c ?? -1)));
  assert.equal(code, 1, err);
  assert.match(err, /freeadv: error: could not write .*latest\.safetensors: the file would exceed the file-size limit \(EFBIG\); the previous file, if any, is unchanged/);
  assert.doesNotMatch(err, /internal error/);
  assert.equal(sha(join(dir, 'latest.safetensors')), before, 'the previous checkpoint is untouched');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), [], 'no temporary files left');
  for (const l of readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')) JSON.parse(l);
  const r = await cli(['train', '--resume', dir]);
  assert.equal(r.code, 0, r.err);
  assert.equal(summary(dir).sgd_steps, 32);
});
