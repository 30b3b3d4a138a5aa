// The native interrupt flag (native/interrupt.cc, src/torch/interrupt.ts) under real signals: a process sends
// itself SIGTERM (test/helpers/interrupt-child.ts). With training's handlers installed the flag is set while
// JavaScript never yields, every attack run inside stoppable() stops at its next iteration, Node's own handler
// still runs and a second signal still exits with 130; with no handlers installed (never, or removed again) the
// flag stays clear and SIGTERM ends the process as it does by default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'helpers', 'interrupt-child.js');

function child(mode: string): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CHILD, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('exit', (code, signal) => resolve({ code, signal, out, err }));
  });
}

test('with training\'s handlers installed, SIGTERM sets the flag at once and stops every attack inside stoppable(); a second SIGTERM exits 130', async (t) => {
  const r = await child('armed');
  assert.equal(r.code, 130, `the second SIGTERM exits with 130 (${r.signal ?? ''}): ${r.out}${r.err}`);
  const lines = r.out.trim().split('\n');
  assert.equal(lines.length, 1, r.out);
  const res = JSON.parse(lines[0]!);
  assert.equal(res.before, null, 'no signal yet');
  assert.ok(res.spinMs >= 0 && res.spinMs < 1000, `the flag was set within ${res.spinMs} ms while JS never yielded`);
  assert.equal(res.pending, 'SIGTERM');
  assert.equal(res.handlerRanBeforeTurn, false, "Node's handler waits for a turn of the event loop");
  for (const [name, a] of Object.entries(res.attacks as Record<string, { outcome: string; ms: number }>)) {
    assert.equal(a.outcome, 'stopped by SIGTERM', name);
    assert.ok(a.ms < 1000, `${name} stopped after ${a.ms.toFixed(1)} ms`);
  }
  assert.equal(res.outside.outcome, 'ran to the end');
  assert.equal(res.requested, 'SIGTERM', "Node's own handler ran");
  assert.ok(res.turns <= 2, `Node's own handler ran after ${res.turns} turn(s) of the event loop`);
  assert.equal(res.aborted, true);
  assert.equal(res.warnings.length, 1);
  assert.match(res.warnings[0], /^SIGTERM received/);
  t.diagnostic(`flag set ${res.spinMs.toFixed(3)} ms after kill(); interruptionPoint(): ${res.nsPerCheck.inside.toFixed(1)} ns inside stoppable(), ${res.nsPerCheck.outside.toFixed(1)} ns outside`);
  assert.ok(res.nsPerCheck.inside < 1000, `one check costs ${res.nsPerCheck.inside} ns`);
});

for (const mode of ['none', 'uninstalled'] as const) {
  test(`with ${mode === 'none' ? 'no handlers installed' : "training's handlers installed and removed again"}, the flag stays clear and SIGTERM ends the process by default`, async () => {
    const r = await child(mode);
    assert.equal(r.signal, 'SIGTERM', `killed by SIGTERM (exit code ${r.code}): ${r.out}${r.err}`);
    const lines = r.out.trim().split('\n');
    assert.equal(lines.length, 1, r.out);
    assert.equal(JSON.parse(lines[0]!).before, null);
  });
}
