// Options declared once. A table maps each option's key (camelCase, as in config files and TypeScript) to one
// declaration: type, range or choices, default, help line and group. The table alone drives the command line
// (node:util parseArgs), --help, config files (JSON/YAML, kebab- or camelCase keys) and validation, including
// that of a run's own config.json when it is resumed or evaluated. Values from any source go through the same
// checks and fail with a ConfigError that names the option and where the value came from.

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly option: string, message: string) {
    super(`--${option}: ${message}`);
  }
}

interface Common<V> {
  /** One line for --help (without the default). */
  help: string;
  /** The value's placeholder in --help, e.g. 'E' for --eps E. */
  arg?: string;
  /** Heading of the --help section the option is listed under. */
  group?: string;
  /** Default value, or a function of the other options' values (e.g. per data set). */
  default?: V | ((c: Record<string, unknown>) => V | undefined);
  /** How --help shows a computed default. */
  defaultText?: string;
  /** No default: the key may be absent. */
  optional?: true;
  /** cli: command line only (never in a config file or config.json); hidden: left out of --help. */
  cliOnly?: true;
  hidden?: true;
  short?: string;
  /** A check that needs the other options' values; returns what is wrong, or undefined. */
  check?: (v: V, c: Record<string, unknown>) => string | undefined;
}
export interface NumberSpec extends Common<number> {
  type: 'number' | 'int';
  min?: number;
  max?: number;
  /** min is excluded (e.g. > 0). */
  above?: true;
}
export interface BoolSpec extends Common<boolean> {
  type: 'bool';
  /** Also accept --no-NAME on the command line. */
  negatable?: true;
}
export interface StringSpec extends Common<string> {
  type: 'string';
  /** Allowed values (a function when they come from a registry). */
  choices?: readonly string[] | (() => readonly string[]);
  pattern?: RegExp;
  /** Describes pattern in messages. */
  patternText?: string;
}
export interface ListSpec extends Common<string[]> {
  type: 'list';
  /** Validates one element; returns what is wrong, or undefined. */
  element?: (s: string) => string | undefined;
}
export type OptionSpec = NumberSpec | BoolSpec | StringSpec | ListSpec;
export type OptionTable = Record<string, OptionSpec>;

type ValueOf<S> = S extends { type: 'number' | 'int' } ? number
  : S extends { type: 'bool' } ? boolean
  : S extends { type: 'list' } ? string[]
  : S extends { choices: readonly (infer C extends string)[] } ? C
  : string;
type Req<T> = { [K in keyof T as T[K] extends { optional: true } ? never : K]: ValueOf<T[K]> };
type Opt<T> = { [K in keyof T as T[K] extends { optional: true } ? K : never]?: ValueOf<T[K]> };
/** The typed values a table describes: options with a default are always present. */
export type ConfigOf<T extends OptionTable> = Req<T> & Opt<T>;
/** Every option's value as parsed, command-line-only ones included (all may be absent). */
export type ValuesOf<T extends OptionTable> = { [K in keyof T]?: ValueOf<T[K]> };

export const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const camel = (k: string) => k.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Quotes a user value for a message, cut to a readable length. */
export function quote(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
  return `'${s.length > 60 ? s.slice(0, 57) + '…' : s}'`;
}

/** Parses a number or a fraction such as '8/255'; refuses what is not finite or underflows to 0. */
export function parseNumber(option: string, v: unknown): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ConfigError(option, `expected a finite number, got ${v}`);
    return v;
  }
  if (typeof v !== 'string') throw new ConfigError(option, `expected a number (e.g. 0.1 or 8/255), got ${quote(v)}`);
  const s = v.trim();
  const m = s.match(/^([+-]?[\d.]+(?:e[+-]?\d+)?)\s*\/\s*([\d.]+(?:e[+-]?\d+)?)$/i);
  const n = m ? Number(m[1]) / Number(m[2]) : s === '' ? NaN : Number(s);
  if (!Number.isFinite(n)) throw new ConfigError(option, `expected a number (e.g. 0.1 or 8/255), got ${quote(s)}`);
  if (n === 0 && /[1-9]/.test(s.replace(/e.*$/i, ''))) throw new ConfigError(option, `${quote(s)} is too small to represent (it would be 0)`);
  return n;
}

const choicesOf = (s: StringSpec) => (typeof s.choices === 'function' ? s.choices() : s.choices);

/** Converts and checks one value against its declaration (the range and type checks, not `check`). */
function convert(key: string, spec: OptionSpec, v: unknown): unknown {
  const o = kebab(key);
  switch (spec.type) {
    case 'number':
    case 'int': {
      const n = parseNumber(o, v);
      if (spec.type === 'int' && !Number.isSafeInteger(n)) throw new ConfigError(o, `expected a whole number, got ${quote(v)}`);
      const lo = spec.min, hi = spec.max;
      const bad = (lo !== undefined && (spec.above ? !(n > lo) : n < lo)) || (hi !== undefined && n > hi);
      if (bad) {
        const range = lo !== undefined && hi !== undefined ? `in ${spec.above ? '(' : '['}${lo}, ${hi}]` : lo !== undefined ? `${spec.above ? '>' : '>='} ${lo}` : `<= ${hi}`;
        throw new ConfigError(o, `must be ${range}, got ${quote(v)}`);
      }
      return n;
    }
    case 'bool':
      if (v === true || v === 'true') return true;
      if (v === false || v === 'false') return false;
      throw new ConfigError(o, `expected true or false, got ${quote(v)}`);
    case 'list': {
      const items = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : undefined;
      if (!items || items.some((e) => typeof e !== 'string')) throw new ConfigError(o, `expected a comma-separated list, got ${quote(v)}`);
      const list = (items as string[]).map((e) => e.trim()).filter(Boolean);
      if (!list.length) throw new ConfigError(o, 'must not be empty');
      for (const e of list) {
        const why = spec.element?.(e);
        if (why) throw new ConfigError(o, why);
      }
      return list;
    }
    case 'string': {
      if (typeof v !== 'string') throw new ConfigError(o, `expected a string, got ${quote(v)}`);
      const choices = choicesOf(spec);
      if (choices && !choices.includes(v)) throw new ConfigError(o, `unknown value ${quote(v)} (known: ${choices.join(', ')})`);
      if (spec.pattern && !spec.pattern.test(v)) throw new ConfigError(o, `${spec.patternText ?? `must match ${spec.pattern}`}, got ${quote(v)}`);
      return v;
    }
  }
}

/**
 * Resolves user values against a table: converts and range-checks each, refuses unknown keys, fills defaults
 * (computed ones see the values given), then runs every option's `check`. `source` names where the values came
 * from in messages (e.g. a file); keys may be kebab- or camelCase. `partial`: convert and range-check only (no
 * defaults, no cross-option checks), for merging several sources before resolving them together.
 */
export function resolveOptions<T extends OptionTable>(table: T, user: Record<string, unknown>, opts: { source?: string; allowCliOnly?: boolean; partial?: boolean } = {}): ConfigOf<T> & ValuesOf<T> {
  const where = opts.source ? `${opts.source}: ` : '';
  const out: Record<string, unknown> = Object.create(null);
  for (const [k0, v] of Object.entries(user)) {
    if (v === undefined) continue;
    const k = camel(k0);
    const spec = Object.hasOwn(table, k) ? table[k] : undefined;
    if (!spec || (spec.cliOnly && !opts.allowCliOnly)) {
      const known = Object.entries(table).filter(([, s]) => !s.cliOnly || opts.allowCliOnly).map(([n]) => kebab(n));
      throw new ConfigError(kebab(k0.length > 60 ? k0.slice(0, 57) + '…' : k0), `${where}unknown option (known: ${known.join(', ')})`);
    }
    try {
      out[k] = convert(k, spec, v);
    } catch (e) {
      if (e instanceof ConfigError && where) throw new ConfigError(e.option, where + e.message.replace(/^--[\w-]+: /, ''));
      throw e;
    }
  }
  if (opts.partial) return { ...out } as ConfigOf<T> & ValuesOf<T>;
  // defaults in declaration order: a computed default sees the values given and the defaults before it
  for (const [k, spec] of Object.entries(table)) {
    if (out[k] !== undefined || spec.default === undefined) continue;
    const d = typeof spec.default === 'function' ? (spec.default as (c: Record<string, unknown>) => unknown)(out) : spec.default;
    if (d !== undefined) out[k] = Array.isArray(d) ? [...d] : d;
  }
  for (const [k, spec] of Object.entries(table)) {
    if (out[k] === undefined || !spec.check) continue;
    const why = (spec.check as (v: unknown, c: Record<string, unknown>) => string | undefined)(out[k], out);
    if (why) throw new ConfigError(kebab(k), where + why);
  }
  return { ...out } as ConfigOf<T> & ValuesOf<T>;
}

/** The table as node:util parseArgs options (values as strings; booleans as flags, with --no-NAME where negatable). */
export function parseArgsOptions(table: OptionTable): Record<string, { type: 'string' | 'boolean'; short?: string }> {
  const o: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [k, s] of Object.entries(table)) {
    o[kebab(k)] = { type: s.type === 'bool' ? 'boolean' : 'string', ...(s.short && { short: s.short }) };
    if (s.type === 'bool' && s.negatable) o[`no-${kebab(k)}`] = { type: 'boolean' };
  }
  return o;
}

/** parseArgs values → table keys (camelCase); --no-NAME becomes NAME: false. */
export function fromParsedArgs(table: OptionTable, values: Record<string, string | boolean | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(values)) {
    if (v === undefined) continue;
    if (name.startsWith('no-') && !Object.hasOwn(table, camel(name))) out[camel(name.slice(3))] = false;
    else out[camel(name)] = v;
  }
  return out;
}

/** --help text: the options of each group under its heading, with defaults. */
export function formatHelp(table: OptionTable, opts: { width?: number; columns?: number } = {}): string {
  const width = opts.width ?? 24;
  const groups = new Map<string, string[]>();
  for (const [k, s] of Object.entries(table)) {
    if (s.hidden) continue;
    let flag = `--${kebab(k)}${s.type === 'bool' ? '' : ` ${s.arg ?? 'X'}`}`;
    if (s.short) flag = `-${s.short}, ${flag}`;
    if (s.type === 'bool' && s.negatable) flag += `, --no-${kebab(k)}`;
    const dflt = s.defaultText ?? (s.default === undefined || typeof s.default === 'function' || s.type === 'bool' ? undefined : Array.isArray(s.default) ? s.default.join(',') : String(s.default));
    const choices = s.type === 'string' && Array.isArray(s.choices) ? ` (${s.choices.join(', ')})` : '';
    const text = `${s.help}${choices}${dflt !== undefined ? ` (default ${dflt})` : ''}`;
    const body = wrap(text, (opts.columns ?? 116) - width).join(`\n${' '.repeat(width)}`);
    const line = flag.length + 2 < width ? `  ${flag.padEnd(width - 2)}${body}` : `  ${flag}\n${' '.repeat(width)}${body}`;
    const group = s.group ?? 'Options';
    groups.set(group, [...(groups.get(group) ?? []), line]);
  }
  return [...groups].map(([g, lines]) => `${g}\n${lines.join('\n')}`).join('\n');
}

/** ε for people: 8/255 where it is a whole number of 255ths (but 0.1, 0.2, 0.3 as such), else the number. */
export function formatEps(e: number): string {
  const k = e * 255;
  return Math.abs(k - Math.round(k)) < 1e-6 && e < 0.5 && Math.round(k) !== 0 && ![0.1, 0.2, 0.3].includes(e) ? `${Math.round(k)}/255` : String(e);
}

/** Splits text into lines of at most `n` characters at spaces. */
function wrap(text: string, n: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const w of text.split(' ')) {
    if (cur && cur.length + 1 + w.length > n) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines;
}

export { SchemaError, S, check, type Schema } from './schema.js';
