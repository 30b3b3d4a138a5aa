// One of the loader's worker threads: builds the batches of one epoch the main thread assigns to it, one after
// the other, and posts each back (its buffers transferred, not copied), so that decoding, augmentation and
// copying overlap with training on the main thread and with the other workers' batches. An error is posted
// with the batch it belongs to; the main thread raises it when the consumer reaches that batch.
import { parentPort, workerData } from 'node:worker_threads';
import { epochOrder, makeBatch, type LoaderConfig, type Source } from './producer.js';

interface Init { source: Source; cfg: LoaderConfig; epoch: number }

const port = parentPort;
if (!port) throw new Error('loader-worker must run in a worker thread');
const { source, cfg, epoch } = workerData as Init;
const order = epochOrder(source.n, cfg, epoch);

const queue: number[] = [];
let running = false;

async function drain(): Promise<void> {
  running = true;
  while (queue.length > 0) {
    const b = queue.shift()!;
    const t0 = performance.now();
    try {
      const batch = await makeBatch(source, cfg, epoch, order, b);
      const producedMs = performance.now() - t0;
      const buffers = [batch.x.buffer, batch.y.buffer, batch.indices.buffer] as ArrayBuffer[];
      port!.postMessage({ type: 'batch', batch, producedMs }, buffers);
    } catch (e) {
      const err = e as Error & { file?: string };
      port!.postMessage({ type: 'error', b, name: err?.name ?? 'Error', message: err?.message ?? String(e), file: err?.file });
    }
  }
  running = false;
}

port.on('message', (m: { type: string; b: number }) => {
  if (m.type !== 'make') return;
  queue.push(m.b);
  if (!running) void drain();
});
