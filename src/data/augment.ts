// Byte-level augmentation of uint8 CHW images (data movement done in the loader's worker, not tensor math):
// CIFAR-style zero-pad + random crop + horizontal flip. Batches stay uint8; toTensors converts them to [0,1]
// floats with libtorch. toFloat, what batches held before, gives the same values (v / 255 rounded to float32,
// which is what libtorch's x.to(float32).div(255) gives too: tested for every byte value).
import type { Rng } from './prng.js';

export interface PadCropFlip {
  /** Left edge of the crop in the padded image, 0..2*pad. */
  ox: number;
  /** Top edge of the crop in the padded image, 0..2*pad. */
  oy: number;
  flip: boolean;
}

/** Draws torchvision's RandomCrop(padding=pad) top/left and RandomHorizontalFlip's coin, in that order. */
export function padCropFlipParams(rng: Rng, pad: number): PadCropFlip {
  const oy = rng.int(0, 2 * pad);
  const ox = rng.int(0, 2 * pad);
  const flip = rng.next() < 0.5;
  return { ox, oy, flip };
}

/**
 * Writes one c×h×w image cropped and flipped: out(ch, y, x) = padded(ch, y + oy, x' + ox) with
 * x' = flip ? w-1-x : x, where padded is the image with `pad` zero pixels on every side. Rows without a flip are
 * copied whole (memcpy).
 */
export function padCropFlip(
  src: Uint8Array, srcOff: number, c: number, h: number, w: number,
  p: PadCropFlip, pad: number, dst: Uint8Array, dstOff: number,
): void {
  const dy = p.oy - pad, dx = p.ox - pad;
  let x0: number, x1: number;
  if (!p.flip) {
    x0 = Math.max(0, -dx);
    x1 = Math.min(w, w - dx);
  } else {
    x0 = Math.max(0, dx);
    x1 = Math.min(w, w + dx);
  }
  for (let ch = 0; ch < c; ch++) {
    const sPlane = srcOff + ch * h * w, dPlane = dstOff + ch * h * w;
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      const dRow = dPlane + y * w;
      if (sy < 0 || sy >= h || x0 >= x1) {
        dst.fill(0, dRow, dRow + w);
        continue;
      }
      if (x0 > 0) dst.fill(0, dRow, dRow + x0);
      if (x1 < w) dst.fill(0, dRow + x1, dRow + w);
      const sRow = sPlane + sy * w;
      if (!p.flip) {
        dst.set(src.subarray(sRow + x0 + dx, sRow + x1 + dx), dRow + x0);
      } else {
        for (let x = x0, s = sRow + w - 1 - x0 + dx; x < x1; x++, s--) dst[dRow + x] = src[s]!;
      }
    }
  }
}

/** uint8 → float in [0,1]. */
export function toFloat(src: Uint8Array, srcOff: number, len: number, dst: Float32Array, dstOff: number): void {
  const inv = 1 / 255;
  for (let i = 0; i < len; i++) dst[dstOff + i] = src[srcOff + i]! * inv;
}
