// The append-only log's bytes, and replaying them. Pure: buffers in, typed results out (after Redis's
// AOF loader, which answers ok / empty / truncated / failed).
//
//   file    = MAGIC record*
//   record  = length:u32le  crc:u32le  type:u8  payload[length]
//   crc     = CRC-32 (zlib) of type and payload
//   payload = UTF-8 JSON: type 1 (SET) a list of [key, value] string pairs to set,
//                         type 2 (DELETE) a list of keys to remove
//
// One record per accepted write request: a whole batch, so replay is all-or-nothing per request too.
// A snapshot written by compaction is a run of SET records, split by bytes.
//
// One limit governs both sides: the writer refuses a request whose record would be larger than its
// limit (at most MAX_RECORD_BYTES), and replay accepts every record up to MAX_RECORD_BYTES — so
// everything the writer can write, replay loads, whatever limit the writer ran with.

import { readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import type { Pair } from './store.js';

export const MAGIC = Buffer.from('TCPKV-LOG v1\n', 'latin1');
export const RECORD_HEADER_BYTES = 9;
export const TYPE_SET = 1;
export const TYPE_DELETE = 2;
/** The largest payload replay accepts; a length field beyond it is damage. Writers stay at or below it. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** The writer's default payload limit (TCPKV_MAX_LOG_RECORD_BYTES). */
export const DEFAULT_RECORD_LIMIT = 64 * 1024 * 1024;

/** A record with its payload already JSON text: header and checksum added here. */
export function encodeJsonRecord(type: number, json: string): Buffer {
  const payloadBytes = Buffer.byteLength(json, 'utf8');
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadBytes);
  out.writeUInt32LE(payloadBytes, 0);
  out[8] = type;
  out.write(json, RECORD_HEADER_BYTES, 'utf8');
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

/** A SET record of these pairs. */
export function encodeRecord(pairs: readonly Pair[]): Buffer {
  return encodeJsonRecord(TYPE_SET, JSON.stringify(pairs));
}

/** A DELETE record of these keys. */
export function encodeDelete(keys: readonly string[]): Buffer {
  return encodeJsonRecord(TYPE_DELETE, JSON.stringify(keys));
}

/** UTF-8 bytes one pair takes inside a SET payload, separator included (the compaction estimate). */
export function pairRecordBytes(key: string, value: string): number {
  return Buffer.byteLength(JSON.stringify(key), 'utf8') + Buffer.byteLength(JSON.stringify(value), 'utf8') + 4;
}

/** A SET record from pairs already JSON-encoded, whose total UTF-8 size is known: one copy each. */
function encodeSetParts(parts: readonly string[], partBytes: number): Buffer {
  const payloadBytes = partBytes + 2 + Math.max(0, parts.length - 1);
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadBytes);
  out.writeUInt32LE(payloadBytes, 0);
  out[8] = TYPE_SET;
  let at = RECORD_HEADER_BYTES;
  out[at++] = 0x5b; // [
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[at++] = 0x2c; // ,
    at += out.write(parts[i]!, at, 'utf8');
  }
  out[at] = 0x5d; // ]
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

/** Pairs are grouped into snapshot records of about this size: each is encoded in one go on the event loop. */
export const SNAPSHOT_RECORD_TARGET = 1024 * 1024;

/**
 * The SET records of a snapshot: pairs grouped up to `targetBytes` of payload, a pair larger than that
 * alone in its record, and no payload over `maxPayloadBytes` UTF-8 bytes. A single pair that does not
 * fit alone is a RangeError: the writer never accepts one (see `MAX_RECORD_BYTES`). A generator, so a
 * caller can write record by record and never hold the whole snapshot encoded.
 */
export function* snapshotRecords(pairs: Iterable<Pair>, maxPayloadBytes: number = DEFAULT_RECORD_LIMIT, targetBytes: number = SNAPSHOT_RECORD_TARGET): Generator<Buffer> {
  const group = Math.min(targetBytes, maxPayloadBytes);
  let parts: string[] = [];
  let partBytes = 0;
  for (const [key, value] of pairs) {
    const json = '[' + JSON.stringify(key) + ',' + JSON.stringify(value) + ']';
    const bytes = Buffer.byteLength(json, 'utf8');
    // payload = brackets + parts + one comma between each two
    if (parts.length > 0 && 2 + partBytes + parts.length + bytes > group) {
      yield encodeSetParts(parts, partBytes);
      parts = [];
      partBytes = 0;
    }
    if (parts.length === 0 && 2 + bytes > maxPayloadBytes) throw new RangeError(`one pair needs a record of ${2 + bytes} bytes, over the limit of ${maxPayloadBytes}`);
    parts.push(json);
    partBytes += bytes;
  }
  if (parts.length > 0) yield encodeSetParts(parts, partBytes);
}

/**
 * A whole log file's bytes holding `pairs` (a snapshot, as compaction writes it), for tools and tests
 * that need a big log quickly: `MAGIC` then the records, in pieces to write one after the other.
 */
export function* encodeLog(pairs: Iterable<Pair>, maxPayloadBytes: number = DEFAULT_RECORD_LIMIT): Generator<Buffer> {
  yield MAGIC;
  yield* snapshotRecords(pairs, maxPayloadBytes);
}

/** What a good record asks replay to do. */
export interface ReplayHandler {
  set(pairs: Pair[]): void;
  delete(keys: string[]): void;
}

export type ReplayResult =
  /** no log yet (an empty file) */
  | { readonly kind: 'empty' }
  | { readonly kind: 'ok'; readonly records: number; readonly bytes: number }
  /** the last record is incomplete (a crash in the middle of a write): everything before it is good */
  | { readonly kind: 'truncated'; readonly records: number; readonly goodBytes: number; readonly fileBytes: number }
  /** a damaged record with data after it, or a record whose checksum holds but whose content is not a record: refuse, or truncate there if told to */
  | { readonly kind: 'corrupt'; readonly records: number; readonly offset: number; readonly reason: string }
  /** not a tcpkv log at all */
  | { readonly kind: 'failed'; readonly reason: string };

/** The payload's items if it is a well-formed record of its type, else why not. */
function parsePayload(type: number, text: string): { set: Pair[] } | { delete: string[] } | string {
  let items: unknown;
  try {
    items = JSON.parse(text);
  } catch {
    return 'checksum matches but the payload is not JSON';
  }
  if (!Array.isArray(items)) return 'checksum matches but the payload is not a list';
  if (type === TYPE_SET) {
    for (let i = 0; i < items.length; i++) {
      const item: unknown = items[i];
      if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string' || typeof item[1] !== 'string') {
        return `checksum matches but item ${i} of a SET record is not a [key, value] pair of strings`;
      }
    }
    return { set: items as Pair[] };
  }
  for (let i = 0; i < items.length; i++) if (typeof items[i] !== 'string') return `checksum matches but item ${i} of a DELETE record is not a key string`;
  return { delete: items as string[] };
}

/** Random access to a log's bytes: a Buffer, or a file read in windows (a log may pass 2 GiB). */
export interface LogSource {
  readonly size: number;
  /** exactly `length` bytes from `position` (the caller stays within `size`) */
  read(position: number, length: number): Buffer;
}

export function bufferSource(buf: Buffer): LogSource {
  return { size: buf.length, read: (position, length) => buf.subarray(position, position + length) };
}

const WINDOW_BYTES = 8 * 1024 * 1024;

/** A file by descriptor, read through one reused window so that small records cost no syscall each. */
export function fileSource(fd: number, size: number): LogSource {
  let window = Buffer.alloc(0);
  let windowStart = 0;
  return {
    size,
    read(position, length) {
      if (position >= windowStart && position + length <= windowStart + window.length) return window.subarray(position - windowStart, position - windowStart + length);
      const want = Math.min(Math.max(length, WINDOW_BYTES), size - position);
      window = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const n = readSync(fd, window, got, want - got, position + got);
        if (n === 0) throw new Error(`log file shrank while being read (at ${position + got} of ${size})`);
        got += n;
      }
      windowStart = position;
      return window.subarray(0, length);
    },
  };
}

function isAllZero(source: LogSource, from: number): boolean {
  for (let at = from; at < source.size; at += WINDOW_BYTES) {
    const chunk = source.read(at, Math.min(WINDOW_BYTES, source.size - at));
    for (let i = 0; i < chunk.length; i++) if (chunk[i] !== 0) return false;
  }
  return true;
}

/**
 * Walks the log, handing each good record to `handler` in order. A bad record at the very end (short,
 * or failing its checksum with nothing after it, or a zero-filled tail) is a torn write; a bad one
 * followed by more data is corruption, and so is a record whose checksum holds but whose type or
 * content is wrong (a torn write cannot produce a matching checksum).
 */
export function replay(log: Buffer | LogSource, handler: ReplayHandler): ReplayResult {
  const source = Buffer.isBuffer(log) ? bufferSource(log) : log;
  const size = source.size;
  if (size === 0) return { kind: 'empty' };
  if (size < MAGIC.length) {
    return MAGIC.subarray(0, size).equals(source.read(0, size)) ? { kind: 'truncated', records: 0, goodBytes: 0, fileBytes: size } : { kind: 'failed', reason: 'not a tcpkv log (bad header)' };
  }
  if (!source.read(0, MAGIC.length).equals(MAGIC)) return { kind: 'failed', reason: 'not a tcpkv log (bad header)' };
  let at = MAGIC.length;
  let records = 0;
  while (at < size) {
    const torn = { kind: 'truncated', records, goodBytes: at, fileBytes: size } as const;
    if (size - at < RECORD_HEADER_BYTES) return torn;
    const header = source.read(at, RECORD_HEADER_BYTES);
    const length = header.readUInt32LE(0);
    const storedCrc = header.readUInt32LE(4);
    const type = header[8]!;
    if (length === 0 && storedCrc === 0 && type === 0 && isAllZero(source, at)) return torn;
    if (length > MAX_RECORD_BYTES) return { kind: 'corrupt', records, offset: at, reason: `record length ${length} is not plausible` };
    const end = at + RECORD_HEADER_BYTES + length;
    if (end > size) return torn;
    const body = source.read(at + 8, length + 1); // type and payload: what the checksum covers
    if (storedCrc !== crc32(body)) {
      if (end === size || isAllZero(source, at)) return torn;
      return { kind: 'corrupt', records, offset: at, reason: 'checksum mismatch' };
    }
    if (type !== TYPE_SET && type !== TYPE_DELETE) return { kind: 'corrupt', records, offset: at, reason: `unknown record type ${type}` };
    const parsed = parsePayload(type, body.toString('utf8', 1));
    if (typeof parsed === 'string') return { kind: 'corrupt', records, offset: at, reason: parsed };
    if ('set' in parsed) handler.set(parsed.set);
    else handler.delete(parsed.delete);
    records++;
    at = end;
  }
  return { kind: 'ok', records, bytes: at };
}
