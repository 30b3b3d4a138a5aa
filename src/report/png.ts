// Images of the report and the demo page: tensors in [0, 1] encoded as 8-bit PNG (sharp), as files' bytes or
// embedded as data: URIs.
import sharp from 'sharp';
import type { Tensor } from '../torch/index.js';
import { scope, ops } from '../torch/index.js';

/** PNG files (bytes) of a batch N×C×H×W (C = 1 or 3) with values in [0, 1], each pixel rounded to 8 bits. */
export async function pngBuffers(batch: Tensor): Promise<Buffer[]> {
  const [n, c, h, w] = batch.shape as [number, number, number, number];
  if (batch.ndim !== 4 || (c !== 1 && c !== 3)) throw new RangeError(`pngBuffers: expected N×1×H×W or N×3×H×W, got ${batch.shape.join('×')}`);
  // N×H×W×C uint8, the layout sharp's raw input wants
  const px = scope(() => ops.round(batch.detach().clamp(0, 1).mul(255)).permute(0, 2, 3, 1).contiguous().to('uint8').toTypedArray() as Uint8Array);
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
