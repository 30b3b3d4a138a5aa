// A tiny declarative schema for JSON that freeadv reads back from files people hand each other (a run folder's
// summary.json, metrics.jsonl lines, report-cache.json, a checkpoint's state). `check` walks a value against
// its schema and returns a clean copy holding only the declared fields, or throws a SchemaError naming the file
// and the field: `runs/a/summary.json: field "clean_accuracy" must be a number in [0, 1], got '<img …>'`.
import { quote } from './index.js';

export class SchemaError extends Error {
  override name = 'SchemaError';
  constructor(readonly file: string, readonly field: string, what: string) {
    super(`${file}: ${field ? `field "${field}" ` : ''}${what}`);
  }
}

export type Schema =
  | { kind: 'number'; min?: number; max?: number; int?: true; nullable?: true }
  | { kind: 'string'; maxLength?: number; pattern?: RegExp; patternText?: string }
  | { kind: 'choice'; values: readonly string[] }
  | { kind: 'array'; of: Schema; maxLength?: number }
  | { kind: 'record'; of: Schema }
  | { kind: 'object'; fields: Record<string, Schema>; optional?: readonly string[]; check?: (v: Record<string, unknown>) => string | undefined };

/** Constructors: num(0, 1), int(0), str(), arr(num()), rec(num()), obj({ … }, ['optional', 'keys']). */
export const S = {
  num: (min?: number, max?: number): Schema => ({ kind: 'number', ...(min !== undefined && { min }), ...(max !== undefined && { max }) }),
  /** A number, or null where JSON wrote NaN (e.g. an accuracy that was not measured). */
  numOrNull: (min?: number, max?: number): Schema => ({ kind: 'number', nullable: true, ...(min !== undefined && { min }), ...(max !== undefined && { max }) }),
  int: (min?: number, max?: number): Schema => ({ kind: 'number', int: true, ...(min !== undefined && { min }), ...(max !== undefined && { max }) }),
  str: (maxLength = 10_000, pattern?: RegExp, patternText?: string): Schema => ({ kind: 'string', maxLength, ...(pattern && { pattern, patternText: patternText ?? String(pattern) }) }),
  choice: (...values: string[]): Schema => ({ kind: 'choice', values }),
  arr: (of: Schema, maxLength = 1_000_000): Schema => ({ kind: 'array', of, maxLength }),
  rec: (of: Schema): Schema => ({ kind: 'record', of }),
  obj: (fields: Record<string, Schema>, optional: readonly string[] = [], check?: (v: Record<string, unknown>) => string | undefined): Schema => ({ kind: 'object', fields, optional, ...(check && { check }) }),
};

const range = (s: { min?: number; max?: number }) =>
  s.min !== undefined && s.max !== undefined ? ` in [${s.min}, ${s.max}]` : s.min !== undefined ? ` >= ${s.min}` : s.max !== undefined ? ` <= ${s.max}` : '';
const join = (path: string, k: string) => (path ? `${path}.${k}` : k);

/** What a schema expects, for messages. */
function expects(s: Schema): string {
  switch (s.kind) {
    case 'number':
      return `${s.int ? 'a whole number' : 'a number'}${range(s)}${s.nullable ? ' (or null)' : ''}`;
    case 'string':
      return s.pattern ? `a string (${s.patternText})` : `a string of at most ${s.maxLength} characters`;
    case 'choice':
      return `one of ${s.values.join(', ')}`;
    case 'array':
      return 'a list';
    case 'record':
    case 'object':
      return 'an object';
  }
}

function walk(file: string, path: string, s: Schema, v: unknown): unknown {
  const refuse = (): never => {
    throw new SchemaError(file, path, `must be ${expects(s)}, got ${v === undefined ? 'nothing' : quote(v)}`);
  };
  switch (s.kind) {
    case 'number': {
      if (v === null && s.nullable) return NaN;
      if (typeof v !== 'number' || !Number.isFinite(v) || (s.int && !Number.isSafeInteger(v))) refuse();
      const n = v as number;
      if ((s.min !== undefined && n < s.min) || (s.max !== undefined && n > s.max)) refuse();
      return n;
    }
    case 'string':
      if (typeof v !== 'string' || v.length > s.maxLength! || (s.pattern && !s.pattern.test(v))) refuse();
      return v;
    case 'choice':
      if (typeof v !== 'string' || !s.values.includes(v)) refuse();
      return v;
    case 'array': {
      if (!Array.isArray(v) || v.length > s.maxLength!) refuse();
      return (v as unknown[]).map((e, i) => walk(file, `${path}[${i}]`, s.of, e));
    }
    case 'record': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse();
      const out: Record<string, unknown> = {};
      for (const [k, e] of Object.entries(v as object)) {
        if (k === '__proto__') throw new SchemaError(file, path, `has a key '__proto__'`);
        out[k] = walk(file, join(path, k), s.of, e);
      }
      return out;
    }
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) refuse();
      const o = v as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(s.fields)) {
        if (o[k] === undefined && s.optional?.includes(k)) continue;
        out[k] = walk(file, join(path, k), f, o[k]);
      }
      const why = s.check?.(out);
      if (why) throw new SchemaError(file, path, why);
      return out;
    }
  }
}

/**
 * Checks `value` (parsed JSON) against `schema`; returns a copy holding only the declared fields (unknown
 * fields are left out, so nothing undeclared travels on). Throws a SchemaError naming `file` and the field.
 */
export function check<T>(value: unknown, schema: Schema, file: string): T {
  return walk(file, '', schema, value) as T;
}
