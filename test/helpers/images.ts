// An ImageNet-style image folder made in a test: train/<class>/* and val/<class>/* with JPEGs of mixed sizes
// (200–500 pixels a side, any aspect), some greyscale, some CMYK, some progressive, and a few PNGs, written by
// sharp. Each class has its own colour cast and blob layout, so that a model can learn something from a few
// steps; the rest is structure and noise at several scales, as in photographs. Deterministic for a seed.
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

export interface FolderCounts {
  /** Images per split, over all classes (the classes take turns). */
  train: number;
  val: number;
  classes: number;
  seed?: number;
}

/** What was written: files per kind (jpeg, grey, cmyk, progressive, png) and the total bytes. */
export interface FolderStats {
  files: number;
  kinds: Record<string, number>;
  bytes: number;
  minSide: number;
  maxSide: number;
}

/** Writes the folder under `root`; returns what it holds. */
export async function writeImageNetStyleFolder(root: string, c: FolderCounts): Promise<FolderStats> {
  const rnd = xorshift(c.seed ?? 2024);
  const stats: FolderStats = { files: 0, kinds: {}, bytes: 0, minSide: Infinity, maxSide: 0 };
  const noise = (w: number, h: number, ch: number) => {
    const b = Buffer.alloc(w * h * ch);
    for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
    return b;
  };
  for (const [split, n] of [['train', c.train], ['val', c.val]] as const) {
    for (let i = 0; i < n; i++) {
      const cls = i % c.classes;
      const W = 200 + Math.floor(rnd() * 301), H = 200 + Math.floor(rnd() * 301);
      // coarse colour regions with the class's cast, then finer structure and pixel noise
      const coarse = await sharp(noise(4, 3, 3), { raw: { width: 4, height: 3, channels: 3 } }).resize(W, H, { fit: 'fill', kernel: 'cubic' }).raw().toBuffer();
      const fine = await sharp(noise(40, 30, 1), { raw: { width: 40, height: 30, channels: 1 } }).resize(W, H, { fit: 'fill' }).raw().toBuffer();
      const px = Buffer.alloc(W * H * 3);
      const cast = [(cls * 97) % 256, (cls * 53 + 80) % 256, (cls * 151 + 160) % 256];
      for (let p = 0; p < W * H; p++)
        for (let k = 0; k < 3; k++) px[3 * p + k] = Math.max(0, Math.min(255, 0.45 * coarse[3 * p + k]! + 0.35 * cast[k]! + 0.2 * fine[p]! + (rnd() - 0.5) * 40));
      const kind = i % 17 === 5 ? 'png' : i % 11 === 3 ? 'grey' : i % 13 === 7 ? 'cmyk' : i % 7 === 2 ? 'progressive' : 'jpeg';
      let img = sharp(px, { raw: { width: W, height: H, channels: 3 } });
      if (kind === 'grey') img = img.greyscale();
      if (kind === 'cmyk') img = img.toColourspace('cmyk');
      const out = kind === 'png' ? img.png() : img.jpeg({ quality: 75 + Math.floor(rnd() * 20), progressive: kind === 'progressive' });
      const dir = join(root, split, `class${cls}`);
      mkdirSync(dir, { recursive: true });
      const info = await out.toFile(join(dir, `${split}_${String(i).padStart(5, '0')}.${kind === 'png' ? 'png' : 'jpg'}`));
      stats.files++;
      stats.bytes += info.size;
      stats.kinds[kind] = (stats.kinds[kind] ?? 0) + 1;
      stats.minSide = Math.min(stats.minSide, W, H);
      stats.maxSide = Math.max(stats.maxSide, W, H);
    }
  }
  return stats;
}
