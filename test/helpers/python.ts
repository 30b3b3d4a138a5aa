// Runs the system Python (Debian's python3-torch) for cross-checks against PyTorch. Tests skip with a message
// when it is missing (scripts/setup.sh --tests installs it).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PYTHON = '/usr/bin/python3';
/** bench/reference, where the reference models and helpers live. */
export const REFERENCE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'reference');

let cached: boolean | undefined;
/** True when /usr/bin/python3 can import torch. */
export function hasTorchPython(): boolean {
  if (cached === undefined) cached = existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  return cached;
}

export const SKIP_NO_TORCH = hasTorchPython() ? false : 'PyTorch for the system Python is missing (apt-get install python3-torch)';

/** Runs a Python script (source text) with args; throws with its stderr when it fails. */
export function runPython(script: string, args: string[] = [], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): { stdout: string; stderr: string; code: number } {
  const r = spawnSync(PYTHON, ['-c', script, ...args], {
    encoding: 'utf8',
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 120_000,
    input: opts.input,
    env: { ...process.env, PYTHONPATH: REFERENCE_DIR, PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: '1' },
    maxBuffer: 64 * 2 ** 20,
  });
  const code = r.status ?? -1;
  if (code !== 0) throw new Error(`python failed (${code}): ${r.stderr || r.error?.message}`);
  return { stdout: r.stdout, stderr: r.stderr, code };
}

/** Runs a script that prints one JSON value on its last line; returns it. */
export function pythonJson<T = unknown>(script: string, args: string[] = [], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): T {
  const out = runPython(script, args, opts).stdout.trim().split('\n');
  return JSON.parse(out[out.length - 1]!) as T;
}
