// Run folders are untrusted input, and `--out` writes only where freeadv may: a real small run, then copies of
// it edited by hand. Every file read back (summary.json, metrics.jsonl, report-cache.json, config.json, the
// checkpoint) is checked, naming the file and the field; a page of runs whose strings hold markup renders inert
// in headless Chromium; `train --out` refuses foreign, finished and busy folders (a lock per folder, stale locks
// of dead processes taken over), files and paths under files; `report --out` replaces only its own pages.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync, cpSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { run } from '../src/cli/main.js';
import { html, raw, scriptJson, CACHE_FILE } from '../src/report/index.js';
import { smallFashionMnist } from './helpers/data.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'freeadv.js');
const CHROMIUM = process.env.FREEADV_CHROMIUM ?? '/usr/bin/chromium';
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-runfolder-'));
let data = '';
let base = ''; // a finished natural run
const common = () => ['--data-dir', data, '--batch-size', '64', '--threads', '2', '--log-every', '2', '--seed', '5', '--val-size', '0'];
const REPORT_FAST = ['--images', '2', '--attack-steps', '3', '--surface-points', '3', '--target-steps', '3', '--threads', '2'];

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '', err = '';
  const code = await run(args, (s) => (out += s + '\n'), (s) => (err += s + '\n'));
  return { code, out, err };
}
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
const writeJson = (p: string, v: unknown) => writeFileSync(p, JSON.stringify(v));
/** A copy of the base run under another name. */
function copyRun(name: string): string {
  const d = join(tmp, name);
  cpSync(base, d, { recursive: true });
  return d;
}

before(async () => {
  data = await smallFashionMnist(256, 100);
  base = join(tmp, 'base');
  const r = await cli(['train', ...common(), '--method', 'natural', '--epochs', '1', '--eval-limit', '20', '--eval-attacks', 'pgd-3', '--out', base]);
  assert.equal(r.code, 0, r.err);
});

test('the html template escapes every value unless it is its own fragment; JSON in <script> cannot end the element', () => {
  const v = `<img src=x onerror="alert(1)">&'`;
  assert.equal(html`<td title="${v}">${v}</td>`.text, '<td title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;</td>');
  assert.equal(html`<tr>${[1, '<b>', html`<i>${'<'}</i>`]}</tr>`.text, '<tr>1&lt;b&gt;<i>&lt;</i></tr>');
  assert.equal(html`${raw('<b>')}${undefined}${null}`.text, '<b>');
  const j = scriptJson({ s: '</script><script>x()</script>\u2028&' }).text;
  assert.doesNotMatch(j, /[<>&\u2028]/);
  assert.deepEqual(JSON.parse(j), { s: '</script><script>x()</script>\u2028&' });
});

test('values read from a run folder are checked: a field of the wrong type or range is refused naming the file and the field (exit 2)', async () => {
  const markup = '<img src=x onerror=window.__pwned=1>';
  const cases: [string, (d: string) => void, string[][], RegExp][] = [
    ['summary-replays', (d) => writeJson(join(d, 'summary.json'), { ...readJson(join(d, 'summary.json')), replays: markup }), [['report'], ['export']],
      /summary\.json: field "replays" must be a whole number >= 0, got '<img src=x onerror=window\.__pwned=1>'/],
    ['summary-clean', (d) => writeJson(join(d, 'summary.json'), { ...readJson(join(d, 'summary.json')), clean_accuracy: 1.5 }), [['report'], ['export']],
      /summary\.json: field "clean_accuracy" must be a number in \[0, 1\]/],
    ['summary-attack', (d) => writeJson(join(d, 'summary.json'), { ...readJson(join(d, 'summary.json')), robust_accuracy: { 'pgd-3': 'NaN' } }), [['report']],
      /summary\.json: field "robust_accuracy\.pgd-3" must be a number in \[0, 1\], got 'NaN'/],
    ['summary-warnings', (d) => writeJson(join(d, 'summary.json'), { ...readJson(join(d, 'summary.json')), warnings: 'none' }), [['report']],
      /summary\.json: field "warnings" must be a list, got 'none'/],
    ['metrics-loss', (d) => writeFileSync(join(d, 'metrics.jsonl'), readFileSync(join(d, 'metrics.jsonl'), 'utf8') + JSON.stringify({ step: 4, pass: 0, loss: `<script>window.__pwned=1</script>` }) + '\n'), [['report'], ['resume']],
      /metrics\.jsonl line \d+: field "loss" must be a number >= 0, got '<script>/],
    ['metrics-folder', (d) => (rmSync(join(d, 'metrics.jsonl')), mkdirSync(join(d, 'metrics.jsonl'))), [['report'], ['resume']], /metrics\.jsonl: cannot be read \(EISDIR/],
    ['metrics-step', (d) => writeFileSync(join(d, 'metrics.jsonl'), '{"loss":1}\n'), [['report']], /metrics\.jsonl line 1: field "step" must be a whole number >= 0, got nothing/],
    ['config-eps', (d) => writeJson(join(d, 'config.json'), { ...readJson(join(d, 'config.json')), eps: markup }), [['report'], ['export'], ['eval'], ['resume']],
      /--eps: .*config\.json: expected a number \(e.g. 0.1 or 8\/255\), got '<img src=x/],
  ];
  for (const [name, edit, commands, re] of cases) {
    const d = copyRun(`bad-${name}`);
    edit(d);
    for (const [c] of commands) {
      const args =
        c === 'report' ? ['report', d, '--out', join(tmp, `bad-${name}.html`), ...REPORT_FAST]
        : c === 'export' ? ['export', '--run', d, '--out', join(tmp, `bad-${name}.safetensors`)]
        : c === 'eval' ? ['eval', '--run', d, '--limit', '10', '--attacks', 'fgsm']
        : ['train', '--resume', d];
      const r = await cli(args);
      assert.equal(r.code, 2, `${name} ${c}: ${r.err}`);
      assert.match(r.err, re, `${name} ${c}`);
      assert.doesNotMatch(r.err, /internal error|    at /, `${name} ${c}`);
    }
    assert.ok(!existsSync(join(tmp, `bad-${name}.html`)), 'no page was written');
  }
});

test('a run folder with markup in every string field renders inert in headless Chromium, the markup shown as text', async (t) => {
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM} (bash scripts/setup.sh --tests, or set FREEADV_CHROMIUM)`);
  const p = (n: number) => `<img src=x onerror=window.__pwned=${n}>`;
  const d = copyRun(`x${p(1)}`); // the folder's name is the run's name on the page
  const s = readJson(join(d, 'summary.json'));
  writeJson(join(d, 'summary.json'), {
    ...s, label: p(2), method: p(3), model: p(4), dataset: p(5), run_dir: p(6),
    robust_accuracy: { ...s.robust_accuracy, [p(7)]: 0.5 },
    attack_stages: { [p(8)]: { [p(9)]: 0.5 } },
    warnings: [`<script>window.__pwned=10</script>`, p(11)],
    stopped_early: `<svg onload=window.__pwned=12>`,
    replays: p(13), // a number field holding markup: refused
  });
  const page = join(tmp, 'markup', 'report.html');
  const args = ['report', d, '--out', page, '--robustness-curve', '--curve-eps', '0,1', '--curve-steps', '2', '--limit', '10', '--title', `T<script>window.__pwned=14</script>`, ...REPORT_FAST];
  let r = await cli(args);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /summary\.json: field "replays" must be a whole number >= 0, got '<img src=x onerror=window\.__pwned=13>'/);
  assert.ok(!existsSync(page));
  writeJson(join(d, 'summary.json'), { ...readJson(join(d, 'summary.json')), replays: 1 });
  r = await cli(args); // computes the analyses and the curve into the cache
  assert.equal(r.code, 0, r.err);

  // the cache's strings hold markup too; an image whose src would break out of its attribute is not used
  const cacheFile = join(d, CACHE_FILE);
  const cache = readJson(cacheFile);
  for (const [k, v] of Object.entries<Record<string, any>>(cache.entries)) {
    if (k.includes('"analyses"')) Object.assign(v, { attack: p(15), classNames: v.classNames.map((_: string, i: number) => (i % 2 ? p(16) : `<script>window.__pwned=17</script>`)) });
    else v.attack = `</script><script>window.__pwned=18</script>\u2028<!--`;
  }
  writeJson(cacheFile, cache);
  r = await cli(args);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /analyses from the cache, robustness curve from the cache/);
  const broken = structuredClone(cache);
  const key = Object.keys(broken.entries).find((k) => k.includes('"analyses"'))!;
  broken.entries[key].images.clean[0] = `x" onerror="window.__pwned=19`;
  writeJson(cacheFile, broken);
  r = await cli(args);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /report-cache\.json: entry .*field "images\.clean\[0\]" must be a string \(a PNG data: URI\), got 'x" onerror=.*the entry is not used \(recomputed\)/);
  writeJson(cacheFile, cache); // the markup again, for the page checked below
  r = await cli(args);
  assert.equal(r.code, 0, r.err);

  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const pg = await browser.newPage();
    const problems: string[] = [];
    pg.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    pg.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    await pg.goto(pathToFileURL(page).href);
    await pg.waitForSelector('html[data-ready="1"]', { timeout: 15_000 });
    await new Promise((res) => setTimeout(res, 300)); // onerror/onload handlers would have run by now
    const seen = (await pg.evaluate(`({ pwned: window.__pwned, title: document.title, text: document.body.innerText,
      images: [...document.images].map((i) => i.getAttribute('src').slice(0, 22)), svgs: document.querySelectorAll('svg').length,
      scripts: document.scripts.length, legend: Chart.getChart('chart-robustness').data.datasets[0].label })`)) as Record<string, any>;
    assert.deepEqual(problems, []);
    assert.equal(seen.pwned, undefined, 'no injected script ran');
    assert.equal(seen.title, 'T<script>window.__pwned=14</script>');
    assert.equal(seen.svgs, 0);
    assert.equal(seen.scripts, 4, "the page's own scripts only: Chart.js, its matrix type, the data and the chart script");
    assert.ok(seen.images.length > 0 && seen.images.every((s: string) => s === 'data:image/png;base64,'), 'every image is an embedded PNG');
    for (const n of [1, 7, 11, 15, 16]) assert.ok(seen.text.includes(p(n)), `${p(n)} is shown as text`);
    for (const text of ['<script>window.__pwned=10</script>', '<svg onload=window.__pwned=12>', '<script>window.__pwned=17</script>']) assert.ok(seen.text.includes(text), `${text} is shown as text`);
    assert.match(seen.legend, /<\/script><script>window\.__pwned=18<\/script>\u2028<!--/, 'the curve legend holds the string as it is');
    t.diagnostic(`page checked: ${page}`);
  } finally {
    await browser.close();
  }
});

test('train --out writes only into a new or empty folder; files and paths under files are refused (exit 2, nothing touched)', async () => {
  const args = [...common(), '--method', 'natural', '--epochs', '1', '--max-steps', '2', '--eval-limit', '10', '--eval-attacks', 'fgsm'];
  // a folder freeadv did not write
  const foreign = join(tmp, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  let r = await cli(['train', ...args, '--out', foreign]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--out: .*foreign is not empty \(it holds notes\.txt\); freeadv train writes only into a new or empty folder/);
  assert.deepEqual(readdirSync(foreign), ['notes.txt']);
  // a finished run without latest.safetensors is not replaced
  const finished = copyRun('finished');
  rmSync(join(finished, 'latest.safetensors'));
  const before = readFileSync(join(finished, 'summary.json'));
  r = await cli(['train', ...args, '--out', finished]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /finished holds a finished run \(.*summary\.json.*\); give another --out/);
  assert.ok(readFileSync(join(finished, 'summary.json')).equals(before));
  // a run that stopped before its first checkpoint: the same configuration starts afresh, another is refused
  const early = copyRun('early');
  for (const f of ['latest.safetensors', 'best.safetensors', 'summary.json', 'events.out.tfevents.freeadv']) rmSync(join(early, f), { force: true });
  r = await cli(['train', ...common(), '--method', 'natural', '--epochs', '2', '--eval-limit', '20', '--eval-attacks', 'pgd-3', '--out', early]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /early holds a run of another configuration that wrote no checkpoint \(config\.json, metrics\.jsonl\)/);
  r = await cli(['train', ...common(), '--method', 'natural', '--epochs', '1', '--eval-limit', '20', '--eval-attacks', 'pgd-3', '--out', early]);
  assert.equal(r.code, 0, r.err);
  const losses = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map((m) => [m.step, m.loss]);
  assert.deepEqual(losses(early), losses(base), 'the metrics start afresh (the same seed gives the same losses)');
  // a file, and a path under a file
  const file = join(tmp, 'a-file');
  writeFileSync(file, 'keep');
  for (const [out, re] of [[file, /a-file is a file, not a folder/], [join(file, 'sub'), /a-file\/sub: .*a-file is a file, not a folder/]] as const) {
    r = await cli(['train', ...args, '--out', out]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, re);
    assert.doesNotMatch(r.err, /internal error/);
  }
  assert.equal(readFileSync(file, 'utf8'), 'keep');
  // an empty folder is fine, and no lock is left behind
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  r = await cli(['train', ...args, '--out', empty]);
  assert.equal(r.code, 0, r.err);
  assert.ok(!existsSync(join(empty, '.lock')));
  // a refused run leaves no folder behind
  r = await cli(['train', '--data-dir', data, '--val-size', '256', '--out', join(tmp, 'refused')]); // refused once the data is read
  assert.equal(r.code, 2, r.err);
  assert.ok(!existsSync(join(tmp, 'refused')));
});

test('report --out replaces only a page freeadv report wrote: never a checkpoint or a foreign file', async () => {
  const ck = join(base, 'latest.safetensors');
  const bytes = readFileSync(ck);
  const foreign = join(tmp, 'notes.html');
  writeFileSync(foreign, '<html>my notes</html>');
  for (const [out, re] of [[ck, /latest\.safetensors exists and is not a page written by freeadv report/], [foreign, /notes\.html exists and is not a page written by freeadv report/], [base, /is a folder/], [join(foreign, 'r.html'), /notes\.html is a file, not a folder/]] as const) {
    const r = await cli(['report', base, '--out', out, ...REPORT_FAST]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, re);
  }
  assert.ok(readFileSync(ck).equals(bytes));
  assert.equal(readFileSync(foreign, 'utf8'), '<html>my notes</html>');
  const page = join(tmp, 'own.html');
  for (let i = 0; i < 2; i++) assert.equal((await cli(['report', base, '--out', page, ...REPORT_FAST])).code, 0, 'a new page, then its own page again');
  assert.match(readFileSync(page, 'utf8'), /<meta name="generator" content="freeadv report">/);
});

test('--resume of a run whose checkpoint is of another model is refused naming the checkpoint and the model (exit 2)', async () => {
  const d = copyRun('other-model');
  writeJson(join(d, 'config.json'), { ...readJson(join(d, 'config.json')), model: 'madry-cnn' });
  const r = await cli(['train', '--resume', d]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /latest\.safetensors: does not fit the run's madry-cnn on fashion-mnist \(its .*config\.json\): state dict does not fit the model/);
  assert.doesNotMatch(r.err, /internal error/);
});

function start(args: string[]): { child: ChildProcess; exit: Promise<number | string>; err: () => string } {
  const child = spawn(process.execPath, [BIN, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (b) => (err += b));
  const exit = new Promise<number | string>((res) => child.on('exit', (c, s) => res(c ?? s ?? -1)));
  return { child, exit, err: () => err };
}
async function until(cond: () => boolean, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    assert.ok(Date.now() - t0 < 60_000, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('one writer per run folder: a second trainer is refused naming the holder; SIGTERM releases the lock; a dead holder\'s lock is taken over', async () => {
  const d = join(tmp, 'busy');
  const lock = join(d, '.lock');
  const long = [...common(), '--method', 'natural', '--epochs', '400', '--eval-limit', '10', '--eval-attacks', 'fgsm'];
  const a = start([...long, '--out', d]);
  await until(() => existsSync(join(d, 'latest.safetensors')), 'the first checkpoint');
  assert.equal(readJson(lock).pid, a.child.pid);
  for (const args of [['--resume', d], [...long, '--out', d]]) {
    const r = await cli(['train', ...args]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`busy is in use by another freeadv train \\(pid ${a.child.pid} on [^,]+, since `));
  }
  a.child.kill('SIGTERM');
  assert.equal(await a.exit, 130, a.err());
  assert.ok(!existsSync(lock), 'an interrupted run releases its lock');

  const b = start(['--resume', d]);
  await until(() => existsSync(lock) && readJson(lock).pid === b.child.pid, 'the resumed run to lock the folder');
  b.child.kill('SIGKILL');
  assert.equal(await b.exit, 'SIGKILL');
  assert.ok(existsSync(lock), 'a killed process leaves its lock');
  writeJson(join(d, 'config.json'), { ...readJson(join(d, 'config.json')), epochs: 1 }); // finish soon
  const c = start(['--resume', d]);
  assert.equal(await c.exit, 0, c.err());
  assert.match(c.err(), new RegExp(`busy: took over the lock of process ${b.child.pid} \\(started [^)]+\\), which is no longer running`));
  assert.ok(!existsSync(lock));
});
