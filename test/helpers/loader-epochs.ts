// A child process of loader-persistent.test.ts (run with --expose-gc): N epochs of an image folder's training
// batches (its images listed `repeat` times, for epochs of some length) from a loader with 2 persistent workers (or
// with 'per-epoch', workers started for each epoch); after each epoch (a garbage collection first) the process's
// threads (/proc/self/status) and resident memory; then close(). Prints one JSON line.
// Usage: node --expose-gc loader-epochs.js DIR EPOCHS REPEAT [per-epoch]
import { readFileSync } from 'node:fs';
import { Loader, activeWorkers, openImageFolder } from '../../src/data/index.js';
import { jpegDecode } from '../../src/torch/jpeg.js';

const [dir, epochs, repeat, mode] = process.argv.slice(2);
const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
const gc = (globalThis as { gc?: () => void }).gc!;
const folder = openImageFolder(dir!, { size: 24 });
const k = Number(repeat);
// (only the JPEGs the addon decodes: sharp, for the others, caches images and grows a thread pool of its own)
const jpegs = folder.files.map((f, i) => [f, folder.labels[i]!] as const).filter(([f]) => /\.jpe?g$/i.test(f) && jpegDecode(readFileSync(f)) !== null);
const files = Array.from({ length: k }, () => jpegs.map(([f]) => f)).flat();
const labels = Int32Array.from({ length: files.length }, (_, i) => jpegs[i % jpegs.length]![1]);
const l = new Loader({ ...folder, files, labels, n: files.length }, { batchSize: 4, seed: 2, augment: true, workers: 2, persistentWorkers: mode !== 'per-epoch' });
const r = { threads: [] as number[], rss: [] as number[], workersStarted: 0, activeAfterClose: -1, threadsAfterClose: 0 };
for (let e = 0; e < Number(epochs); e++) {
  for await (const _ of l.epoch(e)) { /* consume */ }
  gc();
  await new Promise((res) => setTimeout(res, 50));
  r.threads.push(threads());
  r.rss.push(process.memoryUsage().rss);
}
r.workersStarted = l.stats().workersStarted;
await l.close();
r.activeAfterClose = activeWorkers();
await new Promise((res) => setTimeout(res, 50));
r.threadsAfterClose = threads();
process.stdout.write(JSON.stringify(r) + '\n');
