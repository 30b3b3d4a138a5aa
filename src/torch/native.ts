// Loads the native addon (build/Release/freeadv.node) and describes its functions. Nothing above src/torch
// imports this file: the rest of freeadv talks to libtorch only through the typed Tensor API.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An opaque handle owning one libtorch tensor. */
export type Handle = { readonly __handle: unique symbol };

export interface MemoryStats {
  /** Bytes handed out by the caching CPU allocator and not yet freed. */
  allocated: number;
  /** Bytes held in the allocator's free lists, ready for reuse. */
  cached: number;
  /** Highest `allocated` since start or the last resetPeakMemory(). */
  peak: number;
  hits: number;
  misses: number;
  /** The most bytes the free lists may hold. */
  cap: number;
}

import type { JpegOptions, JpegPixels } from './jpeg.js';

export interface Native {
  resolve(name: string, overload: string): [id: number, argNames: string[], nreturns: number];
  call(id: number, ...args: unknown[]): unknown;
  callVoid(id: number, ...args: unknown[]): void;
  dispose(h: Handle): void;
  isDisposed(h: Handle): boolean;
  /** pinned: into page-locked host memory (CUDA builds with a GPU), for non-blocking copies to the GPU. */
  fromBuffer(data: ArrayBufferView | ArrayBuffer, shape: number[], dtype: number, pinned?: boolean): Handle;
  toBuffer(h: Handle): ArrayBuffer;
  shape(h: Handle): number[];
  strides(h: Handle): number[];
  dtype(h: Handle): number;
  device(h: Handle): string;
  numel(h: Handle): number;
  dim(h: Handle): number;
  isContiguous(h: Handle, memoryFormat?: number): boolean;
  item(h: Handle): number;
  sameStorage(a: Handle, b: Handle): boolean;
  requiresGrad(h: Handle): boolean;
  setRequiresGrad(h: Handle, on: boolean): void;
  isLeaf(h: Handle): boolean;
  getGrad(h: Handle): Handle | undefined;
  setGrad(h: Handle, g: Handle | undefined): void;
  backward(outputs: Handle[], grads: (Handle | undefined)[] | undefined, retainGraph: boolean, createGraph: boolean): void;
  grad(outputs: Handle[], inputs: Handle[], grads: (Handle | undefined)[] | undefined, retain: boolean, create: boolean, allowUnused: boolean): (Handle | null)[];
  isGradEnabled(): boolean;
  setGradEnabled(on: boolean): void;
  enterInferenceMode(): number;
  exitInferenceMode(): number;
  isInferenceMode(): boolean;
  /** Autocast state of a device type ('cpu' or 'cuda'): [enabled, c10 ScalarType code]. */
  getAutocast(deviceType: string): [boolean, number];
  setAutocast(deviceType: string, enabled: boolean, dtype: number): void;
  /** Autocast nesting, as Python's torch.autocast counts it; the exit to 0 clears the cast-weight cache. */
  autocastEnter(): number;
  autocastExit(): number;
  manualSeed(seed: number): void;
  /** device: 'cpu' (default) or a GPU's ('cuda:N'; 'cuda' the current one): libtorch has a generator per device. */
  getRngState(device?: string): Handle;
  setRngState(h: Handle, device?: string): void;
  setNumThreads(n: number): void;
  setOneDnnEnabled(on: boolean): void;
  oneDnnEnabled(): boolean;
  getNumThreads(): number;
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  /** Whether the addon was built against a CUDA libtorch. */
  cudaBuilt(): boolean;
  liveTensors(): number;
  finalizedTensors(): number;
  memoryStats(): MemoryStats;
  emptyCache(): void;
  setCacheLimit(bytes: number): void;
  resetPeakMemory(): void;
  version(): { torch: string; parallel: string; config: string };
  /** Whether the addon was built with c10d's Gloo process group. */
  distAvailable(): boolean;
  /** Whether it also has c10d's ProcessGroupNCCL (built against a CUDA libtorch with NCCL). */
  ncclAvailable(): boolean;
  /** storeFile: a FileStore rendezvous (one machine), else rank 0 serves freeadv's TCP store on host (token: the job's); cudaDevice >= 0: a ProcessGroupNCCL on that GPU (builds with NCCL), else ProcessGroupGloo. */
  distInit?(host: string, port: number, rank: number, worldSize: number, timeoutMs: number, ifname?: string, storeFile?: string, cudaDevice?: number, token?: string): void;
  distInfo?(): { rank: number; worldSize: number; backend: string; timeoutMs: number } | undefined;
  distAllReduce?(tensors: Handle[], op: number): void;
  distBroadcast?(tensors: Handle[], root: number): void;
  distAllGather?(tensor: Handle[]): Handle[];
  distBarrier?(): void;
  distDestroy?(): void;
  distStore?(op: string, ...args: unknown[]): unknown;
  distReducerNew?(params: Handle[], bucketBytes: number, firstBucketBytes: number, findUnused: boolean): Handle;
  distReducerPrepare?(reducer: Handle, outputs: Handle[]): void;
  distReducerStatus?(reducer: Handle): { armed: boolean; failure: string | null; tailMs: number };
  distReducerBuckets?(reducer: Handle): number[][];
  distReducerFree?(reducer: Handle): void;
  /** Arms (clearing the flag) or disarms the watcher of SIGINT/SIGTERM (interrupt.cc); absent in older builds. */
  interruptArm?(on: boolean): void;
  /** The number of the first SIGINT/SIGTERM since arming, or 0. */
  interruptPending?(): number;
  /** native/jpeg.cc: callable from any thread; the decoder only where the addon was built with libjpeg's headers. */
  jpegDecode?(bytes: Uint8Array, opts: JpegOptions): JpegPixels;
  jpegDecodeAsync?(bytes: Uint8Array, opts: JpegOptions): Promise<JpegPixels>;
  resizeRgb(pixels: Uint8Array, w: number, h: number, opts: JpegOptions): { data: Buffer; w: number; h: number };
}

function findAddon(): string {
  // FREEADV_ADDON selects another build (e.g. one against a CUDA libtorch: `node scripts/build-native.js --out DIR`)
  const chosen = process.env.FREEADV_ADDON;
  if (chosen) {
    if (!existsSync(chosen)) throw new Error(`freeadv: FREEADV_ADDON=${chosen}: no such file (the native addon to load)`);
    return chosen;
  }
  // dist/src/torch/native.js and src/torch/native.ts both sit three or two levels below the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', 'freeadv.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error(
    'freeadv: the native addon build/Release/freeadv.node is missing; run `npm run build:native` ' +
      '(needs Debian\'s libtorch-dev, or LIBTORCH=<dir>)',
  );
}

// libgomp, libtorch's OpenMP runtime, reads its wait policy once, when loading the addon loads it. Its default
// lets idle intra-op threads spin between parallel regions; on a small shared machine that spinning takes the
// cores from the data loader's thread and V8's, and steps stall. Which policy is faster depends on the model
// (BENCHMARKS.md). A value set by the user wins.
if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'passive';
export const native: Native = createRequire(import.meta.url)(findAddon()) as Native;
