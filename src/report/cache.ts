// The report's cache in a run folder (report-cache.json): analysis results keyed by what they depend on (the
// kind of result, its options, and the checkpoint's size and modification time), so that re-rendering a report
// is instant and a new checkpoint is never paired with stale results. Entries are checked against their schema
// when read (report.ts): one that does not fit is not used, with a warning naming the file and the field.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeJsonAtomic } from '../io/index.js';
import { check, quote, SchemaError, type Schema } from '../options/index.js';

export const CACHE_FILE = 'report-cache.json';
const FORMAT = 1;

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
 * Stores a value (atomically). Entries of other checkpoints of the same file are dropped. A folder that cannot
 * be written is reported through `warn`, not thrown: the report itself does not need the cache.
 */
export function cachePut(dir: string, key: string, value: unknown, warn: (s: string) => void): void {
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
