// The AutoAttack ensemble as evaluation runs it: its stages in order on the examples still robust (the first
// stage equals APGD-CE run alone), robust accuracy after each, the checks (black-box Square breaking what the
// gradient attacks could not), and attack names refused with a clear message before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { Module, Linear } from '../src/nn/index.js';
import { APGD, correct, checkAttackName } from '../src/attacks/index.js';
import { evaluate } from '../src/eval/index.js';
import { run } from '../src/cli/main.js';
import { fashionImageFolder } from './helpers/data.js';

/** A linear classifier of 4×4 images into 10 classes, with weights that make it right on some of them. */
class Lin extends Module {
  fc = this.module('fc', new Linear(16, 10));
  constructor(private readonly masked = false) {
    super();
  }
  forward(x: T.Tensor) {
    // masked: the input is rounded and detached, so gradient attacks see no gradient (a classic masking defence)
    const v = this.masked ? x.flatten(1).mul(8).floor().div(8).detach() : x.flatten(1);
    return this.fc.forward(v);
  }
}

function batch(model: Lin, n: number) {
  const x = T.rand([n, 1, 4, 4]).keep();
  const y = T.noGrad(() => model.forward(x)).argmax(1).keep(); // the model is right on every clean example
  return { x, y };
}

test('autoattack: APGD-CE, APGD-T, FAB-T, Square in turn; accuracy after each never rises; the first stage is APGD-CE alone', async () => {
  T.manualSeed(3);
  const m = new Lin();
  const { x, y } = batch(m, 64);
  const eps = 0.08;
  const r = await evaluate(m, [{ x, y }], { eps, attacks: ['autoattack'] });
  const s = r.stages!.autoattack!;
  assert.deepEqual(Object.keys(s), ['apgd-ce', 'apgd-t', 'fab-t', 'square']);
  const order = Object.values(s);
  for (let i = 1; i < order.length; i++) assert.ok(order[i]! <= order[i - 1]!, `stage ${i}: ${order[i]} after ${order[i - 1]}`);
  assert.equal(r.robust_accuracy.autoattack, s.square); // the final figure is the last stage's
  assert.equal(r.clean_accuracy, 1);
  assert.ok(s['apgd-ce']! < 1 && s['apgd-ce']! > 0, `ε chosen so that APGD-CE breaks some but not all: ${s['apgd-ce']}`);
  // stage 1 on all clean-correct examples is APGD-CE itself (seeded as the ensemble seeds it)
  const alone = T.scope(() => {
    const adv = new APGD(m, { eps, seed: 0 }).run(x, y);
    return T.noGrad(() => correct(m.forward(adv), y)).float().mean().item();
  });
  assert.equal(s['apgd-ce'], alone);
  assert.deepEqual(r.warnings.filter((w) => /Square/.test(w)), []); // nothing masked here
  x.dispose(); y.dispose(); m.dispose();
});

test('autoattack warns when black-box Square breaks points the gradient attacks left (masked gradients)', async () => {
  T.manualSeed(4);
  const m = new Lin(true);
  const { x, y } = batch(m, 32);
  const r = await evaluate(m, [{ x, y }], { eps: 0.25, attacks: ['autoattack'] });
  const s = r.stages!.autoattack!;
  assert.ok(s.square! < s['fab-t']!, `Square broke more: ${JSON.stringify(s)}`);
  assert.ok(r.warnings.some((w) => /black-box Square attack lowered robust accuracy/.test(w)), r.warnings.join('; '));
  x.dispose(); y.dispose(); m.dispose();
});

test('attack names: parameters checked, ensembles need their classes; the CLI refuses before any work, naming the option', async () => {
  assert.equal(checkAttackName('autoattack'), undefined);
  assert.equal(checkAttackName('autoattack-l2', 10), undefined);
  assert.match(checkAttackName('autoattack', 3)!, /needs a data set of at least 10 classes; this one has 3/);
  assert.match(checkAttackName('apgd-ce-0')!, /steps must be in \[1, 10000\], got 0/);
  assert.match(checkAttackName('square-0')!, /queries must be in \[1, 1000000\], got 0/);
  assert.match(checkAttackName('autoatack')!, /unknown attack 'autoatack' \(known: .*autoattack/);
  const data = await fashionImageFolder([0, 1, 2], 24, 8);
  const tmp = mkdtempSync(join(tmpdir(), 'freeadv-aa-'));
  const out = join(tmp, 'run');
  let err = '';
  const code = await run(['train', '--dataset', 'imagefolder', '--data-dir', data, '--image-size', '28', '--model', 'resnet-cifar-small', '--eval-attacks', 'autoattack', '--out', out], () => {}, (s) => (err += s));
  assert.equal(code, 2, err);
  assert.match(err, /--eval-attacks: attack 'autoattack' needs a data set of at least 10 classes; this one has 3/);
  assert.ok(!existsSync(out), 'nothing written');
});
