// safetensors: an 8-byte little-endian header length N, N bytes of UTF-8 JSON describing each tensor (dtype,
// shape, [begin, end) byte offsets into the data that follows), then the raw little-endian row-major data. No
// pickle: loading a file can never run code. Every field is validated before a byte of tensor data is read, so a
// malformed or hostile file throws a CheckpointError naming the file and the fault instead of reading out of
// bounds or allocating absurd amounts of memory.
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { endianness } from 'node:os';
import { Tensor, fromTypedArray, bytesPerElement, type DType } from '../torch/index.js';
import { writeFileAtomic } from './atomic.js';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const TO_ST: Record<DType, string> = {
  float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_ST = new Map<string, DType>(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));
/** The largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;
const MAX_DIMS = 64;

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  offsets: [number, number];
}

export interface Header {
  tensors: Record<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
}

export type SafetensorsContents = { tensors: Record<string, Tensor>; metadata: Record<string, string> };

function checkHostEndianness(): void {
  // Tensor bytes are written and read as they lie in memory; the format is little-endian.
  if (endianness() !== 'LE') throw new CheckpointError('safetensors: big-endian hosts are not supported');
}

/**
 * The file as a list of chunks (length, padded header, then each tensor's bytes), tensors in sorted key order
 * like the reference implementation; the header is padded with spaces so that the data starts 8-byte aligned.
 */
export function encodeSafetensorsChunks(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Buffer[] {
  checkHostEndianness();
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`safetensors metadata '${k}' must be a string, not ${typeof v}`);
    header.__metadata__ = { ...metadata };
  }
  const datas: Buffer[] = [];
  let off = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new TypeError(`'__metadata__' cannot name a tensor`);
    const t = tensors[name];
    if (!(t instanceof Tensor)) throw new TypeError(`safetensors: '${name}' is not a Tensor`);
    // toBytes: a contiguous CPU copy of the raw elements (f16/bf16 bits included, no conversion)
    const bytes = t.toBytes();
    put(header, name, { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [off, off + bytes.byteLength] });
    off += bytes.byteLength;
    datas.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.byteLength % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  return [len, json, ...datas];
}

/** Encodes tensors (sorted by name) and optional string metadata into one safetensors buffer. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Buffer {
  return Buffer.concat(encodeSafetensorsChunks(tensors, metadata));
}

/** Writes a safetensors file atomically (the previous file survives any failure intact). */
export function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensorsChunks(tensors, metadata));
}

function fail(source: string, msg: string): never {
  throw new CheckpointError(`${source}: ${msg}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Checks the 8-byte length against the file size and the cap; returns it as a number. */
function headerLength(lenBytes: Buffer, fileSize: number, source: string): number {
  if (fileSize < 8) fail(source, `truncated: ${fileSize} bytes, less than the 8-byte header length`);
  const n = lenBytes.readBigUInt64LE(0);
  if (n > BigInt(fileSize - 8)) fail(source, `header length ${n} exceeds file size ${fileSize}`);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(source, `header length ${n} is larger than the ${MAX_HEADER_BYTES}-byte limit`);
  return Number(n);
}

/**
 * Parses and validates a header: `json` is the header's bytes, `fileSize` the total size of the file or buffer.
 * Throws a CheckpointError naming `source` unless every entry is well formed and the tensors tile the data
 * section exactly.
 */
export function parseHeader(json: Uint8Array, fileSize: number, source: string): Header {
  let text: string;
  try {
    text = utf8.decode(json);
  } catch {
    fail(source, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(source, `header is not a JSON object (it starts with ${JSON.stringify(text.slice(0, 10))})`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(source, 'header is not a JSON object');
  // JSON.parse silently keeps the last of duplicate keys; a lying header could hide an entry behind another.
  const dup = findDuplicateKey(text);
  if (dup !== undefined) fail(source, `duplicate key ${JSON.stringify(dup)} in the header`);

  const dataStart = 8 + json.byteLength;
  const dataLen = fileSize - dataStart;
  const tensors: Record<string, TensorInfo> = {};
  const metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(source, '__metadata__ is not an object of strings');
      for (const [k, mv] of Object.entries(v)) {
        if (typeof mv !== 'string') fail(source, `__metadata__ value ${JSON.stringify(k)} is not a string (${mv === null ? 'null' : Array.isArray(mv) ? 'array' : typeof mv})`);
        put(metadata, k, mv);
      }
      continue;
    }
    const what = `tensor ${quote(name)}`;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(source, `${what}: entry is not an object`);
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e.dtype === 'string' ? FROM_ST.get(e.dtype) : undefined;
    if (!dtype) fail(source, `${what}: unknown dtype ${short(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(source, `${what}: shape ${short(e.shape)} is not a list of non-negative integers`);
    const shape = e.shape as number[];
    if (shape.length > MAX_DIMS) fail(source, `${what}: ${shape.length} dimensions (at most ${MAX_DIMS})`);
    if (!Array.isArray(e.data_offsets) || e.data_offsets.length !== 2 || !e.data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0))
      fail(source, `${what}: data_offsets ${short(e.data_offsets)} are not two non-negative integers`);
    const [b, end] = e.data_offsets as [number, number];
    if (b > end) fail(source, `${what}: data_offsets [${b}, ${end}] run backwards`);
    if (end > dataLen) fail(source, `truncated: ${what} data_offsets [${b}, ${end}] run past the end of the data (${dataLen} bytes)`);
    // numel: a zero dimension makes it 0 however large the others are; otherwise it must stay a safe integer
    let numel = shape.includes(0) ? 0 : 1;
    if (numel) for (const d of shape) numel *= d;
    const need = numel * bytesPerElement(dtype);
    if (!Number.isSafeInteger(need) || need !== end - b)
      fail(source, `${what}: shape [${shape.join(', ')}] of ${e.dtype} needs ${Number.isSafeInteger(need) ? need : 'more than 2^53'} bytes but data_offsets [${b}, ${end}] hold ${end - b}`);
    put(tensors, name, { dtype, shape: [...shape], offsets: [b, end] as [number, number] });
  }
  // Like the reference implementation: the tensors tile the data section exactly (no overlaps, holes or leftovers).
  const sorted = Object.entries(tensors).sort((x, y) => x[1].offsets[0] - y[1].offsets[0] || x[1].offsets[1] - y[1].offsets[1]);
  let pos = 0;
  let prev = '';
  for (const [name, t] of sorted) {
    const [b, end] = t.offsets;
    if (b < pos) fail(source, `tensor ${quote(name)} data_offsets [${b}, ${end}] overlap tensor ${quote(prev)}`);
    if (b > pos) fail(source, `hole in the data: bytes [${pos}, ${b}) before tensor ${quote(name)} belong to no tensor`);
    pos = end;
    prev = name;
  }
  if (pos !== dataLen) fail(source, `the data section has ${dataLen} bytes but the tensors cover ${pos} (${dataLen - pos} bytes belong to no tensor)`);
  return { tensors, metadata, dataStart };
}

const quote = (s: string) => `'${s.length > 200 ? s.slice(0, 200) + '…' : s}'`;
const short = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? s.slice(0, 80) + '…' : s;
};

/**
 * The first key that occurs twice in one object anywhere in valid JSON text (keys compared after unescaping,
 * so "a" and "\u0061" are the same key), or undefined.
 */
export function findDuplicateKey(json: string): string | undefined {
  const stack: (Set<string> | null)[] = []; // a Set per open object, null per open array
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (j < json.length && json.charCodeAt(j) !== 0x22) {
        if (json.charCodeAt(j) === 0x5c /* \ */) {
          escaped = true;
          j++;
        }
        j++;
      }
      const keys = stack[stack.length - 1];
      if (keys) {
        let k = j + 1;
        while (k < json.length && (json[k] === ' ' || json[k] === '\t' || json[k] === '\n' || json[k] === '\r')) k++;
        if (json[k] === ':') {
          const rawKey = json.slice(i + 1, j);
          const key = escaped ? (JSON.parse(`"${rawKey}"`) as string) : rawKey;
          if (keys.has(key)) return key;
          keys.add(key);
        }
      }
      i = j;
    } else if (c === 0x7b /* { */) stack.push(new Set());
    else if (c === 0x5b /* [ */) stack.push(null);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
  }
  return undefined;
}

/** Validates the header of a whole file held in memory. */
function headerOfBuffer(buf: Uint8Array, source: string): Header {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = headerLength(b.subarray(0, 8), b.byteLength, source);
  return parseHeader(b.subarray(8, 8 + n), b.byteLength, source);
}

/** Sets an own enumerable property, even one named '__proto__' (plain assignment would change the prototype). */
export function put<V>(obj: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function disposeAll(tensors: Record<string, Tensor>): void {
  for (const t of Object.values(tensors)) t.dispose();
}

/** Decodes a whole safetensors buffer into CPU tensors (copies; the caller disposes them). */
export function decodeSafetensors(buf: Uint8Array, source = '<buffer>'): SafetensorsContents {
  checkHostEndianness();
  const h = headerOfBuffer(buf, source);
  const tensors: Record<string, Tensor> = {};
  try {
    for (const [name, t] of Object.entries(h.tensors)) {
      // the native side memcpy's the bytes, so an unaligned view is fine
      put(tensors, name, fromTypedArray(buf.subarray(h.dataStart + t.offsets[0], h.dataStart + t.offsets[1]), t.shape, t.dtype));
    }
  } catch (e) {
    disposeAll(tensors);
    fail(source, `a tensor could not be created: ${(e as Error).message}`);
  }
  return { tensors, metadata: h.metadata };
}

function openForRead(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    fail(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Reads exactly buf.byteLength bytes at `pos`, or fails naming the file (it shrank or is unreadable). */
function readFully(fd: number, buf: Uint8Array, pos: number, path: string): void {
  let off = 0;
  while (off < buf.byteLength) {
    let n: number;
    try {
      n = readSync(fd, buf, off, buf.byteLength - off, pos + off);
    } catch (e) {
      fail(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (n === 0) fail(path, `truncated: the file ended at byte ${pos + off} while ${buf.byteLength - off} more were expected`);
    off += n;
  }
}

function headerOfFd(fd: number, path: string): Header {
  let size: number;
  try {
    size = fstatSync(fd).size;
  } catch (e) {
    fail(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lenBuf = Buffer.alloc(8);
  if (size >= 8) readFully(fd, lenBuf, 0, path);
  const n = headerLength(lenBuf, size, path);
  const json = Buffer.alloc(n);
  readFully(fd, json, 8, path);
  return parseHeader(json, size, path);
}

/**
 * Loads a safetensors file into CPU tensors (the caller disposes them). The header is validated first; then each
 * tensor is read on its own, so memory holds at most one tensor's bytes besides the tensors themselves.
 */
export function loadSafetensors(path: string): SafetensorsContents {
  checkHostEndianness();
  const fd = openForRead(path);
  const tensors: Record<string, Tensor> = {};
  try {
    const h = headerOfFd(fd, path);
    for (const [name, t] of Object.entries(h.tensors)) {
      const bytes = Buffer.allocUnsafe(t.offsets[1] - t.offsets[0]);
      readFully(fd, bytes, h.dataStart + t.offsets[0], path);
      try {
        put(tensors, name, fromTypedArray(bytes, t.shape, t.dtype));
      } catch (e) {
        fail(path, `tensor '${name}' could not be created: ${(e as Error).message}`);
      }
    }
    return { tensors, metadata: h.metadata };
  } catch (e) {
    disposeAll(tensors);
    throw e;
  } finally {
    closeSync(fd);
  }
}

/** Reads and validates only the header of a file (no tensor data is read). */
export function readSafetensorsHeader(path: string): Header {
  const fd = openForRead(path);
  try {
    return headerOfFd(fd, path);
  } finally {
    closeSync(fd);
  }
}
