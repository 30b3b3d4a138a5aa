// The data loader: seeded shuffling, batching with an explicit last-batch policy, augmentation and float
// conversion, prepared ahead in a worker thread (so it overlaps with the synchronous training step on the
// main thread), consumed with `for await (const batch of loader.epoch(e))`.
import { Worker } from 'node:worker_threads';
import { DataError } from './errors.js';
import type { LazyImageDataset } from './imagefolder.js';
import { defaultConfig, epochLength, epochOrder, makeBatch, numBatches, type Batch, type LastBatch, type LoaderConfig, type MemorySource, type Shard, type Source } from './producer.js';

export type { Batch, LastBatch, Shard } from './producer.js';

/** An in-memory uint8 dataset (what loadDataset returns for IDX/CIFAR) or a lazy ImageFolder. */
export type LoaderDataset =
  | { images: Uint8Array; labels: Int32Array; n: number; c: number; h: number; w: number; kind?: 'memory' }
  | LazyImageDataset;

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch with a permutation seeded by (seed, epoch). Default true. */
  shuffle?: boolean;
  seed?: number;
  /** What to do with a final batch smaller than batchSize. Default 'keep'. */
  lastBatch?: LastBatch;
  /** Training augmentation (pad 4 + random crop + flip for in-memory data; RandomResizedCrop + flip for lazy ImageFolders). Default false. */
  augment?: boolean;
  pad?: number;
  flip?: boolean;
  /** Batches prepared ahead of the consumer. Default 2. */
  prefetch?: number;
  /** Produce batches in a worker thread (default true); false produces them on the calling thread. */
  worker?: boolean;
  /** Image decodes in flight at once for lazy data. */
  decodeConcurrency?: number;
  /** Only this process's shard of each epoch (DistributedSampler semantics; see Shard). */
  shard?: Shard;
  /** Only these examples of the data set (indices; a split such as training without validation). */
  subset?: Int32Array;
}

export interface LoaderStats {
  /** Batches handed to the consumer. */
  batches: number;
  /** Total time the consumer waited in next() for a batch that was not ready yet. */
  waitMs: number;
  /** Total time spent producing batches (in the worker when there is one). */
  producedMs: number;
  /** Samples left out because they could not be decoded (lazy data with skipBad). */
  skipped: number;
}

export interface EpochOptions {
  /** Start at this batch of the epoch (to resume mid-epoch); the batches are those a full epoch yields from there. */
  startBatch?: number;
}

const live = new Set<Worker>();

/** The number of loader worker threads currently running (0 once every epoch iteration has ended or broken). */
export function activeWorkers(): number {
  return live.size;
}

function toError(m: { name: string; message: string; file?: string }): Error {
  if (m.name === 'DataError') {
    const e = new DataError(m.message);
    (e as { file?: string }).file = m.file;
    return e;
  }
  const e = new Error(m.message);
  e.name = m.name;
  return e;
}

export class Loader {
  readonly source: Source;
  readonly config: LoaderConfig;
  readonly prefetch: number;
  readonly useWorker: boolean;
  private st: LoaderStats = { batches: 0, waitMs: 0, producedMs: 0, skipped: 0 };
  private open = new Set<{ close(): Promise<void> }>();

  constructor(dataset: LoaderDataset, opts: LoaderOptions) {
    this.config = defaultConfig({
      batchSize: opts.batchSize,
      ...(opts.shuffle !== undefined && { shuffle: opts.shuffle }),
      ...(opts.seed !== undefined && { seed: opts.seed }),
      ...(opts.lastBatch !== undefined && { lastBatch: opts.lastBatch }),
      ...(opts.augment !== undefined && { augment: opts.augment }),
      ...(opts.pad !== undefined && { pad: opts.pad }),
      ...(opts.flip !== undefined && { flip: opts.flip }),
      ...(opts.decodeConcurrency !== undefined && { decodeConcurrency: opts.decodeConcurrency }),
      ...(opts.shard !== undefined && { shard: opts.shard }),
      ...(opts.subset !== undefined && { subset: opts.subset }),
    });
    if (this.config.lastBatch !== 'keep' && this.config.lastBatch !== 'drop') throw new RangeError(`lastBatch must be 'keep' or 'drop', got '${String(this.config.lastBatch)}'`);
    this.prefetch = Math.max(1, Math.floor(opts.prefetch ?? 2));
    this.useWorker = opts.worker ?? true;
    if (dataset.kind === 'lazy') {
      this.source = dataset;
    } else {
      const { images, labels, n, c, h, w } = dataset;
      if (images.length !== n * c * h * w) throw new DataError(`dataset has ${images.length} pixel bytes, expected n*c*h*w = ${n * c * h * w}`);
      if (labels.length !== n) throw new DataError(`dataset has ${labels.length} labels for ${n} images`);
      // Share the pixels with the worker without a copy (one copy here if they are not shared already).
      let shared = images;
      if (this.useWorker && !(images.buffer instanceof SharedArrayBuffer)) {
        shared = new Uint8Array(new SharedArrayBuffer(images.length));
        shared.set(images);
      }
      this.source = { kind: 'memory', images: shared, labels, n, c, h, w } satisfies MemorySource;
    }
  }

  get length(): number {
    return numBatches(epochLength(this.source.n, this.config), this.config.batchSize, this.config.lastBatch);
  }

  /** Images per epoch (after the last-batch policy). */
  get samplesPerEpoch(): number {
    return this.config.lastBatch === 'drop' ? this.length * this.config.batchSize : epochLength(this.source.n, this.config);
  }

  /** The sample order of an epoch (for tests and resumption checks). */
  order(epoch: number): Int32Array {
    return epochOrder(this.source.n, this.config, epoch);
  }

  stats(): LoaderStats {
    return { ...this.st };
  }

  resetStats(): void {
    this.st = { batches: 0, waitMs: 0, producedMs: 0, skipped: 0 };
  }

  /** Ends every running epoch iteration of this loader (terminating its worker). */
  async close(): Promise<void> {
    await Promise.all([...this.open].map((o) => o.close()));
  }

  /** The batches of one epoch, prepared ahead. Breaking out of `for await` ends the worker. */
  epoch(epoch: number, opts: EpochOptions = {}): AsyncIterableIterator<Batch> {
    const total = this.length;
    const startBatch = opts.startBatch ?? 0;
    if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > total) throw new RangeError(`startBatch must be an integer in [0, ${total}], got ${startBatch}`);
    return this.useWorker ? this.workerEpoch(epoch, startBatch) : this.inlineEpoch(epoch, startBatch);
  }

  private iterator(
    start: () => Promise<void> | void,
    take: () => Promise<IteratorResult<Batch>>,
    stop: () => Promise<void>,
  ): AsyncIterableIterator<Batch> {
    let started = false;
    let finished = false;
    const handle = {
      close: async () => {
        finished = true;
        this.open.delete(handle);
        await stop();
      },
    };
    this.open.add(handle);
    const it: AsyncIterableIterator<Batch> = {
      next: async () => {
        if (finished) return { done: true, value: undefined };
        try {
          if (!started) {
            started = true;
            await start();
          }
          const t0 = performance.now();
          const r = await take();
          this.st.waitMs += performance.now() - t0;
          if (r.done) await handle.close();
          else {
            this.st.batches++;
            this.st.skipped += r.value.skipped;
          }
          return r;
        } catch (e) {
          await handle.close();
          throw e;
        }
      },
      return: async () => {
        await handle.close();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  private workerEpoch(epoch: number, startBatch: number): AsyncIterableIterator<Batch> {
    let worker: Worker | undefined;
    const queue: Batch[] = [];
    let ended = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const start = async () => {
      // sharp must be loaded by the main thread before a worker uses it.
      if (this.source.kind === 'lazy') await import('sharp');
      worker = new Worker(new URL('./loader-worker.js', import.meta.url), {
        workerData: { source: this.source, cfg: this.config, epoch, startBatch, prefetch: this.prefetch },
      });
      live.add(worker);
      worker.unref(); // referenced only while the consumer waits, so an abandoned iterator never hangs the process
      worker.on('message', (m: { type: string; batch?: Batch; producedMs?: number; name?: string; message?: string; file?: string }) => {
        if (m.type === 'batch') {
          this.st.producedMs += m.producedMs!;
          queue.push(m.batch!);
        } else if (m.type === 'end') ended = true;
        else if (m.type === 'error') failure = toError(m as { name: string; message: string; file?: string });
        notify();
      });
      worker.on('error', (e) => {
        failure = e;
        notify();
      });
      worker.on('exit', (code) => {
        if (worker) live.delete(worker);
        if (!ended && !failure) failure = new Error(`loader worker exited unexpectedly (code ${code})`);
        notify();
      });
    };
    const take = async (): Promise<IteratorResult<Batch>> => {
      while (queue.length === 0 && !ended && !failure) {
        worker!.ref();
        try {
          await new Promise<void>((r) => (wake = r));
        } finally {
          worker?.unref();
        }
      }
      if (queue.length > 0) {
        worker!.postMessage({ type: 'ack' });
        return { done: false, value: queue.shift()! };
      }
      if (failure) throw failure;
      return { done: true, value: undefined };
    };
    const stop = async () => {
      const w = worker;
      worker = undefined;
      if (w) {
        ended = true;
        await w.terminate();
        live.delete(w);
      }
    };
    return this.iterator(start, take, stop);
  }

  private inlineEpoch(epoch: number, startBatch: number): AsyncIterableIterator<Batch> {
    const order = epochOrder(this.source.n, this.config, epoch);
    const total = this.length;
    let nextB = startBatch;
    const pending: Promise<Batch>[] = [];
    const fill = () => {
      while (pending.length < this.prefetch && nextB < total) {
        const b = nextB++;
        const p = (async () => {
          const t0 = performance.now();
          const batch = await makeBatch(this.source, this.config, epoch, order, b);
          this.st.producedMs += performance.now() - t0;
          return batch;
        })();
        p.catch(() => undefined); // surfaced when taken
        pending.push(p);
      }
    };
    const take = async (): Promise<IteratorResult<Batch>> => {
      fill();
      const p = pending.shift();
      if (!p) return { done: true, value: undefined };
      const batch = await p;
      fill();
      return { done: false, value: batch };
    };
    return this.iterator(() => undefined, take, async () => {
      pending.length = 0;
      nextB = total;
    });
  }
}
