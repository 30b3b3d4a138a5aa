// Learning-rate schedules against their formulas, evaluated per SGD step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeSchedule } from '../src/optim/index.js';

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
