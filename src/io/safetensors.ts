// safetensors: an 8-byte little-endian header length N, N bytes of JSON describing each tensor (dtype, shape,
// [begin, end) byte offsets into the data that follows), then the raw little-endian data. No pickle: loading a
// file can never run code. Every field is validated before a byte is read, so a malformed or hostile file
// throws a CheckpointError naming the file and the fault instead of reading out of bounds.
import { readFileSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { Tensor, fromTypedArray, bytesPerElement, type DType } from '../torch/index.js';
import { writeFileAtomic } from './atomic.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const TO_ST: Record<DType, string> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_ST: Record<string, DType> = Object.fromEntries(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));
const MAX_HEADER = 100 * 2 ** 20;

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  offsets: [number, number];
}

export interface Header {
  tensors: Record<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file. */
  dataStart: number;
}

/** Encodes tensors (sorted by name, like the reference implementation) into one safetensors buffer. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Buffer[] {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  const datas: Uint8Array[] = [];
  let off = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const bytes = t.toBytes();
    header[name] = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [off, off + bytes.byteLength] };
    off += bytes.byteLength;
    datas.push(bytes);
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [len, Buffer.from(json, 'utf8'), ...datas.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength))];
}

/** Writes a safetensors file atomically. */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

function fail(source: string, msg: string): never {
  throw new CheckpointError(`${source}: ${msg}`);
}

/** Parses and validates a header; `fileSize` is the total size of the file or buffer. */
export function parseHeader(headerLen: bigint, json: Buffer, fileSize: number, source: string): Header {
  let raw: unknown;
  try {
    raw = JSON.parse(json.toString('utf8'));
  } catch (e) {
    fail(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(source, 'header is not a JSON object');
  // JSON.parse keeps the last of duplicate keys silently: detect duplicates by counting key occurrences.
  const dataStart = 8 + Number(headerLen);
  const dataLen = fileSize - dataStart;
  const tensors: Record<string, TensorInfo> = {};
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(source, '__metadata__ is not an object');
      for (const [k, mv] of Object.entries(v)) if (typeof mv !== 'string') fail(source, `__metadata__ value '${k}' is not a string`);
      metadata = v as Record<string, string>;
      continue;
    }
    if (typeof v !== 'object' || v === null) fail(source, `tensor '${name}': entry is not an object`);
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e.dtype === 'string' ? FROM_ST[e.dtype] : undefined;
    if (!dtype) fail(source, `tensor '${name}': unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(source, `tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
    const shape = e.shape as number[];
    if (shape.length > 16) fail(source, `tensor '${name}': ${shape.length} dimensions is too many`);
    if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 || !e.data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(source, `tensor '${name}': data_offsets ${JSON.stringify(e.data_offsets)} are not two non-negative integers`);
    const [b, end] = e.data_offsets as [number, number];
    if (b > end) fail(source, `tensor '${name}': data_offsets [${b}, ${end}] run backwards`);
    if (end > dataLen) fail(source, `truncated: tensor '${name}' data_offsets [${b}, ${end}] run past the end of the data (${Math.max(0, dataLen)} bytes)`);
    let numel = 1;
    for (const d of shape) numel *= d;
    const need = numel * bytesPerElement(dtype);
    if (!Number.isSafeInteger(need) || need !== end - b) fail(source, `tensor '${name}': shape [${shape}] of ${e.dtype} needs ${need} bytes but data_offsets [${b}, ${end}] hold ${end - b}`);
    tensors[name] = { dtype, shape, offsets: [b, end] };
  }
  // Offsets must tile the data section exactly: no overlaps, no holes, nothing left over.
  const sorted = Object.entries(tensors).sort((a, b) => a[1].offsets[0] - b[1].offsets[0] || a[1].offsets[1] - b[1].offsets[1]);
  let pos = 0;
  for (let i = 0; i < sorted.length; i++) {
    const [name, t] = sorted[i]!;
    if (t.offsets[0] < pos) fail(source, `tensor '${name}' data_offsets [${t.offsets}] overlap tensor '${sorted[i - 1]![0]}'`);
    if (t.offsets[0] > pos) fail(source, `hole in the data before tensor '${name}' (bytes ${pos}..${t.offsets[0]} belong to no tensor)`);
    pos = t.offsets[1];
  }
  if (pos !== dataLen) fail(source, `data section has ${dataLen} bytes but the tensors cover ${pos}`);
  return { tensors, metadata, dataStart };
}

function headerOf(buf: Buffer, source: string): Header {
  if (buf.byteLength < 8) fail(source, `truncated: ${buf.byteLength} bytes, less than the 8-byte header length`);
  const n = buf.readBigUInt64LE(0);
  if (n > BigInt(buf.byteLength - 8)) fail(source, `header length ${n} exceeds file size ${buf.byteLength}`);
  if (n > BigInt(MAX_HEADER)) fail(source, `header length ${n} is larger than ${MAX_HEADER} bytes`);
  const json = buf.subarray(8, 8 + Number(n));
  const raw = json.toString('utf8');
  if (raw.length > 0 && raw[0] !== '{') fail(source, 'header does not start with {');
  checkDuplicateKeys(raw, source);
  return parseHeader(n, json, buf.byteLength, source);
}

/** Top-level duplicate keys: a lying header could hide a tensor behind another. */
function checkDuplicateKeys(json: string, source: string): void {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < json.length && /\s/.test(json[k]!)) k++;
        if (json[k] === ':') {
          const key = json.slice(i + 1, j);
          if (seen.has(key)) fail(source, `duplicate key '${key}' in the header`);
          seen.add(key);
        }
      }
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
}

/** Decodes a whole safetensors buffer into tensors (the caller disposes them). */
export function decodeSafetensors(buf: Buffer, source = '<buffer>'): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const h = headerOf(buf, source);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, t] of Object.entries(h.tensors)) {
      const bytes = buf.subarray(h.dataStart + t.offsets[0], h.dataStart + t.offsets[1]);
      // copy into an aligned buffer: libtorch reads it as elements
      tensors[name] = fromTypedArray(new Uint8Array(bytes), t.shape, t.dtype);
    }
  } catch (e) {
    for (const t of Object.values(tensors)) t.dispose();
    if (e instanceof CheckpointError) throw e;
    fail(source, `tensor could not be created: ${(e as Error).message}`);
  }
  return { tensors, metadata: h.metadata };
}

export function loadSafetensors(path: string): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    fail(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeSafetensors(buf, path);
}

/** Reads and validates only the header of a file. */
export function readSafetensorsHeader(path: string): Header {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    fail(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) fail(path, `truncated: ${size} bytes, less than the 8-byte header length`);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(size - 8)) fail(path, `header length ${n} exceeds file size ${size}`);
    if (n > BigInt(MAX_HEADER)) fail(path, `header length ${n} is larger than ${MAX_HEADER} bytes`);
    const json = Buffer.alloc(Number(n));
    readSync(fd, json, 0, json.byteLength, 8);
    checkDuplicateKeys(json.toString('utf8'), path);
    return parseHeader(n, json, size, path);
  } finally {
    closeSync(fd);
  }
}
