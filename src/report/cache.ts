// The report's cache in a run folder (report-cache.json): analysis results keyed by what they depend on (the
// kind of result, its options, and the checkpoint's size and modification time), so that re-rendering a report
// is instant and a new checkpoint is never paired with stale results. Entries are checked against their schema
// when read (report.ts): one that does not fit is not used, with a warning naming the file and the field.
// Reports may run at once on the same run: each new entry is added under a lock (report-cache.json.lock, the
// run folder's lock machinery), so that none is lost; reading needs no lock (writes are atomic).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeJsonAtomic } from '../io/index.js';
import { check, quote, SchemaError, type Schema } from '../options/index.js';
import { LockFile } from '../train/index.js';

export const CACHE_FILE = 'report-cache.json';
export const CACHE_LOCK = 'report-cache.json.lock';
const FORMAT = 1;
/** How long a report waits for another one to add its entry (a few milliseconds) before it leaves its own out. */
const LOCK_WAIT_MS = 30_000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

interface CacheFile {
  format: number;
  entries: Record<string, unknown>;
}

/** The cache key of a result of `kind` with `options`, computed from the weights in `checkpoint`. */
export function cacheKey(kind: string, checkpoint: string, options: Record<string, unknown>): string {
  const stat = statSync(checkpoint);
  const sorted = Object.fromEntries(Object.entries(options).sort(([a], [b]) => (a < b ? -1 : 1)));
  return JSON.stringify({ kind, checkpoint: { file: basename(checkpoint), size: stat.size, mtimeMs: stat.mtimeMs }, ...sorted });
}

function read(dir: string): CacheFile {
  const p = join(dir, CACHE_FILE);
  if (!existsSync(p)) return { format: FORMAT, entries: {} };
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as CacheFile;
    if (v && v.format === FORMAT && typeof v.entries === 'object' && v.entries !== null) return v;
  } catch {
    // unreadable or torn: start afresh
  }
  return { format: FORMAT, entries: {} };
}

/** A cached value that fits `schema`, if any; an entry that does not is reported through `warn` and recomputed. */
export function cacheGet<T>(dir: string, key: string, schema: Schema, warn: (s: string) => void): T | undefined {
  const v = read(dir).entries[key];
  return v === undefined ? undefined : checked<T>(dir, key, v, schema, warn);
}

/** An entry checked against its schema (a run folder is something people hand each other). */
function checked<T>(dir: string, key: string, v: unknown, schema: Schema, warn: (s: string) => void): T | undefined {
  try {
    return check<T>(v, schema, `${join(dir, CACHE_FILE)}: entry ${quote(key)}`);
  } catch (e) {
    if (!(e instanceof SchemaError)) throw e;
    warn(`${e.message}; the entry is not used (recomputed)`);
    return undefined;
  }
}

/**
 * Stores a value (atomically, under the cache's lock: reports at once on the same run all keep their entries).
 * Entries of other checkpoints of the same file are dropped. A folder that cannot
 * be written is reported through `warn`, not thrown: the report itself does not need the cache.
 */
export function cachePut(dir: string, key: string, value: unknown, warn: (s: string) => void): void {
  withLock(dir, warn, () => put(dir, key, value, warn));
}

/** Runs fn holding the cache's lock, waiting for another report that holds it; gives up with a warning after LOCK_WAIT_MS. */
function withLock(dir: string, warn: (s: string) => void, fn: () => void): void {
  const p = join(dir, CACHE_LOCK);
  const lock = new LockFile(p, p);
  const t0 = Date.now();
  for (;;) {
    let busy;
    try {
      busy = lock.tryTake(warn);
    } catch (e) {
      warn(`could not write the report cache in ${dir}: ${(e as Error).message}`);
      return;
    }
    if (!busy) break;
    if (Date.now() - t0 > LOCK_WAIT_MS) {
      const h = busy.holder;
      warn(`the report cache in ${dir} stayed locked for ${LOCK_WAIT_MS / 1000} s (${h ? `by process ${h.pid} on ${h.host}, since ${h.started}` : `${p} is not a lock of freeadv`}); this result is not cached (remove ${p} if no report is running)`);
      return;
    }
    Atomics.wait(sleeper, 0, 0, 20); // the holder only reads and rewrites the file
  }
  try {
    fn();
  } finally {
    lock.release();
  }
}

function put(dir: string, key: string, value: unknown, warn: (s: string) => void): void {
  const c = read(dir);
  const ck = (JSON.parse(key) as { checkpoint: { file: string } }).checkpoint;
  for (const k of Object.keys(c.entries)) {
    try {
      const other = (JSON.parse(k) as { checkpoint: { file: string } }).checkpoint;
      if (other.file === ck.file && JSON.stringify(other) !== JSON.stringify(ck)) delete c.entries[k];
    } catch {
      delete c.entries[k];
    }
  }
  delete c.entries[key]; // re-inserted last: the most recent entry
  c.entries[key] = value;
  try {
    writeJsonAtomic(join(dir, CACHE_FILE), c);
  } catch (e) {
    warn(`could not write the report cache in ${dir}: ${(e as Error).message}`);
  }
}

/** Any cached value of `kind` computed from the current `checkpoint` (the most recently stored one), whatever its options. */
export function cacheFind<T>(dir: string, kind: string, checkpoint: string, schema: Schema, warn: (s: string) => void): T | undefined {
  const want = (JSON.parse(cacheKey(kind, checkpoint, {})) as { checkpoint: unknown }).checkpoint;
  let found: [string, unknown] | undefined;
  for (const [k, v] of Object.entries(read(dir).entries)) {
    try {
      const p = JSON.parse(k) as { kind: string; checkpoint: unknown };
      if (p.kind === kind && JSON.stringify(p.checkpoint) === JSON.stringify(want)) found = [k, v];
    } catch {
      // not a key of ours
    }
  }
  return found && checked<T>(dir, found[0], found[1], schema, warn);
}
