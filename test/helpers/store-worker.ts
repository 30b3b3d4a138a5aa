// One rank of the rendezvous-store test (test/dist-store.test.ts): joins a 2-rank group over TCP from torchrun's
// environment variables, then rank 0 runs a fixed sequence of c10d Store operations (the same sequence that
// test/helpers/store_ops.py runs on PyTorch's TCPStore) and both ranks add to one counter. Prints one JSON line.
// Without a group (distInit failed) it prints {"error": message} and exits 1.
import * as T from '../../src/torch/index.js';
import { rendezvousFromEnv, store } from '../../src/torch/dist.js';

let g: ReturnType<typeof T.dist.init>;
try {
  g = T.dist.init({ ...rendezvousFromEnv()!, timeoutMs: Number(process.env.TIMEOUT_MS ?? 20000) });
} catch (e) {
  process.stdout.write(JSON.stringify({ error: (e as Error).message }) + '\n');
  process.exit(1);
}
const res: Record<string, unknown> = { rank: g.rank };
if (g.rank === 0) {
  const ops: unknown[] = [];
  ops.push(store.add('n', 3), store.add('n', 4), store.add('n', -2), store.get('n'));
  ops.push(store.compareSet('cs', 'x', 'y'), store.check(['cs']));
  ops.push(store.compareSet('cs', '', 'a'), store.compareSet('cs', 'b', 'c'), store.compareSet('cs', 'a', 'c'), store.get('cs'));
  store.set('s', 'hello');
  ops.push(store.get('s'), store.check(['s', 'n']), store.check(['s', 'never']));
  ops.push(store.deleteKey('s'), store.deleteKey('s'), store.check(['s']));
  const n0 = store.numKeys();
  store.set('k1', '1');
  store.set('k2', '2');
  store.set('k1', 'again');
  ops.push(store.numKeys() - n0);
  res.ops = ops;
  const t0 = performance.now();
  try {
    store.wait(['never', 'n'], 300);
    res.wait = null;
  } catch (e) {
    res.wait = { name: (e as Error).name, message: (e as Error).message, ms: performance.now() - t0 };
  }
  res.intruder = store.check(['intruder']);
}
T.dist.barrier();
if (g.rank === 1) res.add = store.add('n', 10); // the running sum over both ranks: 5 + 10
T.dist.barrier();
res.n = store.get('n');
T.dist.barrier();
process.stdout.write(JSON.stringify(res) + '\n');
T.dist.destroy();
