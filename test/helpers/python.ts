// Runs the system Python (Debian's python3-torch) for cross-checks against PyTorch. Tests skip with a message
// when it is missing (scripts/setup.sh --tests installs it).
import { spawn, spawnSync } from 'node:child_process';
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

const pythonEnv = () => ({ ...process.env, PYTHONPATH: REFERENCE_DIR, PYTHONDONTWRITEBYTECODE: '1', OMP_NUM_THREADS: '1' });

/** Runs a Python script (source text) with args; throws with its stderr when it fails. */
export function runPython(script: string, args: string[] = [], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): { stdout: string; stderr: string; code: number } {
  const r = spawnSync(PYTHON, ['-c', script, ...args], {
    encoding: 'utf8',
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 120_000,
    input: opts.input,
    env: pythonEnv(),
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

/**
 * pythonJson without waiting: the script runs in the background (on another core) while the test computes its
 * own side; the promise settles with the JSON value of its last line, or rejects with its stderr.
 */
export function pythonJsonAsync<T = unknown>(script: string, args: string[] = [], opts: { cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['-c', script, ...args], { cwd: opts.cwd, env: pythonEnv() });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`python failed (${code}): ${stderr}`));
      const lines = stdout.trim().split('\n');
      try {
        resolve(JSON.parse(lines[lines.length - 1]!) as T);
      } catch (e) {
        reject(e);
      }
    });
    child.stdin.end(opts.input ?? '');
  });
}
