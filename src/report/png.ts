// Images of the report and the demo page: tensors in [0, 1] encoded as 8-bit PNG (sharp), as files' bytes or
// embedded as data: URIs; and the 8-bit pixels such a PNG holds, for computing on exactly what is shown.
import sharp from 'sharp';
import type { Tensor } from '../torch/index.js';
import { scope, ops } from '../torch/index.js';

/**
 * The 8-bit levels (0…255, as floats) that the PNG of a batch in [0, 1] holds: each value clipped to [0, 1] and
 * rounded to the nearest level (ties to even). Levels / 255 is the image a reader of the PNG gets back.
 */
export function pngLevels(batch: Tensor): Tensor {
  return scope(() => ops.round(batch.detach().clamp(0, 1).mul(255)));
}

/** The largest L∞ perturbation of 8-bit images within ε: ⌊255ε⌋ levels. */
export function epsLevels(eps: number): number {
  return Math.floor(255 * eps + 1e-6);
}

/** The levels ± of which a perturbation image spans black to white: ⌊255ε⌋, at least 1 (ε below one level). */
export function perturbationLevels(eps: number): number {
  return Math.max(epsLevels(eps), 1);
}

/**
 * Adversarial images as 8-bit levels inside the ε-ball of the clean image's levels `clean` (pngLevels): each pixel
 * rounded to the nearest level, then clipped to clean ± ⌊255ε⌋ levels. For an adversarial image within ε of the
 * clean 8-bit image, rounding can overshoot the ball by half a level at most; such a pixel is rounded towards the
 * clean pixel instead, so that the stored example is still a valid one.
 */
export function quantizeInBall(clean: Tensor, adv: Tensor, eps: number): Tensor {
  const e = epsLevels(eps);
  return scope(() => clean.add(pngLevels(adv).sub(clean).clamp(-e, e)));
}

/** PNG files (bytes) of a batch N×C×H×W (C = 1 or 3) with values in [0, 1], each pixel rounded to 8 bits (pngLevels). */
export async function pngBuffers(batch: Tensor): Promise<Buffer[]> {
  const [n, c, h, w] = batch.shape as [number, number, number, number];
  if (batch.ndim !== 4 || (c !== 1 && c !== 3)) throw new RangeError(`pngBuffers: expected N×1×H×W or N×3×H×W, got ${batch.shape.join('×')}`);
  // N×H×W×C uint8, the layout sharp's raw input wants
  const px = scope(() => pngLevels(batch).permute(0, 2, 3, 1).contiguous().to('uint8').toTypedArray() as Uint8Array);
  const per = h * w * c;
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const img = sharp(Buffer.from(px.buffer, px.byteOffset + i * per, per), { raw: { width: w, height: h, channels: c } });
    out.push(await (c === 1 ? img.toColourspace('b-w') : img).png().toBuffer()); // 1 channel: a grey PNG, not RGB
  }
  return out;
}

/** PNG data URIs of a batch N×C×H×W (C = 1 or 3) with values in [0, 1]. */
export async function pngDataUris(batch: Tensor): Promise<string[]> {
  return (await pngBuffers(batch)).map((png) => `data:image/png;base64,${png.toString('base64')}`);
}
