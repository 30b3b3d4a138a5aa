// Process groups over libtorch's c10d: a TCP rendezvous (freeadv's store, native/store.cc) or a FileStore, and ProcessGroupGloo (CPU tensors) or,
// on GPUs, ProcessGroupNCCL (CUDA tensors), the engine
// PyTorch's torch.distributed uses. One group per process. Collectives block the calling (main) thread until
// every rank has taken part or the group's timeout passes; a dead or hung peer becomes a DistError. Gradients
// are averaged either after backward (GradAverager) or during it (OverlappedGradAverager, c10d's Reducer).
//
// The launch contract is torchrun's: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK; or, for ranks on one
// machine, FREEADV_STORE_FILE instead of MASTER_ADDR/MASTER_PORT: a file rendezvous, nothing listening on the network.
// Over TCP, rank 0 serves the rendezvous on MASTER_ADDR only and admits the ranks that give the job's token,
// FREEADV_RENDEZVOUS_TOKEN (the launcher makes one per job; unset: the empty token).
import { native, type Handle } from './native.js';
import { Tensor } from './tensor.js';
import { TorchError } from './errors.js';
import { cat, fromTypedArray } from './factory.js';
import { noGrad } from './autograd.js';
import { scope } from './scope.js';

/** A collective failed: a peer died, hung past the timeout, or could not be reached. */
export class DistError extends TorchError {
  override name = 'DistError';
}

/** This process's place in a data-parallel job. */
export interface Rank {
  rank: number;
  worldSize: number;
}

export interface Rendezvous {
  masterAddr: string;
  masterPort: number;
  /** A c10d FileStore instead of rank 0's TCP rendezvous (ranks on one machine; the address and port are then unused). */
  storeFile?: string;
  /** The job's secret for the TCP rendezvous (FREEADV_RENDEZVOUS_TOKEN): rank 0 admits only ranks that give it. */
  token?: string;
  rank: number;
  worldSize: number;
  localRank: number;
}

export interface InitOptions extends Rendezvous {
  /** Timeout of the rendezvous and of every collective, in milliseconds. */
  timeoutMs: number;
  /** Network interface for Gloo (default: $GLOO_SOCKET_IFNAME, else loopback for a loopback master, else the host name's address). */
  ifname?: string;
  /**
   * A GPU index: the group is a ProcessGroupNCCL on cuda:N (collectives take CUDA tensors), as PyTorch DDP on
   * GPUs; needs ncclAvailable(). Default: ProcessGroupGloo (CPU tensors).
   */
  cudaDevice?: number;
}

export interface GroupInfo {
  rank: number;
  worldSize: number;
  backend: string;
  timeoutMs: number;
}

/** Whether this build of the addon has c10d process groups (Gloo). */
/** Why there are no process groups, and what to do: the addon was compiled without gloo's headers. */
export const UNAVAILABLE =
  'this build of the native addon has no c10d/Gloo (it was compiled without gloo\'s headers): install libgloo-dev, or set FREEADV_GLOO_INCLUDE to a folder holding gloo/, and run `npm run build:native`';

export function available(): boolean {
  return native.distAvailable();
}

/** Whether it also has c10d's ProcessGroupNCCL (built against a CUDA libtorch that ships NCCL). */
export function ncclAvailable(): boolean {
  return native.ncclAvailable();
}

/** Where this process's collectives take their tensors: its GPU with NCCL, else the CPU. */
let collectiveDevice = 'cpu';

/** Whether it also has c10d's Reducer for OverlappedGradAverager (builds against libtorch 1.x). */
export function overlapAvailable(): boolean {
  return native.distReducerNew !== undefined;
}

function need<K extends keyof typeof native>(k: K): NonNullable<(typeof native)[K]> {
  const f = native[k];
  if (!f) {
    if (k.startsWith('distReducer') && native.distAvailable()) throw new DistError('this build of the native addon has no c10d Reducer (it is built against libtorch 1.x only): average gradients after backward with GradAverager');
    throw new DistError(UNAVAILABLE);
  }
  return f as NonNullable<(typeof native)[K]>;
}

function wrapErr<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Error && (e.name === 'TorchError' || e instanceof TorchError)) throw new DistError(`${what}: ${e.message}`);
    throw e;
  }
}

/**
 * Reads torchrun's environment variables. Returns undefined when WORLD_SIZE and RANK are both unset (a plain
 * single process). Throws a RangeError naming the variable when one is malformed.
 */
export function rendezvousFromEnv(env: NodeJS.ProcessEnv = process.env): Rendezvous | undefined {
  if (env.WORLD_SIZE === undefined && env.RANK === undefined) return undefined;
  const int = (name: string, dflt?: number): number => {
    const v = env[name];
    if (v === undefined || v === '') {
      if (dflt !== undefined) return dflt;
      throw new RangeError(`environment variable ${name} is required when RANK or WORLD_SIZE is set (torchrun contract)`);
    }
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`environment variable ${name} must be a non-negative integer, got '${v}'`);
    return n;
  };
  const worldSize = int('WORLD_SIZE');
  const rank = int('RANK');
  if (worldSize < 1) throw new RangeError(`environment variable WORLD_SIZE must be >= 1, got ${worldSize}`);
  if (rank >= worldSize) throw new RangeError(`environment variable RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const storeFile = env.FREEADV_STORE_FILE || undefined;
  const masterPort = int('MASTER_PORT', worldSize === 1 || storeFile ? 29500 : undefined);
  if (masterPort < 1 || masterPort > 65535) throw new RangeError(`environment variable MASTER_PORT must be in [1, 65535], got ${masterPort}`);
  const token = env.FREEADV_RENDEZVOUS_TOKEN || undefined;
  if (token && Buffer.byteLength(token) > 256) throw new RangeError('environment variable FREEADV_RENDEZVOUS_TOKEN must be at most 256 bytes');
  return { masterAddr: env.MASTER_ADDR || '127.0.0.1', masterPort, ...(storeFile && { storeFile }), ...(token && { token }), rank, worldSize, localRank: int('LOCAL_RANK', rank) };
}

/** Joins the process group (blocks until all WORLD_SIZE ranks have joined, or throws DistError after the timeout). */
export function init(o: InitOptions): GroupInfo {
  const f = need('distInit');
  if (o.cudaDevice !== undefined && !native.ncclAvailable()) throw new DistError('this build of the native addon has no NCCL: build it against a CUDA PyTorch (bash scripts/build-pip-torch.sh)');
  wrapErr(`joining the process group ${o.storeFile ? `through ${o.storeFile}` : `at ${o.masterAddr}:${o.masterPort}`} as rank ${o.rank} of ${o.worldSize}`, () =>
    f(o.masterAddr, o.masterPort, o.rank, o.worldSize, Math.max(1, Math.round(o.timeoutMs)), o.ifname ?? process.env.GLOO_SOCKET_IFNAME, o.storeFile, o.cudaDevice ?? -1, o.token ?? ''),
  );
  collectiveDevice = o.cudaDevice !== undefined ? `cuda:${o.cudaDevice}` : 'cpu';
  return info()!;
}

/**
 * The group's rendezvous store (for tests and diagnosis): what c10d's Store does, with string values. `wait` throws
 * a DistError naming the keys after timeoutMs.
 */
export const store = {
  set: (key: string, value: string): void => void wrapErr('store set', () => need('distStore')('set', key, value)),
  get: (key: string): string => wrapErr('store get', () => need('distStore')('get', key) as string),
  add: (key: string, n: number): number => wrapErr('store add', () => need('distStore')('add', key, n) as number),
  compareSet: (key: string, expected: string, desired: string): string => wrapErr('store compareSet', () => need('distStore')('compareSet', key, expected, desired) as string),
  check: (keys: string[]): boolean => wrapErr('store check', () => need('distStore')('check', keys) as boolean),
  wait: (keys: string[], timeoutMs: number): void => void wrapErr('store wait', () => need('distStore')('wait', keys, timeoutMs)),
  deleteKey: (key: string): boolean => wrapErr('store deleteKey', () => need('distStore')('deleteKey', key) as boolean),
  numKeys: (): number => wrapErr('store numKeys', () => need('distStore')('numKeys') as number),
};

/** The group this process belongs to, or undefined. */
export function info(): GroupInfo | undefined {
  return native.distInfo?.();
}

const handles = (ts: Tensor[]): Handle[] => ts.map((t) => t.handle);

export type ReduceOp = 'sum' | 'max' | 'min';
const OPS: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2 };

/** In-place all-reduce of each tensor (all issued at once, then waited for). Tensors must be contiguous. */
export function allReduce(tensors: Tensor[], op: ReduceOp = 'sum'): void {
  const f = need('distAllReduce');
  wrapErr('allReduce', () => f(handles(tensors), OPS[op]));
}

/** In-place broadcast of each tensor from `root`. */
export function broadcast(tensors: Tensor[], root = 0): void {
  const f = need('distBroadcast');
  wrapErr('broadcast', () => f(handles(tensors), root));
}

/** Every rank's copy of `t`, in rank order. */
export function allGather(t: Tensor): Tensor[] {
  const f = need('distAllGather');
  return wrapErr('allGather', () => f([t.handle])).map((h) => new Tensor(h));
}

export function barrier(): void {
  const f = need('distBarrier');
  wrapErr('barrier', () => f());
}

/** Leaves the group. Call on every rank (after a barrier) at the end of a successful run. */
export function destroy(): void {
  native.distDestroy?.();
  collectiveDevice = 'cpu';
}

/** Sums plain numbers across ranks (as float64). */
export function allReduceNumbers(values: number[], op: ReduceOp = 'sum'): number[] {
  return scope(() => {
    const t = fromTypedArray(Float64Array.from(values), [values.length], 'float64', collectiveDevice);
    allReduce([t], op);
    return Array.from(t.toTypedArray() as Float64Array);
  });
}

/**
 * Averages gradients across ranks like PyTorch DDP: grads are packed into flat buckets of about `bucketBytes`
 * (parameters in reverse order, as DDP does, since their gradients are ready first), the buckets are all-reduced
 * (all in flight at once), divided by the world size and copied back. Parameters without a gradient take part
 * with zeros so that every rank issues the same collectives.
 */
export class GradAverager {
  readonly buckets: Tensor[][];
  readonly bytesPerStep: number;
  /** Seconds spent in all-reduce (pack, communicate, unpack) since construction. */
  seconds = 0;
  calls = 0;

  constructor(readonly params: Tensor[], readonly worldSize: number, bucketBytes = 25 * 2 ** 20) {
    const buckets: Tensor[][] = [];
    let cur: Tensor[] = [];
    let bytes = 0;
    let total = 0;
    for (const p of [...params].reverse()) {
      const b = p.numel * 4;
      if (cur.length && bytes + b > bucketBytes) {
        buckets.push(cur);
        cur = [];
        bytes = 0;
      }
      cur.push(p);
      bytes += b;
      total += b;
    }
    if (cur.length) buckets.push(cur);
    this.buckets = buckets;
    this.bytesPerStep = total;
  }

  /** After backward(): every parameter's .grad becomes the mean over ranks. */
  average(): void {
    if (this.worldSize === 1) return;
    const t0 = performance.now();
    scope(() =>
      noGrad(() => {
        const flats = this.buckets.map((ps) => cat(ps.map((p) => (p.grad ?? p.detach().mul(0)).detach().reshape(-1))));
        allReduce(flats, 'sum');
        this.buckets.forEach((ps, i) => {
          const flat = flats[i]!.div_(this.worldSize);
          let off = 0;
          for (const p of ps) {
            const n = p.numel;
            const g = flat.narrow(0, off, n).view(...p.shape);
            if (p.grad) p.grad.copy_(g);
            else p.grad = g.clone();
            off += n;
          }
        });
      }),
    );
    this.seconds += (performance.now() - t0) / 1000;
    this.calls++;
  }
}

export interface OverlapOptions {
  /** Most bytes per bucket (default 25 MiB, DDP's default). */
  bucketBytes?: number;
  /**
   * Most bytes of the first bucket once the buckets are re-formed after the first step (default: 1 MiB with the
   * default bucketBytes, else bucketBytes; DDP's rule). A small first bucket starts communicating early.
   */
  firstBucketBytes?: number;
  /**
   * Allow parameters that get no gradient in a step (DDP's find_unused_parameters), at the cost of one walk of the
   * autograd graph and one small all-reduce per step. A parameter unused on every rank keeps .grad undefined, as
   * with one process; one used on some ranks gets the mean with zeros for the others. Without it such a step is
   * refused with a DistError.
   */
  findUnusedParameters?: boolean;
  /** Parameter names, for error messages (default: their indices). */
  names?: string[];
}

export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

/**
 * Averages gradients across ranks while the backward pass runs, with c10d's Reducer (the engine under PyTorch's
 * DistributedDataParallel): a gradient is copied into its bucket as soon as autograd has accumulated it, and a
 * full bucket is all-reduced in the background while backward goes on; the end of backward waits for the last
 * buckets and writes the means into .grad. Buckets start as the parameters in reverse order (their gradients come
 * first), at most `bucketBytes` each; after the first step they are re-formed in the order the gradients arrived.
 *
 *   avg.prepare([loss]); loss.backward(); avg.finish();      // or: avg.backward(loss)
 *
 * Every rank must make the same calls. Only a backward pass between prepare() and finish() is reduced: other
 * backward passes (attack steps, autograd.grad w.r.t. inputs) leave gradients per rank, and gradients of inputs
 * (free training's δ) are never reduced. A failed or timed-out all-reduce becomes a DistError.
 */
export class OverlappedGradAverager {
  readonly bytesPerStep: number;
  /**
   * Seconds, summed over steps, from the start of the last bucket's all-reduce to the end of backward: the part
   * of the communication not hidden behind the backward pass (the rest of GradAverager.seconds' work is).
   */
  seconds = 0;
  calls = 0;
  private handle: Handle | undefined;
  private readonly names: string[];

  constructor(readonly params: Tensor[], opts: OverlapOptions = {}) {
    const f = need('distReducerNew');
    const bucketBytes = opts.bucketBytes ?? DEFAULT_BUCKET_BYTES;
    const first = opts.firstBucketBytes ?? (opts.bucketBytes === undefined ? 2 ** 20 : bucketBytes);
    if (!(bucketBytes >= 1) || !(first >= 1)) throw new RangeError(`bucket sizes must be at least 1 byte, got ${bucketBytes} and ${first}`);
    this.names = opts.names ?? params.map((_, i) => `#${i}`);
    this.handle = wrapErr('creating the gradient reducer', () => f(handles(params), Math.round(bucketBytes), Math.round(first), opts.findUnusedParameters ?? false));
    this.bytesPerStep = params.reduce((s, p) => s + p.numel * 4, 0);
  }

  private get h(): Handle {
    if (!this.handle) throw new DistError('the gradient averager was disposed');
    return this.handle;
  }

  /** Parameter indices of each bucket, in the order the buckets are all-reduced. */
  get buckets(): number[][] {
    return need('distReducerBuckets')(this.h);
  }

  /** Arms the reducer for the next backward pass, which must start from `outputs` (e.g. [loss]). */
  prepare(outputs: Tensor[]): void {
    const f = need('distReducerPrepare');
    const h = this.h;
    wrapErr('preparing the gradient all-reduce', () => f(h, handles(outputs)));
  }

  /** After the armed backward pass: checks that every bucket was all-reduced (the .grad means are then in place). */
  finish(): void {
    const s = need('distReducerStatus')(this.h);
    if (s.failure) throw new DistError(s.failure);
    if (s.armed) {
      const missing = scope(() => this.params.flatMap((p, i) => (p.grad ? [] : [this.names[i]!])));
      throw new DistError(
        `gradient all-reduce: ${missing.length ? `parameter(s) ${missing.join(', ')} got` : 'some parameters got'} no gradient in this backward pass, so their buckets were never all-reduced; every parameter must take part in every step (or pass findUnusedParameters: true)`,
      );
    }
    if (s.tailMs >= 0) this.seconds += s.tailMs / 1000;
    this.calls++;
  }

  /** prepare([loss]), loss.backward(), finish(); a failed all-reduce inside backward becomes a DistError. */
  backward(loss: Tensor): void {
    this.prepare([loss]);
    try {
      loss.backward();
    } catch (e) {
      const s = this.handle && need('distReducerStatus')(this.handle);
      if (s?.failure) throw new DistError(s.failure);
      throw e;
    }
    this.finish();
  }

  /** Removes the reducer's hooks from the parameters. */
  dispose(): void {
    if (this.handle) native.distReducerFree?.(this.handle);
    this.handle = undefined;
  }
}
