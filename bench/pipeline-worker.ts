// One measurement of freeadv's image-folder input pipeline, in its own process (its CPU time is its own): an
// epoch of RandomResizedCrop(size) + flip training batches from the loader's worker threads, each batch turned
// into float N×C×H×W tensors by toTensors on this thread (what the training loop does), as PyTorch's twin
// (bench/reference/pipeline_bench.py) turns ToTensor's output into batches. Prints one JSON line.
// Start it with UV_THREADPOOL_SIZE ≥ workers (bench/run.ts does): sharp decodes on libuv's pool.
// With --epochs N (N > 1) it goes on for N − 1 more epochs and adds each epoch's time to its first batch and wall
// time (`epochs`), from persistent workers (as `freeadv train` has them) or, with --per-epoch-workers, from
// workers started for each epoch; the other figures are the first epoch's.
import { parseArgs } from 'node:util';
import * as T from '../src/torch/index.js';
import { Loader, openImageFolder } from '../src/data/index.js';
import { toTensors } from '../src/data/tensor.js';

const { values: a } = parseArgs({
  options: {
    dir: { type: 'string' },
    workers: { type: 'string', default: '2' },
    batch: { type: 'string', default: '64' },
    size: { type: 'string', default: '224' },
    seed: { type: 'string', default: '0' },
    prefetch: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '1' },
    'per-epoch-workers': { type: 'boolean', default: false },
  },
});
T.setNumThreads(1);
const ds = openImageFolder(a.dir!, { size: Number(a.size) });
const loader = new Loader(ds, { batchSize: Number(a.batch), seed: Number(a.seed), augment: true, workers: Number(a.workers), prefetch: Number(a.prefetch), persistentWorkers: !a['per-epoch-workers'] });
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let images = 0, first = 0, firstAt = 0;
let cpuFirst = { user: 0, system: 0 };
for await (const b of loader.epoch(0)) {
  T.scope(() => toTensors(b));
  images += b.shape[0];
  if (!firstAt) {
    firstAt = performance.now();
    cpuFirst = process.cpuUsage(cpu0);
    first = b.shape[0];
  }
}
const t1 = performance.now();
const cpu = process.cpuUsage(cpu0);
const cpuMs = (cpu.user + cpu.system) / 1000;
const epochs = [{ first_batch_ms: firstAt - t0, seconds: (t1 - t0) / 1000 }];
for (let e = 1; e < Number(a.epochs); e++) {
  const s = performance.now();
  let at = 0;
  for await (const b of loader.epoch(e)) {
    T.scope(() => toTensors(b));
    at ||= performance.now();
  }
  epochs.push({ first_batch_ms: at - s, seconds: (performance.now() - s) / 1000 });
}
await loader.close();
process.stdout.write(JSON.stringify({
  images, workers: Number(a.workers), uv_threadpool_size: Number(process.env.UV_THREADPOOL_SIZE) || 4,
  seconds: (t1 - t0) / 1000,
  first_batch_ms: firstAt - t0,
  images_per_second: images / ((t1 - t0) / 1000),
  steady_images_per_second: (images - first) / ((t1 - firstAt) / 1000),
  cpu_ms_per_image: cpuMs / images,
  // after the first batch: without the workers' start-up, what an epoch of ImageNet's size costs per image
  steady_cpu_ms_per_image: (cpuMs - (cpuFirst.user + cpuFirst.system) / 1000) / (images - first),
  ...(epochs.length > 1 && { persistent_workers: !a['per-epoch-workers'], epochs }),
}) + '\n');
