// safetensors exchanged with PyTorch (the system Python's torch; no `safetensors` package needed): a tiny
// reader and writer written inline with struct + json + torch.frombuffer, in the reference layout (sorted keys,
// header padded with spaces to 8 bytes). Every dtype, 0-d and empty tensors, compared byte for byte and by value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { saveSafetensors, loadSafetensors, readSafetensorsHeader } from '../src/io/index.js';
import { createModel } from '../src/models/index.js';
import { hasTorchPython, runPython } from './helpers/python.js';

const SKIP = hasTorchPython() ? false : 'PyTorch for /usr/bin/python3 is missing (apt-get install python3-torch)';
const dir = mkdtempSync(join(tmpdir(), 'freeadv-io-py-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const PY_IO = String.raw`
import json, struct, sys, torch
DT = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
      "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
NAME = {v: k for k, v in DT.items()}

def raw_bytes(t):
    return bytes(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy())

def load(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = DT[info["dtype"]]
        if e == b:
            t = torch.empty(info["shape"], dtype=dt)
        else:
            t = torch.frombuffer(bytearray(data[b:e]), dtype=dt).reshape(info["shape"])
        out[name] = t
    return out, meta, n

def save(path, tensors, metadata=None, order=None):
    header, blobs, off = {}, [], 0
    for name in (order or sorted(tensors)):
        t = tensors[name]
        b = raw_bytes(t)
        header[name] = {"dtype": NAME[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(dict(sorted(header.items())), separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

def describe(tensors):
    return {k: {"dtype": NAME[t.dtype], "shape": list(t.shape), "hex": raw_bytes(t).hex()} for k, t in tensors.items()}
`;

function py(script: string, args: string[]): any {
  const out = runPython(PY_IO + script, args).stdout.trim().split('\n');
  return JSON.parse(out[out.length - 1]!);
}

const ST: Record<T.DType, string> = { float32: 'F32', float64: 'F64', float16: 'F16', bfloat16: 'BF16', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL' };
const hex = (t: T.Tensor) => Buffer.from(t.toBytes()).toString('hex');

test('every dtype written by freeadv reads back in PyTorch with the same bytes and values', { skip: SKIP }, () => {
  T.scope(() => {
    const bits16 = Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x0001, 0x8000, 0x7c00, 0x7e00]); // f16: 1, -2, ~1/3, tiny subnormal, -0, inf, NaN
    const ts: Record<string, T.Tensor> = {
      f32: T.fromTypedArray(Float32Array.from([0.5, -1.25, 3e-39, 1e30, Infinity, NaN]), [2, 3]),
      f64: T.fromTypedArray(Float64Array.from([Math.PI, -1e-300, 5e-324]), [3]),
      f16: T.fromTypedArray(bits16, [7], 'float16'),
      bf16: T.fromTypedArray(Uint16Array.from([0x3fc0, 0xc000, 0x3eab, 0x0001, 0x8000, 0x7f80, 0x7fc1]), [7], 'bfloat16'),
      i64: T.fromTypedArray(BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 42n]), [3]),
      i32: T.fromTypedArray(Int32Array.from([-(2 ** 31), 2 ** 31 - 1]), [1, 2]),
      i16: T.fromTypedArray(Int16Array.from([-32768, 32767, 5]), [3]),
      i8: T.fromTypedArray(Int8Array.from([-128, 127]), [2]),
      u8: T.fromTypedArray(Uint8Array.from([0, 200, 255]), [3]),
      bool: T.fromTypedArray(Uint8Array.from([1, 0, 0, 1]), [2, 2], 'bool'),
      scalar: T.tensor(-7.5),
      empty: T.zeros([0, 4], { dtype: 'float16' }),
      nchw: T.arange(0, 24, 1, { dtype: 'float32' }).reshape(1, 2, 3, 4),
    };
    const path = join(dir, 'from-freeadv.safetensors');
    saveSafetensors(path, ts, { source: 'freeadv', 'ünïcode': '✓' });
    const r = py(
      `
t, meta, n = load(sys.argv[1])
assert n % 8 == 0
assert t["nchw"].shape == (1, 2, 3, 4) and torch.equal(t["nchw"], torch.arange(24.).reshape(1, 2, 3, 4))
assert t["bf16"][:3].tolist() == [1.5, -2.0, 0.333984375]
assert t["f16"][:2].tolist() == [1.0, -2.0] and t["f16"][3].item() == 2 ** -24 and torch.isinf(t["f16"][5])
assert t["i64"].tolist() == [-2 ** 63, 2 ** 63 - 1, 42]
assert t["bool"].tolist() == [[True, False], [False, True]]
assert t["scalar"].dim() == 0 and t["scalar"].item() == -7.5
assert t["empty"].shape == (0, 4) and t["empty"].dtype == torch.float16
print(json.dumps({"meta": meta, "tensors": describe(t)}))
`,
      [path],
    );
    assert.deepEqual(r.meta, { source: 'freeadv', 'ünïcode': '✓' });
    assert.deepEqual(Object.keys(r.tensors).sort(), Object.keys(ts).sort());
    for (const [k, t] of Object.entries(ts)) assert.deepEqual(r.tensors[k], { dtype: ST[t.dtype], shape: t.shape, hex: hex(t) }, k);
  });
});

test('every dtype written by PyTorch in the reference layout loads in freeadv with the same bytes and values', { skip: SKIP }, () => {
  const path = join(dir, 'from-python.safetensors');
  const shuffled = join(dir, 'from-python-shuffled.safetensors');
  const r = py(
    `
torch.manual_seed(0)
ts = {
  "f32": torch.randn(3, 4), "f64": torch.randn(2, dtype=torch.float64),
  "f16": torch.tensor([1.5, -2.0, 65504.0, 6e-8], dtype=torch.float16),
  "bf16": torch.tensor([1.5, -2.0, 0.333984375, 3e38], dtype=torch.bfloat16),
  "i64": torch.tensor([-2 ** 63, 2 ** 63 - 1, 7]), "i32": torch.tensor([[-5, 6]], dtype=torch.int32),
  "i16": torch.tensor([-300, 300], dtype=torch.int16), "i8": torch.tensor([-100, 100], dtype=torch.int8),
  "u8": torch.tensor([1, 254], dtype=torch.uint8), "bool": torch.tensor([False, True, True]),
  "scalar": torch.tensor(3.25, dtype=torch.float64), "empty": torch.zeros(2, 0), "nc": torch.arange(6.).reshape(2, 3).t(),
}
save(sys.argv[1], ts, {"format": "pt", "k": "v"})
# the same tensors with the data in another order than the keys (the reference sorts data by dtype, then name)
save(sys.argv[2], ts, {"format": "pt"}, order=sorted(ts, reverse=True))
print(json.dumps(describe(ts)))
`,
    [path, shuffled],
  );
  for (const p of [path, shuffled]) {
    const { tensors, metadata } = loadSafetensors(p);
    assert.deepEqual(metadata, p === path ? { format: 'pt', k: 'v' } : { format: 'pt' });
    assert.deepEqual(Object.keys(tensors).sort(), Object.keys(r).sort());
    for (const [k, t] of Object.entries(tensors)) assert.deepEqual({ dtype: ST[t.dtype], shape: t.shape, hex: hex(t) }, r[k], k);
    assert.deepEqual(tensors.bf16!.to('float32').toArray().slice(0, 3), [1.5, -2, 0.333984375]);
    assert.deepEqual(tensors.f16!.to('float32').toArray().slice(0, 2), [1.5, -2]);
    assert.deepEqual(tensors.i64!.toArray().slice(2), [7]);
    assert.deepEqual(tensors.bool!.toArray(), [0, 1, 1], 'bool reads as 0/1');
    assert.deepEqual(tensors.nc!.toArray(), [[0, 3], [1, 4], [2, 5]], 'a transposed tensor is stored row-major');
    assert.equal(tensors.scalar!.item(), 3.25);
    assert.deepEqual(tensors.empty!.shape, [2, 0]);
    for (const t of Object.values(tensors)) t.dispose();
  }
  assert.equal(readSafetensorsHeader(shuffled).tensors.u8!.offsets[0], 0);
});

test('a model state dict round-trips between freeadv and PyTorch modules', { skip: SKIP }, () => {
  T.manualSeed(5);
  const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] });
  const path = join(dir, 'model.safetensors');
  saveSafetensors(path, model.stateDict());
  const sums = py(
    `
import models
sd, _, _ = load(sys.argv[1])
m = models.build('small-cnn', 10)
m.load_state_dict(sd, strict=True)
print(json.dumps({k: float(v.double().sum()) for k, v in m.state_dict().items()}))
`,
    [path],
  ) as Record<string, number>;
  for (const [k, t] of Object.entries(model.stateDict())) assert.ok(Math.abs(sums[k]! - t.to('float64').sum().item()) < 1e-6, k);
  const pyPath = join(dir, 'py-model.safetensors');
  const expected = py(
    `
import models
torch.manual_seed(9)
m = models.build('small-cnn', 10)
m.fc2.bias.data[:] = torch.arange(10.)
save(sys.argv[1], m.state_dict())
print(json.dumps({k: float(v.double().sum()) for k, v in m.state_dict().items()}))
`,
    [pyPath],
  ) as Record<string, number>;
  const { tensors } = loadSafetensors(pyPath);
  model.loadStateDict(tensors);
  assert.deepEqual(model.stateDict()['fc2.bias']!.toArray(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  for (const [k, t] of Object.entries(tensors)) assert.ok(Math.abs(expected[k]! - t.to('float64').sum().item()) < 1e-6, k);
  for (const t of Object.values(tensors)) t.dispose();
  model.dispose();
});
