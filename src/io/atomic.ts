// Atomic file writes: write a temporary file in the same folder, fsync it, rename it over the target, fsync
// the folder. A crash or a full disk mid-write leaves the previous file intact, never a torn one.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync, existsSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export class WriteError extends Error {
  override name = 'WriteError';
  constructor(readonly path: string, override readonly cause: unknown) {
    const e = cause as NodeJS.ErrnoException;
    const why = e?.code === 'ENOSPC' ? 'the disk is full' : e?.code === 'EACCES' || e?.code === 'EPERM' ? 'permission denied' : e?.code === 'EROFS' ? 'read-only file system' : (e?.message ?? String(cause));
    super(`could not write ${path}: ${why}${e?.code ? ` (${e.code})` : ''}; the previous file, if any, is unchanged`);
  }
}

/** Test hook: called with each chunk before it is written (throw to simulate a failing disk). */
export let beforeWriteHook: ((path: string, bytes: number) => void) | undefined;
export function setBeforeWriteHook(h: typeof beforeWriteHook): void {
  beforeWriteHook = h;
}

export function writeFileAtomic(path: string, data: Uint8Array | string | (Uint8Array | string)[]): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const chunks = Array.isArray(data) ? data : [data];
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w', 0o644);
    for (const c of chunks) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      beforeWriteHook?.(path, buf.byteLength);
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    try {
      if (existsSync(tmp)) unlinkSync(tmp);
    } catch {
      /* best effort */
    }
    throw new WriteError(path, e);
  }
  try {
    const dfd = openSync(dir, 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    /* some file systems cannot fsync a folder */
  }
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
