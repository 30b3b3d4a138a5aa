// Attacks against cases with known answers: the analytic L∞ worst case of a linear classifier, the ε-ball and
// [0, 1] constraints, monotonicity in restarts, model-mode restoration, and PGD-20 equal to PyTorch's on the
// same trained weights and start points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { Module, Linear } from '../src/nn/index.js';
import { FGSM, PGD, APGD, correct, cwLoss, dlrLoss } from '../src/attacks/index.js';
import { evaluate } from '../src/eval/index.js';
import { loadDataset, type InMemoryDataset } from '../src/data/index.js';
import { trainedSmallCnn } from './helpers/models.js';
import { pythonJson, SKIP_NO_TORCH } from './helpers/python.js';
import { TEST_DEVICE, deviceSkip } from './helpers/device.js';

class Lin extends Module {
  fc = this.module('fc', new Linear(16, 2));
  forward(x: T.Tensor) {
    return this.fc.forward(x.flatten(1));
  }
}

test(`PGD reaches the analytic L∞ worst case of a linear classifier (${TEST_DEVICE})`, { skip: deviceSkip }, () => {
  T.manualSeed(0);
  T.scope(() => {
    const m = new Lin().to(TEST_DEVICE);
    const eps = 0.05;
    const x = T.rand([64, 1, 4, 4]).mul(0.8).add(0.1).to(TEST_DEVICE); // interior: [0,1] never binds at ε = 0.05
    const logits = T.noGrad(() => m.forward(x));
    const y = logits.argmax(1);
    // margin z_y − z_o is linear with direction w = W_y − W_o; its minimum over the ball is at x − ε·sign(w)
    const W = m.fc.weight;
    const w = T.where(y.eq(0).unsqueeze(1), W.select(0, 0).sub(W.select(0, 1)).unsqueeze(0), W.select(0, 1).sub(W.select(0, 0)).unsqueeze(0));
    const optimum = x.flatten(1).sub(w.sign().mul(eps)).view(64, 1, 4, 4);
    const atk = new PGD(m, { eps, steps: 10, earlyStop: false, randomStart: true });
    const adv = atk.run(x, y);
    assert.equal(adv.device, x.device, 'the attack works where its input is');
    assert.ok(adv.sub(optimum).abs().max().item() < 1e-6, 'every PGD point is the analytic optimum');
    const fgsm = new FGSM(m, { eps }).run(x, y);
    assert.ok(fgsm.sub(optimum).abs().max().item() < 1e-6, 'FGSM is optimal for a linear model');
    m.dispose();
  });
});


function testBatch(data: InMemoryDataset, n: number) {
  const x = T.fromTypedArray(Float32Array.from(data.images.subarray(0, n * 784), (v) => v / 255), [n, 1, 28, 28]);
  const y = T.fromTypedArray(BigInt64Array.from(data.labels.subarray(0, n), (v) => BigInt(v)), [n], 'int64');
  return { x, y };
}

test('every attack stays inside the ε-ball and [0, 1], restores the model mode, and never beats clean accuracy', async () => {
  const train = (await loadDataset({ name: 'fashion-mnist', split: 'train' })) as InMemoryDataset;
  const test_ = (await loadDataset({ name: 'fashion-mnist', split: 'test' })) as InMemoryDataset;
  const m = trainedSmallCnn(train, 60);
  T.scope(() => {
    const { x, y } = testBatch(test_, 200);
    const eps = 0.1;
    const attacks = [
      new FGSM(m, { eps }),
      new FGSM(m, { eps, randomStart: true, alpha: 1.25 * eps }),
      new PGD(m, { eps, steps: 10 }),
      new PGD(m, { eps, steps: 10, loss: 'cw' }),
      new PGD(m, { eps: 1.5, steps: 10, norm: 'l2' }),
      new APGD(m, { eps, steps: 20, loss: 'ce' }),
      new APGD(m, { eps, steps: 20, loss: 'dlr' }),
    ];
    const clean = T.noGrad(() => correct(m.forward(x), y).float().mean().item());
    m.train();
    for (const a of attacks) {
      const adv = a.run(x, y);
      assert.equal(m.training, true, `${a.name} restores train mode`);
      assert.ok(adv.min().item() >= 0 && adv.max().item() <= 1, `${a.name} stays in [0,1]`);
      const d = adv.sub(x);
      if (a.threat.norm === 'linf') assert.ok(d.abs().max().item() <= a.threat.eps + 1e-6, `${a.name} stays in the L∞ ball`);
      else assert.ok(d.flatten(1).norm(2, 1).max().item() <= a.threat.eps + 1e-4, `${a.name} stays in the L2 ball`);
      const robust = T.noGrad(() => { m.eval(); const r = correct(m.forward(adv), y).float().mean().item(); m.train(); return r; });
      assert.ok(robust <= clean + 1e-9, `${a.name}: robust ${robust} <= clean ${clean}`);
      assert.ok(robust < clean, `${a.name} breaks some examples`);
    }
    m.eval();
    // more restarts never raise robust accuracy (the first restart draws the same start)
    const acc = (restarts: number) => {
      T.manualSeed(7);
      const adv = new PGD(m, { eps: 0.05, steps: 5, restarts }).run(x, y);
      return T.noGrad(() => correct(m.forward(adv), y).float().mean().item());
    };
    const a1 = acc(1), a3 = acc(3);
    assert.ok(a3 <= a1, `restarts: ${a3} <= ${a1}`);
    // APGD is at least as strong as PGD-20 here (within a small margin)
    const pgd20 = T.noGrad(() => correct(m.forward(new PGD(m, { eps, steps: 20 }).run(x, y)), y).float().mean().item());
    const apgd = T.noGrad(() => correct(m.forward(new APGD(m, { eps, steps: 50 }).run(x, y)), y).float().mean().item());
    assert.ok(apgd <= pgd20 + 0.02, `APGD-CE ${apgd} vs PGD-20 ${pgd20}`);
  });
  // the evaluator: worst case ≤ each attack ≤ clean
  const r = await evaluate(m, [testBatch(test_, 100)], { eps: 0.1, attacks: ['fgsm', 'pgd-10', 'pgd-20'] });
  assert.ok(r.robust_accuracy.worst_case! <= Math.min(r.robust_accuracy['fgsm']!, r.robust_accuracy['pgd-10']!, r.robust_accuracy['pgd-20']!));
  assert.ok(r.robust_accuracy['pgd-20']! <= r.clean_accuracy);
  assert.equal(r.examples, 100);
  m.dispose();
});

test('targeted PGD drives a linear classifier to the target class', () => {
  T.manualSeed(2);
  T.scope(() => {
    class Lin3 extends Module {
      fc = this.module('fc', new Linear(16, 3));
      forward(x: T.Tensor) {
        return this.fc.forward(x.flatten(1));
      }
    }
    const m = new Lin3();
    T.noGrad(() => m.fc.weight.mul_(20));
    const x = T.rand([32, 1, 4, 4]);
    const pred = T.noGrad(() => m.forward(x).argmax(1));
    const target = pred.add(1).sub(pred.add(1).ge(T.full([32], 3, { dtype: 'int64' })).long().mul(3));
    const adv = new PGD(m, { eps: 0.5, steps: 30, targeted: true }).run(x, target);
    const hit = T.noGrad(() => m.forward(adv).argmax(1).eq(target).float().mean().item());
    assert.ok(hit > 0.9, `targeted success ${hit}`);
    assert.ok(adv.sub(x).abs().max().item() <= 0.5 + 1e-6);
    m.dispose();
  });
});

test('losses: CW margin and DLR on hand-made logits', () => {
  T.scope(() => {
    const z = T.tensor([[3, 1, 0.5, 0], [0, 2, 1, -1]]);
    const y = T.tensor([0, 0], { dtype: 'int64' });
    assert.deepEqual(cwLoss(z, y).toArray(), [-2, 2]);
    const d = dlrLoss(z, y).toArray() as number[];
    assert.ok(Math.abs(d[0]! - -2 / (3 - 0.5)) < 1e-6 && Math.abs(d[1]! - 2 / (2 - 0)) < 1e-6);
  });
});

test(`losses: CW margin and DLR on float16 and bfloat16 logits (what fp16/bf16 autocast gives attacks) equal the float32 ones (${TEST_DEVICE})`, { skip: deviceSkip }, () => {
  T.scope(() => {
    // values exact in both low-precision types, so that the float32 losses are the analytic truth
    const z32 = T.tensor([[3, 1, 0.5, 0], [0, 2, 1, -1], [-4, -8, 0.25, 2]], { device: TEST_DEVICE });
    const y = T.tensor([0, 0, 3], { dtype: 'int64', device: TEST_DEVICE });
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const z = z32.to(dtype);
      const cw = cwLoss(z, y);
      assert.equal(cw.dtype, dtype);
      assert.deepEqual(cw.float().toArray(), [-2, 2, -1.75], dtype);
      const got = dlrLoss(z, y).float().toArray() as number[];
      const want = dlrLoss(z32, y).toArray() as number[];
      got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 1e-2 * Math.abs(want[i]!), `${dtype} DLR row ${i}: ${v} vs ${want[i]}`));
    }
  });
});

test('sanity checks flag a model whose outputs are probabilities and a gradient-masked model', async () => {
  class Masked extends Module {
    fc = this.module('fc', new Linear(784, 10));
    forward(x: T.Tensor) {
      // rounding the input kills the gradient (a classic masking defence); softmax makes outputs probabilities
      return this.fc.forward(x.flatten(1).mul(4).floor().div(4).detach()).softmax(1);
    }
  }
  const m = new Masked();
  const xs = T.rand([64, 1, 28, 28]).keep();
  const ys = T.randint(0, 10, [64]).keep();
  const r = await evaluate(m, [{ x: xs, y: ys }], { eps: 0.1, attacks: ['pgd-5', 'pgd-10'] });
  assert.ok(r.warnings.some((w) => /probabilities/.test(w)), r.warnings.join('; '));
  assert.ok(r.warnings.some((w) => /gradient/.test(w)), r.warnings.join('; '));
  xs.dispose(); ys.dispose(); m.dispose();
});

test('PGD-20 accuracy equals PyTorch’s on the same weights and start points (within 0.5 points)', { skip: SKIP_NO_TORCH }, async () => {
  const train = (await loadDataset({ name: 'fashion-mnist', split: 'train' })) as InMemoryDataset;
  const test_ = (await loadDataset({ name: 'fashion-mnist', split: 'test' })) as InMemoryDataset;
  const m = trainedSmallCnn(train, 80);
  const n = 300, eps = 0.1;
  const { ours, input } = T.scope(() => {
    const { x, y } = testBatch(test_, n);
    // the attack's random start draws rand(x.shape) from the seeded generator first: the same noise
    T.manualSeed(11);
    const noise = T.rand([n, 1, 28, 28]).mul_(2 * eps).add_(-eps);
    T.manualSeed(11);
    const adv = new PGD(m, { eps, steps: 20, earlyStop: false }).run(x, y);
    const ok = T.noGrad(() => correct(m.forward(adv), y)).toArray() as number[];
    const weights = Object.fromEntries(Object.entries(m.stateDict()).map(([k, t]) => [k, Array.from(t.flatten().toTypedArray() as Float32Array)]));
    return { ours: ok, input: JSON.stringify({ weights, x: Array.from(x.flatten().toTypedArray() as Float32Array), noise: Array.from(noise.flatten().toTypedArray() as Float32Array), y: Array.from(test_.labels.subarray(0, n)) }) };
  });
  const py = pythonJson<number[]>(`
import json, sys, torch, models, attacks
torch.set_num_threads(2)
d = json.loads(sys.stdin.read())
m = models.build('small-cnn', 10).eval()
sd = m.state_dict()
for k, v in d['weights'].items():
    sd[k].copy_(torch.tensor(v, dtype=sd[k].dtype).view(sd[k].shape))
x = torch.tensor(d['x']).view(-1, 1, 28, 28); y = torch.tensor(d['y'])
adv = attacks.pgd(m, x, y, 0.1, 2.5 * 0.1 / 20, 20, torch.tensor(d['noise']).view(-1, 1, 28, 28))
with torch.no_grad():
    print(json.dumps((m(adv).argmax(1) == y).int().tolist()))
`, [], { input, timeoutMs: 120_000 });
  const accOurs = ours.reduce((a, b) => a + b, 0) / n;
  const accPy = py.reduce((a, b) => a + b, 0) / n;
  assert.ok(Math.abs(accOurs - accPy) <= 0.005, `freeadv PGD-20 ${accOurs} vs PyTorch ${accPy}`);
  assert.ok(accOurs < 0.9, 'the attack does something');
  m.dispose();
});
