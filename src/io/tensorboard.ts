// TensorBoard event files: a run's scalars for `tensorboard --logdir runs/`. The file is a sequence of TFRecords —
// uint64 length, uint32 masked CRC-32C of the length bytes, the data, uint32 masked CRC-32C of the data (all
// little-endian) — whose data are tensorflow.Event protobufs: first file_version 'brain.Event:2', then one Event
// per metrics line with a Summary of simple_value scalars. Each record is appended all or nothing (a failed write
// is cut back, a torn record left by a crash is cut off when the file is opened again); a writer that finds events
// from an earlier session (a resumed run) first writes SessionLog START at its first step, which makes TensorBoard
// drop the earlier session's events from that step on (they are recomputed).
import { readFileSync, existsSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { appendAll, WriteError } from './atomic.js';

/** The event file of a run folder (one per run; TensorBoard reads any file whose name contains 'tfevents'). */
export const TENSORBOARD_FILE = 'events.out.tfevents.freeadv';

/** The parts of tensorflow/core/util/event.proto and framework/summary.proto that scalars use. */
export const EVENT_SCHEMA = `
syntax = "proto3";
package tensorflow;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
    SessionLog session_log = 7;
  }
}
message SessionLog {
  enum SessionStatus {
    STATUS_UNSPECIFIED = 0;
    START = 1;
    STOP = 2;
    CHECKPOINT = 3;
  }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    oneof value {
      float simple_value = 2;
    }
  }
  repeated Value value = 1;
}
`;

let eventType: protobuf.Type | undefined;
function Event(): protobuf.Type {
  eventType ??= protobuf.parse(EVENT_SCHEMA, { keepCase: true }).root.lookupType('tensorflow.Event');
  return eventType;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1; // Castagnoli, reflected
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of bytes. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: ((crc >>> 15) | (crc << 17)) + 0xa282ead8, modulo 2³². */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: length, masked CRC of the length, data, masked CRC of the data. */
export function tfRecord(data: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.byteLength), 0);
  head.writeUInt32LE(maskedCrc32c(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([head, data, tail]);
}

/** The byte length of the valid records at the start of a TFRecord file's contents (a torn or corrupt tail excluded). */
export function validRecordsLength(buf: Uint8Array): { bytes: number; records: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0, records = 0;
  while (off + 12 <= b.length) {
    const n = b.readBigUInt64LE(off);
    if (b.readUInt32LE(off + 8) !== maskedCrc32c(b.subarray(off, off + 8))) break;
    if (n > BigInt(b.length - off - 16)) break;
    const end = off + 12 + Number(n);
    if (b.readUInt32LE(end) !== maskedCrc32c(b.subarray(off + 12, end))) break;
    off = end + 4;
    records++;
  }
  return { bytes: off, records };
}


/** Scalars of one step as TensorBoard events in `dir`/events.out.tfevents.freeadv. */
export class TensorBoardWriter {
  readonly path: string;
  private started = false;
  constructor(dir: string) {
    this.path = join(dir, TENSORBOARD_FILE);
  }

  private event(e: Record<string, unknown>): Buffer {
    const E = Event();
    return tfRecord(E.encode(E.fromObject({ wall_time: Date.now() / 1000, ...e })).finish());
  }

  /** Writes scalars (tag → value) at a step. The first call of this writer begins (or continues) the file. */
  scalars(step: number, values: Record<string, number>): void {
    const records: Buffer[] = [];
    if (!this.started) {
      let earlier = 0;
      if (existsSync(this.path)) {
        const { bytes, records: n } = validRecordsLength(readFileSync(this.path));
        try {
          truncateSync(this.path, bytes); // a record torn by a crash
        } catch (e) {
          throw new WriteError(this.path, e);
        }
        earlier = n;
      }
      if (earlier === 0) records.push(this.event({ step: 0, file_version: 'brain.Event:2' }));
      else records.push(this.event({ step, session_log: { status: 1 } })); // START: TensorBoard drops earlier events at steps ≥ step
      this.started = true;
    }
    const value = Object.entries(values).filter(([, v]) => typeof v === 'number' && Number.isFinite(v)).map(([tag, v]) => ({ tag, simple_value: v }));
    if (value.length) records.push(this.event({ step, summary: { value } }));
    if (records.length) appendAll(this.path, Buffer.concat(records));
  }
}

/** A metrics line's scalars: training lines under train/, end-of-pass lines (validation accuracy, pass time) under pass/. */
export function metricScalars(line: Record<string, unknown>): Record<string, number> {
  const group = 'guard_robust_accuracy' in line || 'pass_seconds' in line ? 'pass' : 'train';
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(line)) if (k !== 'step' && k !== 'pass' && typeof v === 'number' && Number.isFinite(v)) out[`${group}/${k}`] = v;
  return out;
}

const writers = new WeakMap<object, TensorBoardWriter>();
/** Appends a metrics line (with its step) as TensorBoard scalars to the event file of `owner.dir` (one writer per owner). */
export function appendTensorBoard(owner: { dir: string }, line: { step: number } & Record<string, unknown>): void {
  let w = writers.get(owner);
  if (!w) writers.set(owner, (w = new TensorBoardWriter(owner.dir)));
  w.scalars(line.step, metricScalars(line));
}
