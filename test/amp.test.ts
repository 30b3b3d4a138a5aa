// Mixed precision (src/torch/autocast.ts, src/optim/grad-scaler.ts, --amp): autocast really computes in
// bfloat16 inside and float32 outside, for operators reached through the op table; a free-training step under
// bf16 autocast equals PyTorch's (torch.autocast on CPU) on the same weights and inputs; the gradient scaler's
// rule, and free training skipping δ with a skipped step; float16 on CPU where libtorch autocasts it (2.x: the
// 2.14 build through FREEADV_ADDON) against float32, the scaler on real float16 overflow, the input gradient's
// underflow without scaling; the options' refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { createModel } from '../src/models/index.js';
import { SGD, GradScaler } from '../src/optim/index.js';
import { free, trainBatch, resolveConfig, type TrainContext } from '../src/train/index.js';
import { run } from '../src/cli/main.js';
import { pythonJson, SKIP_NO_TORCH } from './helpers/python.js';

const flat = (t: T.Tensor) => Array.from(t.detach().float().flatten().toTypedArray() as Float32Array);
const maxAbs = (v: number[]) => v.reduce((m, u) => Math.max(m, Math.abs(u)), 0);
// libtorch 1.13 (Debian's) refuses float16 CPU autocast; 2.14 (the pip build, FREEADV_ADDON) takes it.
const FP16_REFUSED = T.autocastUnsupported('float16');
const SKIP_FP16 = FP16_REFUSED && `this libtorch (${T.version().torch}) has no float16 CPU autocast`;
// scripts/test-cpus.sh at its AVX2 and SSE levels: oneDNN is capped below AVX-512 while ATen still sees an AVX-512
// CPU and would hand it bfloat16 kernels it cannot build; a real CPU without AVX-512 sends them to ATen's own
// kernels, which is what switching oneDNN off gives (on both sides).
const NO_ONEDNN = process.env.FREEADV_TEST_NO_ONEDNN === '1';
if (NO_ONEDNN) T.oneDnn.setEnabled(false);

test('autocast: conv2d, linear and matmul (boxed through the op table) give bfloat16 inside, float32 outside; the loss stays float32; state restored', () => {
  T.scope(() => {
    const x = T.rand([2, 3, 8, 8]);
    const w = T.rand([4, 3, 3, 3]);
    const a = T.rand([5, 6]);
    const b = T.rand([6, 7]);
    assert.equal(T.isAutocastEnabled(), false);
    const inside = T.autocast('bfloat16', () => {
      assert.equal(T.isAutocastEnabled(), true);
      // nested: still on inside, and on again after the inner one ends
      T.autocast('bfloat16', () => assert.equal(T.isAutocastEnabled(), true));
      assert.equal(T.isAutocastEnabled(), true);
      const off = T.autocast(false, () => T.ops.conv2d(x, w, null).dtype);
      assert.equal(off, 'float32', 'autocast(false) turns it off inside');
      const conv = T.ops.conv2d(x, w, null);
      const logits = T.ops.linear(conv.flatten(1).narrow(1, 0, 6), a.narrow(0, 0, 5));
      return { conv: conv.dtype, mm: T.ops.matmul(a, b).dtype, logits: logits.dtype, loss: T.ops.crossEntropy(logits, T.tensor([0, 1], { dtype: 'int64' })).dtype, add: x.add(x).dtype };
    });
    assert.deepEqual(inside, { conv: 'bfloat16', mm: 'bfloat16', logits: 'bfloat16', loss: 'float32', add: 'float32' });
    assert.equal(T.isAutocastEnabled(), false, 'restored after the outermost autocast');
    assert.equal(T.ops.conv2d(x, w, null).dtype, 'float32');
    // an exception inside restores the state too
    assert.throws(() => T.autocast('bfloat16', () => { throw new Error('boom'); }), /boom/);
    assert.equal(T.isAutocastEnabled(), false);
  });
});

test('autocast: the bfloat16 result is the float32 one rounded (within bfloat16 precision), and backward runs outside autocast', () => {
  T.scope(() => {
    T.manualSeed(1);
    const x = T.rand([3, 2, 6, 6]).requiresGrad_();
    const w = T.randn([4, 2, 3, 3]).requiresGrad_();
    const ref = T.ops.conv2d(x, w, null);
    const low = T.autocast('bfloat16', () => T.ops.conv2d(x, w, null));
    const r = flat(ref), l = flat(low);
    // a dot product of K terms in a format of unit roundoff u is within (K + 2)·u·Σ|x||w| (inputs rounded once,
    // K roundings if it accumulates in that format: ATen's own bf16 kernels, on CPUs without AVX-512, come near it;
    // oneDNN accumulates in float32); bfloat16: u = 2^-8, K = 2·3·3
    const bound = flat(T.noGrad(() => T.ops.conv2d(x.abs(), w.abs(), null))).map((a) => (18 + 2) * 2 ** -8 * a);
    assert.ok(r.every((v, i) => Math.abs(v - l[i]!) <= bound[i]!), 'bf16 conv within the bfloat16 dot-product error bound of float32');
    assert.ok(r.some((v, i) => v !== l[i]), 'bf16 conv is not the float32 computation');
    T.autocast('bfloat16', () => low.sum().backward());
    // gradients of float32 leaves come back float32 (autocast's casts are differentiated through)
    assert.equal(x.grad!.dtype, 'float32');
    assert.equal(w.grad!.dtype, 'float32');
  });
});

test('autocast: float16 on CPU is refused with a clear message where libtorch cannot (1.13: bfloat16 only)', { skip: !FP16_REFUSED && `this libtorch (${T.version().torch}) autocasts float16 on CPU` }, () => {
  assert.throws(() => T.autocast('float16', () => 0), /float16 autocast on CPU needs a libtorch whose CPU autocast takes float16.*refuses it \("Currently, AutocastCPU only support Bfloat16/);
  assert.equal(T.isAutocastEnabled(), false);
});

const PY_FREE_STEP = `
import json, sys, torch, torch.nn.functional as F, models
torch.set_num_threads(1)
d = json.loads(sys.stdin.read())
torch.backends.mkldnn.enabled = d['onednn']
net = models.build('small-cnn', 10).train()
sd = net.state_dict()
for k, v in d['weights'].items():
    sd[k].copy_(torch.tensor(v['data'], dtype=sd[k].dtype).view(v['shape']))
opt = torch.optim.SGD(net.parameters(), lr=d['lr'], momentum=0.9, weight_decay=5e-4)
x = torch.tensor(d['x']).view(d['shape']); y = torch.tensor(d['y'])
delta = torch.tensor(d['delta']).view(d['shape'])
eps, step = d['eps'], d['step']
out = {'loss': [], 'zero': []}
for r in range(d['replays']):
    x_adv = (x + delta).clamp(0, 1).requires_grad_(True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        logits = net(x_adv)
        loss = F.cross_entropy(logits, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    delta = (delta + step * x_adv.grad.sign()).clamp(-eps, eps)
    out['loss'].append(loss.item()); out['zero'].append(int((x_adv.grad == 0).sum()))
out['logits_dtype'] = str(logits.dtype); out['loss_dtype'] = str(loss.dtype)
out['delta'] = delta.flatten().tolist()
out['weights'] = {k: v.flatten().tolist() for k, v in net.state_dict().items()}
print(json.dumps(out))
`;

/** One free minibatch (2 replays) under bf16 autocast by freeadv and by PyTorch 1.13, oneDNN on or off on both sides. */
function freeStepAgainstPyTorch(onednn: boolean): void {
  T.setNumThreads(1);
  const before = T.oneDnn.enabled();
  T.oneDnn.setEnabled(onednn);
  try { T.scope(() => {
    T.manualSeed(5);
    const eps = 0.1, lr = 0.05, replays = 2, B = 16;
    const cfg = resolveConfig({ method: 'free', replays, eps, amp: 'bf16', threads: 1 });
    const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] }).train(); // the reference's normalisation
    const weights = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, { data: flat(t), shape: t.shape }]));
    const opt = new SGD(model.parameters(), { lr, momentum: 0.9, weightDecay: 5e-4 });
    const losses: number[] = [], zeros: number[] = [];
    const dtypes: string[] = [];
    const ctx: TrainContext = {
      model, cfg, batchShape: [B, 1, 28, 28], state: new Map(),
      sgdStep(loss) { opt.zeroGrad(); loss.backward(); opt.step(); },
      record(loss, logits, _y, g) { losses.push(loss.item()); dtypes.push(logits.dtype, loss.dtype); zeros.push(g!.eq(0).sum().item()); },
    };
    free.init!(ctx);
    const x = T.rand([B, 1, 28, 28]);
    const y = T.randint(0, 10, [B]);
    const delta0 = T.rand([B, 1, 28, 28]).mul(2 * eps).sub(eps);
    T.noGrad(() => ctx.state.get('delta')!.copy_(delta0));
    const input = JSON.stringify({ weights, x: flat(x), y: Array.from(y.toTypedArray() as BigInt64Array, Number), shape: x.shape, delta: flat(delta0), eps, step: eps, lr, replays, onednn });
    const py = pythonJson<{ loss: number[]; zero: number[]; delta: number[]; weights: Record<string, number[]>; logits_dtype: string; loss_dtype: string }>(PY_FREE_STEP, [], { input, timeoutMs: 120_000 });
    trainBatch(free, ctx, x, y);
    assert.deepEqual(dtypes.slice(0, 2), ['bfloat16', 'float32']);
    assert.deepEqual([py.logits_dtype, py.loss_dtype], ['torch.bfloat16', 'torch.float32']);
    // The same libtorch kernels on both sides: bf16 rounding makes differences possible, but small ones.
    losses.forEach((l, i) => assert.ok(Math.abs(l - py.loss[i]!) < 1e-2 * Math.abs(py.loss[i]!), `loss ${i}: ${l} vs ${py.loss[i]}`));
    const d = flat(ctx.state.get('delta')!);
    const differ = d.filter((v, i) => Math.abs(v - py.delta[i]!) > 1e-6).length;
    assert.ok(differ <= 0.01 * d.length, `δ differs from PyTorch's at ${differ} of ${d.length} entries`);
    for (const [k, t] of Object.entries(model.stateDict())) {
      const mine = flat(t), theirs = py.weights[k]!, before = weights[k]!.data;
      // compare the update (w_after − w_before), relative to its largest entry: bf16 tolerance
      const num = maxAbs(mine.map((v, i) => v - theirs[i]!));
      const den = maxAbs(theirs.map((v, i) => v - before[i]!));
      assert.ok(num <= 2e-2 * den, `${k}: update differs by ${num} (largest update ${den})`);
    }
    assert.ok(zeros.every((z, i) => Math.abs(z - py.zero[i]!) <= 0.01 * B * 784), `exact-zero input-gradient entries ${zeros} vs PyTorch ${py.zero}`);
    opt.dispose();
    model.dispose();
  }); } finally {
    T.oneDnn.setEnabled(before);
    T.setNumThreads(2);
  }
}

test('free training under --amp bf16 equals PyTorch 1.13 CPU autocast on the same weights and inputs (2 replays: loss, δ, weights)', { skip: SKIP_NO_TORCH || (NO_ONEDNN && 'oneDNN is off at this CPU level (see the next test)') }, () => {
  freeStepAgainstPyTorch(true);
});

// ATen's own bfloat16 path differs from 1.13's in later libtorch: against the 2.14 build (FREEADV_ADDON) δ differs from PyTorch
// 1.13's at 21% of the entries (main's code too), so this comparison needs the reference's libtorch
const SKIP_ATEN_BF16 = !T.version().torch.startsWith('1.13') && `ATen's bfloat16 kernels of libtorch ${T.version().torch} are not those of the reference PyTorch 1.13`;
test('the same without oneDNN, the path of CPUs without AVX-512 (ATen’s own bfloat16 convolutions and matrix products)', { skip: SKIP_NO_TORCH || SKIP_ATEN_BF16 }, () => {
  freeStepAgainstPyTorch(false);
});

test('GradScaler: scale, unscale, growth after N good steps, backoff and skip on inf (torch.cuda.amp.GradScaler’s rule)', () => {
  T.scope(() => {
    const p = T.tensor([1, -2, 3]).requiresGrad_();
    const opt = new SGD([p], { lr: 0.5 });
    const scaler = new GradScaler({ initScale: 8, growthInterval: 3 });
    const step = (grad: number[]) => {
      opt.zeroGrad();
      scaler.scale(p.mul(T.tensor(grad)).sum()).backward();
      assert.deepEqual(p.grad!.toArray(), grad.map((g) => g * scaler.scaleValue), 'backward sees the scaled loss');
      const stepped = scaler.step(opt);
      scaler.update();
      return stepped;
    };
    assert.equal(step([0.5, 1, -1]), true);
    assert.deepEqual(p.toArray(), [0.75, -2.5, 3.5], 'the step used the unscaled gradient');
    assert.equal(scaler.scaleValue, 8);
    step([0, 0, 0]);
    assert.equal(step([0, 0, 0]), true);
    assert.equal(scaler.scaleValue, 16, 'grows ×2 after growthInterval = 3 good steps');
    assert.equal(scaler.growthTracker, 0);
    assert.equal(step([1, 0, 0]), true);
    assert.equal(scaler.growthTracker, 1);
    const before = p.toArray();
    assert.equal(step([Infinity, 1, 0]), false, 'an infinite gradient skips the step');
    assert.deepEqual(p.toArray(), before, 'parameters unchanged by a skipped step');
    assert.equal(scaler.scaleValue, 8, 'the scale halves');
    assert.equal(scaler.growthTracker, 0, 'and the growth count restarts');
    assert.equal(step([NaN, 0, 0]), false, 'NaN too');
    assert.equal(scaler.skipped, 2);
    const s = new GradScaler();
    s.loadStateDict(scaler.stateDict());
    assert.deepEqual(s.stateDict(), { scale: 4, growth_tracker: 0 });
    assert.throws(() => s.loadStateDict({ scale: -1, growth_tracker: 0 }), /positive scale/);
    opt.dispose();
  });
});

test('free training with a gradient scaler: an overflowing step is skipped and leaves δ and the weights alone, the scale halves; a finite power-of-two scale gives the unscaled step exactly', () => {
  T.scope(() => {
    const cfg = resolveConfig({ method: 'free', replays: 1, eps: 0.1 });
    const runStep = (initScale: number | undefined) => {
      T.manualSeed(7);
      const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0], std: [1] }).train();
      const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
      const scaler = initScale === undefined ? undefined : new GradScaler({ initScale });
      const ctx: TrainContext = {
        model, cfg, batchShape: [8, 1, 28, 28], state: new Map(),
        sgdStep(loss) {
          opt.zeroGrad();
          if (!scaler) { loss.backward(); opt.step(); return true; }
          scaler.scale(loss).backward();
          const ok = scaler.step(opt);
          scaler.update();
          return ok;
        },
        record() {},
      };
      free.init!(ctx);
      const w0 = flat(model.parameters()[0]!);
      trainBatch(free, ctx, T.rand([8, 1, 28, 28]), T.randint(0, 10, [8]));
      const out = { w0, w: flat(model.parameters()[0]!), delta: flat(ctx.state.get('delta')!), scale: scaler?.scaleValue };
      ctx.state.get('delta')!.dispose();
      opt.dispose();
      model.dispose();
      return out;
    };
    // a scale beyond float32's range: every scaled gradient overflows to inf (or NaN)
    const skipped = runStep(2 ** 200);
    assert.deepEqual(skipped.w, skipped.w0, 'weights unchanged');
    assert.ok(skipped.delta.every((v) => v === 0), 'δ unchanged (still 0)');
    assert.equal(skipped.scale, 2 ** 199);
    const plain = runStep(undefined);
    const scaled = runStep(2 ** 10);
    assert.ok(plain.delta.some((v) => v !== 0), 'δ moved in the normal step');
    assert.deepEqual(scaled.delta, plain.delta, 'δ: the scaled gradient has the same signs');
    assert.deepEqual(scaled.w, plain.w, 'weights: a power-of-two scale unscales exactly');
  });
});

// float16 on CPU (libtorch 2.x). No PyTorch here autocasts float16 on CPU (Debian's is 1.13), so the truth is
// float32: a float16 result must be float32's within float16's precision, and the scaler must react to what
// float16 really does (overflow beyond 65504, underflow below 2⁻²⁴).
test('float16 autocast on CPU: conv2d and linear give float16 inside, the loss float32; the conv is float32’s within the float16 dot-product bound', { skip: SKIP_FP16 }, () => {
  T.scope(() => {
    T.manualSeed(1);
    const x = T.rand([3, 2, 6, 6]).requiresGrad_();
    const w = T.randn([4, 2, 3, 3]).requiresGrad_();
    const ref = T.ops.conv2d(x, w, null);
    const inside = T.autocast('float16', () => {
      const conv = T.ops.conv2d(x, w, null);
      const logits = T.ops.linear(conv.flatten(1).narrow(1, 0, 6), T.rand([5, 6]));
      return { conv, dtypes: { conv: conv.dtype, logits: logits.dtype, loss: T.ops.crossEntropy(logits, T.tensor([0, 1, 2], { dtype: 'int64' })).dtype } };
    });
    assert.deepEqual(inside.dtypes, { conv: 'float16', logits: 'float16', loss: 'float32' });
    const r = flat(ref), l = flat(inside.conv);
    // float16: u = 2^-11, K = 2·3·3 (see the bfloat16 case above)
    const bound = flat(T.noGrad(() => T.ops.conv2d(x.abs(), w.abs(), null))).map((a) => (18 + 2) * 2 ** -11 * a);
    assert.ok(r.every((v, i) => Math.abs(v - l[i]!) <= bound[i]!), 'fp16 conv within the float16 dot-product error bound of float32');
    assert.ok(r.some((v, i) => v !== l[i]), 'fp16 conv is not the float32 computation');
    T.autocast('float16', () => inside.conv.sum().backward());
    assert.equal(x.grad!.dtype, 'float32');
  });
});

test('GradScaler on real float16 overflow: a scaled gradient beyond 65504 is inf, the step is skipped and the scale halves until it fits, then grows and overflows again', { skip: SKIP_FP16 }, () => {
  T.scope(() => {
    // loss = Σ w·x with x = 1: ∂loss/∂(w·x) = S reaches the float16 linear's output, and S ≥ 65520 rounds to inf
    const w = T.ones([1, 4]).requiresGrad_();
    const x = T.ones([1, 4]);
    const opt = new SGD([w], { lr: 2 ** -4 });
    const scaler = new GradScaler({ initScale: 2 ** 17, growthInterval: 2 });
    const step = (dtype: 'float16' | false) => {
      opt.zeroGrad();
      const loss = T.autocast(dtype, () => T.ops.linear(x, w).sum());
      scaler.scale(loss).backward();
      const grad = flat(w.grad!);
      const stepped = scaler.step(opt);
      scaler.update();
      return { stepped, grad, scale: scaler.scaleValue };
    };
    const a = step('float16');
    assert.equal(a.stepped, false, 'S = 2^17: skipped');
    assert.ok(a.grad.every((g) => g === Infinity), `the float16 backward overflowed: ${a.grad}`);
    assert.deepEqual(w.toArray(), [[1, 1, 1, 1]], 'weights untouched by the skipped step');
    assert.equal(step('float16').stepped, false, 'S = 2^16 = 65536 > 65504: skipped as well');
    const b = step('float16');
    assert.deepEqual([b.stepped, b.grad, b.scale], [true, [2 ** 15, 2 ** 15, 2 ** 15, 2 ** 15], 2 ** 15], 'S = 2^15 fits');
    assert.deepEqual(w.toArray(), [[0.9375, 0.9375, 0.9375, 0.9375]], 'the step used the unscaled gradient (1)');
    assert.equal(step('float16').scale, 2 ** 16, 'two good steps in a row: the scale grows');
    assert.equal(step('float16').stepped, false, 'and overflows float16 again');
    assert.equal(scaler.skipped, 3);
    // the same scale in float32 does not overflow: the skips are float16's range, not the scaler's
    const f32 = new GradScaler({ initScale: 2 ** 17 });
    opt.zeroGrad();
    f32.scale(T.ops.linear(x, w).sum()).backward();
    assert.equal(f32.step(opt), true);
    opt.dispose();
  });
});

/**
 * One free minibatch (2 replays) of small-cnn: float32, or float16 autocast with a GradScaler of initial scale S.
 * Returns the losses, δ, the weights, the exact zeros of each input gradient, the logits' and loss's types.
 */
function freeStep(fp16: { scale: number } | undefined) {
  return T.scope(() => {
    T.manualSeed(5);
    const eps = 0.1, B = 16;
    const cfg = resolveConfig({ method: 'free', replays: 2, eps, amp: fp16 ? 'fp16' : 'none' });
    const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] }).train();
    const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
    const scaler = fp16 && new GradScaler({ initScale: fp16.scale });
    const losses: number[] = [], zeros: number[] = [], dtypes: string[] = [], grads: number[][] = [];
    let scale = 1;
    const ctx: TrainContext = {
      model, cfg, batchShape: [B, 1, 28, 28], state: new Map(),
      sgdStep(loss) {
        opt.zeroGrad();
        if (!scaler) { loss.backward(); opt.step(); return true; }
        scale = scaler.scaleValue;
        scaler.scale(loss).backward();
        const ok = scaler.step(opt);
        scaler.update();
        return ok;
      },
      record(loss, logits, _y, g) {
        losses.push(loss.item());
        dtypes.push(logits.dtype, loss.dtype);
        zeros.push(g!.eq(0).sum().item());
        grads.push(flat(g!).map((v) => v / scale)); // the input gradient, unscaled
      },
    };
    free.init!(ctx);
    const x = T.rand([B, 1, 28, 28]);
    const y = T.randint(0, 10, [B]);
    T.noGrad(() => ctx.state.get('delta')!.copy_(T.rand([B, 1, 28, 28]).mul(2 * eps).sub(eps)));
    const w0 = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, flat(t)]));
    trainBatch(free, ctx, x, y);
    const out = {
      losses, zeros, dtypes, grads, w0, n: B * 784, skipped: scaler?.skipped ?? 0,
      delta: flat(ctx.state.get('delta')!),
      weights: Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, flat(t)])),
    };
    ctx.state.get('delta')!.dispose();
    opt.dispose();
    model.dispose();
    return out;
  });
}

test('free training under --amp fp16 (autocast and the scaler at 2^16) equals the float32 step within float16 precision: loss, input gradient, δ, weights, zero input-gradient entries', { skip: SKIP_FP16 }, () => {
  const a = freeStep(undefined), h = freeStep({ scale: 2 ** 16 });
  assert.deepEqual(h.dtypes.slice(0, 2), ['float16', 'float32']);
  assert.equal(h.skipped, 0);
  h.losses.forEach((l, i) => assert.ok(Math.abs(l - a.losses[i]!) < 5e-3 * a.losses[i]!, `loss ${i}: ${l} vs float32 ${a.losses[i]}`));
  // The first replay's input gradient (same weights, same input on both sides). Rounding to float16 can change
  // which input of a 2×2 max-pool window is largest (ties, near-ties), which sends that window's gradient to
  // another pixel: locally large differences, on few entries. Signs may differ only on small entries.
  const [g32, g16] = [a.grads[0]!, h.grads[0]!];
  const top = maxAbs(g32);
  const flips = g32.map((v, i) => (Math.sign(v) !== Math.sign(g16[i]!) ? Math.abs(v) / top : -1)).filter((r) => r >= 0);
  assert.ok(flips.length <= 0.02 * g32.length, `the sign of the input gradient differs at ${flips.length} of ${g32.length} entries`);
  assert.ok(flips.every((r) => r < 0.1), `signs differ only where |g| < 0.1·max|g| (largest: ${Math.max(...flips)})`);
  // elsewhere the error is float16's: its median is u = 2^-11 or less of the largest entry (bfloat16's is ~8× that,
  // 1.2e-3 here, and fails), 90% of the entries within 1%
  const err = g32.map((v, i) => Math.abs(v - g16[i]!) / top).sort((p, q) => p - q);
  const [median, p90] = [err[Math.floor(0.5 * err.length)]!, err[Math.floor(0.9 * err.length)]!];
  assert.ok(median > 0 && median <= 2 ** -11 && p90 <= 1e-2, `input gradient's error relative to its largest entry: median ${median}, 90th percentile ${p90}`);
  // δ moves by ε·sign(g) per replay; the second replay also sees the first's (slightly different) weights and δ
  const differ = h.delta.filter((v, i) => v !== a.delta[i]).length;
  assert.ok(differ <= 0.06 * h.delta.length, `δ differs from float32's at ${differ} of ${h.delta.length} entries`);
  // weight gradients carry the max-pool re-routing too: on the first replay alone the convolutions' gradients in
  // float16 are off float32's by up to 4.5% of their largest entry (bfloat16: up to 17%); a single float16
  // convolution's weight gradient by 0.09%
  for (const k of Object.keys(a.weights)) {
    const num = maxAbs(h.weights[k]!.map((v, i) => v - a.weights[k]![i]!));
    const den = maxAbs(a.weights[k]!.map((v, i) => v - a.w0[k]![i]!));
    assert.ok(num <= 0.1 * den, `${k}: update differs by ${num} (largest update ${den})`);
  }
  assert.ok(h.zeros.every((z, i) => Math.abs(z - a.zeros[i]!) <= 0.01 * h.n), `exact-zero input-gradient entries ${h.zeros} vs float32 ${a.zeros}`);
});

test('float16 input gradient underflow: without loss scaling entries that float32 has non-zero flush to 0 (δ would not move there); the scaler’s 2^16 keeps them', { skip: SKIP_FP16 }, () => {
  T.scope(() => {
    T.manualSeed(5);
    const B = 128; // the main job's batch: the mean loss makes each image's gradient B times smaller
    const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] }).train();
    const x = T.rand([B, 1, 28, 28]);
    const y = T.randint(0, 10, [B]);
    const grad = (dtype: 'float16' | false, scale: number) => {
      const xAdv = x.clone().requiresGrad_();
      const loss = T.autocast(dtype, () => T.ops.crossEntropy(model.forward(xAdv), y));
      loss.float().mul(scale).backward();
      return flat(xAdv.grad!).map((v) => v / scale);
    };
    const g32 = grad(false, 1);
    const onlyFp16Zeros = (g: number[]) => g.filter((v, i) => v === 0 && g32[i] !== 0).length;
    const g16 = grad('float16', 1);
    const [unscaled, scaled] = [onlyFp16Zeros(g16), onlyFp16Zeros(grad('float16', 2 ** 16))];
    assert.ok(unscaled >= 0.001 * g32.length, `float16 at S = 1 flushed ${unscaled} of ${g32.length} entries to 0`);
    assert.ok(scaled * 10 <= unscaled, `at S = 2^16: ${scaled} such entries (S = 1: ${unscaled})`);
    // those entries are small: below float16's normal range (2^-14), where it underflows
    const top = maxAbs(g32);
    const lost = g16.flatMap((v, i) => (v === 0 && g32[i] !== 0 ? [Math.abs(g32[i]!)] : []));
    assert.ok(lost.every((v) => v < 2 ** -14), `largest flushed entry ${Math.max(...lost)} (largest entry ${top})`);
  });
});

test('channels-last: a free step with NHWC weights and inputs equals the NCHW one (1e-5)', () => {
  T.scope(() => {
    const step = (cl: boolean) => {
      const cfg = resolveConfig({ method: 'free', replays: 2, eps: 8 / 255, dataset: 'cifar10', channelsLast: cl });
      T.manualSeed(3);
      const model = createModel('resnet-cifar-small', { numClasses: 10, inChannels: 3, size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }).train();
      if (cl) model.channelsLast();
      const opt = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
      const ctx: TrainContext = { model, cfg, batchShape: [4, 3, 32, 32], state: new Map(), sgdStep(loss) { opt.zeroGrad(); loss.backward(); opt.step(); }, record() {} };
      free.init!(ctx);
      const x = T.rand([4, 3, 32, 32]);
      trainBatch(free, ctx, cl ? x.channelsLast() : x, T.randint(0, 10, [4]));
      const delta = ctx.state.get('delta')!;
      const out = { cl: model.parameters()[0]!.isContiguous('channelsLast') && delta.isContiguous('channelsLast'), w: flat(model.parameters()[0]!), d: flat(delta) };
      delta.dispose();
      opt.dispose();
      model.dispose();
      return out;
    };
    const a = step(false), b = step(true);
    assert.equal(b.cl, true, 'weights and δ are channels-last');
    const scale = maxAbs(a.w);
    assert.ok(a.w.every((v, i) => Math.abs(v - b.w[i]!) <= 1e-5 * scale), 'weights agree');
    const differ = a.d.filter((v, i) => v !== b.d[i]).length;
    assert.ok(differ <= 0.001 * a.d.length, `δ differs at ${differ} entries`);
  });
});

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

test('options: --amp fp8, --attack-amp without --amp, --amp with float64 are refused with exit 2 naming the option; fp16 on a CPU libtorch without it too', async () => {
  for (const [args, re] of [
    [['train', '--amp', 'fp8'], /--amp/],
    [['train', '--attack-amp'], /--attack-amp.*needs --amp/],
    [['train', '--amp', 'bf16', '--dtype', 'float64'], /--amp.*float32/],
    [['eval', '--weights', 'x.safetensors', '--model', 'small-cnn', '--attack-amp', 'fp8'], /--attack-amp/],
    ...(FP16_REFUSED ? [[['train', '--amp', 'fp16'], /--amp.*float16 autocast on CPU needs a libtorch whose CPU autocast takes float16/] as const] : []),
  ] as const) {
    const r = await cli([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
    assert.doesNotMatch(r.err, /internal error|    at /);
  }
});
