// Learning-rate schedules against their formulas, evaluated per SGD step; SGD's momentum restored from a
// checkpoint onto its parameters' device and dtype.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { makeSchedule, SGD } from '../src/optim/index.js';
import { TEST_DEVICE, deviceSkip } from './helpers/device.js';

const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test('multistep: the paper’s 0.1 → 0.01 → 0.001 at fixed steps', () => {
  const s = makeSchedule({ name: 'multistep', lr: 0.1, totalSteps: 100, milestones: [40, 70] });
  near(s(0), 0.1);
  near(s(39), 0.1);
  near(s(40), 0.01);
  near(s(69), 0.01);
  near(s(70), 0.001);
  const f = makeSchedule({ name: 'multistep', lr: 0.1, totalSteps: 100 }); // default: half and three quarters
  near(f(49), 0.1);
  near(f(50), 0.01);
  near(f(75), 0.001);
});

test('cosine, cyclic (one cycle), piecewise, constant, warm-up', () => {
  const c = makeSchedule({ name: 'cosine', lr: 0.2, totalSteps: 10 });
  for (let t = 0; t <= 10; t++) near(c(t), 0.1 * (1 + Math.cos((Math.PI * t) / 10)));
  const y = makeSchedule({ name: 'cyclic', lr: 0.2, totalSteps: 100 });
  near(y(0), 0);
  near(y(20), 0.1);
  near(y(40), 0.2);
  near(y(70), 0.1);
  near(y(100), 0);
  const p = makeSchedule({ name: 'piecewise', lr: 1, totalSteps: 10, knots: [[0, 1], [5, 1], [10, 0.5]] });
  near(p(3), 1);
  near(p(7.5), 0.75);
  near(makeSchedule({ name: 'constant', lr: 0.3, totalSteps: 5 })(4), 0.3);
  const w = makeSchedule({ name: 'constant', lr: 0.4, totalSteps: 100, warmupSteps: 4 });
  near(w(0), 0.1);
  near(w(3), 0.4);
  near(w(50), 0.4);
  assert.throws(() => makeSchedule({ name: 'exp' as never, lr: 1, totalSteps: 1 }), /unknown lr schedule/);
});

test(`SGD.loadStateDict: momentum read from a checkpoint (CPU tensors) takes its parameter's device and dtype, and the resumed steps equal the uninterrupted ones (${TEST_DEVICE})`, { skip: deviceSkip }, () => {
  T.scope(() => {
    const o = { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 };
    const p0 = T.tensor([[0.5, -1.25], [2, 0.125]], { dtype: 'float64', device: TEST_DEVICE });
    const grad = (k: number) => T.tensor([[1, -2], [0.5, 3]], { dtype: 'float64', device: TEST_DEVICE }).mul(1 + k / 4);
    const stepWith = (opt: SGD, p: T.Tensor, k: number) => {
      p.grad = grad(k);
      opt.step();
    };
    // uninterrupted: 3 steps
    const a = p0.clone().requiresGrad_();
    const optA = new SGD([a], o);
    for (let k = 0; k < 3; k++) stepWith(optA, a, k);
    // 1 step, then the state as a checkpoint gives it back (on the CPU), into a fresh optimizer, then 2 more
    const b = p0.clone().requiresGrad_();
    const optB = new SGD([b], o);
    stepWith(optB, b, 0);
    const saved = Object.fromEntries(Object.entries(optB.stateDict()).map(([k, t]) => [k, t.to('cpu', { copy: true })]));
    const optC = new SGD([b], o);
    optC.loadStateDict(saved);
    const buf = optC.stateDict()['momentum_buffer.0']!;
    assert.equal(buf.device, b.device);
    assert.equal(buf.dtype, 'float64');
    for (let k = 1; k < 3; k++) stepWith(optC, b, k);
    assert.ok(b.equal(a), `resumed ${b.toArray()} vs uninterrupted ${a.toArray()}`);
    // a float32 state (e.g. a float32 run's checkpoint) into float64 parameters is cast, as torch.optim does
    const optD = new SGD([b], o);
    optD.loadStateDict({ 'momentum_buffer.0': saved['momentum_buffer.0']!.to('float32') });
    assert.equal(optD.stateDict()['momentum_buffer.0']!.dtype, 'float64');
    for (const opt of [optA, optB, optC, optD]) opt.dispose();
  });
});
