// One process of the NCCL test (test/device.test.ts): a one-process ProcessGroupNCCL on cuda:0 (NCCL refuses two
// ranks on one GPU), then what training uses of it: all-reduce of CUDA tensors and of plain numbers, broadcast,
// all-gather, and c10d's Reducer averaging a small-cnn's gradients during backward. With one process the average
// of a gradient is the gradient itself, which a plain backward pass computes for comparison. Prints one JSON line.
import * as T from '../../src/torch/index.js';
import { rendezvousFromEnv, OverlappedGradAverager } from '../../src/torch/dist.js';
import { createModel } from '../../src/models/index.js';

const g = T.dist.init({ ...rendezvousFromEnv()!, timeoutMs: 60000, cudaDevice: 0 });
const res: Record<string, unknown> = { info: g };
const a = T.tensor([1, 2, 3], { device: 'cuda:0' });
T.dist.allReduce([a]);
res.sum = a.toArray();
res.numbers = T.dist.allReduceNumbers([2.5, 1]);
const c = T.tensor([7, 8, 9], { device: 'cuda:0' });
T.dist.broadcast([c], 0);
res.bcast = c.toArray();
res.gather = T.dist.allGather(T.tensor([4, 5], { device: 'cuda:0' })).map((t) => [t.device, t.toArray()]);

T.manualSeed(0);
const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.5], std: [0.25] }).to('cuda:0');
const x = T.rand([8, 1, 28, 28]).to('cuda:0');
const y = T.randint(0, 10, [8]).to('cuda:0');
const plain = T.scope(() => {
  for (const p of model.parameters()) p.grad = undefined;
  T.ops.crossEntropy(model.forward(x), y).backward();
  return model.parameters().map((p) => p.grad!.toTypedArray() as Float32Array);
});
const avg = new OverlappedGradAverager(model.parameters(), { bucketBytes: 64 * 1024 });
let maxDiff = 0;
for (let step = 0; step < 2; step++) {
  T.scope(() => {
    for (const p of model.parameters()) p.grad = undefined;
    avg.backward(T.ops.crossEntropy(model.forward(x), y));
  });
  model.parameters().forEach((p, i) => (p.grad!.toTypedArray() as Float32Array).forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - plain[i]![j]!)))));
}
res.reducer = { buckets: avg.buckets.length, maxDiff, device: model.parameters()[0]!.grad!.device };
avg.dispose();
T.dist.barrier();
T.dist.destroy();
process.stdout.write(JSON.stringify(res) + '\n');
