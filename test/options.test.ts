// Options declared once (src/options): every value is converted and range-checked from its one declaration,
// from the command line, a config file or a run's config.json alike; bad values are refused with a message
// naming the option (and the file), never an internal error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveOptions, parseNumber, formatHelp, ConfigError, type OptionTable } from '../src/options/index.js';
import { TRAIN_OPTIONS, resolveConfig } from '../src/train/index.js';
import { run } from '../src/cli/main.js';

const tmp = mkdtempSync(join(tmpdir(), 'freeadv-options-'));

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}

test('a table: types, ranges, choices, computed defaults in order, cross-option checks, unknown keys', () => {
  const table = {
    size: { type: 'int', min: 1, max: 10, default: 3, help: '' },
    scale: { type: 'number', min: 0, above: true, default: (c: Record<string, unknown>) => (c.size as number) / 2, help: '' },
    mode: { type: 'string', choices: ['a', 'b'] as const, default: 'a', check: (v: string, c: Record<string, unknown>) => (v === 'b' && c.size === 1 ? 'b needs size > 1' : undefined), help: '' },
    flag: { type: 'bool', optional: true, help: '' },
    list: { type: 'list', default: ['x'], element: (e: string) => (e === 'bad' ? `'${e}' is bad` : undefined), help: '' },
  } satisfies OptionTable;
  assert.deepEqual(resolveOptions(table, {}), { size: 3, scale: 1.5, mode: 'a', list: ['x'] });
  assert.deepEqual(resolveOptions(table, { size: '4', 'mode': 'b', flag: 'false', list: 'p, q' }), { size: 4, scale: 2, mode: 'b', flag: false, list: ['p', 'q'] });
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ size: '11' }, /--size: must be in \[1, 10\], got '11'/],
    [{ size: '2.5' }, /--size: expected a whole number/],
    [{ size: 1e20 }, /--size: expected a whole number/],
    [{ scale: '0' }, /--scale: must be > 0/],
    [{ scale: '1e309' }, /--scale: expected a number/],
    [{ scale: '1e-400' }, /--scale: '1e-400' is too small to represent/],
    [{ mode: 'c' }, /--mode: unknown value 'c' \(known: a, b\)/],
    [{ mode: 'b', size: 1 }, /--mode: b needs size > 1/],
    [{ flag: 1 }, /--flag: expected true or false, got '1'/],
    [{ flag: 'True' }, /--flag: expected true or false, got 'True'/],
    [{ list: 'a,bad' }, /--list: 'bad' is bad/],
    [{ constructor: 'x' }, /--constructor: unknown option/],
    [JSON.parse('{"__proto__": 1}') as Record<string, unknown>, /--__proto__: unknown option/],
    [{ ['x'.repeat(5000)]: 1 }, /^--x{57}…: unknown option/],
  ];
  for (const [user, re] of refused) assert.throws(() => resolveOptions(table, user), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(user).slice(0, 80));
  // a source names the file; a long value is quoted short
  assert.throws(() => resolveOptions(table, { mode: 'z'.repeat(1000) }, { source: 'config.json' }), /--mode: config\.json: unknown value 'z{57}…'/);
  assert.equal(parseNumber('eps', '8/255'), 8 / 255);
  assert.match(formatHelp(table), /--size X\s+\(default 3\)/);
});

test('the training table: a config.json edited by hand is checked like the command line', () => {
  assert.throws(() => resolveConfig({ eps: 5 }, 'run/config.json'), /--eps: run\/config\.json: is in pixel units of images in \[0, 1\]; 5 > 1 \(did you mean 5\/255\?\)/);
  assert.throws(() => resolveConfig({ momentum: 5 }, 'run/config.json'), /--momentum: run\/config\.json: must be in \[0, 0\.999999\]/);
  assert.throws(() => resolveConfig({ threads: 0 }, 'run/config.json'), /--threads: run\/config\.json: must be in \[1, 1024\]/);
  assert.throws(() => resolveConfig({ batchSize: 'many' }, 'c'), /--batch-size: c: expected a number/);
  assert.throws(() => resolveConfig({ seed: 1e20 }), /--seed: expected a whole number/);
  assert.throws(() => resolveConfig({ imageSize: 64 }), /--image-size: applies to --dataset imagefolder only/);
  for (const [k, spec] of Object.entries(TRAIN_OPTIONS)) assert.ok(spec.help.length > 3, `${k} has help`);
});

test('the command line: values refused from their one declaration, files named, nothing written', async () => {
  const folder = join(tmp, 'a-folder');
  mkdirSync(folder);
  const yaml = join(tmp, 'bad.yaml');
  writeFileSync(yaml, 'nesterov: 1\n');
  const cases: [string[], RegExp][] = [
    [['train', '--seed', '1e20'], /--seed: expected a whole number/],
    [['train', '--threads', '100000'], /--threads: must be in \[1, 1024\]/],
    [['train', '--replays', '1e9'], /--replays: must be in \[1, 1000\]/],
    [['train', '--dist-timeout', '1e309'], /--dist-timeout: expected a number/],
    [['train', '--master-port', '0'], /--master-port: must be in \[1, 65535\]/],
    [['train', '--eps', '1e-400'], /--eps: '1e-400' is too small to represent/],
    [['train', '--config', folder], /--config: .*a-folder: is a folder, not a config file/],
    [['train', '--config', yaml], /--nesterov: .*bad\.yaml: expected true or false, got '1'/],
    [['eval', '--threads', '1e20', '--run', tmp], /--threads: expected a whole number/],
    [['eval', '--run', join(tmp, 'nowhere')], /--run: .*nowhere: no such folder/],
  ];
  for (const [args, re] of cases) {
    const out = join(tmp, 'out-' + args.join('').replace(/[^a-z0-9]/gi, '').slice(0, 40));
    const r = await cli([...args, ...(args[0] === 'train' ? ['--out', out] : [])]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.doesNotMatch(r.err, /internal error/);
    assert.ok(!existsSync(out), `${args.join(' ')}: nothing written`);
  }
});
