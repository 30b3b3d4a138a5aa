// One rank of the native process-group test (test/dist.test.ts): joins the group from torchrun's environment
// variables, runs each collective, prints one JSON line of results, then (mode 'die') rank 1 exits while rank 0
// tries another collective, which must fail with a DistError, not hang or crash.
import * as T from '../../src/torch/index.js';
import { rendezvousFromEnv } from '../../src/torch/dist.js';

const mode = process.argv[2] ?? 'ok';
const rdv = rendezvousFromEnv()!;
const g = T.dist.init({ ...rdv, timeoutMs: Number(process.env.TIMEOUT_MS ?? 20000) });
const r = g.rank;
const res: Record<string, unknown> = { info: g };
const a = T.tensor([r + 1, 10 * (r + 1), -r]);
const b = T.tensor([[1, 2], [3, 4]]).mul(r + 1);
T.dist.allReduce([a, b]);
res.sum = a.toArray();
res.sum2 = b.toArray();
const m = T.tensor([r, -r]);
T.dist.allReduce([m], 'max');
res.max = m.toArray();
const c = r === 0 ? T.tensor([7, 8, 9]) : T.zeros([3]);
T.dist.broadcast([c], 0);
res.bcast = c.toArray();
res.gather = T.dist.allGather(T.tensor([r, r * 2], { dtype: 'int64' })).map((t) => t.toArray());
res.numbers = T.dist.allReduceNumbers([r + 0.5, 1]);
// GradAverager: grads r+1 and 2(r+1) average to (N+1)/2 and N+1
const p = T.zeros([3]).requiresGrad_();
const q = T.zeros([2, 2]).requiresGrad_();
p.grad = T.full([3], r + 1);
q.grad = T.full([2, 2], 2 * (r + 1));
const avg = new T.dist.GradAverager([p, q], g.worldSize, 16); // a tiny bucket size: two buckets
avg.average();
res.avg = [p.grad!.toArray(), q.grad!.toArray(), avg.buckets.length, avg.bytesPerStep];
T.dist.barrier();
process.stdout.write(JSON.stringify(res) + '\n');
if (mode === 'die') {
  if (r === 1) process.exit(3);
  const t0 = performance.now();
  try {
    T.dist.allReduce([T.ones([4])]);
    process.stdout.write(JSON.stringify({ error: null }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: (e as Error).name, message: (e as Error).message, seconds: (performance.now() - t0) / 1000 }) + '\n');
  }
  process.exit(0);
}
T.dist.destroy();
