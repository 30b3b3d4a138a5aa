// The tensor API: creation, read-back, dtypes, shapes, indexing, math against hand-computed values, error
// mapping, and scope/dispose semantics with live-tensor counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as T from '../src/torch/index.js';
import { TEST_DEVICE, deviceSkip } from './helpers/device.js';

const close = (a: number[], b: number[], tol = 1e-6) => {
  assert.equal(a.length, b.length);
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) <= tol, `index ${i}: ${v} vs ${b[i]}`));
};

test('creation and read-back for every dtype', () => {
  T.scope(() => {
    for (const dtype of ['float32', 'float64', 'int64', 'int32', 'uint8', 'bool', 'float16', 'bfloat16'] as const) {
      const t = T.tensor([[1, 0], [3, 1]], { dtype });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, 2]);
      const expected = dtype === 'bool' ? [[1, 0], [1, 1]] : [[1, 0], [3, 1]];
      assert.deepEqual(t.toArray(), expected);
    }
    assert.deepEqual(T.zeros([2, 3]).toArray(), [[0, 0, 0], [0, 0, 0]]);
    assert.deepEqual(T.full([2], 7, { dtype: 'int64' }).toArray(), [7, 7]);
    assert.deepEqual(T.arange(4).toArray(), [0, 1, 2, 3]);
    assert.deepEqual(T.arange(0, 1, 0.25).toArray(), [0, 0.25, 0.5, 0.75]);
    const f = T.fromTypedArray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    assert.deepEqual(Array.from(f.toTypedArray() as Float32Array), [1, 2, 3, 4, 5, 6]);
    assert.equal(T.tensor(3.5).item(), 3.5);
    assert.throws(() => T.fromTypedArray(new Float32Array(5), [2, 3]), RangeError);
  });
});

test('random creation is seeded by manualSeed', () => {
  T.scope(() => {
    T.manualSeed(42);
    const a = T.rand([5]).toArray();
    const p = T.randperm(10).toArray() as number[];
    T.manualSeed(42);
    assert.deepEqual(T.rand([5]).toArray(), a);
    assert.deepEqual(T.randperm(10).toArray(), p);
    assert.deepEqual([...p].sort((x, y) => x - y), [...Array(10).keys()]);
    const r = T.randint(3, 7, [1000]);
    assert.ok(r.min().item() >= 3 && r.max().item() < 7);
    const n = T.randn([20000]);
    assert.ok(Math.abs(n.mean().item()) < 0.05 && Math.abs(n.std(0).item() - 1) < 0.05);
  });
});

test(`a device's generator state: saved and restored, it repeats that device's draws and leaves the other generator alone (${TEST_DEVICE})`, { skip: deviceSkip }, () => {
  T.scope(() => {
    const dev = TEST_DEVICE === 'cpu' ? 'cpu' : T.zeros([1], { device: TEST_DEVICE }).device; // 'cuda' → 'cuda:0'
    T.manualSeed(7);
    const state = T.getRngState(dev);
    assert.equal(state.dtype, 'uint8');
    assert.equal(state.device, 'cpu');
    const a = T.rand([6], { device: dev }).toArray();
    const cpuNext = T.getRngState();
    T.setRngState(state, dev);
    assert.deepEqual(T.rand([6], { device: dev }).toArray(), a, 'the restored generator repeats its draws');
    if (dev !== 'cpu') assert.ok(T.getRngState().equal(cpuNext), "a GPU generator's state is not the CPU's");
    assert.ok(T.getRngState('cpu').equal(T.getRngState()), "'cpu' is the default");
  });
  if (!T.cuda.isAvailable()) assert.throws(() => T.getRngState('cuda:0'), /getRngState: RNG state of cuda:0: this process has no CUDA device/);
  assert.throws(() => T.getRngState('meta'), /getRngState: RNG state: no generator for device meta/);
});

test('views, shapes, memory formats', () => {
  T.scope(() => {
    const x = T.arange(24).view(2, 3, 4);
    assert.deepEqual(x.strides, [12, 4, 1]);
    assert.deepEqual(x.permute(2, 0, 1).shape, [4, 2, 3]);
    assert.equal(x.permute(2, 0, 1).isContiguous(), false);
    assert.equal(x.permute(2, 0, 1).contiguous().isContiguous(), true);
    assert.deepEqual(x.reshape(6, 4).select(0, 1).toArray(), [4, 5, 6, 7]);
    assert.deepEqual(x.flatten().shape, [24]);
    assert.deepEqual(x.unsqueeze(0).shape, [1, 2, 3, 4]);
    assert.deepEqual(x.narrow(2, 1, 2).select(0, 0).select(0, 0).toArray(), [1, 2]);
    assert.ok(T.sharesStorage(x, x.narrow(2, 1, 2)));
    const img = T.rand([2, 3, 4, 5]);
    const cl = img.channelsLast();
    assert.deepEqual(cl.shape, [2, 3, 4, 5]);
    assert.ok(cl.isContiguous('channelsLast'));
    assert.deepEqual(cl.strides, [60, 1, 15, 3]);
    assert.ok(cl.equal(img));
  });
});

test('indexing: index_select, gather, masks, advanced index, cat/stack', () => {
  T.scope(() => {
    const x = T.tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(x.indexSelect(1, T.tensor([2, 0], { dtype: 'int64' })).toArray(), [[3, 1], [6, 4]]);
    assert.deepEqual(x.gather(1, T.tensor([[0], [2]], { dtype: 'int64' })).toArray(), [[1], [6]]);
    const m = x.gt(3);
    assert.deepEqual(m.toArray(), [[0, 0, 0], [1, 1, 1]]);
    assert.deepEqual(x.maskedFill(m, 0).toArray(), [[1, 2, 3], [0, 0, 0]]);
    assert.deepEqual(x.maskedSelect(m).toArray(), [4, 5, 6]);
    assert.deepEqual(x.index([T.tensor([1, 0], { dtype: 'int64' })]).toArray(), [[4, 5, 6], [1, 2, 3]]);
    assert.deepEqual(T.cat([x, x], 0).shape, [4, 3]);
    assert.deepEqual(T.stack([x, x], 0).shape, [2, 2, 3]);
    assert.deepEqual(x.slice(1, 1, 3).toArray(), [[2, 3], [5, 6]]);
  });
});

test('math and reductions against hand-computed values', () => {
  T.scope(() => {
    const a = T.tensor([[1, -2], [3, -4]]);
    close(a.abs().flatten().toArray(), [1, 2, 3, 4]);
    close(a.mul(2).add(1).flatten().toArray(), [3, -3, 7, -7]);
    close(a.sign().flatten().toArray(), [1, -1, 1, -1]);
    close(a.clamp(-1, 2).flatten().toArray(), [1, -1, 2, -1]);
    close(a.clamp(T.tensor([[0, 0], [0, 0]]), T.tensor([[0.5, 1], [1, 1]])).flatten().toArray(), [0.5, 0, 1, 0]);
    assert.equal(a.sum().item(), -2);
    close(a.sum(0).toArray(), [4, -6]);
    close(a.mean(1).toArray(), [-0.5, -0.5]);
    assert.deepEqual(a.argmax(1).toArray(), [0, 0]);
    const [v, i] = a.max(0);
    close(v.toArray(), [3, -2]);
    assert.deepEqual(i.toArray(), [1, 0]);
    close(a.matmul(T.tensor([[1], [1]])).flatten().toArray(), [-1, -1]);
    close(T.tensor([[1, 2, 3]]).softmax(1).flatten().toArray(), [0.09003057, 0.24472847, 0.66524096]);
    assert.ok(Math.abs(T.tensor([3, 4]).norm().item() - 5) < 1e-6);
    const logits = T.tensor([[2, 1, 0]]);
    const y = T.tensor([0], { dtype: 'int64' });
    // −log softmax(2 | 2,1,0) = log(e²+e+1) − 2
    assert.ok(Math.abs(T.ops.crossEntropy(logits, y).item() - (Math.log(Math.exp(2) + Math.exp(1) + 1) - 2)) < 1e-6);
    const z = T.tensor([1, 2]);
    z.add_(1).mul_(3).clamp_(0, 7);
    close(z.toArray(), [6, 7]);
  });
});

test('libtorch errors become TorchError; misuse throws, never crashes', () => {
  T.scope(() => {
    const a = T.ones([2, 3]);
    assert.throws(() => a.matmul(T.ones([2, 3])), (e: unknown) => e instanceof T.TorchError && /cannot be multiplied/.test((e as Error).message));
    assert.throws(() => a.view(7), T.TorchError);
    assert.throws(() => a.select(5, 0), T.TorchError);
    assert.throws(() => a.select(0, 9), T.TorchError);
    assert.throws(() => T.ops.crossEntropy(T.ones([2, 3]), T.tensor([0.5, 1])), T.TorchError);
    assert.throws(() => T.ones([2]).item(), T.TorchError);
    assert.throws(() => T.ops.conv2d(T.ones([1, 2, 4, 4]), T.ones([3, 5, 3, 3]), null), T.TorchError);
    assert.throws(() => T.tensor([1, 2]).to('cuda:7'), T.TorchError);
    assert.throws(() => T.ops.add(a, 3 as never), TypeError);
    assert.throws(() => T.def('aten::no_such_op')(), T.TorchError);
    assert.throws(() => T.setNumThreads(0), T.TorchError);
  });
});

test('dispose, scopes and live-tensor counts', () => {
  const base = T.liveTensors();
  const t = T.ones([3]);
  assert.equal(T.liveTensors(), base + 1);
  t.dispose();
  t.dispose(); // idempotent
  assert.equal(T.liveTensors(), base);
  assert.throws(() => t.add(1), T.TensorDisposedError);
  assert.throws(() => t.shape, T.TensorDisposedError);

  const kept = T.scope(() => {
    const a = T.ones([4]);
    const b = a.add(1);
    T.keep(T.zeros([1]));
    return { b, list: [a.mul(3)] };
  });
  assert.equal(T.liveTensors(), base + 3);
  assert.deepEqual(kept.b.toArray(), [2, 2, 2, 2]);
  kept.b.dispose();
  kept.list[0]!.dispose();
  assert.equal(T.liveTensors(), base + 1); // the kept zeros
  // nesting: an inner result moves to the outer scope and dies with it
  T.scope(() => {
    const inner = T.scope(() => T.ones([2]).add(1));
    assert.equal(inner.isDisposed, false);
  });
  assert.equal(T.liveTensors(), base + 1);
  // exceptions free the scope too
  assert.throws(() => T.scope(() => { T.ones([8]); throw new Error('boom'); }), /boom/);
  assert.equal(T.liveTensors(), base + 1);
  // `using`-style scope
  {
    const s = T.openScope();
    T.ones([5]);
    s[Symbol.dispose]();
  }
  assert.equal(T.liveTensors(), base + 1);
  assert.throws(() => T.scope(() => Promise.resolve(1) as never), /synchronous/);
});

test('autograd: backward, grad, zero/None grads, noGrad, inference mode', () => {
  T.scope(() => {
    const w = T.tensor([1, 2, 3], { dtype: 'float64' }).requiresGrad_();
    const x = T.tensor([4, 5, 6], { dtype: 'float64' }).requiresGrad_();
    const y = w.mul(x).sum();
    y.backward(undefined, { retainGraph: true });
    assert.deepEqual(w.grad!.toArray(), [4, 5, 6]);
    assert.deepEqual(x.grad!.toArray(), [1, 2, 3]);
    y.backward();
    assert.deepEqual(w.grad!.toArray(), [8, 10, 12]); // accumulates
    w.grad = undefined;
    assert.equal(w.grad, undefined);
    const [gw, gx] = T.autograd.grad(w.mul(x).square().sum(), [w, x]);
    assert.deepEqual(gw!.toArray(), [32, 100, 216]); // 2·w·x²
    assert.deepEqual(gx!.toArray(), [8, 40, 108]); // 2·w²·x
    const z = T.noGrad(() => w.mul(2));
    assert.equal(z.requiresGrad, false);
    assert.equal(T.isGradEnabled(), true);
    T.inferenceMode(() => {
      assert.equal(T.autograd.isInferenceMode(), true);
      assert.equal(w.mul(2).requiresGrad, false);
    });
    assert.equal(T.autograd.isInferenceMode(), false);
    assert.equal(w.detach().requiresGrad, false);
    assert.throws(() => T.tensor([1, 2]).sum().backward(), T.TorchError);
  });
});

test('threads and devices', () => {
  const n = T.getNumThreads();
  T.setNumThreads(1);
  assert.equal(T.getNumThreads(), 1);
  T.setNumThreads(n);
  assert.equal(typeof T.cuda.isAvailable(), 'boolean');
  if (!T.cuda.isAvailable()) assert.equal(T.cuda.deviceCount(), 0);
});

test("libtorch's OpenMP runtime waits passively unless the user chose otherwise", () => {
  // OMP_DISPLAY_ENV makes libgomp print the settings it read when the addon loaded it
  const policy = (set?: string) => {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_DISPLAY_ENV: 'true' };
    delete env.OMP_WAIT_POLICY;
    if (set) env.OMP_WAIT_POLICY = set;
    const url = new URL('../src/torch/index.js', import.meta.url).href;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(url)})`], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return /OMP_WAIT_POLICY = '(\w+)'/.exec(r.stderr)?.[1];
  };
  assert.equal(policy(), 'PASSIVE');
  assert.equal(policy('active'), 'ACTIVE');
});
