// The data loader: seeded shuffling, batching with an explicit last-batch policy and augmentation, prepared
// ahead in worker threads (so it overlaps with the synchronous training step on the main thread), consumed with
// `for await (const batch of loader.epoch(e))`. Image folders are decoded by several workers, each building
// whole batches, several batches in flight (PyTorch's DataLoader with num_workers); the batches come out in
// order, the same bytes whatever the number of workers.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DataError } from './errors.js';
import type { LazyImageDataset } from './imagefolder.js';
import { defaultConfig, defaultWorkers, epochLength, epochOrder, makeBatch, numBatches, type Batch, type LastBatch, type LoaderConfig, type MemorySource, type Shard, type Source } from './producer.js';

export type { Batch, LastBatch, Layout, Shard } from './producer.js';

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
  /** Batches prepared ahead of the consumer, per worker thread. Default 2. */
  prefetch?: number;
  /** Produce batches in worker threads (default true); false produces them on the calling thread. */
  worker?: boolean;
  /**
   * Worker threads (like PyTorch's num_workers), each building whole batches. Default: the image folder's
   * `workers` if set, else cores − 1 (defaultWorkers) for image folders; 1 for in-memory data.
   */
  workers?: number;
  /**
   * Image decodes in flight at once per batch being built, for lazy data. Default 1 in worker threads (so N
   * workers decode N images at a time), max(2, cores) on the calling thread.
   */
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
let warnedPool = false;

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
  /** Worker threads an epoch starts (when useWorker). */
  readonly workers: number;
  private st: LoaderStats = { batches: 0, waitMs: 0, producedMs: 0, skipped: 0 };
  private open = new Set<{ close(): Promise<void> }>();

  constructor(dataset: LoaderDataset, opts: LoaderOptions) {
    this.useWorker = opts.worker ?? true;
    const lazy = dataset.kind === 'lazy';
    this.workers = Math.max(1, Math.floor(opts.workers ?? (lazy ? dataset.workers ?? defaultWorkers() : 1)));
    if (!Number.isFinite(this.workers)) throw new RangeError(`workers must be a positive integer, got ${opts.workers}`);
    const decodeConcurrency = opts.decodeConcurrency ?? (this.useWorker && lazy ? 1 : Math.max(2, availableParallelism()));
    this.config = defaultConfig({
      batchSize: opts.batchSize,
      ...(opts.shuffle !== undefined && { shuffle: opts.shuffle }),
      ...(opts.seed !== undefined && { seed: opts.seed }),
      ...(opts.lastBatch !== undefined && { lastBatch: opts.lastBatch }),
      ...(opts.augment !== undefined && { augment: opts.augment }),
      ...(opts.pad !== undefined && { pad: opts.pad }),
      ...(opts.flip !== undefined && { flip: opts.flip }),
      decodeConcurrency,
      ...(opts.shard !== undefined && { shard: opts.shard }),
      ...(opts.subset !== undefined && { subset: opts.subset }),
    });
    if (this.config.lastBatch !== 'keep' && this.config.lastBatch !== 'drop') throw new RangeError(`lastBatch must be 'keep' or 'drop', got '${String(this.config.lastBatch)}'`);
    this.prefetch = Math.max(1, Math.floor(opts.prefetch ?? 2));
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

  /** Ends every running epoch iteration of this loader (terminating its workers). */
  async close(): Promise<void> {
    await Promise.all([...this.open].map((o) => o.close()));
  }

  /** The batches of one epoch, prepared ahead. Breaking out of `for await` ends the workers. */
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
    const total = this.length;
    const lazy = this.source.kind === 'lazy';
    const count = Math.min(this.workers, Math.max(0, total - startBatch));
    const workers: Worker[] = [];
    /** Batches assigned to each worker and not yet returned (at most 2: the one it builds, the next). */
    const assigned: number[] = [];
    const ready = new Map<number, Batch>();
    const failed = new Map<number, Error>();
    let failure: Error | undefined;
    let stopping = false;
    let nextAssign = startBatch;
    let nextTake = startBatch;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    // Batches in flight (assigned and not yet taken): `prefetch` per worker, as PyTorch's prefetch_factor.
    const cap = this.prefetch * Math.max(1, count);
    const assign = () => {
      while (!failure && failed.size === 0 && nextAssign < total && nextAssign - nextTake < cap) {
        let k = 0;
        for (let i = 1; i < workers.length; i++) if (assigned[i]! < assigned[k]!) k = i;
        if (!workers[k] || assigned[k]! >= 2) return;
        assigned[k]!++;
        workers[k]!.postMessage({ type: 'make', b: nextAssign++ });
      }
    };
    const start = async () => {
      if (count === 0) return;
      // sharp and the addon (JPEGs: native/jpeg.cc) are loaded by the main thread before a worker uses them.
      if (lazy) {
        await import('sharp');
        await import('../torch/jpeg.js');
        // JPEGs decode on the workers' own threads; sharp, for the other formats, on libuv's thread pool, shared by
        // the whole process and sized once, at start-up.
        const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
        const files = (this.source as LazyImageDataset).files;
        if (count * this.config.decodeConcurrency > pool && !warnedPool && files.some((f) => !/\.jpe?g$/i.test(f))) {
          warnedPool = true;
          process.emitWarning(`${count} loader workers decode up to ${count * this.config.decodeConcurrency} images at once, but libuv's thread pool, where sharp decodes images other than JPEGs, has ${pool} threads: start node with UV_THREADPOOL_SIZE=${count * this.config.decodeConcurrency + 2} (the freeadv command does it for --workers)`, 'FreeadvWarning');
        }
      }
      for (let i = 0; i < count; i++) {
        const w = new Worker(new URL('./loader-worker.js', import.meta.url), { workerData: { source: this.source, cfg: this.config, epoch } });
        workers.push(w);
        assigned.push(0);
        live.add(w);
        w.unref(); // referenced only while the consumer waits, so an abandoned iterator never hangs the process
        w.on('message', (m: { type: string; b?: number; batch?: Batch; producedMs?: number; name?: string; message?: string; file?: string }) => {
          assigned[i]!--;
          if (m.type === 'batch') {
            this.st.producedMs += m.producedMs!;
            ready.set(m.batch!.batch, m.batch!);
          } else if (m.type === 'error') failed.set(m.b!, toError(m as { name: string; message: string; file?: string }));
          assign();
          notify();
        });
        w.on('error', (e) => {
          failure ??= e;
          notify();
        });
        w.on('exit', (code) => {
          live.delete(w);
          if (!stopping) failure ??= new Error(`loader worker exited unexpectedly (code ${code})`);
          notify();
        });
      }
      assign();
    };
    const take = async (): Promise<IteratorResult<Batch>> => {
      if (nextTake >= total) return { done: true, value: undefined };
      // The batches come out in order; an error surfaces when the consumer reaches its batch (the batches
      // before it are delivered first), or at once when a worker died.
      while (!ready.has(nextTake) && !failed.has(nextTake) && !failure) {
        for (const w of workers) w.ref();
        try {
          await new Promise<void>((r) => (wake = r));
        } finally {
          for (const w of workers) w.unref();
        }
      }
      const batch = ready.get(nextTake);
      if (batch) {
        ready.delete(nextTake++);
        assign();
        return { done: false, value: batch };
      }
      throw failed.get(nextTake) ?? failure!;
    };
    const stop = async () => {
      stopping = true;
      nextAssign = total;
      const ws = workers.splice(0);
      await Promise.all(ws.map((w) => w.terminate()));
      for (const w of ws) live.delete(w);
      ready.clear();
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
          const batch = await makeBatch(this.source, this.config, epoch, order, b, 'nchw');
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
