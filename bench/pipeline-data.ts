// Synthetic ImageNet-like JPEGs for the input-pipeline benchmark (bench/run.ts --only pipeline): both freeadv
// and the PyTorch twin (bench/reference/pipeline_bench.py) read the same files. Each image is 400–500 × 300–375
// (ImageNet's typical size), quality 90, 4:2:0, with coarse colour regions, medium-scale structure and pixel
// noise, about 0.6 bytes per pixel (ImageNet's training JPEGs average about 110 KB at roughly 400 × 350).
// Deterministic for a seed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/** Writes n JPEGs into dir/c00..c{classes-1}/*.jpg; returns their total size in bytes and pixels. */
export async function writeSyntheticImageFolder(dir: string, n: number, opts: { classes?: number; seed?: number; quality?: number } = {}): Promise<{ bytes: number; pixels: number }> {
  const rnd = xorshift(opts.seed ?? 12345);
  const classes = opts.classes ?? 16;
  const grid = (w: number, h: number, W: number, H: number) => {
    const b = Buffer.alloc(w * h * 3);
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
    return sharp(b, { raw: { width: w, height: h, channels: 3 } }).resize(W, H, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
  };
  let bytes = 0, pixels = 0;
  for (let i = 0; i < n; i++) {
    const W = 400 + Math.floor(rnd() * 101), H = 300 + Math.floor(rnd() * 76);
    const [a, m, f] = await Promise.all([grid(6, 5, W, H), grid(50, 40, W, H), grid(220, 170, W, H)]);
    const px = Buffer.alloc(W * H * 3);
    for (let k = 0; k < px.length; k++) px[k] = Math.max(0, Math.min(255, 0.45 * a[k]! + 0.3 * m[k]! + 0.25 * f[k]! + (rnd() - 0.5) * 64));
    const cls = join(dir, `c${String(i % classes).padStart(2, '0')}`);
    mkdirSync(cls, { recursive: true });
    const info = await sharp(px, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: opts.quality ?? 90 }).toFile(join(cls, `${String(i).padStart(5, '0')}.jpg`));
    bytes += info.size;
    pixels += W * H;
  }
  return { bytes, pixels };
}
