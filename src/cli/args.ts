// Command-line parsing from an option table (src/options): node:util parseArgs does the syntax, the table the
// meaning. Config files (JSON or YAML) take the same keys.
import { parseArgs } from 'node:util';
import { readFileSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError, parseArgsOptions, fromParsedArgs, type OptionTable } from '../options/index.js';

/** Bad command-line syntax (unknown flag, missing value, stray argument). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The options given on the command line (camelCase keys, raw values) and the positional arguments. */
export function parseCommand(table: OptionTable, args: string[], allowPositionals = false): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: parseArgsOptions(table), strict: true, allowPositionals });
    return { values: fromParsedArgs(table, r.values as Record<string, string | boolean | undefined>), positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
}

/** A config file's options (an object of keys; JSON, or YAML by extension). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    if (statSync(path).isDirectory()) throw new ConfigError('config', `${path}: is a folder, not a config file`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError('config', `${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let v: unknown;
  try {
    v = /\.ya?ml$/i.test(extname(path)) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError('config', `${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError('config', `${path}: expected an object of options`);
  return v as Record<string, unknown>;
}

/** Picks the keys of `table` out of `values`. */
export function pick<T extends OptionTable>(table: T, values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([k]) => Object.hasOwn(table, k)));
}
