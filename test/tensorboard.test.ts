// TensorBoard event files beside metrics.jsonl, read back by an independent reader in Python written from the
// format's specification: TFRecord framing (uint64 length, masked CRC-32C of the length, data, masked CRC-32C of the
// data; a bitwise CRC-32C, not freeadv's table) and tensorflow.Event parsed by the python protobuf package from
// descriptors built in Python; TensorBoard's purge on SessionLog START applied for resumed runs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, appendFileSync, mkdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { run } from '../src/cli/main.js';
import { TensorBoardWriter, TENSORBOARD_FILE, crc32c, maskedCrc32c, tfRecord, validRecordsLength, metricScalars } from '../src/io/index.js';
import { PYTHON } from './helpers/python.js';
import { smallFashionMnist } from './helpers/data.js';

const hasProtobuf = spawnSync(PYTHON, ['-c', 'import google.protobuf'], { encoding: 'utf8' }).status === 0;
const SKIP = hasProtobuf ? false : "the python protobuf package is missing (apt-get install python3-protobuf)";
const tmp = mkdtempSync(join(tmpdir(), 'freeadv-tb-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
let data = '';
before(async () => {
  data = await smallFashionMnist(256, 32);
});

const READER = String.raw`
import json, struct, sys
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF

def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

assert crc32c(b"123456789") == 0xE3069283

# tensorflow/core/util/event.proto and framework/summary.proto, the fields scalars use
F = descriptor_pb2.FieldDescriptorProto
fdp = descriptor_pb2.FileDescriptorProto(name="tb_subset.proto", package="tensorflow", syntax="proto3")
ev = fdp.message_type.add(name="Event")
ev.oneof_decl.add(name="what")
ev.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
ev.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
ev.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0)
ev.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, type_name=".tensorflow.Summary", label=F.LABEL_OPTIONAL, oneof_index=0)
ev.field.add(name="session_log", number=7, type=F.TYPE_MESSAGE, type_name=".tensorflow.SessionLog", label=F.LABEL_OPTIONAL, oneof_index=0)
sl = fdp.message_type.add(name="SessionLog")
st = sl.enum_type.add(name="SessionStatus")
for i, n in enumerate(["STATUS_UNSPECIFIED", "START", "STOP", "CHECKPOINT"]):
    st.value.add(name=n, number=i)
sl.field.add(name="status", number=1, type=F.TYPE_ENUM, type_name=".tensorflow.SessionLog.SessionStatus", label=F.LABEL_OPTIONAL)
sm = fdp.message_type.add(name="Summary")
val = sm.nested_type.add(name="Value")
val.oneof_decl.add(name="value")
val.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
val.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL, oneof_index=0)
sm.field.add(name="value", number=1, type=F.TYPE_MESSAGE, type_name=".tensorflow.Summary.Value", label=F.LABEL_REPEATED)
pool = descriptor_pool.DescriptorPool()
pool.Add(fdp)
desc = pool.FindMessageTypeByName("tensorflow.Event")
Event = message_factory.GetMessageClass(desc) if hasattr(message_factory, "GetMessageClass") else message_factory.MessageFactory(pool).GetPrototype(desc)

raw = open(sys.argv[1], "rb").read()
off, events = 0, []
while off < len(raw):
    assert off + 12 <= len(raw), "truncated record header at %d" % off
    (n,) = struct.unpack("<Q", raw[off:off + 8])
    (lc,) = struct.unpack("<I", raw[off + 8:off + 12])
    assert lc == masked(raw[off:off + 8]), "length CRC at %d" % off
    body = raw[off + 12:off + 12 + n]
    assert len(body) == n, "truncated data at %d" % off
    (dc,) = struct.unpack("<I", raw[off + 12 + n:off + 16 + n])
    assert dc == masked(body), "data CRC at %d" % off
    e = Event()
    e.ParseFromString(body)
    events.append(e)
    off += 16 + n

# TensorBoard's reading: file_version first; SessionLog START purges the scalars at steps >= its step
assert events[0].WhichOneof("what") == "file_version" and events[0].file_version == "brain.Event:2"
scalars, starts, kinds = {}, [], []
for e in events:
    kinds.append(e.WhichOneof("what"))
    assert e.wall_time > 1.5e9
    if e.WhichOneof("what") == "session_log" and e.session_log.status == 1:
        starts.append(e.step)
        for tag in scalars:
            scalars[tag] = [p for p in scalars[tag] if p[0] < e.step]
    elif e.WhichOneof("what") == "summary":
        for v in e.summary.value:
            assert v.WhichOneof("value") == "simple_value"
            scalars.setdefault(v.tag, []).append([e.step, v.simple_value])
print(json.dumps({"records": len(events), "kinds": kinds, "starts": starts, "scalars": scalars}))
`;

function readEvents(file: string): { records: number; kinds: string[]; starts: number[]; scalars: Record<string, [number, number][]> } {
  const r = spawnSync(PYTHON, ['-c', READER, file], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

test('CRC-32C and TFRecord framing: the check value, masking, and a torn tail', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  const m = maskedCrc32c(Buffer.from('a'));
  const c = crc32c(Buffer.from('a'));
  assert.equal(m, ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) % 2 ** 32);
  const two = Buffer.concat([tfRecord(Buffer.from('one')), tfRecord(Buffer.from('second'))]);
  assert.deepEqual(validRecordsLength(two), { bytes: two.length, records: 2 });
  assert.deepEqual(validRecordsLength(two.subarray(0, two.length - 3)), { bytes: 19, records: 1 });
  assert.deepEqual(metricScalars({ step: 4, pass: 0, lr: 0.1, loss: 2, train_accuracy: 0.5, images_per_second: 100 }), { 'train/lr': 0.1, 'train/loss': 2, 'train/train_accuracy': 0.5, 'train/images_per_second': 100 });
  assert.deepEqual(metricScalars({ step: 8, pass: 1, guard_robust_accuracy: 0.25, pass_seconds: 3 }), { 'pass/guard_robust_accuracy': 0.25, 'pass/pass_seconds': 3 });
});

test('a writer, a resumed writer and a torn tail, read back by the independent reader with TensorBoard\'s purge', { skip: SKIP }, () => {
  const dir = join(tmp, 'unit');
  mkdirSync(dir);
  const a = new TensorBoardWriter(dir);
  for (const s of [4, 8, 12]) a.scalars(s, { 'train/loss': 1 / s, 'train/lr': 0.5 });
  // a crash tears the last record; the next session cuts it off, says START at its first step, and rewrites from there
  appendFileSync(join(dir, TENSORBOARD_FILE), tfRecord(Buffer.from('torn')).subarray(0, 10));
  const b = new TensorBoardWriter(dir);
  for (const s of [8, 12, 16]) b.scalars(s, { 'train/loss': 2 / s, 'train/lr': 0.25 });
  const r = readEvents(join(dir, TENSORBOARD_FILE));
  assert.deepEqual(r.kinds, ['file_version', 'summary', 'summary', 'summary', 'session_log', 'summary', 'summary', 'summary']);
  assert.deepEqual(r.starts, [8]);
  assert.deepEqual(r.scalars['train/loss']!.map(([s]) => s), [4, 8, 12, 16]);
  assert.deepEqual(r.scalars['train/loss']!.map(([, v]) => v), [1 / 4, 2 / 8, 2 / 12, 2 / 16].map(Math.fround));
  assert.deepEqual(r.scalars['train/lr'], [[4, 0.5], [8, 0.25], [12, 0.25], [16, 0.25]]);
});

test('freeadv train writes TensorBoard scalars beside metrics.jsonl: every numeric field of every line, at its step', { skip: SKIP }, async () => {
  const out = join(tmp, 'run');
  let err = '';
  const code = await run(['train', '--data-dir', data, '--method', 'free', '--replays', '2', '--epochs', '4', '--batch-size', '64', '--log-every', '2',
    '--eval-limit', '16', '--eval-attacks', 'fgsm', '--threads', '2', '--out', out], () => undefined, (s) => (err += s));
  assert.equal(code, 0, err);
  const file = join(out, TENSORBOARD_FILE);
  assert.ok(statSync(file).size > 0);
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const r = readEvents(file);
  assert.deepEqual(r.starts, []);
  assert.equal(r.records, 1 + lines.length, 'file_version, then one event per metrics line');
  const expected: Record<string, [number, number][]> = {};
  for (const l of lines) for (const [tag, v] of Object.entries(metricScalars(l))) (expected[tag] ??= []).push([l.step, Math.fround(v)]);
  assert.deepEqual(r.scalars, expected);
  for (const tag of ['train/loss', 'train/train_accuracy', 'train/lr', 'train/images_per_second', 'pass/val_clean_accuracy', 'pass/val_robust_accuracy', 'pass/pass_seconds']) assert.ok(r.scalars[tag]?.length, tag);
});
