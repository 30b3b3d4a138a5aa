// Data types and their c10::ScalarType codes.

export type DType = 'uint8' | 'int8' | 'int16' | 'int32' | 'int64' | 'float16' | 'float32' | 'float64' | 'bool' | 'bfloat16';

const codes: Record<DType, number> = {
  uint8: 0, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, float32: 6, float64: 7, bool: 11, bfloat16: 15,
};
const names = new Map<number, DType>(Object.entries(codes).map(([k, v]) => [v, k as DType]));

export function dtypeCode(d: DType): number {
  const c = codes[d];
  if (c === undefined) throw new TypeError(`unknown dtype '${String(d)}'`);
  return c;
}

export function dtypeName(code: number): DType {
  const n = names.get(code);
  if (!n) throw new TypeError(`unsupported scalar type code ${code}`);
  return n;
}

export function isFloating(d: DType): boolean {
  return d === 'float16' || d === 'float32' || d === 'float64' || d === 'bfloat16';
}

export function bytesPerElement(d: DType): number {
  switch (d) {
    case 'uint8': case 'int8': case 'bool': return 1;
    case 'int16': case 'float16': case 'bfloat16': return 2;
    case 'int32': case 'float32': return 4;
    case 'int64': case 'float64': return 8;
  }
}

export type TypedArray = Uint8Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Float32Array | Float64Array | Uint16Array;

/** The typed array that holds a dtype's elements when read back (float16/bfloat16 are read as float32). */
export function typedArrayFor(d: DType, buf: ArrayBuffer): TypedArray {
  switch (d) {
    case 'uint8': case 'bool': return new Uint8Array(buf);
    case 'int8': return new Int8Array(buf);
    case 'int16': return new Int16Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'int64': return new BigInt64Array(buf);
    case 'float32': return new Float32Array(buf);
    case 'float64': return new Float64Array(buf);
    case 'float16': case 'bfloat16': return new Uint16Array(buf);
  }
}

/** The dtype a typed array's elements have. */
export function dtypeOfTypedArray(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Uint8Array || a instanceof Uint8ClampedArray) return 'uint8';
  if (a instanceof Int8Array) return 'int8';
  if (a instanceof Int16Array) return 'int16';
  throw new TypeError(`no dtype for ${a.constructor.name}`);
}

export const MemoryFormat = { contiguous: 0, preserve: 1, channelsLast: 2 } as const;
export type MemoryFormatName = keyof typeof MemoryFormat;
