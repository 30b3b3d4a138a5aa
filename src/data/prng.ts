// A small deterministic PRNG for shuffling and augmentation. Streams are derived from (seed, epoch, batch,
// purpose) by hashing, so any batch of any epoch can be reproduced without replaying the ones before it
// (which is what resuming mid-epoch needs).

/** murmur3's 32-bit finaliser: a good avalanche mix of one 32-bit word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a list of integers (each taken modulo 2^32; numbers up to 2^53 keep their high bits) to a 32-bit seed. */
export function hashSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = fmix32((h ^ lo) + 0x7f4a7c15);
    h = fmix32((h ^ hi) + 0x165667b1);
  }
  return h;
}

/** mulberry32: 32 bits of state, period 2^32, good enough statistical quality for shuffling and augmentation. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A uniform float in [0, 1) with 53 bits of resolution. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
  /** A uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
}

/** Stream purposes, so the shuffle and augmentation streams of the same (seed, epoch) never coincide. */
export const STREAM_SHUFFLE = 1;
export const STREAM_AUGMENT = 2;

/** A seeded permutation of 0..n-1 (Fisher-Yates). Same (seed, epoch) → same order. */
export function permutation(n: number, seed: number, epoch: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const rng = new Rng(hashSeed(seed, epoch, STREAM_SHUFFLE));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** The augmentation stream of one batch. */
export function batchRng(seed: number, epoch: number, batch: number): Rng {
  return new Rng(hashSeed(seed, epoch, batch, STREAM_AUGMENT));
}
