// An ImageNet-style run end to end, each command in a child process whose peak RSS (VmHWM) is bounded by what
// the batch sizes justify: a generated image folder (JPEGs of mixed sizes, greyscale, CMYK and progressive ones,
// a few PNGs), resnet50 trained with free-2 at a small --image-size, SIGTERM and --resume, `eval --run` and
// `report` (analyses and a robustness curve). The evaluation and the report see 12 times more images than one
// batch, so a step that holds a whole set of examples at once — as `eval --run` (batch 500 whatever the run's)
// and the report (its analyses in one batch, the curve in batches of 500) did — exceeds its ceiling.
//
// FREEADV_IMAGENET_LONG=1 runs a longer variant (64 × 64 crops, more images, PGD in the evaluations).
// FREEADV_E2E_BIN=<path to bin/freeadv.js> runs the commands of another build (e.g. an older one) instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeImageNetStyleFolder } from './helpers/images.js';

const BIN = process.env.FREEADV_E2E_BIN ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'freeadv.js');
const LONG = process.env.FREEADV_IMAGENET_LONG === '1';
const MiB = 2 ** 20;

const tmp = mkdtempSync(join(tmpdir(), 'freeadv-imagenet-'));
// Preloaded into every child: writes the process's peak resident memory (VmHWM, all threads) when it exits.
const PEAK = join(tmp, 'peak.cjs');
writeFileSync(PEAK, `'use strict';
process.on('exit', () => {
  const fs = require('node:fs');
  const m = /VmHWM:\\s+(\\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  fs.writeFileSync(process.env.FREEADV_PEAK_FILE, String(Number(m[1]) * 1024));
});
`);

interface Result {
  code: number;
  out: string;
  err: string;
  /** Peak resident memory in bytes. */
  peak: number;
}

let runs = 0;
/** Runs `freeadv args` in a child process; `onStart` may signal it. */
function freeadv(args: string[], onStart?: (pid: number) => void): Promise<Result> {
  const peakFile = join(tmp, `peak-${runs++}`);
  const child = spawn(process.execPath, ['-r', PEAK, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FREEADV_PEAK_FILE: peakFile } });
  let out = '', err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  onStart?.(child.pid!);
  return new Promise((resolve) =>
    child.on('exit', (c) => resolve({ code: c ?? -1, out, err, peak: existsSync(peakFile) ? Number(readFileSync(peakFile, 'utf8')) : NaN })),
  );
}

const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;

test('ImageNet-style run: resnet50 free-2 on a generated JPEG folder, SIGTERM and resume, eval, report, each under a memory ceiling set by the batch sizes', { timeout: LONG ? 3_600_000 : 600_000 }, async (t) => {
  const t0 = performance.now();
  const size = LONG ? 64 : 32;
  const classes = 5;
  const data = join(tmp, 'data');
  const made = await writeImageNetStyleFolder(data, { train: LONG ? 600 : 160, val: LONG ? 300 : 96, classes });
  assert.ok(made.kinds.jpeg! > 0 && made.kinds.grey! > 0 && made.kinds.cmyk! > 0 && made.kinds.progressive! > 0 && made.kinds.png! > 0, JSON.stringify(made));
  assert.ok(made.minSide >= 200 && made.maxSide <= 500);
  const testImages = LONG ? 300 : 96;
  const B = 8; // --batch-size and --eval-batch-size
  const run = join(tmp, 'run');
  const train = ['train', '--dataset', 'imagefolder', '--data-dir', data, '--image-size', String(size), '--model', 'resnet50', '--method', 'free', '--replays', '2',
    '--eps', '4/255', '--batch-size', String(B), '--eval-batch-size', String(B), '--lr', '0.02', '--max-steps', LONG ? '40' : '6', '--log-every', '1',
    '--val-size', LONG ? '100' : '10', '--eval-limit', LONG ? '100' : '16', '--eval-attacks', LONG ? 'pgd-5' : 'fgsm', '--workers', '2', '--threads', '2', '--seed', '5'];
  const log: string[] = [`data: ${made.files} files (${JSON.stringify(made.kinds)}), ${(made.bytes / 1e6).toFixed(1)} MB, ${((performance.now() - t0) / 1000).toFixed(1)} s`];

  // 1. train, stopped by SIGTERM once training has begun; 2. resumed to the end (validation, final evaluation)
  const first = await freeadv([...train, '--out', run], (pid) => {
    const started = Date.now();
    const poll = setInterval(() => {
      const m = join(run, 'metrics.jsonl');
      if ((existsSync(m) && readFileSync(m, 'utf8').includes('"loss"')) || Date.now() - started > 300_000) {
        clearInterval(poll);
        process.kill(pid, 'SIGTERM');
      }
    }, 50);
  });
  assert.equal(first.code, 130, first.err);
  assert.match(first.err, /Resume with: freeadv train --resume/);
  const resumed = await freeadv(['train', '--resume', run]);
  assert.equal(resumed.code, 0, resumed.err);
  assert.match(resumed.out, /resuming .* at SGD step [1-9]/);
  const summary = JSON.parse(readFileSync(join(run, 'summary.json'), 'utf8'));
  assert.equal(summary.model, 'resnet50');
  assert.equal(summary.sgd_steps, LONG ? 40 : 6);
  assert.equal(summary.val_examples, LONG ? 100 : 10);
  assert.equal(summary.eval_examples, LONG ? 100 : 16);
  assert.ok(summary.validation.last.clean_accuracy >= 0 && summary.validation.last.robust_accuracy <= summary.validation.last.clean_accuracy);

  // 3. the run's model on a baseline of one image in one batch: the process, libtorch, the data scan, the model
  const base = await freeadv(['eval', '--run', run, '--limit', '1', '--batch-size', '1', '--attacks', 'fgsm', '--threads', '2']);
  assert.equal(base.code, 0, base.err);
  assert.ok(Number.isFinite(base.peak) && base.peak > 23_518_277 * 4, `baseline ${base.peak}`);
  // The ceilings. W = resnet50's weights with 5 classes: 23,518,277 float32 parameters = 89.7 MiB. A = the
  // activations autograd saves for one image's forward and backward pass at this size, counted with PyTorch's
  // saved-tensor hooks on torchvision's resnet50 (train mode): 1.88 MiB at 32 × 32, 6.90 MiB at 64 × 64.
  // BASE = the one-image evaluation's peak (runtime, libtorch, the model W, one image).
  //   eval, report: BASE + 2·B·A (a batch's clean pass and its attack's pass, with the allocator's cache) + 64 MiB
  //     (image decoding, PNG encoding, V8 heap growth). Evaluating all the test images at once adds
  //     (testImages − B)·A = 88 × 1.88 = 165 MiB at 32 px (2,015 MiB at 64 px) and exceeds it.
  //   train: BASE + 4·W (gradients, momentum, and the checkpoint's model and momentum copied out while it is
  //     written or read back on resume) + 2·B·A (the step's batch and free training's δ; the validation batch) +
  //     2 loader workers × 40 MiB (a V8 isolate each, their batches in flight) + 64 MiB.
  const W = 23_518_277 * 4;
  const A = (LONG ? 6.9 : 1.88) * MiB;
  const evalCeiling = base.peak + 2 * B * A + 64 * MiB;
  const trainCeiling = base.peak + 4 * W + 2 * B * A + 2 * 40 * MiB + 64 * MiB;
  assert.ok(first.peak <= trainCeiling, `train peaked at ${mib(first.peak)} > ${mib(trainCeiling)}`);
  assert.ok(resumed.peak <= trainCeiling, `resumed train peaked at ${mib(resumed.peak)} > ${mib(trainCeiling)}`);
  // 4. eval on 12 batches' worth of test images, in the run's --eval-batch-size
  const ev = await freeadv(['eval', '--run', run, '--limit', String(testImages), '--attacks', LONG ? 'pgd-5' : 'fgsm', '--threads', '2', '--json']);
  assert.equal(ev.code, 0, ev.err);
  const evj = JSON.parse(ev.out.trim().split('\n').pop()!);
  assert.equal(evj.examples, testImages);
  assert.ok(ev.peak <= evalCeiling, `eval of ${testImages} images peaked at ${mib(ev.peak)} > ${mib(evalCeiling)}`);
  // 5. report: the analyses of 6 images in batches of 4, a robustness curve on every test image in batches of B
  const report = await freeadv(['report', run, '--out', join(tmp, 'report.html'), '--images', '6', '--eval-batch-size', '4', '--attack-steps', '2', '--target-steps', '2', '--surface-points', '3',
    '--robustness-curve', '--curve-eps', '1', '--curve-steps', '1', '--limit', String(testImages), '--threads', '2']);
  assert.equal(report.code, 0, report.err);
  assert.ok(report.peak <= evalCeiling, `report peaked at ${mib(report.peak)} > ${mib(evalCeiling)}`);
  const html = readFileSync(join(tmp, 'report.html'), 'utf8');
  assert.match(html, /resnet50/);
  const cache = JSON.parse(readFileSync(join(run, 'report-cache.json'), 'utf8'));
  const entries = Object.values(cache.entries) as { labels?: number[]; examples?: number }[];
  assert.equal(entries.find((e) => e.labels)!.labels!.length, 6);
  assert.equal(entries.find((e) => e.examples)!.examples, testImages);

  log.push(`peak RSS: train ${mib(first.peak)}, resumed ${mib(resumed.peak)} (ceiling ${mib(trainCeiling)}); baseline ${mib(base.peak)}; eval of ${testImages} ${mib(ev.peak)}, report ${mib(report.peak)} (ceiling ${mib(evalCeiling)})`);
  log.push(`${((performance.now() - t0) / 1000).toFixed(1)} s in all`);
  for (const l of log) t.diagnostic(l);
});
