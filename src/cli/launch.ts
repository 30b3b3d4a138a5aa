// `freeadv train --nproc N`: starts N training processes on this machine under torchrun's launch contract
// (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). With --nnodes/--node-rank it is
// one node of a multi-machine job, like `torchrun --nnodes M --node-rank k --nproc-per-node N`.
// The launcher forwards SIGINT/SIGTERM to its ranks; when a rank fails it stops the others and exits non-zero,
// naming the rank. On one machine the ranks meet through a file in a private temporary folder (a c10d FileStore;
// Gloo's sockets on loopback): nothing listens on the network. Several machines (or an explicit --master-addr) meet
// at rank 0's rendezvous server, bound to --master-addr, which admits only ranks that give the job's token
// (FREEADV_RENDEZVOUS_TOKEN: made here for a one-machine job; several machines must be given the same one).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { OptionTable } from '../options/index.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'freeadv.js');

const GROUP = 'Several processes (data parallel over c10d/Gloo; --batch-size stays the global batch, B/N per process)';

/** The launcher's options: they start processes and are not part of a run's configuration. */
export const LAUNCH_OPTIONS = {
  nproc: { type: 'int', arg: 'N', group: GROUP, cliOnly: true, min: 1, max: 1024, default: 1, help: 'start N training processes on this machine (threads per process: cores / N)' },
  nnodes: { type: 'int', arg: 'M', group: GROUP, cliOnly: true, min: 1, max: 1024, default: 1, help: "machines in the job; with --node-rank, --master-addr, --master-port" },
  nodeRank: { type: 'int', arg: 'K', group: GROUP, cliOnly: true, min: 0, max: 1023, default: 0, check: (v, c) => (v >= (c.nnodes as number) ? `must be below --nnodes ${String(c.nnodes)}, got ${v}` : undefined), help: "this machine's index in [0, M)" },
  masterAddr: { type: 'string', arg: 'A', group: GROUP, cliOnly: true, optional: true, defaultText: 'none with one machine: a file rendezvous', help: "address of rank 0's machine, where its rendezvous listens, on that address only (required with --nnodes > 1; with several machines export the same FREEADV_RENDEZVOUS_TOKEN on each; trusted networks only)" },
  masterPort: { type: 'int', arg: 'P', group: GROUP, cliOnly: true, optional: true, min: 1, max: 65535, defaultText: '29500 with several machines', help: 'its TCP port' },
  distTimeout: { type: 'number', arg: 'S', group: GROUP, cliOnly: true, min: 0, above: true, max: 7 * 86400, default: 300, help: 'seconds before a dead or hung peer stops the job with an error' },
} satisfies OptionTable;

export interface LaunchOptions {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  /** undefined: one machine, whose ranks meet through a file (FileStore), not a port. */
  masterAddr?: string;
  masterPort?: number;
  /** Threads per rank. */
  threads: number;
  /** Seconds a killed rank is given to exit after SIGTERM before SIGKILL. */
  graceSeconds?: number;
}

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

/** Runs `freeadv train <args>` as nproc ranks; resolves with the exit code for the launcher. */
export async function launch(args: string[], o: LaunchOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  // one machine, no address given: a FileStore in a folder only this user can enter, removed at the end
  const oneMachine = o.masterAddr === undefined && o.masterPort === undefined && o.nnodes === 1;
  const storeDir = oneMachine ? mkdtempSync(join(tmpdir(), 'freeadv-rendezvous-')) : undefined;
  // over TCP the ranks show the job's token to rank 0: this launcher's own, unless one is given for all machines
  const token = process.env.FREEADV_RENDEZVOUS_TOKEN || (o.nnodes === 1 ? randomBytes(16).toString('hex') : '');
  if (!storeDir && !token) err(`freeadv: warning: FREEADV_RENDEZVOUS_TOKEN is not set: any process that reaches ${o.masterAddr}:${o.masterPort ?? 29500} can join this job's rendezvous (export the same secret on every machine)`);
  const rendezvous = storeDir
    ? { FREEADV_STORE_FILE: join(storeDir, 'store') }
    : { MASTER_ADDR: o.masterAddr ?? '127.0.0.1', MASTER_PORT: String(o.masterPort ?? (await freePort())), FREEADV_RENDEZVOUS_TOKEN: token };
  const world = o.nproc * o.nnodes;
  const children: ChildProcess[] = [];
  const codes: (number | undefined)[] = [];
  let signalled: NodeJS.Signals | undefined;
  let failure: { rank: number; what: string; code: number } | undefined;
  let killTimer: NodeJS.Timeout | undefined;

  const stopOthers = () => {
    children.forEach((c, i) => {
      if (codes[i] === undefined) c.kill('SIGTERM');
    });
    killTimer ??= setTimeout(() => {
      children.forEach((c, i) => {
        if (codes[i] === undefined) c.kill('SIGKILL');
      });
    }, (o.graceSeconds ?? 5) * 1000);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    signalled = sig;
    children.forEach((c, i) => {
      if (codes[i] === undefined) c.kill(sig);
    });
  };
  const sigint = () => onSignal('SIGINT');
  const sigterm = () => onSignal('SIGTERM');
  process.on('SIGINT', sigint);
  process.on('SIGTERM', sigterm);

  const exits: Promise<void>[] = [];
  for (let local = 0; local < o.nproc; local++) {
    const rank = o.nodeRank * o.nproc + local;
    const env = {
      ...process.env,
      RANK: String(rank),
      LOCAL_RANK: String(local),
      WORLD_SIZE: String(world),
      LOCAL_WORLD_SIZE: String(o.nproc),
      ...rendezvous,
      OMP_NUM_THREADS: String(o.threads),
      FREEADV_LAUNCHED: '1',
    };
    // Own process group: a terminal's Ctrl-C reaches only the launcher, which forwards it once. The IPC
    // channel lets a rank notice that its launcher is gone.
    const c = spawn(process.execPath, [BIN, 'train', ...args], { env, stdio: ['ignore', 'pipe', 'inherit', 'ipc'], detached: true });
    children.push(c);
    codes.push(undefined);
    err(`freeadv: started rank ${rank} of ${world} (pid ${c.pid}, ${o.threads} thread(s))`);
    createInterface({ input: c.stdout! }).on('line', (l) => out(rank === 0 ? l : `[rank ${rank}] ${l}`));
    exits.push(
      new Promise<void>((res) => {
        // 'close', not 'exit': the rank's stdout has been read to its end
        c.on('close', (code, sig) => {
          codes[local] = code ?? (sig ? 128 : 1);
          if (code !== 0 && !failure && !(signalled && (code === 130 || sig === signalled))) {
            failure = { rank, what: sig ? `was killed by ${sig}` : `exited with code ${code}`, code: code && code !== 130 ? code : 1 };
            err(`freeadv: error: rank ${rank} ${failure.what}; stopping the other ranks`);
            stopOthers();
          }
          res();
        });
        c.on('error', (e) => {
          if (!failure) failure = { rank, what: `could not start (${e.message})`, code: 1 };
          stopOthers();
          res();
        });
      }),
    );
  }
  try {
    await Promise.all(exits);
  } finally {
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGINT', sigint);
    process.off('SIGTERM', sigterm);
    if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  }
  if (failure) {
    err(`freeadv: error: distributed training failed: rank ${failure.rank} ${failure.what}`);
    return failure.code;
  }
  if (codes.every((c) => c === 0)) return 0;
  if (signalled && codes.every((c) => c === 130 || c === 0)) return 130;
  const bad = codes.findIndex((c) => c !== 0);
  err(`freeadv: error: rank ${o.nodeRank * o.nproc + bad} exited with code ${codes[bad]}`);
  return codes[bad] || 1;
}
