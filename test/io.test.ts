// Checkpoints: safetensors round trips for every dtype (exact bytes), the on-disk layout, malformed and hostile
// files rejected with a CheckpointError naming the file and the fault, a seeded fuzz of the loader, atomic writes
// that leave the old file intact on failure, and run checkpoints with RNG state. PyTorch exchange: io-python.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, existsSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as T from '../src/torch/index.js';
import {
  encodeSafetensors, decodeSafetensors, saveSafetensors, loadSafetensors, readSafetensorsHeader, CheckpointError, findDuplicateKey,
  writeFileAtomic, writeJsonAtomic, appendLine, setBeforeWriteHook, WriteError, type WriteStage,
  saveCheckpoint, loadCheckpoint, disposeCheckpoint, CHECKPOINT_FORMAT,
} from '../src/io/index.js';
import { fuzzLoader, rawFile } from './io-fuzz.js';

const dir = mkdtempSync(join(tmpdir(), 'freeadv-io-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const hex = (t: T.Tensor) => Buffer.from(t.toBytes()).toString('hex');
const tmpFiles = (d: string) => readdirSync(d).filter((f) => f.includes('.tmp-'));

/** Tensors of every dtype with awkward values (f16/bf16 built from raw bits: ±0, ±inf, NaN payloads, subnormals). */
function everyDtype(): Record<string, T.Tensor> {
  const bits16 = Uint16Array.from([0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e01, 0x0001, 0x3c00, 0xc000, 0x7bff, 0x7f80, 0xff81, 0x3fc0]);
  return {
    f32: T.fromTypedArray(Float32Array.from([0, -0, 1.5, -2.25, Infinity, NaN, 1e-45, 3.4028234663852886e38, Math.PI, -1e-20, 7, 8]), [3, 4]),
    f64: T.fromTypedArray(Float64Array.from([Math.E, -0, 5e-324, Number.MAX_VALUE, NaN, -Infinity]), [2, 3]),
    f16: T.fromTypedArray(bits16, [12], 'float16'),
    bf16: T.fromTypedArray(bits16, [2, 6], 'bfloat16'),
    i64: T.fromTypedArray(BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n]), [4]),
    i32: T.fromTypedArray(Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0]), [3]),
    i16: T.fromTypedArray(Int16Array.from([-32768, 32767, 1]), [3, 1]),
    i8: T.fromTypedArray(Int8Array.from([-128, 127, 0, -1]), [2, 2]),
    u8: T.fromTypedArray(Uint8Array.from([0, 255, 128]), [3]),
    bool: T.fromTypedArray(Uint8Array.from([1, 0, 1, 1]), [4], 'bool'),
    scalar: T.tensor(2.5, { dtype: 'float64' }),
    scalar_bf16: T.fromTypedArray(Uint16Array.from([0x4049]), [], 'bfloat16'),
    empty: T.zeros([0, 3]),
    empty_i64: T.zeros([2, 0, 4], { dtype: 'int64' }),
    empty_1d: T.zeros([0], { dtype: 'float16' }),
  };
}

test('round trip of every dtype, 0-d and empty tensors, with exact bytes; metadata round trip', () => {
  T.scope(() => {
    const ts = everyDtype();
    const meta = { note: 'héllo ✓', empty: '', json: '{"a":[1,2]}', '': 'empty key' };
    const path = join(dir, 'all.safetensors');
    saveSafetensors(path, ts, meta);
    for (const [source, { tensors, metadata }] of [
      [path, loadSafetensors(path)],
      ['<buffer>', decodeSafetensors(encodeSafetensors(ts, meta))],
    ] as const) {
      assert.deepEqual(metadata, meta, source);
      assert.deepEqual(Object.keys(tensors).sort(), Object.keys(ts).sort());
      for (const [k, t] of Object.entries(ts)) {
        const u = tensors[k]!;
        assert.equal(u.dtype, t.dtype, k);
        assert.deepEqual(u.shape, t.shape, k);
        assert.equal(hex(u), hex(t), `${k}: exact bytes`);
        u.dispose();
      }
    }
    // no metadata → no __metadata__ entry, and an empty result
    const plain = decodeSafetensors(encodeSafetensors({ x: ts.u8! }));
    assert.deepEqual(plain.metadata, {});
    assert.ok(!encodeSafetensors({ x: ts.u8! }).toString().includes('__metadata__'));
    plain.tensors.x!.dispose();
    const none = decodeSafetensors(encodeSafetensors({}));
    assert.deepEqual(none, { tensors: {}, metadata: {} });
  });
});

test('the layout: 8-byte LE length, space-padded JSON, tensors in sorted key order, row-major data', () => {
  T.scope(() => {
    const base = T.fromTypedArray(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    const ts = { 'z.last': T.ones([1], { dtype: 'uint8' }), 'a.first': base.transpose(0, 1), 'm.mid': T.tensor([7], { dtype: 'int32' }) };
    const buf = encodeSafetensors(ts, { k: 'v' });
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal(n % 8, 0, 'header padded to 8 bytes');
    const text = buf.subarray(8, 8 + n).toString();
    assert.match(text, /^\{.*\} *$/);
    assert.deepEqual(JSON.parse(text), {
      __metadata__: { k: 'v' },
      'a.first': { dtype: 'F32', shape: [3, 2], data_offsets: [0, 24] },
      'm.mid': { dtype: 'I32', shape: [1], data_offsets: [24, 28] },
      'z.last': { dtype: 'U8', shape: [1], data_offsets: [28, 29] },
    });
    const keys = Object.keys(JSON.parse(text)).filter((k) => k !== '__metadata__');
    assert.deepEqual(keys, ['a.first', 'm.mid', 'z.last'], 'keys written in sorted order');
    const data = buf.subarray(8 + n);
    // the transposed (non-contiguous) tensor is written row-major: [[1,4],[2,5],[3,6]]
    assert.deepEqual(Array.from(new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + 24))), [1, 4, 2, 5, 3, 6]);
    assert.equal(data.readInt32LE(24), 7);
    assert.equal(data[28], 1);
    const path = join(dir, 'layout.safetensors');
    saveSafetensors(path, ts, { k: 'v' });
    assert.deepEqual(readFileSync(path), buf, 'saveSafetensors writes exactly encodeSafetensors');
    const h = readSafetensorsHeader(path);
    assert.equal(h.dataStart, 8 + n);
    assert.deepEqual(h.tensors['a.first'], { dtype: 'float32', shape: [3, 2], offsets: [0, 24] });
    assert.deepEqual(h.metadata, { k: 'v' });
  });
});

test('odd tensor names round trip: unicode, empty, __proto__, dots and quotes', () => {
  T.scope(() => {
    const names = ['__proto__', '', 'ünï.cødé', 'a"b\\c', 'constructor', 'toString'];
    const ts: Record<string, T.Tensor> = {};
    names.forEach((n, i) => Object.defineProperty(ts, n, { value: T.full([1], i), enumerable: true }));
    const { tensors } = decodeSafetensors(encodeSafetensors(ts));
    assert.deepEqual(Object.keys(tensors).sort(), [...names].sort());
    names.forEach((n, i) => assert.deepEqual(Object.getOwnPropertyDescriptor(tensors, n)!.value.toArray(), [i], n));
    for (const t of Object.values(tensors)) t.dispose();
    assert.equal(Object.getPrototypeOf(tensors), Object.prototype);
  });
});

test('malformed files are refused with a CheckpointError naming the file and the fault', () => {
  const f32 = (n: number) => Buffer.alloc(4 * n);
  const one = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
  const cases: [string, Buffer, RegExp][] = [
    ['empty-file', Buffer.alloc(0), /truncated: 0 bytes/],
    ['short', Buffer.alloc(5), /truncated: 5 bytes/],
    ['absurd-len', rawFile({}, Buffer.alloc(0), 9_000_000_000_000_000_000n), /header length 9000000000000000000 exceeds file size 10$/],
    ['max-u64-len', rawFile({}, Buffer.alloc(0), 2n ** 64n - 1n), /header length 18446744073709551615 exceeds file size/],
    ['len-past-end', rawFile({}, Buffer.alloc(0), 100n), /header length 100 exceeds file size 10/],
    ['over-cap', rawFile({}, Buffer.alloc(0)), /./], // replaced below by a real 100 MB+ header length on a sparse-ish file
    ['not-json', rawFile('{not json', Buffer.alloc(0)), /header is not valid JSON/],
    ['array', rawFile('[1,2]', Buffer.alloc(0)), /header is not a JSON object/],
    ['string', rawFile('"x"', Buffer.alloc(0)), /header is not a JSON object/],
    ['leading-space', rawFile(' {}', Buffer.alloc(0)), /header is not a JSON object/],
    ['bad-utf8', rawFile(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]).toString('latin1'), Buffer.alloc(0)), /./], // replaced below
    ['entry-not-object', rawFile({ a: [1, 2] }, Buffer.alloc(0)), /tensor 'a': entry is not an object/],
    ['dtype', rawFile({ a: { ...one, dtype: 'F99' } }, f32(1)), /tensor 'a': unknown dtype "F99"/],
    ['dtype-missing', rawFile({ a: { shape: [1], data_offsets: [0, 4] } }, f32(1)), /tensor 'a': unknown dtype/],
    ['shape-negative', rawFile({ a: { ...one, shape: [-1] } }, f32(1)), /tensor 'a': shape \[-1\] is not a list of non-negative integers/],
    ['shape-float', rawFile({ a: { ...one, shape: [1.5] } }, f32(1)), /shape \[1\.5\]/],
    ['shape-string', rawFile({ a: { ...one, shape: '1' } }, f32(1)), /shape "1"/],
    ['offsets-shape', rawFile({ a: { ...one, data_offsets: [0] } }, f32(1)), /data_offsets \[0\] are not two non-negative integers/],
    ['offsets-negative', rawFile({ a: { ...one, data_offsets: [-4, 0] } }, f32(1)), /are not two non-negative integers/],
    ['offsets-huge', rawFile({ a: { ...one, data_offsets: [0, 2 ** 64] } }, f32(1)), /are not two non-negative integers/],
    ['past-end', rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(2)), /truncated: tensor 'a' data_offsets \[0, 16\] run past the end of the data \(8 bytes\)/],
    ['backwards', rawFile({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, f32(1)), /run backwards/],
    ['size-mismatch', rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32(2)), /tensor 'a': shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/],
    ['huge-shape', rawFile({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, f32(1)), /needs more than 2\^53 bytes/],
    ['overlap', rawFile({ 'conv1.weight': { dtype: 'F32', shape: [2], data_offsets: [4, 12] }, 'fc.bias': { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(3)), /tensor 'conv1.weight' data_offsets \[4, 12\] overlap tensor 'fc.bias'/],
    ['same-bytes', rawFile({ a: one, b: one }, f32(1)), /overlap/],
    ['hole', rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(2)), /hole in the data: bytes \[0, 4\) before tensor 'a'/],
    ['leftover', rawFile({ a: one }, f32(2)), /the data section has 8 bytes but the tensors cover 4/],
    ['data-without-tensors', rawFile({}, f32(1)), /has 4 bytes but the tensors cover 0/],
    ['duplicate', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)), /duplicate key "a"/],
    ['duplicate-escaped', rawFile('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\\u0061":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)), /duplicate key "a"/],
    ['duplicate-field', rawFile('{"a":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}}', f32(1)), /duplicate key "dtype"/],
    ['duplicate-metadata', rawFile('{"__metadata__":{"k":"1","k":"2"}}', Buffer.alloc(0)), /duplicate key "k"/],
    ['metadata-number', rawFile({ __metadata__: { n: 3 } }, Buffer.alloc(0)), /__metadata__ value "n" is not a string \(number\)/],
    ['metadata-null', rawFile({ __metadata__: { n: null } }, Buffer.alloc(0)), /__metadata__ value "n" is not a string \(null\)/],
    ['metadata-array', rawFile({ __metadata__: ['x'] }, Buffer.alloc(0)), /__metadata__ is not an object/],
  ];
  // bad UTF-8 needs raw bytes; the header-length cap needs a file longer than 100 MB claimed by the length
  const badUtf8 = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x22, 0x22, 0x7d]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(badUtf8.length));
  cases[cases.findIndex((c) => c[0] === 'bad-utf8')] = ['bad-utf8', Buffer.concat([len, badUtf8]), /header is not valid UTF-8/];
  const big = Buffer.alloc(100_000_016, 0x20);
  big.writeBigUInt64LE(100_000_001n, 0);
  big[8] = 0x7b;
  cases[cases.findIndex((c) => c[0] === 'over-cap')] = ['over-cap', big, /header length 100000001 is larger than the 100000000-byte limit/];

  for (const [name, buf, re] of cases) {
    const path = join(dir, `${name}.safetensors`);
    writeFileSync(path, buf);
    const check = (source: string) => (e: unknown) => {
      assert.ok(e instanceof CheckpointError, `${name}: ${String(e)}`);
      assert.ok(e.message.startsWith(`${source}: `), `${name}: names the file: ${e.message}`);
      assert.match(e.message, re, name);
      return true;
    };
    assert.throws(() => loadSafetensors(path), check(path), name);
    assert.throws(() => readSafetensorsHeader(path), check(path), name);
    assert.throws(() => decodeSafetensors(buf, 'mem'), check('mem'), name);
    assert.throws(() => decodeSafetensors(buf), check('<buffer>'), name);
  }
  rmSync(join(dir, 'over-cap.safetensors'));
  assert.throws(() => loadSafetensors(join(dir, 'missing.safetensors')), (e: unknown) => e instanceof CheckpointError && /missing\.safetensors: cannot read \(ENOENT\)/.test(e.message));
  assert.throws(() => loadSafetensors(dir), (e: unknown) => e instanceof CheckpointError && /cannot read \(EISDIR\)/.test(e.message));
});

test('truncated data: every cut of a valid file is refused, never read out of bounds', () => {
  T.scope(() => {
    const buf = encodeSafetensors({ a: T.rand([5]), b: T.zeros([2], { dtype: 'int64' }) }, { k: 'v' });
    const path = join(dir, 'cut.safetensors');
    const live = T.liveTensors();
    for (let cut = 0; cut < buf.length; cut++) {
      writeFileSync(path, buf.subarray(0, cut));
      assert.throws(() => loadSafetensors(path), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(path + ': '), `cut at ${cut}`);
      assert.throws(() => decodeSafetensors(buf.subarray(0, cut)), CheckpointError);
    }
    writeFileSync(path, buf.subarray(0, buf.length - 3));
    assert.throws(() => loadSafetensors(path), /truncated: tensor 'b' data_offsets \[20, 36\] run past the end of the data \(33 bytes\)/);
    assert.equal(T.liveTensors(), live, 'no tensors leak from refused files');
  });
});

test('findDuplicateKey looks in every object and compares unescaped keys', () => {
  assert.equal(findDuplicateKey('{"a":1,"b":{"a":2}}'), undefined);
  assert.equal(findDuplicateKey('{"a":1,"b":{"c":2,"c":3}}'), 'c');
  assert.equal(findDuplicateKey('{"a":["a","a"],"b":"a"}'), undefined);
  assert.equal(findDuplicateKey('{"\\"" : 1, "\\u0022":2}'), '"');
  assert.equal(findDuplicateKey('{"x\\\\":1,"x":2}'), undefined);
  assert.equal(findDuplicateKey('[{"a":1},{"a":1}]'), undefined);
});

test('fuzz: mutated files either load consistently or throw CheckpointError', () => {
  const iters = Number(process.env.FREEADV_FUZZ_ITERS ?? 5000);
  const seed = Number(process.env.FREEADV_FUZZ_SEED ?? 1);
  const live = T.liveTensors();
  const t0 = performance.now();
  const r = fuzzLoader(iters, seed, { filePath: join(dir, 'fuzz.safetensors'), fileEvery: 10 });
  const ms = performance.now() - t0;
  assert.equal(r.loaded + r.rejected, iters);
  assert.ok(r.loaded > 0 && r.rejected > iters / 2, `most mutations are rejected, some load (${r.rejected} rejected, ${r.loaded} loaded)`);
  assert.ok(Object.keys(r.faults).length >= 12, `many kinds of fault are reached: ${JSON.stringify(r.faults)}`);
  assert.equal(T.liveTensors(), live, 'no tensor leaks');
  console.log(`fuzz: ${iters} iterations (seed ${seed}) in ${ms.toFixed(0)} ms: ${r.loaded} loaded, ${r.rejected} rejected; ${Object.keys(r.faults).length} kinds of fault`);
});

test('atomic writes: a failure at any step leaves the previous file intact and no temporary files', () => {
  const sub = join(dir, 'atomic');
  mkdirSync(sub);
  const path = join(sub, 'target.bin');
  writeFileAtomic(path, 'old contents');
  assert.equal(readFileSync(path, 'utf8'), 'old contents');
  const codes: Record<WriteStage, string> = { open: 'EACCES', write: 'ENOSPC', fsync: 'EIO', rename: 'EXDEV' };
  for (const stage of ['open', 'write', 'fsync', 'rename'] as WriteStage[]) {
    setBeforeWriteHook((p, _bytes, s) => {
      assert.equal(p, path);
      if (s !== stage) return;
      const e = new Error(`simulated ${codes[stage]}`) as NodeJS.ErrnoException;
      e.code = codes[stage];
      throw e;
    });
    try {
      assert.throws(
        () => writeFileAtomic(path, ['new ', Buffer.from('contents')]),
        (e: unknown) => e instanceof WriteError && e.code === codes[stage] && e.message.includes(path) && e.message.includes(codes[stage]) && e.path === path,
        stage,
      );
    } finally {
      setBeforeWriteHook(undefined);
    }
    assert.equal(readFileSync(path, 'utf8'), 'old contents', `${stage}: previous file intact`);
    assert.deepEqual(tmpFiles(sub), [], `${stage}: no temporary file left`);
  }
  writeFileAtomic(path, ['new ', Buffer.from('contents')]);
  assert.equal(readFileSync(path, 'utf8'), 'new contents');
  assert.deepEqual(tmpFiles(sub), []);
});

test('atomic writes: success replaces the file; real failures (missing folder, target is a folder) are WriteErrors', () => {
  const sub = join(dir, 'atomic2');
  mkdirSync(sub);
  const path = join(sub, 'f.json');
  writeJsonAtomic(path, { a: 1 });
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 1 });
  writeFileAtomic(path, [Buffer.from('ab'), 'cd', new Uint8Array([0x65])]);
  assert.equal(readFileSync(path, 'utf8'), 'abcde');
  assert.deepEqual(tmpFiles(sub), []);
  assert.throws(() => writeFileAtomic(join(sub, 'no-such-dir', 'x'), 'x'), (e: unknown) => e instanceof WriteError && e.code === 'ENOENT' && /no-such-dir/.test(e.message));
  assert.ok(!existsSync(join(sub, 'no-such-dir')));
  mkdirSync(join(sub, 'adir'));
  assert.throws(() => writeFileAtomic(join(sub, 'adir'), 'x'), (e: unknown) => e instanceof WriteError && /adir/.test(e.message));
  assert.deepEqual(tmpFiles(sub), [], 'the temporary file is removed when the rename fails');
  assert.throws(() => writeJsonAtomic(path, undefined), TypeError);
  // a failed safetensors save keeps the previous checkpoint loadable
  T.scope(() => {
    const ck = join(sub, 'model.safetensors');
    saveSafetensors(ck, { w: T.ones([4]) });
    setBeforeWriteHook((_p, bytes, stage) => {
      if (stage === 'write' && bytes === 16) throw Object.assign(new Error('disk full'), { code: 'ENOSPC' });
    });
    try {
      assert.throws(() => saveSafetensors(ck, { w: T.zeros([4]) }), /could not write .*model\.safetensors: the disk is full \(ENOSPC\)/);
    } finally {
      setBeforeWriteHook(undefined);
    }
    const { tensors } = loadSafetensors(ck);
    assert.deepEqual(tensors.w!.toArray(), [1, 1, 1, 1]);
    tensors.w!.dispose();
    assert.deepEqual(tmpFiles(sub), []);
  });
});

test('run checkpoints hold model, optimizer, extra tensors, JSON state and the RNG state', () => {
  T.scope(() => {
    T.manualSeed(123);
    T.rand([10]);
    const rng = T.getRngState();
    assert.equal(rng.dtype, 'uint8');
    const next = T.rand([5]).toArray();
    const nextN = T.randn([3]).toArray();
    const path = join(dir, 'ck.safetensors');
    const delta = T.rand([2, 3, 4, 4]).mul(0.03);
    const state = { step: 17, epoch: 2, positionInEpoch: 96, schedule: { lr: 0.1, milestones: [10, 20] }, config: { method: 'free', m: 4, eps: 8 / 255 } };
    saveCheckpoint(path, {
      model: { 'fc.weight': T.ones([2, 2]), 'bn.num_batches_tracked': T.tensor(5, { dtype: 'int64' }) },
      optimizer: { 'state.0.momentum_buffer': T.full([2, 2], 0.25) },
      tensors: { delta, 'rng.cpu': rng },
      state,
    });
    T.rand([100]); // move the generator on
    const live = T.liveTensors();
    const ck = loadCheckpoint(path);
    assert.deepEqual(Object.keys(ck.model).sort(), ['bn.num_batches_tracked', 'fc.weight']);
    assert.deepEqual(ck.model['fc.weight']!.toArray(), [[1, 1], [1, 1]]);
    assert.equal(ck.model['bn.num_batches_tracked']!.dtype, 'int64');
    assert.deepEqual(ck.model['bn.num_batches_tracked']!.shape, []);
    assert.deepEqual(Object.keys(ck.optimizer), ['state.0.momentum_buffer']);
    assert.deepEqual(Object.keys(ck.tensors).sort(), ['delta', 'rng.cpu']);
    assert.equal(hex(ck.tensors.delta!), hex(delta), 'delta exact');
    assert.deepEqual(ck.state, { ...state, format: CHECKPOINT_FORMAT });
    T.setRngState(ck.tensors['rng.cpu']!);
    T.scope(() => {
      assert.deepEqual(T.rand([5]).toArray(), next, 'the restored generator continues where it was saved');
      assert.deepEqual(T.randn([3]).toArray(), nextN);
    });
    disposeCheckpoint(ck);
    assert.equal(T.liveTensors(), live, 'disposeCheckpoint frees every loaded tensor');
    // the file is plain safetensors: prefixes and the metadata entry are visible to any reader
    const h = readSafetensorsHeader(path);
    assert.deepEqual(Object.keys(h.tensors).sort(), ['delta', 'model.bn.num_batches_tracked', 'model.fc.weight', 'optim.state.0.momentum_buffer', 'rng.cpu']);
    assert.equal(JSON.parse(h.metadata.freeadv!).step, 17);
  });
});

test('run checkpoints: reserved names, foreign and future files are refused', () => {
  T.scope(() => {
    assert.throws(() => saveCheckpoint(join(dir, 'x.safetensors'), { model: {}, tensors: { 'model.w': T.ones([1]) }, state: {} }), /reserved/);
    assert.ok(!existsSync(join(dir, 'x.safetensors')));
    const w = T.ones([1]);
    const live = T.liveTensors();
    const plain = join(dir, 'plain.safetensors');
    saveSafetensors(plain, { 'model.w': w });
    assert.throws(() => loadCheckpoint(plain), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(plain) && /not a freeadv checkpoint/.test(e.message));
    for (const [meta, re] of [
      ['{"format": 99}', /format 99 is newer/],
      ['{"step": 1}', /format undefined is not a version number/],
      ['[1]', /not a JSON object/],
      ['{bad', /not valid JSON/],
    ] as const) {
      saveSafetensors(plain, { 'model.w': w }, { freeadv: meta });
      assert.throws(() => loadCheckpoint(plain), (e: unknown) => e instanceof CheckpointError && e.message.startsWith(plain) && re.test(e.message), meta);
    }
    assert.equal(T.liveTensors(), live, 'refused checkpoints dispose what they loaded');
    // state may not override the format version
    const p = join(dir, 'fmt.safetensors');
    saveCheckpoint(p, { model: {}, state: { format: 42, step: 1 } });
    assert.equal(loadCheckpoint(p).state.format, CHECKPOINT_FORMAT);
  });
});

test('appendLine is all or nothing: a write cut short by the file-size limit leaves the log as it was', () => {
  const log = join(dir, 'partial.jsonl');
  writeFileSync(log, '{"step":1}\n');
  // A child whose files may not exceed 1 KiB (SIGXFSZ ignored): write() stores part of the 3,000-byte line, then
  // fails with EFBIG — a real partial write, as on a disk that fills up mid-line.
  const atomic = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'io', 'atomic.js');
  const js = `import(${JSON.stringify(atomic)}).then((m) => { try { m.appendLine(${JSON.stringify(log)}, 'x'.repeat(3000)); } catch (e) { console.log(e.name + ': ' + e.message); } })`;
  const r = spawnSync('bash', ['-c', 'trap "" XFSZ; ulimit -f 1; exec "$0" -e "$1"', process.execPath, js], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /WriteError: could not write .*partial\.jsonl: the file would exceed the file-size limit \(EFBIG\)/);
  assert.equal(readFileSync(log, 'utf8'), '{"step":1}\n', 'the partial line was cut back');
  appendLine(log, '{"step":2}');
  assert.equal(readFileSync(log, 'utf8'), '{"step":1}\n{"step":2}\n');
});
