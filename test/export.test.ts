// `freeadv export --format safetensors`: a run's model as a plain PyTorch state dict with metadata, loaded strictly by
// the PyTorch twin (bench/reference/models.py) with the same logits; bad input refused naming the option or file,
// with exit code 2 and nothing written.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, writeFileSync, readdirSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { loadSafetensors, saveSafetensors, loadWeights } from '../src/io/index.js';
import { modelFor } from '../src/models/index.js';
import { describeDataset } from '../src/export/index.js';
import { loadDataset, type InMemoryDataset } from '../src/data/index.js';
import { toFloat } from '../src/data/augment.js';
import { pythonJson, SKIP_NO_TORCH } from './helpers/python.js';
import { smallFashionMnist } from './helpers/data.js';

const tmp = mkdtempSync(join(tmpdir(), 'freeadv-export-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let runDir = '';
let data = '';

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

before(async () => {
  data = await smallFashionMnist(256, 64);
  runDir = join(tmp, 'run');
  const r = await cli(['train', '--data-dir', data, '--method', 'free', '--replays', '2', '--epochs', '2', '--batch-size', '64', '--eval-limit', '32',
    '--eval-attacks', 'pgd-5', '--threads', '2', '--seed', '1', '--out', runDir]);
  assert.equal(r.code, 0, r.err);
});

/** The first n test images of the small Fashion-MNIST copy, as a float tensor in [0, 1]. */
async function testImages(n: number): Promise<T.Tensor> {
  const d = (await loadDataset({ name: 'fashion-mnist', dataDir: data, split: 'test' })) as InMemoryDataset;
  const f = new Float32Array(n * 784);
  toFloat(d.images, 0, n * 784, f, 0);
  return T.fromTypedArray(f, [n, 1, 28, 28]);
}

/** Loads `weights` strictly into the PyTorch twin of `model` and returns its logits on the images in `inputs`. */
function pytorchLogits(model: string, weights: string, inputs: string): { logits: number[]; meta: Record<string, string>; keys: string[] } {
  return pythonJson(String.raw`
import json, sys, torch
from safetensors_io import load_safetensors
from models import build
weights, inputs, name = sys.argv[1:4]
sd, meta = load_safetensors(weights, with_metadata=True)
m = build(name)
m.load_state_dict(sd, strict=True)
m.eval()
with torch.no_grad():
    y = m(load_safetensors(inputs)["x"])
print(json.dumps({"logits": y.flatten().tolist(), "meta": meta, "keys": sorted(sd)}))
`, [weights, inputs, model]);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('export --format safetensors of a run: the plain state dict with metadata; PyTorch loads it strictly, same logits within 1e-5', { skip: SKIP_NO_TORCH }, async () => {
  const out = join(tmp, 'small-cnn.safetensors');
  const r = await cli(['export', '--run', runDir, '--out', out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /wrote .*small-cnn\.safetensors .*small-cnn · fashion-mnist · 10 classes/);
  const { tensors, metadata } = loadSafetensors(out);
  const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
  const shape = describeDataset('fashion-mnist');
  const model = modelFor('small-cnn', shape);
  try {
    // exactly the model's state dict: no 'model.' prefix, no optimizer, δ or RNG
    assert.deepEqual(Object.keys(tensors).sort(), Object.keys(model.stateDict()).sort());
    for (const t of Object.values(tensors)) t.dispose();
    assert.equal(metadata.format, 'pt');
    assert.equal(metadata.model, 'small-cnn');
    assert.equal(metadata.dataset, 'fashion-mnist');
    assert.deepEqual(JSON.parse(metadata.class_names!), shape.classNames);
    assert.equal(metadata.threat_model, 'linf');
    assert.equal(Number(metadata.eps), 0.1);
    assert.deepEqual(JSON.parse(metadata.input_shape!), [1, 28, 28]);
    assert.equal(Number(metadata.clean_accuracy), summary.clean_accuracy);
    assert.equal(metadata.robust_attack, 'pgd-5');
    assert.equal(Number(metadata.robust_accuracy), summary.robust_accuracy['pgd-5']);
    assert.deepEqual(JSON.parse(metadata.robust_accuracies!), summary.robust_accuracy);
    assert.equal(metadata.method, 'free');

    // freeadv's logits with the run's best checkpoint vs PyTorch's with the exported file
    loadWeights(model, join(runDir, 'best.safetensors'));
    model.eval();
    const x = await testImages(8);
    const inputs = join(tmp, 'inputs.safetensors');
    saveSafetensors(inputs, { x });
    const mine = T.noGrad(() => model.forward(x)).toTypedArray() as Float32Array;
    x.dispose();
    const py = pytorchLogits('small-cnn', out, inputs);
    assert.ok(maxDiff(mine, py.logits) <= 1e-5, `max |Δlogit| ${maxDiff(mine, py.logits)}`);
    assert.equal(py.meta.model, 'small-cnn');
  } finally {
    model.dispose();
  }
});

test('export of weights with --model/--dataset: resnet-cifar-small with BatchNorm statistics, strict in PyTorch, same logits', { skip: SKIP_NO_TORCH }, async () => {
  T.manualSeed(7);
  const shape = describeDataset('cifar10');
  const model = modelFor('resnet-cifar-small', shape);
  // BatchNorm running statistics and affine parameters away from their initial values, so eval mode is exercised
  T.noGrad(() => {
    for (const [k, t] of Object.entries(model.stateDict())) {
      if (k.endsWith('running_mean') || k.endsWith('bn1.bias') || k.endsWith('bn2.bias')) t.copy_(T.randLike(t).sub(0.5).mul(0.2));
      else if (k.endsWith('running_var') || /bn\d\.weight$/.test(k)) t.copy_(T.randLike(t).add(0.5));
    }
  });
  const weights = join(tmp, 'rcs-weights.safetensors');
  saveSafetensors(weights, model.stateDict());
  const out = join(tmp, 'rcs.safetensors');
  const r = await cli(['export', '--weights', weights, '--model', 'resnet-cifar-small', '--dataset', 'cifar10', '--eps', '8/255', '--out', out]);
  assert.equal(r.code, 0, r.err);
  const { tensors, metadata } = loadSafetensors(out);
  for (const t of Object.values(tensors)) t.dispose();
  assert.equal(metadata.eps_text, '8/255');
  assert.equal(metadata.clean_accuracy, undefined, 'bare weights have no measured accuracy');
  model.eval();
  T.manualSeed(8);
  const x = T.rand([4, 3, 32, 32]);
  const inputs = join(tmp, 'inputs-c.safetensors');
  saveSafetensors(inputs, { x });
  const mine = T.noGrad(() => model.forward(x)).toTypedArray() as Float32Array;
  x.dispose();
  model.dispose();
  const py = pytorchLogits('resnet-cifar-small', out, inputs);
  assert.ok(maxDiff(mine, py.logits) <= 1e-5, `max |Δlogit| ${maxDiff(mine, py.logits)}`);
  assert.deepEqual(py.keys, Object.keys(tensors).sort());
});

test('export refuses bad input naming the option or file, exit code 2, nothing written', async () => {
  const bad = join(tmp, 'bad');
  mkdirSync(bad);
  const notWeights = join(bad, 'notes.safetensors');
  writeFileSync(notWeights, 'this is not a safetensors file');
  const out = join(bad, 'x.onnx');
  const cases: [string[], RegExp][] = [
    [['--run', runDir], /--out: is required/],
    [['--run', runDir, '--out', join(bad, 'x.bin')], /--format: .*x\.bin/],
    [['--run', join(tmp, 'nope'), '--out', out], /--run: .*nope: no such folder/],
    [['--run', data, '--out', out], /--run: .*not a run folder/],
    [['--weights', join(tmp, 'missing.safetensors'), '--model', 'small-cnn', '--dataset', 'fashion-mnist', '--out', out], /--weights: .*missing\.safetensors: no such file/],
    [['--weights', notWeights, '--model', 'small-cnn', '--dataset', 'fashion-mnist', '--out', out], /notes\.safetensors/],
    [['--weights', join(runDir, 'best.safetensors'), '--dataset', 'fashion-mnist', '--out', out], /--model: is required with --weights/],
    [['--weights', join(runDir, 'best.safetensors'), '--model', 'small-cnn', '--out', out], /--dataset: is required with --weights/],
    [['--weights', join(runDir, 'best.safetensors'), '--model', 'madry-cnn', '--dataset', 'fashion-mnist', '--out', out], /best\.safetensors: .*shape mismatches/],
    [['--weights', join(runDir, 'best.safetensors'), '--model', 'resnet-cifar-small', '--dataset', 'fashion-mnist', '--out', out], /--model: .*3-channel/],
    [['--run', runDir, '--out', bad], /--out: .*is a folder/],
    [['--run', runDir, '--out', join(bad, 'no', 'x.onnx')], /--out: .*does not exist/],
    [['--weights', join(runDir, 'best.safetensors'), '--model', 'small-cnn', '--dataset', 'fashion-mnist', '--out', join(runDir, 'best.safetensors'), '--format', 'safetensors'], /--out: .*is the weights file/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(['export', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, ${r.err}`);
    assert.match(r.err, re, args.join(' '));
  }
  assert.deepEqual(readdirSync(bad), ['notes.safetensors'], 'nothing written, no temporary files');
  assert.ok(existsSync(join(runDir, 'best.safetensors')));
  assert.equal((await cli(['export', '--help'])).code, 0);
});
