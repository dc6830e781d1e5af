// The append-only log's bytes, and replaying them. Pure: buffers in, typed results out (after Redis's
// AOF loader, which answers ok / empty / truncated / failed).
//
//   file    = MAGIC record*
//   record  = length:u32le  crc:u32le  type:u8  payload[length]
//   crc     = CRC-32 (zlib) of type and payload
//   payload = JSON array of [key, value] pairs to set (type 1, SET)
//
// One record per accepted POST or PUT: a whole batch, so replay is all-or-nothing per request too.
// A snapshot written by compaction is the same: records of SET.

import { crc32 } from 'node:zlib';
import type { Pair } from './store.js';

export const MAGIC = Buffer.from('TCPKV-LOG v1\n', 'latin1');
export const RECORD_HEADER_BYTES = 9;
export const TYPE_SET = 1;
/** A length field beyond this is damage, not a record (the largest body is far smaller). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export function encodeRecord(pairs: readonly Pair[]): Buffer {
  const payload = Buffer.from(JSON.stringify(pairs), 'utf8');
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out[8] = TYPE_SET;
  payload.copy(out, RECORD_HEADER_BYTES);
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

export type ReplayResult =
  /** no log yet (an empty file) */
  | { readonly kind: 'empty' }
  | { readonly kind: 'ok'; readonly records: number; readonly bytes: number }
  /** the last record is incomplete (a crash in the middle of a write): everything before it is good */
  | { readonly kind: 'truncated'; readonly records: number; readonly goodBytes: number; readonly fileBytes: number }
  /** a damaged record with data after it: refuse, or truncate there if told to */
  | { readonly kind: 'corrupt'; readonly records: number; readonly offset: number; readonly reason: string }
  /** not a tcpkv log at all */
  | { readonly kind: 'failed'; readonly reason: string };

function isAllZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Walks the log, calling `apply` for each good record in order. A bad record at the very end (short,
 * or failing its checksum with nothing after it, or a zero-filled tail) is a torn write; a bad one
 * followed by more data is corruption.
 */
export function replay(buf: Buffer, apply: (pairs: Pair[]) => void): ReplayResult {
  if (buf.length === 0) return { kind: 'empty' };
  if (buf.length < MAGIC.length) {
    return MAGIC.subarray(0, buf.length).equals(buf) ? { kind: 'truncated', records: 0, goodBytes: 0, fileBytes: buf.length } : { kind: 'failed', reason: 'not a tcpkv log (bad header)' };
  }
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return { kind: 'failed', reason: 'not a tcpkv log (bad header)' };
  let at = MAGIC.length;
  let records = 0;
  while (at < buf.length) {
    const torn = { kind: 'truncated', records, goodBytes: at, fileBytes: buf.length } as const;
    if (buf.length - at < RECORD_HEADER_BYTES) return torn;
    if (isAllZero(buf, at)) return torn;
    const length = buf.readUInt32LE(at);
    const type = buf[at + 8];
    if (length > MAX_RECORD_BYTES) return { kind: 'corrupt', records, offset: at, reason: `record length ${length} is not plausible` };
    const end = at + RECORD_HEADER_BYTES + length;
    if (end > buf.length) return torn;
    const crcOk = buf.readUInt32LE(at + 4) === crc32(buf.subarray(at + 8, end));
    if (!crcOk || type !== TYPE_SET) {
      if (end === buf.length) return torn;
      return { kind: 'corrupt', records, offset: at, reason: crcOk ? `unknown record type ${type}` : 'checksum mismatch' };
    }
    let pairs: Pair[];
    try {
      pairs = JSON.parse(buf.toString('utf8', at + RECORD_HEADER_BYTES, end)) as Pair[];
      if (!Array.isArray(pairs)) throw new Error('not a list');
    } catch {
      return { kind: 'corrupt', records, offset: at, reason: 'checksum matches but the payload is not a list of pairs' };
    }
    apply(pairs);
    records++;
    at = end;
  }
  return { kind: 'ok', records, bytes: at };
}
