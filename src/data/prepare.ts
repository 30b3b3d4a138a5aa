// A copy of an image folder at bounded size (`freeadv prepare`): every image whose longer side exceeds maxSide is
// resized to fit maxSide × maxSide (its aspect kept) and written in its own format (JPEG at `quality`) under the
// same relative path; the others are copied byte for byte. The loader reads the copy like the original (point
// --data-dir at it); what changes is the resolution of the large images, and with it the time to decode them.
// Files the loader would refuse stay refusable: undecodable files are copied unchanged (the loader refuses them,
// or skips them with --skip-bad, as in the original); FIFOs, devices and sockets are left out and listed.
import { copyFileSync, existsSync, mkdirSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import sharp from 'sharp';
import { DataError } from './errors.js';
import { IMAGE_EXTENSIONS, readImageHeaderSync } from './imagefolder.js';
import { mapLimit } from './util.js';

export interface PrepareOptions {
  /** Longest side of the copies (default 256). */
  maxSide?: number;
  /** JPEG (and WebP, TIFF) quality of resized images (default 90). */
  quality?: number;
  /** Images processed at once (default 4). */
  concurrency?: number;
  /** Called after each file. */
  onFile?: (done: number, total: number) => void;
}

export interface PrepareResult {
  files: number;
  resized: number;
  copied: number;
  /** Copied unchanged because sharp cannot decode them (relative paths). */
  undecodable: string[];
  /** Left out: not regular files (relative paths). */
  special: string[];
  bytesIn: number;
  bytesOut: number;
}

function walk(dir: string, out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if ((e.isFile() || e.isSymbolicLink()) && IMAGE_EXTENSIONS.some((x) => e.name.toLowerCase().endsWith(x))) out.push(p);
  }
}

const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);

/** Writes the bounded-size copy of the image folder tree `src` (all its splits and classes) to `out`, a new or empty folder. */
export async function prepareImageFolder(src: string, out: string, opts: PrepareOptions = {}): Promise<PrepareResult> {
  const maxSide = opts.maxSide ?? 256, quality = opts.quality ?? 90;
  if (!Number.isInteger(maxSide) || maxSide < 1) throw new RangeError(`maxSide must be a positive integer, got ${maxSide}`);
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new RangeError(`quality must be an integer in [1, 100], got ${quality}`);
  if (!existsSync(src)) throw new DataError('image folder does not exist', src);
  if (!statSync(src).isDirectory()) throw new DataError('not a folder', src);
  const from = realpathSync(src);
  const to = resolve(out);
  if (within(to, from) || within(from, existsSync(to) ? realpathSync(to) : to)) throw new DataError(`the copy must not be inside the image folder or contain it (${src})`, out);
  if (existsSync(to) && (!statSync(to).isDirectory() || readdirSync(to).length > 0)) throw new DataError('exists and is not an empty folder; give a new one', out);
  const files: string[] = [];
  walk(from, files);
  if (files.length === 0) throw new DataError(`no images (${IMAGE_EXTENSIONS.join(', ')})`, src);
  const r: PrepareResult = { files: files.length, resized: 0, copied: 0, undecodable: [], special: [], bytesIn: 0, bytesOut: 0 };
  let done = 0;
  await mapLimit(files, opts.concurrency ?? 4, async (file) => {
    const rel = relative(from, file);
    const dst = join(to, rel);
    try {
      readImageHeaderSync(file); // refuses FIFOs, devices and sockets without blocking on them
    } catch (e) {
      if (!(e instanceof DataError)) throw e;
      r.special.push(rel);
      opts.onFile?.(++done, files.length);
      return;
    }
    mkdirSync(dirname(dst), { recursive: true });
    r.bytesIn += statSync(file).size;
    let resized = false;
    try {
      const m = await sharp(file).metadata();
      if (m.width && m.height && Math.max(m.width, m.height) > maxSide && m.format) {
        // stored orientation kept (the loader does not apply EXIF rotation), colours converted to sRGB as the
        // loader does, metadata dropped
        await sharp(file, { failOn: 'error' })
          .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
          .toFormat(m.format, { quality })
          .toFile(dst);
        resized = true;
      }
    } catch {
      r.undecodable.push(rel);
    }
    if (resized) r.resized++;
    else {
      copyFileSync(file, dst);
      r.copied++;
    }
    r.bytesOut += statSync(dst).size;
    opts.onFile?.(++done, files.length);
  });
  r.undecodable.sort();
  r.special.sort();
  return r;
}
