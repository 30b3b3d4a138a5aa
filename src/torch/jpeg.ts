// JPEG decoding of crops and their resize for the input pipeline (native/jpeg.cc, libjpeg-turbo; PIL's bilinear
// resize). Unlike the rest of src/torch it touches no libtorch state: the loader's worker threads call it (the addon
// loads in each of them).
import { native } from './native.js';

/** What to decode: a box of the stored image, resized (PIL's bilinear resize) to outW×outH, a part of that, flipped. */
export interface JpegOptions {
  /** The box in stored pixels (default: the whole image). */
  left?: number;
  top?: number;
  width?: number;
  height?: number;
  /** The size the box is resized to; 0 or absent: not resized (the box's pixels at the chosen scale). */
  outW?: number;
  outH?: number;
  /** The part of the resized box wanted (default: all of it). */
  cropLeft?: number;
  cropTop?: number;
  cropWidth?: number;
  cropHeight?: number;
  /** Mirror the result left-right. */
  flip?: boolean;
  /** A resized result as 3 planes C×H×W (default: interleaved rows H×W×3). */
  planar?: boolean;
  /** Decode at 1/denom scale (1, 2, 4, 8); default: the smallest scale whose scaled box still covers outW×outH. */
  denom?: number;
  /** Images with more pixels are refused before decoding ("Input image exceeds pixel limit"); default sharp's, 0x3FFF². */
  maxPixels?: number;
}

/** Interleaved RGB rows (h×w×3) and the DCT scale used; null for CMYK/YCCK JPEGs, which it leaves to the caller. */
export type JpegPixels = { data: Buffer; w: number; h: number; denom: number } | null;

/** Whether the addon was built with the JPEG decoder (libjpeg's headers present at build time); else sharp decodes JPEGs. */
export function jpegAvailable(): boolean {
  return typeof native.jpegDecode === 'function';
}

/** Decodes on the calling thread (a loader worker thread's way: it has nothing else to do). Errors carry libjpeg's message. */
export function jpegDecode(bytes: Uint8Array, opts: JpegOptions = {}): JpegPixels {
  if (!native.jpegDecode) throw new Error('jpegDecode: the native addon was built without libjpeg (install libjpeg62-turbo-dev and run `npm run build:native`)');
  return native.jpegDecode(bytes, opts);
}

/** Decodes on libuv's pool (the main thread's way). */
export function jpegDecodeAsync(bytes: Uint8Array, opts: JpegOptions = {}): Promise<JpegPixels> {
  if (!native.jpegDecodeAsync) return Promise.reject(new Error('jpegDecodeAsync: the native addon was built without libjpeg (install libjpeg62-turbo-dev and run `npm run build:native`)'));
  return native.jpegDecodeAsync(bytes, opts);
}

/**
 * The same resize (PIL's resize(BILINEAR) with its antialiasing when reducing) of decoded RGB pixels (h×w×3):
 * opts' box in them (default all), to outW×outH (required), its crop, flipped.
 */
export function resizeRgb(pixels: Uint8Array, w: number, h: number, opts: JpegOptions & { outW: number; outH: number }): { data: Buffer; w: number; h: number } {
  return native.resizeRgb(pixels, w, h, opts);
}
