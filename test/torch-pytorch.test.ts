// Cross-checks against PyTorch (Debian's python3-torch) on identical weights and inputs: a conv net's loss,
// parameter gradients and input gradient; default initialisation under the same seed; SGD trajectories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/torch/index.js';
import { Module, Conv2d, Linear, BatchNorm2d } from '../src/nn/index.js';
import { createModel } from '../src/models/index.js';
import { SGD } from '../src/optim/index.js';
import { pythonJson, SKIP_NO_TORCH } from './helpers/python.js';

const flat = (t: T.Tensor) => Array.from(t.detach().flatten().toTypedArray() as Float32Array);

function relErr(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, 1e-12);
}

class Net extends Module {
  conv1 = this.module('conv1', new Conv2d(3, 8, 3, { padding: 1 }));
  bn1 = this.module('bn1', new BatchNorm2d(8));
  conv2 = this.module('conv2', new Conv2d(8, 16, 3, { stride: 2, padding: 1 }));
  fc = this.module('fc', new Linear(16 * 2 * 2, 10));
  forward(x: T.Tensor): T.Tensor {
    let h = this.bn1.forward(this.conv1.forward(x)).relu();
    h = T.ops.maxPool2d(this.conv2.forward(h).relu(), 2);
    return this.fc.forward(h.flatten(1));
  }
}

const PY_NET = `
import json, sys, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(1)
d = json.loads(sys.stdin.read())
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1 = nn.Conv2d(3, 8, 3, padding=1); s.bn1 = nn.BatchNorm2d(8)
        s.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1); s.fc = nn.Linear(64, 10)
    def forward(s, x):
        h = F.relu(s.bn1(s.conv1(x)))
        h = F.max_pool2d(F.relu(s.conv2(h)), 2)
        return s.fc(h.flatten(1))
net = Net().train()
sd = net.state_dict()
for k, v in d['weights'].items():
    sd[k].copy_(torch.tensor(v['data'], dtype=sd[k].dtype).view(v['shape']))
x = torch.tensor(d['x'], dtype=torch.float32).view(d['xshape']).requires_grad_()
y = torch.tensor(d['y'], dtype=torch.long)
loss = F.cross_entropy(net(x), y)
loss.backward()
out = {'loss': loss.item(), 'xgrad': x.grad.flatten().tolist(),
       'grads': {k: p.grad.flatten().tolist() for k, p in net.named_parameters()},
       'running_mean': net.bn1.running_mean.tolist()}
print(json.dumps(out))
`;

test('a conv net: loss, parameter gradients and input gradient equal PyTorch’s (≤ 1e-5 relative)', { skip: SKIP_NO_TORCH }, () => {
  T.manualSeed(3);
  T.setNumThreads(1);
  T.scope(() => {
    const net = new Net();
    const x = T.rand([4, 3, 8, 8]).requiresGrad_();
    const y = T.tensor([1, 0, 9, 3], { dtype: 'int64' });
    const loss = T.ops.crossEntropy(net.forward(x), y);
    loss.backward();
    const weights = Object.fromEntries(Object.entries(net.stateDict()).map(([k, t]) => [k, { data: t.dtype === 'int64' ? [0] : flat(t), shape: t.shape }]));
    // send the initial running stats (PyTorch's start from 0/1 too; our forward already updated them)
    weights['bn1.running_mean'] = { data: Array(8).fill(0), shape: [8] };
    weights['bn1.running_var'] = { data: Array(8).fill(1), shape: [8] };
    const input = JSON.stringify({ weights, x: flat(x), xshape: x.shape, y: [1, 0, 9, 3] });
    const py = pythonJson<{ loss: number; xgrad: number[]; grads: Record<string, number[]>; running_mean: number[] }>(PY_NET, [], { timeoutMs: 60_000, input });
    assert.ok(Math.abs(loss.item() - py.loss) / Math.abs(py.loss) < 1e-5, `loss ${loss.item()} vs ${py.loss}`);
    assert.ok(relErr(flat(x.grad!), py.xgrad) < 1e-5, 'input gradient');
    const maxAbs = (v: number[]) => v.reduce((m, u) => Math.max(m, Math.abs(u)), 0);
    for (const [k, p] of net.namedParameters()) {
      if (k === 'conv1.bias') {
        // BatchNorm follows conv1, so the analytic gradient of conv1's bias is 0 and both sides hold rounding
        // noise (equal bit for bit with the same libtorch, not with libtorch 2.x against PyTorch 1.13)
        const scale = maxAbs(py.grads['conv1.weight']!);
        assert.ok(maxAbs(flat(p.grad!)) < 1e-5 * scale && maxAbs(py.grads[k]!) < 1e-5 * scale, `gradient of ${k} is not ~0`);
        continue;
      }
      assert.ok(relErr(flat(p.grad!), py.grads[k]!) < 1e-5, `gradient of ${k}`);
    }
    const rm = net.stateDict()['bn1.running_mean']!;
    assert.ok(relErr(flat(rm), py.running_mean) < 1e-5, 'BatchNorm running mean');
    net.dispose();
  });
  T.setNumThreads(2);
});

test('default initialisation equals PyTorch’s under the same seed', { skip: SKIP_NO_TORCH }, () => {
  T.manualSeed(0);
  const m = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] });
  const py = pythonJson<Record<string, number[]>>(`
import json, torch, models
torch.manual_seed(0)
m = models.build('small-cnn', 10)
print(json.dumps({k: v.flatten()[:200].tolist() + v.flatten()[-50:].tolist() for k, v in m.state_dict().items()}))
`);
  for (const [k, t] of Object.entries(m.stateDict())) {
    const v = flat(t);
    const mine = v.length > 250 ? [...v.slice(0, 200), ...v.slice(-50)] : v.length > 200 ? [...v.slice(0, 200), ...v.slice(-50)] : [...v, ...v.slice(-50)];
    assert.ok(py[k], `PyTorch has ${k}`);
    assert.ok(relErr(mine, py[k]!) < 1e-6, `${k} matches PyTorch's initial values`);
  }
  m.dispose();
});

test('SGD (momentum, Nesterov, weight decay) follows torch.optim.SGD’s trajectory', { skip: SKIP_NO_TORCH }, () => {
  const settings = [
    { lr: 0.1, momentum: 0, weightDecay: 0, nesterov: false },
    { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: false },
    { lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: true },
    { lr: 0.02, momentum: 0.5, weightDecay: 0, nesterov: false, dampening: 0.3 },
  ];
  for (const s of settings) {
    const traj = T.scope(() => {
      const p = T.tensor([1, -2, 3], { dtype: 'float64' }).requiresGrad_().keep();
      const opt = new SGD([p], s);
      const out: number[][] = [];
      for (let i = 0; i < 6; i++) {
        T.scope(() => {
          const loss = p.sub(T.tensor([0.5, 0.5, 0.5], { dtype: 'float64' })).pow(2).mul(T.tensor([1, 2, 3], { dtype: 'float64' })).sum().add(p.sin().sum());
          opt.zeroGrad();
          loss.backward();
          opt.step();
          out.push(p.detach().toArray() as number[]);
        });
      }
      opt.dispose();
      p.dispose();
      return out;
    });
    const py = pythonJson<number[][]>(`
import json, sys, torch
s = json.loads(sys.argv[1])
p = torch.tensor([1., -2., 3.], dtype=torch.float64, requires_grad=True)
opt = torch.optim.SGD([p], lr=s['lr'], momentum=s['momentum'], weight_decay=s['weightDecay'], nesterov=s['nesterov'], dampening=s.get('dampening', 0))
out = []
for i in range(6):
    loss = ((p - 0.5) ** 2 * torch.tensor([1., 2., 3.], dtype=torch.float64)).sum() + p.sin().sum()
    opt.zero_grad(); loss.backward(); opt.step()
    out.append(p.detach().tolist())
print(json.dumps(out))
`, [JSON.stringify(s)]);
    traj.forEach((row, i) => row.forEach((v, j) => assert.ok(Math.abs(v - py[i]![j]!) < 1e-12, `${JSON.stringify(s)} step ${i}: ${v} vs ${py[i]![j]}`)));
  }
});
