// Weights that are not numbers are refused when loaded (eval --weights, --init, a run's checkpoint), naming the
// tensor, instead of evaluating a broken model or casting integers silently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { createModel } from '../src/models/index.js';
import { saveSafetensors, loadWeights, CheckpointError } from '../src/io/index.js';
import { run } from '../src/cli/main.js';

const tmp = mkdtempSync(join(tmpdir(), 'freeadv-weights-'));
const opts = { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] };

test('NaN, infinite and integer weights are refused naming the tensor; good weights load', async () => {
  const m = createModel('small-cnn', opts);
  const sd = m.stateDict();
  const good = join(tmp, 'good.safetensors');
  saveSafetensors(good, sd);
  const cases: [string, (sd: Record<string, T.Tensor>) => Record<string, T.Tensor>, RegExp][] = [
    ['nan', (s) => ({ ...s, 'fc1.weight': s['fc1.weight']!.clone().fill_(NaN) }), /tensor 'fc1\.weight' holds NaN or infinite values/],
    ['inf', (s) => ({ ...s, 'conv1.bias': s['conv1.bias']!.clone().fill_(Infinity) }), /tensor 'conv1\.bias' holds NaN or infinite values/],
    ['int', (s) => ({ ...s, 'fc2.bias': s['fc2.bias']!.to('int32') }), /tensor 'fc2\.bias' is int32; the model's is float32/],
  ];
  for (const [name, mutate, re] of cases) {
    const file = join(tmp, `${name}.safetensors`);
    T.scope(() => saveSafetensors(file, mutate(sd)));
    const fresh = createModel('small-cnn', opts);
    assert.throws(() => loadWeights(fresh, file), (e: unknown) => e instanceof CheckpointError && re.test(e.message) && e.message.includes(file), name);
    fresh.dispose();
    let err = '';
    const code = await run(['eval', '--weights', file, '--model', 'small-cnn', '--limit', '8'], () => {}, (s) => (err += s));
    assert.equal(code, 2, err);
    assert.match(err, re);
    // the same when training starts from them (--init), before anything is written
    const out = join(tmp, `init-${name}`);
    let initErr = '';
    const initCode = await run(['train', '--init', file, '--max-steps', '1', '--out', out], () => {}, (s) => (initErr += s));
    assert.equal(initCode, 2, initErr);
    assert.match(initErr, new RegExp(`--init: .*${re.source}`));
    assert.ok(!existsSync(out), 'nothing written');
  }
  const other = createModel('small-cnn', opts);
  loadWeights(other, good);
  assert.ok(T.scope(() => other.stateDict()['fc1.weight']!.equal(sd['fc1.weight']!)));
  other.dispose();
  m.dispose();
});
