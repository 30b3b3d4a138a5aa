// CIFAR-10 stored as JPEG files in an ImageFolder layout (<dir>/train/<class>/*.jpg, <dir>/test/<class>/*.jpg,
// 32x32). Decoding 50,000 JPEGs every epoch is waste, so a prepare step decodes them once into a uint8 cache
// file beside the data (or, when that folder is read-only, in $XDG_CACHE_HOME/freeadv or ~/.cache/freeadv),
// keyed by a fingerprint of the source (file list + sizes + mtimes) and reused while the fingerprint matches.
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, fstatSync } from 'node:fs';
import { availableParallelism, homedir } from 'node:os';
import { join, resolve, relative } from 'node:path';
import { CIFAR10_CLASSES } from './constants.js';
import { DataError } from './errors.js';
import { decodeImage, scanImageFolder } from './imagefolder.js';
import { allocShared, mapLimit } from './util.js';

const MAGIC = 'FREEADV-U8CACHE1';

export interface CifarJpgOptions {
  /** Where the cache goes: a folder, or false for no cache. Default: beside the data, else the user cache dir. */
  cacheDir?: string | false;
  /** Decodes in flight at once (default: available parallelism × 2). */
  concurrency?: number;
}

export interface CifarJpgDataset {
  images: Uint8Array;
  labels: Int32Array;
  n: number;
  c: 3;
  h: 32;
  w: 32;
  classNames: string[];
  /** How the pixels were obtained: from the cache ('hit') or by decoding the JPEGs ('built', 'uncached'). */
  cache: { status: 'hit' | 'built' | 'uncached'; path?: string; decoded: number; fingerprint: string };
}

/** The fingerprint of a set of files: SHA-256 over (relative path, size, mtime) lines. */
export function fingerprintFiles(root: string, files: readonly string[], labels: Int32Array): string {
  const h = createHash('sha256');
  h.update(`v1 ${files.length}\n`);
  files.forEach((f, i) => {
    const stat = statSync(f);
    h.update(`${relative(root, f)}\t${labels[i]}\t${stat.size}\t${Math.round(stat.mtimeMs)}\n`);
  });
  return h.digest('hex');
}

export function userCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'freeadv');
}

function candidatePaths(dir: string, split: string, cacheDir: string | undefined): string[] {
  const abs = resolve(dir);
  const name = `cifar10-${split}-${createHash('sha1').update(abs).digest('hex').slice(0, 12)}.u8cache`;
  if (cacheDir !== undefined) return [join(cacheDir, name)];
  return [join(abs, `.freeadv-cifar10-${split}.u8cache`), join(userCacheDir(), name)];
}

interface CacheHeader { magic: string; fingerprint: string; n: number; c: number; h: number; w: number; classNames: string[] }

/** Reads a cache file if its fingerprint matches; undefined when absent, stale or damaged. */
function readCache(path: string, fingerprint: string): { images: Uint8Array; labels: Int32Array; header: CacheHeader } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(4);
    if (readSync(fd, lenBuf, 0, 4, 0) !== 4) return undefined;
    const hlen = lenBuf.readUInt32LE(0);
    if (hlen > 1 << 20 || 4 + hlen > size) return undefined;
    const hb = Buffer.alloc(hlen);
    readSync(fd, hb, 0, hlen, 4);
    const header = JSON.parse(hb.toString('utf8')) as CacheHeader;
    if (header.magic !== MAGIC || header.fingerprint !== fingerprint) return undefined;
    const pix = header.n * header.c * header.h * header.w;
    const dataOff = 4 + hlen + ((8 - ((4 + hlen) % 8)) % 8);
    if (size !== dataOff + header.n * 4 + pix) return undefined;
    const labels = new Int32Array(header.n);
    readSync(fd, new Uint8Array(labels.buffer), 0, header.n * 4, dataOff);
    const images = allocShared(pix);
    let got = 0;
    while (got < pix) {
      const r = readSync(fd, images, got, Math.min(pix - got, 1 << 26), dataOff + header.n * 4 + got);
      if (r <= 0) return undefined;
      got += r;
    }
    return { images, labels, header };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Writes the cache atomically (temp file + rename). Returns false when the location is not writable. */
function writeCache(path: string, header: CacheHeader, labels: Int32Array, images: Uint8Array): boolean {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(join(path, '..'), { recursive: true });
    const hb = Buffer.from(JSON.stringify(header), 'utf8');
    const pad = (8 - ((4 + hb.length) % 8)) % 8;
    const len = Buffer.alloc(4);
    len.writeUInt32LE(hb.length, 0);
    const fd = openSync(tmp, 'w');
    try {
      writeFileSync(fd, Buffer.concat([len, hb, Buffer.alloc(pad)]));
      writeFileSync(fd, new Uint8Array(labels.buffer, labels.byteOffset, labels.byteLength));
      writeFileSync(fd, images);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    return true;
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing written */
    }
    return false;
  }
}

/** Loads one split of a CIFAR-10 JPEG ImageFolder, through the decoded-pixel cache. */
export async function loadCifar10Jpeg(dir: string, split: 'train' | 'test', opts: CifarJpgOptions = {}): Promise<CifarJpgDataset> {
  const root = join(dir, split);
  const scan = scanImageFolder(root, { classOrder: CIFAR10_CLASSES, extensions: ['.jpg', '.jpeg', '.png'] });
  const fingerprint = fingerprintFiles(root, scan.files, scan.labels);
  const paths = opts.cacheDir === false ? [] : candidatePaths(dir, split, opts.cacheDir);
  for (const p of paths) {
    const hit = readCache(p, fingerprint);
    if (hit && hit.header.n === scan.files.length) {
      return { images: hit.images, labels: hit.labels, n: hit.header.n, c: 3, h: 32, w: 32, classNames: [...CIFAR10_CLASSES], cache: { status: 'hit', path: p, decoded: 0, fingerprint } };
    }
  }
  const n = scan.files.length;
  const per = 3 * 32 * 32;
  const images = allocShared(n * per);
  await mapLimit(scan.files, opts.concurrency ?? availableParallelism() * 2, async (f, i) => {
    const img = await decodeImage(f);
    if (img.h !== 32 || img.w !== 32) throw new DataError(`CIFAR-10 image is ${img.w}x${img.h}, expected 32x32`, f);
    images.set(img.data, i * per);
  });
  const header: CacheHeader = { magic: MAGIC, fingerprint, n, c: 3, h: 32, w: 32, classNames: [...CIFAR10_CLASSES] };
  let written: string | undefined;
  for (const p of paths) {
    if (writeCache(p, header, scan.labels, images)) {
      written = p;
      break;
    }
  }
  return {
    images, labels: scan.labels, n, c: 3, h: 32, w: 32, classNames: [...CIFAR10_CLASSES],
    cache: { status: written ? 'built' : 'uncached', path: written, decoded: n, fingerprint },
  };
}

/** Reads a cache file's header (for tools and tests). */
export function readCacheHeader(path: string): CacheHeader {
  const fd = openSync(path, 'r');
  try {
    const len = Buffer.alloc(4);
    readSync(fd, len, 0, 4, 0);
    const hb = Buffer.alloc(Math.min(len.readUInt32LE(0), 1 << 20));
    readSync(fd, hb, 0, hb.length, 4);
    return JSON.parse(hb.toString('utf8')) as CacheHeader;
  } finally {
    closeSync(fd);
  }
}
