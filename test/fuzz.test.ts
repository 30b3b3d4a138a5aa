// Runs the binding fuzzer (fuzz-binding.ts) in a child process: 10,000 random calls with a fixed seed must
// neither crash nor abort the process, and leave the engine working with no leaked tensors.
// Long variant on demand: FREEADV_FUZZ_ITERS=200000 node --test dist/test/fuzz.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = join(dirname(fileURLToPath(import.meta.url)), 'fuzz-binding.js');

test('binding fuzz: random calls succeed or throw JS errors, never crash', () => {
  const iters = process.env.FREEADV_FUZZ_ITERS ?? '10000';
  for (const seed of ['1', '2']) {
    const r = spawnSync(process.execPath, [script, iters, seed], { encoding: 'utf8', timeout: 600_000 });
    assert.equal(r.signal, null, `fuzz seed ${seed} died with ${r.signal}: ${r.stderr.slice(-2000)}`);
    assert.equal(r.status, 0, `fuzz seed ${seed} exited ${r.status}: ${r.stderr.slice(-2000)}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.iterations, Number(iters));
    assert.equal(out.ok + out.threw, Number(iters));
    assert.deepEqual(out.nonErrors, []);
    assert.equal(out.afterwards, 8);
    assert.equal(out.live, 0, 'no tensors leaked');
  }
});
