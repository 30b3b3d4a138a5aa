// A seeded fuzz of the safetensors loader, shared by test/io.test.ts (short run) and on-demand long runs:
//   FREEADV_FUZZ_ITERS=100000 node --test dist/test/io.test.js
// Each iteration mutates a valid file (bit flips, truncations, splices, header-length lies, header characters,
// and structured rewrites of the JSON with lying dtypes/shapes/offsets, duplicate keys and bad metadata). The
// loader must either load it consistently (every tensor's bytes match its shape and dtype, and the tensors tile
// the data section) or throw a CheckpointError naming the source; anything else is a failure.
import { writeFileSync } from 'node:fs';
import * as T from '../src/torch/index.js';
import { encodeSafetensors, decodeSafetensors, loadSafetensors, parseHeader, CheckpointError } from '../src/io/index.js';

/** A raw file: 8-byte length (or a lie), the header (object → JSON, or text as is), then the data. */
export function rawFile(header: unknown, data: Uint8Array, lenOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(json.byteLength));
  return Buffer.concat([len, json, data]);
}

/** mulberry32: a small seeded generator. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const DTYPES = ['F32', 'F64', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8', 'f32', '', 'U64', 'C64'];

export interface FuzzResult {
  loaded: number;
  rejected: number;
  /** Rejections by the first words of their fault, for a sense of coverage. */
  faults: Record<string, number>;
}

/**
 * Runs `iters` mutations of a valid file through decodeSafetensors (and every `fileEvery`-th one also through
 * loadSafetensors from disk at `filePath`, which must agree). Throws on the first iteration that ends in anything
 * but a consistent load or a CheckpointError.
 */
export function fuzzLoader(iters: number, seed = 1, opts: { filePath?: string; fileEvery?: number } = {}): FuzzResult {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <V>(xs: readonly V[]): V => xs[int(xs.length)]!;
  const base = T.scope(() =>
    encodeSafetensors(
      {
        a: T.rand([3, 4]),
        b: T.tensor([1, 2, 3], { dtype: 'int64' }),
        c: T.zeros([2, 2]).to('float16'),
        d: T.ones([3]).to('bfloat16'),
        e: T.tensor([true, false]),
        s: T.tensor(7, { dtype: 'int32' }),
        z: T.zeros([0, 5]),
      },
      { k: 'v', run: '{"step": 3}' },
    ),
  );
  const headerLen = Number(base.readBigUInt64LE(0));
  const baseHeader = JSON.parse(base.subarray(8, 8 + headerLen).toString()) as Record<string, any>;
  const baseData = base.subarray(8 + headerLen);
  const weirdNumber = () =>
    pick<unknown>([int(200), -1 - int(10), int(50) + 0.5, 2 ** 53, 2 ** 63, 1e308, -0, '4', null, true, [], {}, int(baseData.length + 1), baseData.length]);

  /** A structured rewrite of the header JSON: the data stays valid-looking while the header lies. */
  const rewrite = (): Buffer => {
    const h = structuredClone(baseHeader);
    const names = Object.keys(h).filter((k) => k !== '__metadata__');
    let data: Uint8Array = baseData;
    for (let n = 1 + int(3); n > 0; n--) {
      const name = pick(names);
      let e = h[name];
      if (typeof e !== 'object' || e === null || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) e = h[name] = structuredClone(baseHeader[name]);
      switch (int(12)) {
        case 0: e.dtype = pick(DTYPES); break;
        case 1: e.shape = Array.from({ length: int(4) }, () => (rnd() < 0.8 ? int(7) : weirdNumber())); break;
        case 2: e.shape[int(e.shape.length + 1)] = weirdNumber(); break;
        case 3: e.data_offsets[int(2)] = weirdNumber(); break;
        case 4: e.data_offsets = [e.data_offsets[0] + int(9) - 4, e.data_offsets[1] + int(9) - 4]; break;
        case 5: e.data_offsets = pick<unknown>([[0], [0, 1, 2], 'x', null, [e.data_offsets[1], e.data_offsets[0]]]); break;
        case 6: delete h[name]; break;
        case 7: h[pick(names)] = { ...e }; break; // two entries share the same bytes
        case 8: h.__metadata__ = pick<unknown>([{ k: 1 }, { k: null }, [], 'm', null, { k: { x: 'y' } }, { '': '' }]); break;
        case 9: data = rnd() < 0.5 ? data.subarray(0, int(data.length)) : Buffer.concat([data, Buffer.alloc(1 + int(16))]); break;
        case 10: h[name] = pick<unknown>([null, 3, 'F32', [], { dtype: 'F32' }]); break;
        case 11: e.shape = [int(2 ** 20), int(2 ** 20), int(2 ** 20)]; break;
      }
    }
    let json = JSON.stringify(h);
    if (rnd() < 0.2) {
      // a duplicate key, spelled plainly or with an escape JSON.parse would fold into the same key
      const k = pick(names);
      const dupKey = rnd() < 0.5 ? k : `\\u00${k.charCodeAt(0).toString(16)}${k.slice(1)}`;
      json = json.replace(/^\{/, `{"${dupKey}":${JSON.stringify(h[k] ?? baseHeader[k])},`);
    }
    if (rnd() < 0.5) json += ' '.repeat(int(8));
    return rawFile(json, data);
  };

  const mutate = (): Buffer => {
    let buf: Buffer = Buffer.from(base);
    switch (int(9)) {
      case 8: for (let j = 1 + int(8); j > 0; j--) { const p = 8 + headerLen + int(baseData.length); buf[p] = buf[p]! ^ (1 << int(8)); } break;
      case 0: for (let j = 1 + int(4); j > 0; j--) { const p = int(buf.length); buf[p] = buf[p]! ^ (1 << int(8)); } break;
      case 1: buf = buf.subarray(0, int(buf.length)); break;
      case 2: buf[8 + int(headerLen)] = '0123456789[]{}",:-eE. \\u\x00\xff'.charCodeAt(int(24)); break;
      case 3: {
        const choices = [BigInt(headerLen + int(17) - 8), BigInt(int(2 ** 31)), BigInt(int(2 ** 52)) * 4096n, 2n ** 64n - 1n, 0n, 100_000_001n];
        buf.writeBigUInt64LE(pick(choices), 0);
        break;
      }
      case 4: { const p = int(buf.length); buf = Buffer.concat([buf.subarray(0, p), Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256))), buf.subarray(p)]); break; }
      case 5: case 6: buf = rewrite(); break;
      default: {
        const lie = { a: { dtype: pick(DTYPES), shape: [int(6), int(6)], data_offsets: [int(60), int(120)] } };
        buf = rawFile(lie, Buffer.alloc(int(100)));
      }
    }
    return buf;
  };

  const faults: Record<string, number> = {};
  let loaded = 0;
  let rejected = 0;
  const describe = (r: { ok: true; shapes: string } | { ok: false; msg: string }) => (r.ok ? `loaded ${r.shapes}` : r.msg);
  const attempt = (load: () => { tensors: Record<string, T.Tensor> }, buf: Buffer, source: string) => {
    let tensors: Record<string, T.Tensor>;
    try {
      tensors = load().tensors;
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      if (!e.message.startsWith(`${source}: `)) throw new Error(`CheckpointError does not name its source: ${e.message}`);
      return { ok: false as const, msg: e.message.slice(source.length + 2) };
    }
    // consistency: byte sizes match shape × dtype, and together they are exactly the data section
    let total = 0;
    const shapes: string[] = [];
    try {
      const n = Number(buf.readBigUInt64LE(0));
      const h = parseHeader(buf.subarray(8, 8 + n), buf.length, source);
      for (const [name, t] of Object.entries(tensors)) {
        const raw = t.toBytes();
        const bytes = raw.byteLength;
        if (bytes !== t.numel * T.bytesPerElement(t.dtype)) throw new Error(`tensor '${name}': ${bytes} bytes for shape [${t.shape}] of ${t.dtype}`);
        const info = h.tensors[name]!;
        const [b, e] = info.offsets;
        if (t.dtype !== info.dtype || t.shape.join() !== info.shape.join() || !Buffer.from(raw).equals(buf.subarray(8 + n + b, 8 + n + e)))
          throw new Error(`tensor '${name}' is not the file's bytes [${b}, ${e}) as ${info.dtype}[${info.shape}]`);
        total += bytes;
        shapes.push(`${name}:${t.dtype}[${t.shape}]`);
      }
      if (total !== buf.length - 8 - n) throw new Error(`tensors hold ${total} bytes, the data section has ${buf.length - 8 - n}`);
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
    return { ok: true as const, shapes: shapes.sort().join(' ') };
  };

  for (let i = 0; i < iters; i++) {
    const buf = mutate();
    try {
      const r = attempt(() => decodeSafetensors(buf, 'fuzz'), buf, 'fuzz');
      if (r.ok) loaded++;
      else {
        rejected++;
        const key = r.msg.replace(/'[^']*'|"[^"]*"|\[[^\]]*\]|\d+(\.\d+)?/g, '_').split('(')[0]!.trim().slice(0, 60);
        faults[key] = (faults[key] ?? 0) + 1;
      }
      if (opts.filePath && i % (opts.fileEvery ?? 20) === 0) {
        writeFileSync(opts.filePath, buf);
        const f = attempt(() => loadSafetensors(opts.filePath!), buf, opts.filePath);
        if (describe(f) !== describe(r)) throw new Error(`loadSafetensors disagrees with decodeSafetensors: '${describe(f)}' vs '${describe(r)}'`);
      }
    } catch (e) {
      throw new Error(`fuzz iteration ${i} (seed ${seed}): ${(e as Error).name}: ${(e as Error).message}\nfile (base64): ${buf.toString('base64').slice(0, 2000)}`);
    }
  }
  return { loaded, rejected, faults };
}
