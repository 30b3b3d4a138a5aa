// Atomic file writes: write a temporary file in the same folder, fsync it, rename it over the target, fsync
// the folder. A crash or a full disk mid-write leaves the previous file intact, never a torn one, and a failed
// write leaves no temporary file behind.
import { openSync, writeSync, fsyncSync, closeSync, renameSync, unlinkSync, fstatSync, ftruncateSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export class WriteError extends Error {
  override name = 'WriteError';
  /** The errno code of the cause (ENOSPC, EACCES, ...), when it has one. */
  readonly code: string | undefined;
  constructor(readonly path: string, override readonly cause: unknown) {
    const e = cause as NodeJS.ErrnoException | undefined;
    const code = typeof e?.code === 'string' ? e.code : undefined;
    const why =
      code === 'ENOSPC' || code === 'EDQUOT' ? 'the disk is full' :
      code === 'EACCES' || code === 'EPERM' ? 'permission denied' :
      code === 'EROFS' ? 'read-only file system' :
      code === 'ENOENT' ? 'its folder does not exist' :
      code === 'EISDIR' ? 'it is a folder' :
      code === 'EFBIG' ? 'the file would exceed the file-size limit' :
      (e?.message ?? String(cause));
    super(`could not write ${path}: ${why}${code ? ` (${code})` : ''}; the previous file, if any, is unchanged`);
    this.code = code;
  }
}

/** The steps of an atomic write, in order; a test hook can fail any of them. */
export type WriteStage = 'open' | 'write' | 'fsync' | 'rename';

/**
 * Test hook, called before each step with the target path, the step and (for 'write') the chunk's size in bytes;
 * throw from it to simulate a failing disk. Pass undefined to remove it.
 */
let hook: ((path: string, bytes: number, stage: WriteStage) => void) | undefined;
export function setBeforeWriteHook(h: ((path: string, bytes: number, stage: WriteStage) => void) | undefined): void {
  hook = h;
}

/** The temporary name used next to `path` while it is being written. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Writes `data` (one chunk or several, written in order) to `path` atomically; throws WriteError on failure. */
export function writeFileAtomic(path: string, data: Uint8Array | string | readonly (Uint8Array | string)[]): void {
  const dir = dirname(path);
  const tmp = tempPathFor(path);
  const chunks = typeof data === 'string' || ArrayBuffer.isView(data) ? [data] : data;
  let fd: number | undefined;
  let created = false;
  try {
    hook?.(path, 0, 'open');
    fd = openSync(tmp, 'wx', 0o644);
    created = true;
    for (const c of chunks) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      hook?.(path, buf.byteLength, 'write');
      let off = 0;
      while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
    }
    hook?.(path, 0, 'fsync');
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    hook?.(path, 0, 'rename');
    renameSync(tmp, path);
    created = false;
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    if (created) {
      try {
        unlinkSync(tmp);
      } catch {
        /* best effort */
      }
    }
    throw new WriteError(path, e);
  }
  // Make the rename itself durable. Some file systems cannot fsync a folder; the file is in place regardless.
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* best effort */
  }
}

/**
 * Appends bytes to a file (created if missing). All or nothing: if the write fails part-way (a full disk), the file
 * is cut back to its previous length, so a log never ends in a torn record. Throws WriteError.
 */
export function appendAll(path: string, data: Uint8Array): void {
  let fd: number | undefined;
  let size = -1;
  try {
    hook?.(path, 0, 'open');
    fd = openSync(path, 'a', 0o644);
    size = fstatSync(fd).size;
    hook?.(path, data.byteLength, 'write');
    let off = 0;
    while (off < data.byteLength) off += writeSync(fd, data, off, data.byteLength - off);
    closeSync(fd);
  } catch (e) {
    if (fd !== undefined) {
      try {
        if (size >= 0) ftruncateSync(fd, size);
        closeSync(fd);
      } catch {
        /* already failing */
      }
    }
    throw new WriteError(path, e);
  }
}

/** Appends one line to a log file, all or nothing (appendAll). */
export function appendLine(path: string, line: string): void {
  appendAll(path, Buffer.from(line.endsWith('\n') ? line : line + '\n', 'utf8'));
}

/** Writes `value` as pretty-printed JSON (with a final newline) atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new TypeError(`writeJsonAtomic(${path}): value is not JSON-serializable`);
  writeFileAtomic(path, text + '\n');
}
