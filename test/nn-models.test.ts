// Modules and models: parameter counts of the paper's models, output shapes, PyTorch key names, strict
// state-dict loading that names every fault, train/eval, channels-last, disposal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { createModel, checkModel, modelNames } from '../src/models/index.js';
import { StateDictError, BatchNorm2d, Conv2d, Linear, Sequential, ReLU, Flatten, Module } from '../src/nn/index.js';

const grey = { numClasses: 10, inChannels: 1, size: 28, mean: [0.5], std: [0.5] };
const rgb = { numClasses: 10, inChannels: 3, size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

test('parameter counts of the paper models', () => {
  const counts: [string, typeof rgb, number][] = [
    ['preact-resnet18', rgb, 11_172_170], // fast_adversarial's PreActResNet18 (with the final BN): 11.17 M
    ['wrn-34-10', rgb, 46_160_474],
    ['wrn-28-10', rgb, 36_479_194],
    ['resnet50', { ...rgb, numClasses: 1000, size: 224 }, 25_557_032],
    ['madry-cnn', grey, 3_274_634],
  ];
  for (const [name, o, n] of counts) {
    const m = createModel(name, o);
    assert.equal(m.numParameters(), n, name);
    m.dispose();
  }
});

test('output shapes and state-dict key names', () => {
  T.scope(() => {
    for (const name of modelNames()) {
      if (name === 'wrn-34-10' || name === 'wrn-28-10' || name === 'resnet50') continue; // large; counted above
      const o = ['small-cnn', 'madry-cnn'].includes(name) ? grey : rgb;
      const m = createModel(name, o);
      const out = T.noGrad(() => m.eval().forward(T.rand([2, o.inChannels, o.size, o.size])));
      assert.deepEqual(out.shape, [2, 10], name);
      m.dispose();
    }
    const r = createModel('resnet50', { ...rgb, numClasses: 1000, size: 224 });
    const keys = Object.keys(r.stateDict());
    for (const k of ['conv1.weight', 'bn1.running_mean', 'bn1.num_batches_tracked', 'layer1.0.conv1.weight', 'layer1.0.downsample.0.weight', 'layer1.0.downsample.1.running_var', 'layer4.2.bn3.bias', 'fc.weight', 'fc.bias'])
      assert.ok(keys.includes(k), `resnet50 has ${k}`);
    assert.ok(!keys.some((k) => k.startsWith('norm.')), 'normalisation constants are not in the state dict');
    assert.equal(keys.length, 320); // torchvision's resnet50 state_dict has 320 entries
    const out = T.noGrad(() => r.eval().forward(T.rand([1, 3, 64, 64])));
    assert.deepEqual(out.shape, [1, 1000]);
    r.dispose();
    const p = createModel('preact-resnet18', rgb);
    const pk = Object.keys(p.stateDict());
    for (const k of ['conv1.weight', 'layer1.0.bn1.weight', 'layer2.0.shortcut.0.weight', 'bn.running_var', 'linear.weight']) assert.ok(pk.includes(k), k);
    p.dispose();
    const w = createModel('wrn-34-10', rgb);
    const wk = Object.keys(w.stateDict());
    for (const k of ['block1.layer.0.bn1.weight', 'block1.layer.0.convShortcut.weight', 'block3.layer.4.conv2.weight', 'bn1.running_mean', 'fc.bias']) assert.ok(wk.includes(k), k);
    w.dispose();
  });
});

test('models refuse data they do not fit, naming the reason', () => {
  assert.match(checkModel('preact-resnet18', grey)!, /3-channel/);
  assert.match(checkModel('small-cnn', { ...grey, size: 30 })!, /divisible by 4/);
  assert.match(checkModel('nope', grey)!, /unknown model 'nope'/);
  assert.equal(checkModel('small-cnn', grey), undefined);
});

test('strict loadStateDict names missing, unexpected and mis-shaped keys', () => {
  T.scope(() => {
    const a = createModel('small-cnn', grey);
    const b = createModel('small-cnn', grey);
    const sd = { ...a.stateDict() };
    b.loadStateDict(sd);
    for (const [k, t] of Object.entries(b.stateDict())) assert.ok(t.equal(sd[k]!), k);
    const bad: Record<string, T.Tensor> = { ...sd, 'extra.weight': T.ones([1]), 'fc2.bias': T.ones([3]) };
    delete bad['conv1.bias'];
    try {
      b.loadStateDict(bad);
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof StateDictError);
      assert.deepEqual(e.missing, ['conv1.bias']);
      assert.deepEqual(e.unexpected, ['extra.weight']);
      assert.match(e.message, /fc2\.bias: checkpoint \[3\] vs model \[10\]/);
    }
    const partial = { ...sd };
    delete partial['fc2.bias'];
    b.loadStateDict(partial, { strict: false }); // non-strict tolerates missing keys
    a.dispose();
    b.dispose();
  });
});

test('BatchNorm: running statistics, momentum, eval mode, num_batches_tracked', () => {
  T.scope(() => {
    const bn = new BatchNorm2d(2);
    const x = T.tensor([[[[1, 3]], [[2, 6]]], [[[5, 7]], [[4, 0]]]]); // N=2, C=2, 1×2
    bn.train().forward(x);
    const sd = bn.stateDict();
    // channel 0 values 1,3,5,7: mean 4, unbiased var 20/3; running = 0.9·init + 0.1·batch
    assert.ok(Math.abs((sd.running_mean!.toArray() as number[])[0]! - 0.4) < 1e-6);
    assert.ok(Math.abs((sd.running_var!.toArray() as number[])[0]! - (0.9 + 0.1 * (20 / 3))) < 1e-5);
    assert.equal(sd.num_batches_tracked!.item(), 1);
    const y = bn.eval().forward(x);
    const expected = (1 - 0.4) / Math.sqrt(0.9 + (0.1 * 20) / 3 + 1e-5);
    assert.ok(Math.abs((y.toArray() as number[][][][])[0]![0]![0]![0]! - expected) < 1e-5);
    assert.equal(bn.stateDict().num_batches_tracked!.item(), 1, 'eval mode does not count batches');
    bn.dispose();
  });
});

test('Sequential naming, train/eval propagation, channels-last and dispose', () => {
  const live = T.liveTensors();
  const net = new Sequential(new Conv2d(1, 4, 3), new ReLU(), new Flatten(), new Linear(4 * 4 * 4, 2));
  assert.deepEqual(Object.keys(net.stateDict()), ['0.weight', '0.bias', '3.weight', '3.bias']);
  net.eval();
  assert.ok([...net.namedModules()].every(([, m]) => !m.training));
  net.train();
  T.scope(() => {
    const x = T.rand([2, 1, 6, 6]);
    const ref = net.forward(x);
    net.channelsLast();
    assert.ok((net.stateDict()['0.weight'] as T.Tensor).isContiguous('channelsLast'));
    assert.ok(net.parameters().every((p) => p.requiresGrad && p.isLeaf));
    assert.ok(net.forward(x.channelsLast()).allclose(ref, 1e-5, 1e-6));
  });
  net.dispose();
  assert.equal(T.liveTensors(), live);
});

test('a module can be written in a few lines', () => {
  class Net extends Module {
    fc = this.module('fc', new Linear(3, 2));
    forward(x: T.Tensor) {
      return this.fc.forward(x).relu();
    }
  }
  const n = new Net();
  assert.deepEqual(n.namedParameters().map(([k]) => k), ['fc.weight', 'fc.bias']);
  n.dispose();
});
