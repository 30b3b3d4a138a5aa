// ImageFolder (torchvision layout: root/<class>/**/<image>; class names sorted → labels 0..K-1), decoded to RGB
// uint8 — JPEGs by the addon's libjpeg-turbo decoder (native/jpeg.cc: only the crop, at the smallest DCT scale that
// covers it, resized as PIL does), other formats (and CMYK JPEGs) with sharp — with torchvision's transforms:
//   train: RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) + RandomHorizontalFlip
//   eval:  Resize(resize, short side) + CenterCrop(size)
import { readdirSync, statSync, existsSync, openSync, fstatSync, readSync, closeSync, constants as fsConstants, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { isMainThread } from 'node:worker_threads';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { jpegAvailable, jpegDecode, jpegDecodeAsync, resizeRgb, type JpegOptions } from '../torch/jpeg.js';
import { DataError } from './errors.js';
import { allocShared, mapLimit } from './util.js';
import type { Rng } from './prng.js';

export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff'];

export interface ImageFolderScan {
  root: string;
  classNames: string[];
  /** Absolute paths, grouped by class in label order, sorted within each class. */
  files: string[];
  labels: Int32Array;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function walkImages(dir: string, exts: readonly string[], out: string[]): void {
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walkImages(p, exts, out);
    else if ((e.isFile() || e.isSymbolicLink()) && exts.some((x) => e.name.toLowerCase().endsWith(x))) out.push(p);
  }
}

export interface ScanOptions {
  extensions?: readonly string[];
  /**
   * The required class names in label order. When given, the sub-folders must be exactly these names
   * (in any order on disk) and label i is classOrder[i]; otherwise the sorted folder names are used.
   */
  classOrder?: readonly string[];
}

/** Lists the classes and image files of an ImageFolder tree, classes interleaved (see below). */
export function scanImageFolder(root: string, opts: ScanOptions = {}): ImageFolderScan {
  const exts = opts.extensions ?? IMAGE_EXTENSIONS;
  if (!existsSync(root)) throw new DataError('image folder does not exist', root);
  if (!isDir(root)) throw new DataError('not a folder', root);
  const found = readdirSync(root).filter((d) => !d.startsWith('.') && isDir(join(root, d))).sort();
  if (found.length === 0) throw new DataError('no class sub-folders (expected one folder per class with images inside)', root);
  let classNames: string[];
  if (opts.classOrder) {
    const want = new Set(opts.classOrder);
    const extra = found.filter((d) => !want.has(d));
    const missing = opts.classOrder.filter((c) => !found.includes(c));
    if (extra.length || missing.length) {
      throw new DataError(
        `class folders do not match the expected classes [${opts.classOrder.join(', ')}]` +
          (missing.length ? `; missing: ${missing.join(', ')}` : '') + (extra.length ? `; unexpected: ${extra.join(', ')}` : ''),
        root,
      );
    }
    classNames = [...opts.classOrder];
  } else {
    classNames = found;
  }
  const perClass = classNames.map((cls) => {
    const dir = join(root, cls);
    const mine: string[] = [];
    walkImages(dir, exts, mine);
    if (mine.length === 0) throw new DataError(`class folder '${cls}' has no images (${exts.join(', ')})`, dir);
    return mine;
  });
  // Round-robin over the classes (the first file of every class, then the second, ...), so that the first N
  // examples of a split — an evaluation limit, a report gallery — cover every class, as the first
  // N of the official CIFAR test file do, instead of being the first class only.
  const files: string[] = [];
  const labels: number[] = [];
  const longest = Math.max(...perClass.map((f) => f.length));
  for (let i = 0; i < longest; i++) {
    perClass.forEach((mine, li) => {
      if (i < mine.length) {
        files.push(mine[i]!);
        labels.push(li);
      }
    });
  }
  return { root, classNames, files, labels: Int32Array.from(labels) };
}

/** Copies interleaved HWC pixels with 1-4 channels into 3-channel CHW (grey replicated, alpha dropped). */
export function hwcToChw(src: Uint8Array, channels: number, h: number, w: number, dst: Uint8Array, dstOffset = 0): void {
  const plane = h * w;
  if (channels === 3) {
    for (let i = 0, s = 0; i < plane; i++, s += 3) {
      dst[dstOffset + i] = src[s]!;
      dst[dstOffset + plane + i] = src[s + 1]!;
      dst[dstOffset + 2 * plane + i] = src[s + 2]!;
    }
    return;
  }
  const grey = channels <= 2;
  for (let i = 0, s = 0; i < plane; i++, s += channels) {
    const r = src[s]!;
    dst[dstOffset + i] = r;
    dst[dstOffset + plane + i] = grey ? r : src[s + 1]!;
    dst[dstOffset + 2 * plane + i] = grey ? r : src[s + 2]!;
  }
}

/**
 * Copies interleaved HWC pixels into 3-channel HWC: a plain copy (memcpy) for 3 channels, the hot case; 1-2
 * channels (grey) replicated, alpha dropped for the rare others.
 */
export function hwcToRgb(src: Uint8Array, channels: number, h: number, w: number, dst: Uint8Array, dstOffset = 0): void {
  const plane = h * w;
  if (channels === 3) {
    dst.set(src.subarray(0, 3 * plane), dstOffset);
    return;
  }
  const grey = channels <= 2;
  for (let i = 0, s = 0, d = dstOffset; i < plane; i++, s += channels, d += 3) {
    const r = src[s]!;
    dst[d] = r;
    dst[d + 1] = grey ? r : src[s + 1]!;
    dst[d + 2] = grey ? r : src[s + 2]!;
  }
}

/** Decoded pixels: interleaved HWC with 1-4 channels, or (planar) 3 planes C×H×W. */
export interface RawPixels { data: Buffer; w: number; h: number; channels: number; planar?: boolean }

/** Pixels as 3-channel CHW written into dst at offset (a copy when they are planar already). */
function writeChw(r: RawPixels, dst: Uint8Array, offset: number): void {
  if (r.planar) dst.set(r.data, offset);
  else hwcToChw(r.data, r.channels, r.h, r.w, dst, offset);
}

/** sharp's error as the file's: sharp decodes the bytes read from the file, and calls them its "Input buffer". */
function sharpError(e: unknown, file: string): DataError {
  return new DataError(`cannot decode image (${(e as Error).message.replace(/^Input buffer\b/, 'Input file')})`, file, { cause: e });
}

async function rawRgb(img: sharp.Sharp, file: string): Promise<RawPixels> {
  try {
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    if (info.channels < 1 || info.channels > 4) throw new Error(`unsupported channel count ${info.channels}`);
    return { data, w: info.width, h: info.height, channels: info.channels };
  } catch (e) {
    throw sharpError(e, file);
  }
}

async function dims(img: sharp.Sharp, file: string): Promise<{ w: number; h: number }> {
  try {
    const m = await img.metadata();
    if (!m.width || !m.height) throw new Error('no image dimensions');
    return { w: m.width, h: m.height };
  } catch (e) {
    throw sharpError(e, file);
  }
}

function open(file: string | Buffer): sharp.Sharp {
  // 8-bit sRGB output; 16-bit PNGs are reduced to 8 bits.
  return sharp(file, { failOn: 'error' }).toColourspace('srgb');
}

/** What an image file's first bytes say: its format (JPEG, PNG) and stored dimensions. */
export interface ImageHeader { format: 'jpeg' | 'png'; w: number; h: number }

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The format and stored size of a JPEG (its frame header, SOFn) or PNG (IHDR) from the file's first bytes, as
 * libvips reads them (no EXIF rotation); 'more' when a JPEG's frame header lies beyond `buf`; undefined for any
 * other content (other formats, junk, a frame header without a height), which is then left to sharp to read or refuse.
 */
export function parseImageHeader(buf: Uint8Array): ImageHeader | 'more' | undefined {
  const u16 = (i: number) => (buf[i]! << 8) | buf[i + 1]!;
  if (buf.length >= 24 && PNG_SIGNATURE.every((v, i) => buf[i] === v) && buf[12] === 0x49 && buf[13] === 0x48 && buf[14] === 0x44 && buf[15] === 0x52) {
    const w = ((buf[16]! << 24) | (buf[17]! << 16) | u16(18)) >>> 0, h = ((buf[20]! << 24) | (buf[21]! << 16) | u16(22)) >>> 0;
    return w > 0 && h > 0 ? { format: 'png', w, h } : undefined;
  }
  if (buf.length < 3 || buf[0] !== 0xff || buf[1] !== 0xd8) return buf.length < 3 ? 'more' : undefined;
  let i = 2;
  for (;;) {
    while (i < buf.length && buf[i] !== 0xff) i++; // tolerate garbage between segments, as libjpeg does
    while (i < buf.length && buf[i] === 0xff) i++; // fill bytes
    if (i + 8 > buf.length) return 'more';
    const m = buf[i]!;
    i++;
    if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) continue; // markers without a length
    if (m === 0xd9 || m === 0xda) return undefined; // end of image or start of scan before any frame header
    const len = u16(i);
    if (len < 2) return undefined;
    // SOF0-3, 5-7, 9-11, 13-15 (not DHT C4, JPG C8, DAC CC): length, precision, height, width
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      const h = u16(i + 3), w = u16(i + 5);
      return w > 0 && h > 0 ? { format: 'jpeg', w, h } : undefined; // height 0: defined later by a DNL marker
    }
    i += len;
  }
}

const HEAD_BYTES = 65536;

function notRegular(st: Stats, file: string): DataError {
  const kind = st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : 'a special file';
  return new DataError(`cannot decode image (not a regular file: ${kind})`, file);
}

/**
 * Opens a file for reading without blocking on special files: a FIFO, device or socket is refused (closed, then
 * thrown); undefined when it cannot be opened. The caller closes the descriptor.
 */
function openRegularSync(file: string): { fd: number; st: Stats } | undefined {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw notRegular(st, file);
    return { fd, st };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** openRegularSync on libuv's pool (for the main thread, which must not block on a slow file system). */
async function openRegular(file: string): Promise<{ fh: FileHandle; st: Stats } | undefined> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notRegular(st, file);
    return { fh, st };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/**
 * Reads an image file's header without blocking on special files (opened non-blocking; a FIFO, device or socket
 * is refused). undefined when the file cannot be opened or its header is not one parseImageHeader knows: the
 * caller then lets sharp open the file, which refuses it with today's message or reads the header itself.
 * Synchronous: for loader worker threads, whose only job this is (libuv's pool stays free for the decodes).
 */
export function readImageHeaderSync(file: string): ImageHeader | undefined {
  const f = openRegularSync(file);
  if (!f) return undefined;
  const { fd, st } = f;
  try {
    let buf = Buffer.allocUnsafe(Math.min(st.size, HEAD_BYTES));
    buf = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
    let head = parseImageHeader(buf);
    if (head === 'more' && st.size > buf.length) {
      const all = Buffer.allocUnsafe(st.size);
      head = parseImageHeader(all.subarray(0, readSync(fd, all, 0, all.length, 0)));
    }
    return head === 'more' ? undefined : head;
  } finally {
    closeSync(fd);
  }
}

/** readImageHeaderSync on libuv's pool (for the main thread, which must not block on a slow file system). */
export async function readImageHeader(file: string): Promise<ImageHeader | undefined> {
  const f = await openRegular(file);
  if (!f) return undefined;
  const { fh, st } = f;
  try {
    const first = await fh.read({ buffer: Buffer.allocUnsafe(Math.min(st.size, HEAD_BYTES)), position: 0 });
    let head = parseImageHeader(first.buffer.subarray(0, first.bytesRead));
    if (head === 'more' && st.size > first.bytesRead) {
      const all = await fh.read({ buffer: Buffer.allocUnsafe(st.size), position: 0 });
      head = parseImageHeader(all.buffer.subarray(0, all.bytesRead));
    }
    return head === 'more' ? undefined : head;
  } finally {
    await fh.close();
  }
}

/**
 * An image file's bytes, read once (the addon or sharp decodes from them, so that the header and the pixels come
 * from one read of one handle), and its header when parseImageHeader knows it (JPEG, PNG; else sharp reads it from
 * the bytes). Read synchronously in the loader's worker threads, whose only job this is, on libuv's pool on the
 * main thread. undefined when the file cannot be opened (sharp then opens it and refuses it with today's
 * message); special files are refused without blocking on them.
 */
interface ImageFile { bytes: Buffer; head?: ImageHeader }

/** The addon decodes JPEGs (built with libjpeg's headers); else sharp does. */
const withJpeg = jpegAvailable();

function imageFile(bytes: Buffer): ImageFile {
  const head = parseImageHeader(bytes);
  return head === undefined || head === 'more' ? { bytes } : { bytes, head };
}

function readImageSync(file: string): ImageFile | undefined {
  const f = openRegularSync(file);
  if (!f) return undefined;
  const { fd, st } = f;
  try {
    const all = Buffer.allocUnsafe(st.size);
    let n = 0;
    for (let got = -1; n < all.length && got !== 0; n += got) got = readSync(fd, all, n, all.length - n, n);
    return imageFile(all.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

async function readImage(file: string): Promise<ImageFile | undefined> {
  if (!isMainThread) return readImageSync(file);
  const f = await openRegular(file);
  if (!f) return undefined;
  try {
    return imageFile(await f.fh.readFile());
  } catch {
    return undefined; // unreadable: sharp says why
  } finally {
    await f.fh.close();
  }
}

/** The bytes of a JPEG the addon decodes; undefined for other images, which sharp decodes. */
const addonJpeg = (f: ImageFile | undefined) => (f?.head?.format === 'jpeg' && withJpeg ? f.bytes : undefined);

/**
 * A JPEG decoded by the addon (see JpegOptions), on this thread in a worker thread, on libuv's pool on the main
 * thread; undefined for a CMYK/YCCK JPEG, which sharp decodes. libjpeg's errors name the file.
 */
async function decodeJpeg(file: string, bytes: Buffer, opts: JpegOptions): Promise<RawPixels | undefined> {
  try {
    const r = isMainThread ? await jpegDecodeAsync(bytes, opts) : jpegDecode(bytes, opts);
    return r ? { data: r.data, w: r.w, h: r.h, channels: 3, planar: opts.planar === true } : undefined;
  } catch (e) {
    throw new DataError(`cannot decode image (${(e as Error).message})`, file, { cause: e });
  }
}

/** Decodes a whole image to 3-channel CHW uint8. */
export async function decodeImage(file: string): Promise<{ data: Uint8Array; h: number; w: number }> {
  const r = await rawRgb(open(file), file);
  const data = new Uint8Array(3 * r.h * r.w);
  hwcToChw(r.data, r.channels, r.h, r.w, data);
  return { data, h: r.h, w: r.w };
}

/**
 * Eval transform: Resize(resize, short side) + CenterCrop(size) as RGB pixels (H×W×3, or planar 3×H×W), resized as
 * PIL does (see trainPixels).
 */
export async function evalPixels(file: string, size: number, resize: number, planar = false): Promise<RawPixels> {
  const f = await readImage(file);
  const jpeg = addonJpeg(f);
  const img = jpeg ? undefined : open(f?.bytes ?? file);
  const { w, h } = f?.head ?? (await dims(img!, file));
  // torchvision Resize(int): the short side becomes `resize`, the long side int(resize * long / short).
  let ow = w, oh = h;
  if (!(Math.min(w, h) === resize)) {
    if (w <= h) {
      ow = resize;
      oh = Math.floor((resize * h) / w);
    } else {
      oh = resize;
      ow = Math.floor((resize * w) / h);
    }
  }
  if (ow < size || oh < size) {
    throw new DataError(`image of ${w}x${h} resized to ${ow}x${oh} is smaller than the ${size}x${size} centre crop`, file);
  }
  const top = Math.round((oh - size) / 2), left = Math.round((ow - size) / 2);
  let r: RawPixels | undefined;
  // at full scale (no DCT scaling): evaluations are torchvision's on PIL images to the bit, comparable with PyTorch's
  const want = { outW: ow, outH: oh, cropLeft: left, cropTop: top, cropWidth: size, cropHeight: size, planar };
  if (jpeg) r = await decodeJpeg(file, jpeg, { ...want, denom: 1 });
  // other formats: decoded by sharp, resized as a JPEG is
  r ??= resized(await rawRgb(img ?? open(jpeg!), file), want);
  if (r.w !== size || r.h !== size) throw new DataError(`decoded to ${r.w}x${r.h}, expected ${size}x${size}`, file);
  return r;
}

/** Eval transform: Resize(resize, short side) + CenterCrop(size), written as 3×size×size CHW into dst at offset. */
export async function decodeEval(file: string, size: number, resize: number, dst: Uint8Array, offset = 0): Promise<void> {
  writeChw(await evalPixels(file, size, resize, true), dst, offset);
}

export interface CropBox { top: number; left: number; height: number; width: number }

/** torchvision's RandomResizedCrop.get_params: 10 tries at a random area/aspect, then a clamped central crop. */
export function randomResizedCropParams(w: number, h: number, rng: Rng, scale: [number, number] = [0.08, 1], ratio: [number, number] = [3 / 4, 4 / 3]): CropBox {
  const area = w * h;
  const logR = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let t = 0; t < 10; t++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const ar = Math.exp(rng.uniform(logR[0], logR[1]));
    const cw = Math.round(Math.sqrt(target * ar));
    const ch = Math.round(Math.sqrt(target / ar));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      return { top: rng.int(0, h - ch), left: rng.int(0, w - cw), height: ch, width: cw };
    }
  }
  const inRatio = w / h;
  let cw: number, ch: number;
  if (inRatio < Math.min(ratio[0], ratio[1])) {
    cw = w;
    ch = Math.round(cw / Math.min(ratio[0], ratio[1]));
  } else if (inRatio > Math.max(ratio[0], ratio[1])) {
    ch = h;
    cw = Math.round(ch * Math.max(ratio[0], ratio[1]));
  } else {
    cw = w;
    ch = h;
  }
  return { top: Math.floor((h - ch) / 2), left: Math.floor((w - cw) / 2), height: ch, width: cw };
}

export interface TrainTransformOptions {
  scale?: [number, number];
  ratio?: [number, number];
  /** Horizontal flip probability (default 0.5). */
  flip?: number;
  /** The result as 3 planes C×H×W (default: interleaved H×W×3). */
  planar?: boolean;
}

/** Decoded pixels (1-4 channels) resized by the addon as a JPEG's crop is (PIL's bilinear resize), as RGB. */
function resized(r: RawPixels, opts: JpegOptions & { outW: number; outH: number }): RawPixels {
  let rgb: Uint8Array = r.data;
  if (r.channels !== 3) hwcToRgb(r.data, r.channels, r.h, r.w, (rgb = new Uint8Array(3 * r.w * r.h)));
  const o = resizeRgb(rgb, r.w, r.h, opts);
  return { data: o.data, w: o.w, h: o.h, channels: 3, planar: opts.planar === true };
}

/**
 * Train transform: RandomResizedCrop(size) + horizontal flip as RGB pixels. The crop box and the flip are drawn
 * from `rng` exactly as torchvision draws them, from the image's stored size — read from the file's header (JPEG,
 * PNG) without a separate metadata call, else asked of sharp. The box is resized to size×size as PIL's
 * resize(BILINEAR) does (the addon's resampler, native/jpeg.cc), then flipped. A JPEG is decoded by the addon at the
 * smallest DCT scale (1/8, 1/4, 1/2, 1) whose scaled box still covers the output, only the box's columns and rows
 * (at scale 1 the result is torchvision's crop + resize on PIL images, to the bit); other images (and CMYK JPEGs)
 * by sharp, the box extracted (decoding stops at its last row).
 */
export async function trainPixels(file: string, size: number, rng: Rng, opts: TrainTransformOptions = {}): Promise<RawPixels> {
  const f = await readImage(file);
  const jpeg = addonJpeg(f);
  const img = jpeg ? undefined : open(f?.bytes ?? file);
  const { w, h } = f?.head ?? (await dims(img!, file));
  const box = randomResizedCropParams(w, h, rng, opts.scale, opts.ratio);
  const flip = rng.next() < (opts.flip ?? 0.5);
  const want = { outW: size, outH: size, flip, planar: opts.planar === true };
  if (jpeg) {
    const r = await decodeJpeg(file, jpeg, { ...box, ...want });
    if (r) return r;
  }
  const s = img ?? open(jpeg!);
  if (box.left !== 0 || box.top !== 0 || box.width !== w || box.height !== h) s.extract(box);
  const r = await rawRgb(s, file);
  if (r.w !== box.width || r.h !== box.height) throw new DataError(`decoded to ${r.w}x${r.h}, expected the ${box.width}x${box.height} box`, file);
  return resized(r, want);
}

/** Train transform: RandomResizedCrop(size) + horizontal flip, written as 3×size×size CHW into dst at offset. */
export async function decodeTrain(file: string, size: number, rng: Rng, dst: Uint8Array, offset = 0, opts: TrainTransformOptions = {}): Promise<void> {
  writeChw(await trainPixels(file, size, rng, { ...opts, planar: true }), dst, offset);
}

/** A lazily decoded ImageFolder: plain data (structured-cloneable), images are decoded per batch by the loader. */
export interface LazyImageDataset {
  kind: 'lazy';
  root: string;
  files: string[];
  labels: Int32Array;
  n: number;
  c: 3;
  h: number;
  w: number;
  numClasses: number;
  classNames: string[];
  mean: number[];
  std: number[];
  /** Output side length (crop size). */
  size: number;
  /** Short side for the eval transform's Resize (torchvision: 256 for size 224). */
  resize: number;
  scale: [number, number];
  ratio: [number, number];
  /** Skip (and count) undecodable images instead of throwing. */
  skipBad: boolean;
  /** Loader worker threads decoding this folder (a Loader's `workers` option overrides it); default cores − 1. */
  workers?: number;
}

export interface ImageFolderOptions {
  size?: number;
  resize?: number;
  scale?: [number, number];
  ratio?: [number, number];
  skipBad?: boolean;
  /** Loader worker threads that decode it (default: cores − 1, at least 1). */
  workers?: number;
  extensions?: readonly string[];
  classOrder?: readonly string[];
  mean?: number[];
  std?: number[];
}

const IMAGENET_MEAN = [0.485, 0.456, 0.406], IMAGENET_STD = [0.229, 0.224, 0.225];

/** Scans an ImageFolder and returns a lazy dataset (nothing is decoded yet). */
export function openImageFolder(root: string, opts: ImageFolderOptions = {}): LazyImageDataset {
  const scan = scanImageFolder(root, { extensions: opts.extensions, classOrder: opts.classOrder });
  const size = opts.size ?? 224;
  const resize = opts.resize ?? Math.round((size * 256) / 224);
  return {
    kind: 'lazy', root, files: scan.files, labels: scan.labels, n: scan.files.length, c: 3, h: size, w: size,
    numClasses: scan.classNames.length, classNames: scan.classNames,
    mean: opts.mean ?? IMAGENET_MEAN, std: opts.std ?? IMAGENET_STD,
    size, resize, scale: opts.scale ?? [0.08, 1], ratio: opts.ratio ?? [3 / 4, 4 / 3], skipBad: opts.skipBad ?? false,
    ...(opts.workers !== undefined && { workers: opts.workers }),
  };
}

export interface Skipped { file: string; reason: string }

/**
 * Decodes all images with the eval transform into one uint8 array (for small ImageFolders that fit in
 * memory). Undecodable images throw, or with skipBad are left out and listed in `skipped`.
 */
export async function decodeAllEval(ds: LazyImageDataset, concurrency = 8): Promise<{ images: Uint8Array; labels: Int32Array; n: number; skipped: Skipped[]; files: string[] }> {
  const per = 3 * ds.size * ds.size;
  const tmp = allocShared(ds.n * per);
  const ok = await mapLimit(ds.files, concurrency, async (f, i) => {
    try {
      await decodeEval(f, ds.size, ds.resize, tmp, i * per);
      return null;
    } catch (e) {
      if (!ds.skipBad) throw e;
      return { file: f, reason: (e as Error).message };
    }
  });
  const skipped = ok.filter((s): s is Skipped => s !== null);
  if (skipped.length === 0) return { images: tmp, labels: ds.labels, n: ds.n, skipped, files: ds.files };
  const keep = ok.map((s, i) => (s === null ? i : -1)).filter((i) => i >= 0);
  const images = allocShared(keep.length * per);
  keep.forEach((src, dstI) => images.set(tmp.subarray(src * per, (src + 1) * per), dstI * per));
  return { images, labels: Int32Array.from(keep, (i) => ds.labels[i]!), n: keep.length, skipped, files: keep.map((i) => ds.files[i]!) };
}

export function relativeName(root: string, file: string): string {
  return relative(root, file);
}
