// Small helpers shared by the readers.
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataError } from './errors.js';

/** A zeroed Uint8Array on a SharedArrayBuffer, so loader workers can read it without a copy. */
export function allocShared(bytes: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(bytes));
}

/** Reads a file, gunzipping it when its name ends in .gz or it starts with the gzip magic. */
export function readMaybeGzip(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (e) {
    throw new DataError(`cannot read file (${(e as Error).message})`, file, { cause: e });
  }
  const gz = file.endsWith('.gz') || (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b);
  if (!gz) return raw;
  try {
    return gunzipSync(raw);
  } catch (e) {
    throw new DataError(`not a valid gzip file, or truncated (${(e as Error).message})`, file, { cause: e });
  }
}

/** The first of the candidate paths that exists, or undefined. */
export function firstExisting(paths: string[]): string | undefined {
  return paths.find((p) => existsSync(p));
}

/**
 * Runs fn over items with at most `limit` calls in flight; results keep the items' order. On failure no further
 * items start, and after the calls in flight settle the error of the lowest-index failing item is thrown, so the
 * error a user sees does not depend on timing (every item before it was started and succeeded).
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failedAt = Infinity;
  let failure: unknown;
  const lanes = Math.max(1, Math.min(limit, items.length));
  const run = async () => {
    while (next < items.length && next < failedAt) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        if (i < failedAt) {
          failedAt = i;
          failure = e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, run));
  if (failedAt !== Infinity) throw failure;
  return out;
}

/**
 * Resolves after the event loop has had a turn (setImmediate): signal handlers, timers and I/O callbacks that
 * arrived meanwhile run first. A long synchronous stretch (training steps, attack batches) awaits it between
 * pieces; an already resolved promise would not do, its continuation runs before the event loop gets a turn.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
