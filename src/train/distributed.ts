// Data-parallel training helpers for the shared loop (loop.ts): what changes when several processes train one
// model over c10d (src/torch/dist.ts). Each rank trains on its shard of every epoch with batch B/N; gradients
// are averaged in every SGD step's backward pass (overlapped with it, or after it: gradSyncFromEnv); weights
// start identical (broadcast from rank 0); rank 0 alone writes files. Per-sample state of a method (free
// training's δ, one row per batch position) is kept per rank for the rank's positions and gathered into the
// single-process layout for checkpoints, so a checkpoint does not depend on the number of processes.
import { Tensor, dist, noGrad, scope, cat, stack, cuda } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { ConfigError } from '../options/index.js';

export const isRoot = (d: dist.Rank | undefined): boolean => !d || d.rank === 0;

/**
 * Why processes of one machine cannot train together on `device` (undefined when they can): on CUDA, as PyTorch
 * DDP, every process needs a GPU of its own and gradients go through NCCL, which this build must have.
 */
export function jobDeviceProblem(device: string, processesPerNode: number): { option: string; why: string } | undefined {
  if (!device.startsWith('cuda')) return undefined;
  if (!dist.ncclAvailable())
    return { option: 'device', why: `${device} with several processes needs NCCL (c10d's ProcessGroupNCCL), which this build of the native addon lacks: build it against a CUDA PyTorch (bash scripts/build-pip-torch.sh), or train on --device cpu` };
  if (device !== 'cuda') return { option: 'device', why: `${device} would put every process on one GPU (NCCL refuses that); use --device cuda: process i trains on cuda:LOCAL_RANK` };
  const n = cuda.deviceCount();
  if (processesPerNode > n) return { option: 'nproc', why: `${processesPerNode} processes per machine on --device cuda need ${processesPerNode} GPUs; this machine has ${n}` };
  return undefined;
}

/**
 * Joins the job a launcher (freeadv's own, torchrun, SLURM …) started this process in: the c10d process group
 * with the given timeout for every collective — NCCL on the rank's GPU when it trains on CUDA, else Gloo.
 * Returns this process's rank.
 */
export function joinJob(rdv: dist.Rendezvous, timeoutS: number, device = 'cpu'): dist.Rank {
  if (!dist.available()) throw new ConfigError('nproc', dist.UNAVAILABLE);
  const bad = jobDeviceProblem(device, rdv.localRank + 1);
  if (bad) throw new ConfigError(bad.option, bad.why);
  dist.init({ ...rdv, timeoutMs: timeoutS * 1000, ...(device.startsWith('cuda') && { cudaDevice: rdv.localRank }) });
  return { rank: rdv.rank, worldSize: rdv.worldSize };
}

/** The device a rank trains on: `cuda` means one GPU per local rank (cuda:LOCAL_RANK), as torchrun users expect. */
export function rankDevice(device: string, localRank: number): string {
  return device === 'cuda' ? `cuda:${localRank}` : device;
}

/** Copies rank 0's values of `tensors` into every rank's (any dtype and memory layout). */
export function broadcastTensors(tensors: Tensor[]): void {
  const byType = new Map<string, Tensor[]>();
  for (const t of tensors) {
    const k = `${t.dtype}@${t.device}`;
    byType.set(k, [...(byType.get(k) ?? []), t]);
  }
  scope(() =>
    noGrad(() => {
      const groups = [...byType.values()];
      const flats = groups.map((ts) => cat(ts.map((t) => t.detach().reshape(-1))));
      dist.broadcast(flats, 0);
      groups.forEach((ts, i) => {
        let off = 0;
        for (const t of ts) {
          t.copy_(flats[i]!.narrow(0, off, t.numel).view(...t.shape));
          off += t.numel;
        }
      });
    }),
  );
}

/** Rank 0's parameters and buffers everywhere. */
export function broadcastModule(model: Module): void {
  broadcastTensors([...model.parameters(), ...model.namedBuffers().map(([, t]) => t)]);
}

/**
 * Local per-position state [b, ...] of every rank → the single-process layout [b·N, ...]: rank r's row j is
 * global batch position j·N + r (DistributedSampler's striding within a batch).
 */
export function gatherRows(t: Tensor, d: dist.Rank): Tensor {
  return scope(() => {
    const parts = dist.allGather(t.contiguous());
    const s = stack(parts, 1); // [b, N, ...]
    return s.reshape(t.size(0) * d.worldSize, ...t.shape.slice(1));
  });
}

/** The inverse of gatherRows for one rank: rows rank, rank+N, ... of a global [B, ...] tensor. */
export function localRows(global: Tensor, d: dist.Rank): Tensor {
  return scope(() => {
    const b = global.size(0) / d.worldSize;
    return global.reshape(b, d.worldSize, ...global.shape.slice(1)).select(1, d.rank).contiguous();
  });
}

/** True on every rank if it is true on any rank. */
export function any(flag: boolean): boolean {
  return dist.allReduceNumbers([flag ? 1 : 0], 'max')[0]! > 0;
}

export interface GradSync {
  /** overlap: all-reduce buckets during backward (c10d's Reducer); after-backward: bucket and all-reduce after it. */
  mode: 'overlap' | 'after-backward';
  /** Bucket size cap in bytes (undefined: each averager's default, 25 MiB). */
  bucketBytes?: number;
}

/**
 * How gradients are averaged, from the environment (every rank inherits the launcher's):
 * FREEADV_GRAD_SYNC=overlap (default where the addon has c10d's Reducer, else after-backward) | after-backward,
 * FREEADV_BUCKET_MB=<MiB per bucket> (default 25). Both modes give the same gradients; only when the
 * communication happens differs.
 */
export function gradSyncFromEnv(env: NodeJS.ProcessEnv = process.env, canOverlap = dist.overlapAvailable()): GradSync {
  const mode = env.FREEADV_GRAD_SYNC || (canOverlap ? 'overlap' : 'after-backward');
  if (mode !== 'overlap' && mode !== 'after-backward') throw new RangeError(`environment variable FREEADV_GRAD_SYNC must be 'overlap' or 'after-backward', got '${mode}'`);
  if (mode === 'overlap' && !canOverlap) throw new RangeError('environment variable FREEADV_GRAD_SYNC=overlap: this build of the native addon has no c10d Reducer (built against libtorch 1.x only); use after-backward');
  const mb = env.FREEADV_BUCKET_MB;
  if (mb === undefined || mb === '') return { mode };
  const n = Number(mb);
  if (!(n > 0) || !Number.isFinite(n)) throw new RangeError(`environment variable FREEADV_BUCKET_MB must be a number of MiB > 0, got '${mb}'`);
  return { mode, bucketBytes: Math.max(1, Math.round(n * 2 ** 20)) };
}

/** How every SGD step's backward pass averages gradients across the ranks of a job. */
export interface GradientSync {
  /** loss.backward(), with the gradients averaged across ranks when it returns. */
  backward(loss: Tensor): void;
  /** For the summary: how gradients were averaged and what it cost (undefined with one process). */
  stats(): { grad_sync: GradSync['mode']; buckets: number; allreduce_bytes_per_step: number; allreduce_ms_per_step: number } | undefined;
  dispose(): void;
}

/** The gradient averaging of a job: none for one process, else as FREEADV_GRAD_SYNC says (gradSyncFromEnv). */
export function gradientSync(model: Module, group: dist.Rank | undefined): GradientSync {
  if (!group || group.worldSize <= 1) return { backward: (loss) => loss.backward(), stats: () => undefined, dispose: () => undefined };
  const sync = gradSyncFromEnv();
  let buckets = 0;
  if (sync.mode === 'overlap') {
    const avg = new dist.OverlappedGradAverager(model.parameters(), { bucketBytes: sync.bucketBytes, names: model.namedParameters().map(([k]) => k) });
    const stats = () => ({ grad_sync: sync.mode, buckets: buckets || avg.buckets.length, allreduce_bytes_per_step: avg.bytesPerStep, allreduce_ms_per_step: (avg.seconds * 1000) / Math.max(1, avg.calls) });
    return {
      backward: (loss) => avg.backward(loss),
      stats,
      dispose: () => {
        buckets = avg.buckets.length;
        avg.dispose(); // removes its hooks from the parameters
      },
    };
  }
  const avg = new dist.GradAverager(model.parameters(), group.worldSize, sync.bucketBytes);
  return {
    backward: (loss) => {
      loss.backward();
      avg.average();
    },
    stats: () => ({ grad_sync: sync.mode, buckets: avg.buckets.length, allreduce_bytes_per_step: avg.bytesPerStep, allreduce_ms_per_step: (avg.seconds * 1000) / Math.max(1, avg.calls) }),
    dispose: () => undefined,
  };
}
