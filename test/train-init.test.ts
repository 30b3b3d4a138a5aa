// Fine-tuning: `freeadv train --init FILE` starts from a plain state dict or a freeadv checkpoint; a classifier of
// another size is replaced by a freshly initialised one only with --num-classes; every other mismatch is refused
// naming the tensor, exit code 2.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { saveSafetensors, readModelWeights } from '../src/io/index.js';
import { modelFor } from '../src/models/index.js';
import { describeDataset } from '../src/export/index.js';
import { smallFashionMnist, cifarRecords } from './helpers/data.js';

const tmp = mkdtempSync(join(tmpdir(), 'freeadv-init-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let data = '';
let runA = '';
const quick = ['--method', 'natural', '--batch-size', '64', '--eval-limit', '16', '--eval-attacks', 'fgsm', '--threads', '2'];
/** One SGD step so small that the weights stay where they started. */
const still = ['--max-steps', '1', '--lr', '1e-9', '--momentum', '0', '--weight-decay', '0'];

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

/** Max |a − b| over the tensors both have whose keys pass `keep`. */
function maxDiff(a: Record<string, T.Tensor>, b: Record<string, T.Tensor>, keep: (k: string) => boolean): number {
  let m = 0;
  for (const k of Object.keys(a).filter(keep)) m = Math.max(m, T.scope(() => a[k]!.to('float32').sub(b[k]!.to('float32')).abs().max().item()));
  return m;
}
const dispose = (sd: Record<string, T.Tensor>) => Object.values(sd).forEach((t) => t.dispose());
const params = (k: string) => !/running_|num_batches_tracked/.test(k);

before(async () => {
  data = await smallFashionMnist(256, 32);
  runA = join(tmp, 'a');
  const r = await cli(['train', '--data-dir', data, ...quick, '--epochs', '2', '--seed', '1', '--out', runA]);
  assert.equal(r.code, 0, r.err);
});

test('--init from an exported state dict and from a run checkpoint: training starts from those weights', async () => {
  const plain = join(tmp, 'a.safetensors');
  assert.equal((await cli(['export', '--run', runA, '--out', plain])).code, 0);
  const a = readModelWeights(join(runA, 'best.safetensors'));
  for (const [i, init] of [plain, join(runA, 'best.safetensors')].entries()) {
    const out = join(tmp, `b${i}`);
    const r = await cli(['train', '--data-dir', data, ...quick, ...still, '--seed', '5', '--init', init, '--out', out]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`initialised from ${init}: 8 tensors`));
    const b = readModelWeights(join(out, 'latest.safetensors'));
    assert.ok(maxDiff(a, b, params) < 1e-6, `weights moved by ${maxDiff(a, b, params)}`);
    dispose(b);
  }
  // without --init the same seed starts elsewhere
  const fresh = modelFor('small-cnn', describeDataset('fashion-mnist'));
  assert.ok(maxDiff(a, fresh.stateDict(), params) > 1e-2);
  fresh.dispose();
  dispose(a);
});

test('a data set with other classes: the classifier is refused without --num-classes, replaced fresh with it', async () => {
  const c100 = join(tmp, 'cifar100');
  mkdirSync(c100);
  writeFileSync(join(c100, 'train.bin'), cifarRecords(64, 2, (i) => [i % 20, (i * 37) % 100], 1).buf);
  writeFileSync(join(c100, 'test.bin'), cifarRecords(16, 2, (i) => [i % 20, (i * 11) % 100], 2).buf);
  // "pre-trained" CIFAR-10 weights
  T.manualSeed(3);
  const pre = modelFor('resnet-cifar-small', describeDataset('cifar10'));
  const w10 = join(tmp, 'cifar10.safetensors');
  saveSafetensors(w10, pre.stateDict());
  const args = ['train', '--dataset', 'cifar100', '--data-dir', c100, '--model', 'resnet-cifar-small', ...quick, ...still, '--seed', '9', '--init', w10];

  const refused = await cli([...args, '--out', join(tmp, 'c-refused')]);
  assert.equal(refused.code, 2, refused.err);
  assert.match(refused.err, /--init: .*cifar10\.safetensors: the classifier 'fc\.weight' has shape \[10, 64\] there and \[100, 64\] for the data set's 100 classes; give --num-classes 100/);
  const wrong = await cli([...args, '--num-classes', '10', '--out', join(tmp, 'c-wrong')]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.err, /--num-classes: is 10, but the data set has 100 classes/);

  const out = join(tmp, 'c');
  const r = await cli([...args, '--num-classes', '100', '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /new classifier 'fc' for 100 classes \(freshly initialised\)/);
  const b = readModelWeights(join(out, 'latest.safetensors'));
  const sd10 = pre.stateDict();
  // the backbone is the file's, the classifier the fresh one this seed gives
  assert.ok(maxDiff(sd10, b, (k) => params(k) && !k.startsWith('fc.')) < 1e-6);
  T.manualSeed(9);
  const fresh = modelFor('resnet-cifar-small', describeDataset('cifar100'));
  assert.deepEqual(b['fc.weight']!.shape, [100, 64]);
  assert.ok(maxDiff(fresh.stateDict(), b, (k) => k.startsWith('fc.')) < 1e-6);
  fresh.dispose();
  pre.dispose();
  dispose(b);
});

test('--init refuses what does not fit, naming the option, the file and the tensor; exit code 2', async () => {
  const notWeights = join(tmp, 'notes.safetensors');
  writeFileSync(notWeights, 'no');
  T.manualSeed(1);
  const madry = modelFor('madry-cnn', describeDataset('fashion-mnist'));
  const madryFile = join(tmp, 'madry.safetensors');
  saveSafetensors(madryFile, madry.stateDict());
  madry.dispose();
  const a = readModelWeights(join(runA, 'best.safetensors'));
  const extra = join(tmp, 'extra.safetensors');
  saveSafetensors(extra, { ...a, 'fc3.weight': a['fc2.weight']! });
  const partial = join(tmp, 'partial.safetensors');
  const { ['fc1.bias']: _dropped, ...rest } = a;
  saveSafetensors(partial, rest);
  dispose(a);
  const cases: [string[], RegExp][] = [
    [['--init', join(tmp, 'missing.safetensors')], /--init: .*missing\.safetensors: no such file/],
    [['--init', tmp], /--init: .*is a folder/],
    [['--init', notWeights], /--init: .*notes\.safetensors: /],
    [['--init', madryFile], /--init: .*madry\.safetensors: tensor 'conv1\.weight' has shape \[32, 1, 5, 5\] there and \[16, 1, 3, 3\] in model small-cnn; only the final classification layer \('fc2'\) may differ/],
    [['--init', extra], /--init: .*extra\.safetensors: does not fit model small-cnn: the file has 'fc3\.weight'/],
    [['--init', partial], /--init: .*partial\.safetensors: does not fit model small-cnn: model small-cnn has 'fc1\.bias' which the file lacks/],
    [['--num-classes', '5'], /--num-classes: is 5, but the data set has 10 classes/],
  ];
  for (const [i, [extraArgs, re]] of cases.entries()) {
    const r = await cli(['train', '--data-dir', data, ...quick, ...still, ...extraArgs, '--out', join(tmp, `bad${i}`)]);
    assert.equal(r.code, 2, `${extraArgs.join(' ')}: exit ${r.code} ${r.err}`);
    assert.match(r.err, re, extraArgs.join(' '));
  }
});
