// The loader's worker thread: produces one epoch's batches ahead of the consumer (at most `prefetch` not yet
// taken), so augmentation, float conversion and decoding overlap with training on the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { epochOrder, makeBatch, numBatches, type LoaderConfig, type Source } from './producer.js';

interface Init { source: Source; cfg: LoaderConfig; epoch: number; startBatch: number; prefetch: number }

const port = parentPort;
if (!port) throw new Error('loader-worker must run in a worker thread');
const { source, cfg, epoch, startBatch, prefetch } = workerData as Init;

let credits = prefetch;
let wake: (() => void) | undefined;
port.on('message', (m: { type: string }) => {
  if (m.type === 'ack') {
    credits++;
    wake?.();
  }
});

async function run(): Promise<void> {
  const order = epochOrder(source.n, cfg, epoch);
  const total = numBatches(order.length, cfg.batchSize, cfg.lastBatch);
  for (let b = startBatch; b < total; b++) {
    while (credits <= 0) await new Promise<void>((r) => (wake = r));
    wake = undefined;
    credits--;
    const t0 = performance.now();
    const batch = await makeBatch(source, cfg, epoch, order, b);
    const producedMs = performance.now() - t0;
    port!.postMessage({ type: 'batch', batch, producedMs }, [batch.x.buffer as ArrayBuffer, batch.y.buffer as ArrayBuffer, batch.indices.buffer as ArrayBuffer]);
  }
  port!.postMessage({ type: 'end' });
}

run().catch((e: unknown) => {
  const err = e as Error & { file?: string };
  port.postMessage({ type: 'error', name: err?.name ?? 'Error', message: err?.message ?? String(e), file: err?.file });
});
