// The data loader: seeded shuffling, batching with an explicit last-batch policy and augmentation, prepared
// ahead in worker threads (so it overlaps with the synchronous training step on the main thread), consumed with
// `for await (const batch of loader.epoch(e))`. Image folders are decoded by several workers, each building
// whole batches, several batches in flight (PyTorch's DataLoader with num_workers); the batches come out in
// order, the same bytes whatever the number of workers. Workers are started for each epoch, or with
// `persistentWorkers` once, on the first, and kept until close() (PyTorch's persistent_workers=True).
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
   * Keep the worker threads from one epoch to the next (PyTorch's persistent_workers): they start with the first
   * epoch and end with close(), which the caller must then call. The batches are the same either way. Default false:
   * each epoch starts its workers, and they end with its iteration.
   */
  persistentWorkers?: boolean;
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
  /** Worker threads started (the workers once with persistent workers; else the workers again every epoch). */
  workersStarted: number;
}

export interface EpochOptions {
  /** Start at this batch of the epoch (to resume mid-epoch); the batches are those a full epoch yields from there. */
  startBatch?: number;
}

const live = new Set<Worker>();
let started = 0;
let warnedPool = false;

/**
 * The number of loader worker threads currently running: 0 once every epoch iteration has ended or broken and
 * every loader with persistent workers is closed.
 */
export function activeWorkers(): number {
  return live.size;
}

/** The number of loader worker threads this process has started. */
export function workersStarted(): number {
  return started;
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

/** A worker's answer to a batch it was asked for: the batch, its error, or that its iteration had ended. */
interface Reply { type: 'batch' | 'error' | 'skipped'; gen: number; b: number; batch?: Batch; producedMs?: number; name?: string; message?: string; file?: string }

/** Loads what a worker uses (sharp and the addon: native/jpeg.cc) on the main thread first; warns of a small libuv pool. */
async function prepareLazy(source: LazyImageDataset, count: number, decodeConcurrency: number): Promise<void> {
  await import('sharp');
  await import('../torch/jpeg.js');
  // JPEGs decode on the workers' own threads; sharp, for the other formats, on libuv's thread pool, shared by
  // the whole process and sized once, at start-up.
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (count * decodeConcurrency > pool && !warnedPool && source.files.some((f) => !/\.jpe?g$/i.test(f))) {
    warnedPool = true;
    process.emitWarning(`${count} loader workers decode up to ${count * decodeConcurrency} images at once, but libuv's thread pool, where sharp decodes images other than JPEGs, has ${pool} threads: start node with UV_THREADPOOL_SIZE=${count * decodeConcurrency + 2} (the freeadv command does it for --workers)`, 'FreeadvWarning');
  }
}

/**
 * Worker threads building batches of one data set and config (loader-worker.ts), serving one epoch iteration
 * at a time: attach() opens one, detach() ends it — answers to its requests still in flight are dropped then, and
 * the requests a worker has not begun are skipped — and the workers wait, idle and unreferenced, for the next.
 */
class WorkerPool {
  readonly workers: Worker[] = [];
  /** Batches asked of each worker and not yet answered (at most 2: the one it builds, the next). */
  private readonly asked: number[] = [];
  /** Set when a worker failed or exited: the pool is then of no further use. */
  failure: Error | undefined;
  private stopping = false;
  private gen = 0;
  private sink: { gen: number; reply: (m: Reply) => void; changed: () => void } | undefined;

  constructor(private readonly source: Source, private readonly cfg: LoaderConfig, private readonly st: LoaderStats) {}

  /** Whether an iteration is attached. */
  get busy(): boolean {
    return this.sink !== undefined;
  }

  /** Starts workers until there are n. */
  grow(n: number): void {
    for (let i = this.workers.length; i < n; i++) {
      const w = new Worker(new URL('./loader-worker.js', import.meta.url), { workerData: { source: this.source, cfg: this.cfg } });
      this.workers.push(w);
      this.asked.push(0);
      live.add(w);
      started++;
      this.st.workersStarted++;
      w.unref(); // referenced only while the consumer waits, so an abandoned loader never hangs the process
      w.on('message', (m: Reply) => {
        this.asked[i]!--;
        if (m.gen === this.sink?.gen) this.sink.reply(m);
        this.sink?.changed();
      });
      w.on('error', (e) => {
        this.failure ??= e;
        this.sink?.changed();
      });
      w.on('exit', (code) => {
        live.delete(w);
        if (!this.stopping) this.failure ??= new Error(`loader worker exited unexpectedly (code ${code})`);
        this.sink?.changed();
      });
    }
  }

  /** Opens an iteration: `reply` gets the answers to its requests, `changed` is called after every event. */
  attach(reply: (m: Reply) => void, changed: () => void): void {
    this.sink = { gen: ++this.gen, reply, changed };
  }

  /** Ends the iteration: what it asked for and a worker has not begun is skipped, what is being built dropped. */
  detach(): void {
    if (!this.sink) return;
    for (const w of this.workers) w.postMessage({ type: 'cancel', gen: this.sink.gen });
    this.sink = undefined;
  }

  /** The worker with the fewest batches asked of it, if it can take one more; else -1. */
  leastBusy(): number {
    let k = -1;
    for (let i = 0; i < this.workers.length; i++) if (k < 0 || this.asked[i]! < this.asked[k]!) k = i;
    return k >= 0 && this.asked[k]! < 2 ? k : -1;
  }

  /** Asks worker k for batch b of an epoch, for the attached iteration. */
  make(k: number, epoch: number, b: number): void {
    this.asked[k]!++;
    this.workers[k]!.postMessage({ type: 'make', gen: this.sink!.gen, epoch, b });
  }

  ref(): void {
    for (const w of this.workers) w.ref();
  }

  unref(): void {
    for (const w of this.workers) w.unref();
  }

  async terminate(): Promise<void> {
    this.stopping = true;
    this.sink = undefined;
    const ws = this.workers.splice(0);
    await Promise.all(ws.map((w) => w.terminate()));
    for (const w of ws) live.delete(w);
  }
}

export class Loader {
  readonly source: Source;
  readonly config: LoaderConfig;
  readonly prefetch: number;
  readonly useWorker: boolean;
  /** Worker threads an epoch uses (when useWorker). */
  readonly workers: number;
  /** Whether the workers live from one epoch to the next, until close(). */
  readonly persistentWorkers: boolean;
  private st: LoaderStats = { batches: 0, waitMs: 0, producedMs: 0, skipped: 0, workersStarted: 0 };
  private open = new Set<{ close(): Promise<void> }>();
  /** The persistent workers (when persistentWorkers), started by the first epoch. */
  private pool: WorkerPool | undefined;

  constructor(dataset: LoaderDataset, opts: LoaderOptions) {
    this.useWorker = opts.worker ?? true;
    this.persistentWorkers = opts.persistentWorkers ?? false;
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
    Object.assign(this.st, { batches: 0, waitMs: 0, producedMs: 0, skipped: 0, workersStarted: 0 });
  }

  /** Ends every running epoch iteration of this loader and terminates its workers (persistent ones too). */
  async close(): Promise<void> {
    await Promise.all([...this.open].map((o) => o.close()));
    const pool = this.pool;
    this.pool = undefined;
    await pool?.terminate();
  }

  /**
   * The batches of one epoch, prepared ahead. Breaking out of `for await` ends the iteration and its workers
   * (persistent workers only stop building its batches; an error ends them too).
   */
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
    const count = Math.min(this.workers, Math.max(0, total - startBatch));
    /** The workers of this iteration: the loader's persistent pool, or a pool of its own (ended with it). */
    let pool: WorkerPool | undefined;
    let own = false;
    const ready = new Map<number, Batch>();
    const failed = new Map<number, Error>();
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
      while (pool && !pool.failure && failed.size === 0 && nextAssign < total && nextAssign - nextTake < cap) {
        const k = pool.leastBusy();
        if (k < 0) return;
        pool.make(k, epoch, nextAssign++);
      }
    };
    const start = async () => {
      if (count === 0) return;
      if (this.source.kind === 'lazy') await prepareLazy(this.source, count, this.config.decodeConcurrency);
      // (synchronous from here: two iterations starting at once cannot both take the persistent pool)
      if (this.persistentWorkers && this.pool?.failure) {
        void this.pool.terminate();
        this.pool = undefined;
      }
      if (this.persistentWorkers && !this.pool?.busy) pool = this.pool ??= new WorkerPool(this.source, this.config, this.st);
      else {
        pool = new WorkerPool(this.source, this.config, this.st); // (a second iteration at once gets workers of its own)
        own = true;
      }
      pool.grow(count);
      pool.attach((m) => {
        if (m.type === 'batch') {
          this.st.producedMs += m.producedMs!;
          ready.set(m.b, m.batch!);
        } else if (m.type === 'error') failed.set(m.b, toError(m as { name: string; message: string; file?: string }));
      }, () => {
        assign();
        notify();
      });
      assign();
    };
    const take = async (): Promise<IteratorResult<Batch>> => {
      if (nextTake >= total || !pool) return { done: true, value: undefined };
      // The batches come out in order; an error surfaces when the consumer reaches its batch (the batches
      // before it are delivered first), or at once when a worker died.
      while (!ready.has(nextTake) && !failed.has(nextTake) && !pool.failure) {
        pool.ref();
        try {
          await new Promise<void>((r) => (wake = r));
        } finally {
          pool.unref();
        }
      }
      const batch = ready.get(nextTake);
      if (batch) {
        ready.delete(nextTake++);
        assign();
        return { done: false, value: batch };
      }
      throw failed.get(nextTake) ?? pool.failure!;
    };
    const stop = async () => {
      nextAssign = total;
      ready.clear();
      const p = pool;
      pool = undefined;
      if (!p) return;
      // A persistent pool outlives the iteration (batches still being built for it are dropped), unless the
      // iteration failed: then its workers end with it, as non-persistent ones always do.
      if (own || p.failure || failed.size > 0) {
        if (p === this.pool) this.pool = undefined;
        await p.terminate();
      } else p.detach();
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
