// --channels-last by default where it measured faster (BENCHMARKS.md, "Channels-last by default"): the default per
// model, device, dtype and --amp; the choice recorded in config.json and summary.json; a config.json from before the
// computed default keeps NCHW; and the files a channels-last model writes are plain NCHW tensors that PyTorch loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { run } from '../src/cli/main.js';
import { saveSafetensors } from '../src/io/index.js';
import { modelFor } from '../src/models/index.js';
import { describeDataset } from '../src/export/index.js';
import { resolveConfig, readRunConfig, CHANNELS_LAST_WINS } from '../src/train/index.js';
import { pythonJson, SKIP_NO_TORCH } from './helpers/python.js';
import { cifarRecords } from './helpers/data.js';

const tmp = mkdtempSync(join(tmpdir(), 'freeadv-cl-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

test('--channels-last defaults to on where it measured faster (CPU, float32, no autocast), off elsewhere; the flags force it', () => {
  assert.deepEqual(CHANNELS_LAST_WINS.cuda, [], 'CUDA unmeasured: off');
  const cl = (u: Record<string, unknown>) => resolveConfig(u).channelsLast;
  assert.equal(cl({ dataset: 'cifar10' }), true, 'CIFAR on CPU: resnet-cifar-small');
  assert.equal(cl({ dataset: 'cifar10', model: 'preact-resnet18' }), true);
  assert.equal(cl({ dataset: 'fashion-mnist' }), false, 'small-cnn: no win measured');
  assert.equal(cl({ dataset: 'mnist', model: 'madry-cnn' }), false);
  assert.equal(cl({ dataset: 'cifar10', dtype: 'float64' }), false, 'oneDNN does not run float64');
  assert.equal(cl({ dataset: 'cifar10', amp: 'bf16' }), false, 'bf16: not measured faster');
  assert.equal(cl({ dataset: 'cifar10', channelsLast: false }), false, '--no-channels-last');
  assert.equal(cl({ dataset: 'fashion-mnist', channelsLast: true }), true, '--channels-last');
});

test('a config.json without channelsLast (written before the computed default) resumes NCHW; one with it keeps its choice', () => {
  for (const [name, extra, want] of [['old', {}, false], ['on', { channelsLast: true }, true], ['off', { channelsLast: false }, false]] as const) {
    const d = join(tmp, `cfg-${name}`);
    mkdirSync(d);
    writeFileSync(join(d, 'config.json'), JSON.stringify({ dataset: 'cifar10', model: 'resnet-cifar-small', method: 'free', ...extra }));
    assert.equal(readRunConfig(d).channelsLast, want, name);
  }
});

test('a CIFAR run on CPU trains channels-last by default and records it in config.json and summary.json; --no-channels-last trains NCHW', async () => {
  const data = join(tmp, 'cifar');
  mkdirSync(data);
  const files: [string, number][] = [['test_batch.bin', 16], ...[1, 2, 3, 4, 5].map((i): [string, number] => [`data_batch_${i}.bin`, 8])];
  files.forEach(([f, n], s) => writeFileSync(join(data, f), cifarRecords(n, 1, (i) => [(i * 3 + s) % 10], s).buf));
  for (const [flag, want] of [[[], true], [['--no-channels-last'], false]] as const) {
    const out = join(tmp, `run-${want}`);
    let log = '', err = '';
    const code = await run(['train', '--dataset', 'cifar10', '--data-dir', data, '--method', 'free', '--replays', '2', '--max-steps', '2', '--batch-size', '16',
      '--val-size', '0', '--eval-limit', '8', '--eval-attacks', 'fgsm', '--threads', '2', '--out', out, ...flag], (s) => (log += s + '\n'), (s) => (err += s + '\n'));
    assert.equal(code, 0, err);
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).channelsLast, want);
    assert.equal(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).memory_format, want ? 'channels_last' : 'contiguous');
    assert.equal(/model resnet-cifar-small \(channels-last\)/.test(log + err), want, 'the first line says so');
  }
});

test('a channels-last model saves plain NCHW tensors: PyTorch loads the file strictly and gives its logits (1e-5)', { skip: SKIP_NO_TORCH }, () => {
  T.manualSeed(3);
  const model = modelFor('resnet-cifar-small', describeDataset('cifar10')).channelsLast().eval();
  const w = model.stateDict()['conv1.weight'] as T.Tensor;
  assert.ok(w.isContiguous('channelsLast') && !w.isContiguous(), 'the weights are NHWC in memory');
  const x = T.rand([3, 3, 32, 32]);
  const weights = join(tmp, 'cl.safetensors'), inputs = join(tmp, 'x.safetensors');
  saveSafetensors(weights, model.stateDict());
  saveSafetensors(inputs, { x });
  const mine = Array.from(T.noGrad(() => model.forward(x.channelsLast())).toTypedArray() as Float32Array);
  const py = pythonJson(String.raw`
import json, sys, torch
from safetensors_io import load_safetensors
from models import build
m = build("resnet-cifar-small")
m.load_state_dict(load_safetensors(sys.argv[1]), strict=True)
m.eval()
with torch.no_grad():
    print(json.dumps(m(load_safetensors(sys.argv[2])["x"]).flatten().tolist()))
`, [weights, inputs]) as number[];
  assert.equal(py.length, mine.length);
  const d = Math.max(...mine.map((v, i) => Math.abs(v - py[i]!)));
  assert.ok(d <= 1e-5, `max |Δlogit| ${d}`);
  model.dispose();
  x.dispose();
});
