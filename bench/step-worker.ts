// Times one training step of freeadv on random data, in its own process (so that peak RSS is its own):
// free (forward, backward, SGD-momentum step, δ ← clip(δ + ε·sign(g), −ε, ε)) or natural; --channels-last,
// --amp bf16 (forward and loss under autocast). The twin of
// bench/reference/step_bench.py; prints one JSON line.
// --kind natural,free interleaves the kinds step by step in this one process and reports each kind's median
// step time (`ms_median`): the way to compare two kinds, since separate processes of the same job differ by up
// to ±25% on this shared machine while steps in one process differ by a few percent.
import { parseArgs } from 'node:util';
import * as T from '../src/torch/index.js';
import { createModel } from '../src/models/index.js';
import { SGD } from '../src/optim/index.js';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string', default: 'small-cnn' },
    batch: { type: 'string', default: '128' },
    threads: { type: 'string', default: '2' },
    kind: { type: 'string', default: 'free' },
    'channels-last': { type: 'boolean', default: false },
    amp: { type: 'string', default: 'none' },
    eps: { type: 'string', default: String(8 / 255) },
    warmup: { type: 'string', default: '3' },
    steps: { type: 'string', default: '20' },
    seed: { type: 'string', default: '0' },
    device: { type: 'string', default: 'cpu' },
    'input-shape': { type: 'string' },
  },
});
const dev = a.device!;
const onGpu = dev.startsWith('cuda');
const B = Number(a.batch);
const eps = Number(a.eps);
T.setNumThreads(Number(a.threads));
T.manualSeed(Number(a.seed));
const grey = ['small-cnn', 'madry-cnn'].includes(a.model!);
// --input-shape C,S,S (as the twin's): resnet50 at a small image size, for instance
const [c, s] = a['input-shape'] ? a['input-shape'].split(',').map(Number).slice(0, 2) as [number, number] : grey ? [1, 28] : [3, 32];
const model = createModel(a.model!, { numClasses: 10, inChannels: c, size: s, mean: Array(c).fill(0.5), std: Array(c).fill(0.25) }).to(dev).train();
const cl = a['channels-last']!;
// --amp bf16: forward and loss under bfloat16 autocast, backward outside (as freeadv train --amp bf16 does)
if (a.amp !== 'none' && a.amp !== 'bf16') throw new Error(`--amp: ${a.amp} is not none or bf16`);
const amp = a.amp === 'bf16' ? 'bfloat16' : false;
if (cl) model.channelsLast();
const opt = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
const x0 = T.rand([B, c, s, s]).to(dev);
const x = (cl ? x0.channelsLast() : x0).keep();
const y = T.randint(0, 10, [B]).to(dev).keep();
const delta = T.zerosLike(x).keep();

function step(kind: string): void {
  T.scope(() => {
    const free = kind === 'free';
    const inp = free ? T.noGrad(() => x.add(delta).clamp_(0, 1)).requiresGrad_() : x;
    const loss = T.autocast(amp, () => T.ops.crossEntropy(model.forward(inp), y), dev);
    opt.zeroGrad();
    loss.backward();
    if (free) T.noGrad(() => delta.add_(inp.grad!.sign(), eps).clamp_(-eps, eps));
    opt.step();
    // on a GPU the step's kernels are queued: reading a value waits for them (torch.cuda.synchronize() in the twin)
    if (onGpu) y.sum().item();
  });
}

const kinds = a.kind!.split(',');
for (const k of kinds) if (k !== 'free' && k !== 'natural') throw new Error(`--kind: ${k} is not free or natural`);
for (let i = 0; i < Number(a.warmup); i++) for (const k of kinds) step(k);
const live0 = T.liveTensors();
const n = Number(a.steps);
const times: Record<string, number[]> = Object.fromEntries(kinds.map((k) => [k, []]));
// CPU time of the process per step (user + system, all threads): on a shared machine it counts the work done,
// not the time spent waiting for a core
const cpuTimes: Record<string, number[]> = Object.fromEntries(kinds.map((k) => [k, []]));
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  for (const k of kinds) {
    const s0 = performance.now(), c0 = cpuMs();
    step(k);
    times[k]!.push(performance.now() - s0);
    cpuTimes[k]!.push(cpuMs() - c0);
  }
}
const dt = (performance.now() - t0) / n / kinds.length / 1000;
// STEP_TIMES=1: every step's wall and CPU time on stderr (stalls show up there, not in the medians)
if (process.env.STEP_TIMES) console.error(JSON.stringify({ ...Object.fromEntries(kinds.map((k) => [k, times[k]!.map((t) => Math.round(t))])), cpu: Object.fromEntries(kinds.map((k) => [k, cpuTimes[k]!.map((t) => Math.round(t))])) }));
const median = (xs: number[]) => [...xs].sort((u, v) => u - v)[xs.length >> 1]!;
console.log(
  JSON.stringify({
    model: a.model, kind: a.kind, device: dev, batch: B, threads: T.getNumThreads(), input_shape: [c, s, s], channels_last: cl, amp: a.amp, steps: n,
    images_per_second: Math.round((B / dt) * 10) / 10, ms_per_step: Math.round(dt * 1e6) / 1e3,
    ms_median: Object.fromEntries(kinds.map((k) => [k, Math.round(median(times[k]!) * 1e3) / 1e3])),
    cpu_ms_median: Object.fromEntries(kinds.map((k) => [k, Math.round(median(cpuTimes[k]!) * 1e3) / 1e3])),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
    live_tensors_delta: T.liveTensors() - live0,
  }),
);
