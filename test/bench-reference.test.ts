// The PyTorch reference trainer (bench/reference/train.py) is the other half of every benchmark table. Its
// CIFAR-10 PGD-7 row takes longer than one sitting, so it checkpoints at the end of every pass and continues from
// there: a run stopped after its first pass and started again must end with the same bytes as one that was not
// stopped (δ for free-m, the global RNG for PGD's random starts, the augmentation RNG, momentum, the schedule).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PYTHON, REFERENCE_DIR, SKIP_NO_TORCH } from './helpers/python.js';
import { cifarRecords } from './helpers/data.js';

const dir = mkdtempSync(join(tmpdir(), 'freeadv-ref-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** CIFAR-10 binary files: 5 × 48 training and 40 test records. */
function writeTinyCifar(d: string): void {
  const files: [string, number][] = [['test_batch.bin', 40], ...[1, 2, 3, 4, 5].map((i): [string, number] => [`data_batch_${i}.bin`, 48])];
  files.forEach(([f, n], s) => writeFileSync(join(d, f), cifarRecords(n, 1, (i) => [(i * 7 + s) % 10], s).buf));
}

function train(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(PYTHON, [join(REFERENCE_DIR, 'train.py'), ...args], {
    encoding: 'utf8', timeout: 300_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: '1' },
  });
  return { code: r.status, stderr: r.stderr };
}
writeTinyCifar(dir);

const cases: [string, string[]][] = [
  ['free-2 (δ carried across passes)', ['--method', 'free', '--replays', '2', '--epochs', '4']],
  ['PGD-2 with random starts', ['--method', 'pgd', '--attack-steps', '2', '--epochs', '2']],
];
const common = ['--model', 'resnet-cifar-small', '--batch-size', '64', '--lr', '0.1', '--augment', '--threads', '1', '--eps', '0.0314', '--data-dir', dir, '--eval-limit', '20'];
cases.forEach(([name, method], i) => {
  test(`reference trainer resumed after its first pass ends with the bytes of an uninterrupted run: ${name}`, { skip: SKIP_NO_TORCH }, () => {
    const d = join(dir, String(i));
    mkdirSync(d);
    const out = (tag: string) => ['--out', join(d, `${tag}.json`), '--save-weights', join(d, `${tag}.safetensors`), '--checkpoint', join(d, `${tag}.pt`)];
    assert.equal(train([...method, ...common, ...out('whole')]).code, 0);
    assert.equal(train([...method, ...common, ...out('resumed'), '--stop-after-passes', '1']).code, 3, 'stops after the first pass');
    assert.ok(existsSync(join(d, 'resumed.pt')) && !existsSync(join(d, 'resumed.json')), 'a checkpoint, no result yet');
    // a checkpoint is not taken up by a run with other settings
    const other = train([...method, ...common, '--lr', '0.05', ...out('resumed')]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /--checkpoint .*resumed\.pt: written by a run with other settings \(lr\)/);
    assert.equal(train([...method, ...common, ...out('resumed')]).code, 0);
    const whole = readFileSync(join(d, 'whole.safetensors'));
    const resumed = readFileSync(join(d, 'resumed.safetensors'));
    assert.ok(whole.equals(resumed), 'the same weights, byte for byte');
    const [a, b] = ['whole', 'resumed'].map((t) => JSON.parse(readFileSync(join(d, `${t}.json`), 'utf8')));
    for (const k of ['sgd_steps', 'backward_passes', 'clean_accuracy', 'robust_accuracy']) assert.deepEqual(b[k], a[k], k);
  });
});
