// One of the loader's worker threads: builds the batches the main thread asks it for, one after the other, and
// posts each back (its buffers transferred, not copied), so that decoding, augmentation and copying overlap with
// training on the main thread and with the other workers' batches. An error is posted with the batch it belongs
// to; the main thread raises it when the consumer reaches that batch. A worker serves epoch after epoch (each
// request names its epoch) while its loader keeps it (persistent workers); requests of an epoch iteration that
// has ended (a `cancel` names it) are answered as skipped without building them.
import { parentPort, workerData } from 'node:worker_threads';
import { epochOrder, makeBatch, type LoaderConfig, type Source } from './producer.js';

interface Init { source: Source; cfg: LoaderConfig }
/** Build batch b of an epoch, for the main thread's iteration `gen`. */
interface Make { type: 'make'; gen: number; epoch: number; b: number }

const port = parentPort;
if (!port) throw new Error('loader-worker must run in a worker thread');
const { source, cfg } = workerData as Init;
let current: { epoch: number; order: Int32Array } | undefined;
/** Iterations up to this one have ended (they are numbered upwards). */
let cancelled = 0;

const queue: Make[] = [];
let running = false;

async function drain(): Promise<void> {
  running = true;
  while (queue.length > 0) {
    const { gen, epoch, b } = queue.shift()!;
    if (gen <= cancelled) {
      port!.postMessage({ type: 'skipped', gen, b });
      continue;
    }
    const t0 = performance.now();
    try {
      if (current?.epoch !== epoch) current = { epoch, order: epochOrder(source.n, cfg, epoch) };
      const batch = await makeBatch(source, cfg, epoch, current.order, b);
      const producedMs = performance.now() - t0;
      const buffers = [batch.x.buffer, batch.y.buffer, batch.indices.buffer] as ArrayBuffer[];
      port!.postMessage({ type: 'batch', gen, b, batch, producedMs }, buffers);
    } catch (e) {
      const err = e as Error & { file?: string };
      port!.postMessage({ type: 'error', gen, b, name: err?.name ?? 'Error', message: err?.message ?? String(e), file: err?.file });
    }
  }
  running = false;
}

port.on('message', (m: Make | { type: 'cancel'; gen: number }) => {
  if (m.type === 'cancel') {
    cancelled = Math.max(cancelled, m.gen);
    return;
  }
  if (m.type !== 'make') return;
  queue.push(m);
  if (!running) void drain();
});
