// The append-only log's bytes, and replaying them. Pure: buffers in, typed results out (after Redis's
// AOF loader, which answers ok / empty / truncated / failed).
//
//   file    = MAGIC record*                       MAGIC = "TCPKV-LOG v3\n"
//   record  = length:u32le  type:u8  crc:u32le  hcrc:u32le  payload[length]
//   crc     = CRC-32 (zlib) of the payload
//   hcrc    = CRC-32 of the 9 header bytes before it (length, type, crc)
//   payload = UTF-8 JSON: type 1 (SET) a list of [key, value] string pairs to set,
//                         type 2 (DELETE) a list of keys to remove,
//                         type 3 (REVISION) [revision]: the store's revision counter at a snapshot,
//                         type 4 (SNAPSHOT) a list of [key, value, version] or [key, value, version,
//                                 expiresAt] to set at those versions (with that expiry),
//                         type 5 (SET_EXPIRING) a list of [key, value, expiresAt] to set, each expiring then,
//                         type 6 (EXPIRE) a list of keys removed because they expired
//   expiresAt = wall-clock ms (Date.now()) when the key expires
//
// Types 5 and 6 and the SNAPSHOT entry's fourth item came with expiry after v3 was defined but before
// any build wrote v3 for others to read, so they are part of v3; a reader meeting a type it does not
// know refuses the log as damaged (it never skips a record).
//
// Versions (store.ts): replay numbers the writes. Each SET, SET_EXPIRING, DELETE and EXPIRE record is
// one accepted write and
// takes the next revision (its keys get it as their version); REVISION sets the counter, SNAPSHOT takes
// none. So the revisions the writer gives at run time and the ones replay computes are the same, and a
// compaction (REVISION, then SNAPSHOT records) keeps every key's version.
//
// The header has its own checksum because a length is data too: a damaged length must read as damage,
// never as a torn last write (LevelDB and etcd's WAL make the same distinction). A torn write can only
// leave a prefix of the last record, so: a file that ends inside a record whose header is intact (or
// inside the header itself), or a zero-filled tail, is torn; any other bad byte is damage.
//
// Version 2 ("TCPKV-LOG v2\n") is version 3 without types 3 and 4; replay gives its records versions by
// their order, as for v3's SET and DELETE. Version 1 ("TCPKV-LOG v1\n", record = length:u32le crc:u32le
// type:u8 payload, crc over type and payload) is still read too. Its length is unprotected, so a v1 record that runs past the end of the file,
// or the last one failing its checksum, counts as torn only if no intact record can be found after it.
//
// One record per accepted write request: a whole batch, so replay is all-or-nothing per request too.
// A snapshot written by compaction is a REVISION record and a run of SNAPSHOT records, split by bytes.
//
// One limit governs both sides: the writer refuses a request whose record would be larger than its
// limit (at most MAX_RECORD_BYTES), and replay accepts every record up to MAX_RECORD_BYTES (plus the
// version a SNAPSHOT record gives a pair that was alone at the limit) — so everything the writer can
// write, replay loads, whatever limit the writer ran with.

import { readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import type { Pair } from './store.js';
import type { ExpiringPair, VersionedPair } from './memory-store.js';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../../common/setting-names.js';

/** The header of the format this version writes. */
export const MAGIC = Buffer.from('TCPKV-LOG v3\n', 'latin1');
/** The headers of the previous formats, still read. */
export const MAGIC_V2 = Buffer.from('TCPKV-LOG v2\n', 'latin1');
export const MAGIC_V1 = Buffer.from('TCPKV-LOG v1\n', 'latin1');
export const FORMAT_VERSION = 3;
export type FormatVersion = 1 | 2 | 3;
export const RECORD_HEADER_BYTES = 13;
export const TYPE_SET = 1;
export const TYPE_DELETE = 2;
export const TYPE_REVISION = 3;
export const TYPE_SNAPSHOT = 4;
export const TYPE_SET_EXPIRING = 5;
export const TYPE_EXPIRE = 6;
/** The largest payload a writer gives a request's record (TCPKV_MAX_LOG_RECORD_BYTES is at most this). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** What a version adds to a pair in a SNAPSHOT record at most: a comma and a safe integer's 16 digits. */
export const VERSION_BYTES = 17;
/** What an expiry adds to an entry in a SNAPSHOT record at most: a comma and a safe integer's 16 digits. */
export const EXPIRY_BYTES = 17;
/** The largest payload replay accepts; a length field beyond it is damage. */
const MAX_REPLAY_BYTES = MAX_RECORD_BYTES + VERSION_BYTES + EXPIRY_BYTES;
/** The writer's default payload limit (TCPKV_MAX_LOG_RECORD_BYTES). */
export const DEFAULT_RECORD_LIMIT = numericDefault(S.maxLogRecordBytes);

/** Fills in a record's header: `out` holds the payload from RECORD_HEADER_BYTES on. */
function sealRecord(out: Buffer, type: number, payloadBytes: number): Buffer {
  out.writeUInt32LE(payloadBytes, 0);
  out[4] = type;
  out.writeUInt32LE(crc32(out.subarray(RECORD_HEADER_BYTES)), 5);
  out.writeUInt32LE(crc32(out.subarray(0, 9)), 9);
  return out;
}

/** A record with its payload already JSON text: header and checksum added here. */
export function encodeJsonRecord(type: number, json: string): Buffer {
  const payloadBytes = Buffer.byteLength(json, 'utf8');
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadBytes);
  out.write(json, RECORD_HEADER_BYTES, 'utf8');
  return sealRecord(out, type, payloadBytes);
}

/** A SET record of these pairs. */
export function encodeRecord(pairs: readonly Pair[]): Buffer {
  return encodeJsonRecord(TYPE_SET, JSON.stringify(pairs));
}

/** A SET_EXPIRING record: one key with its value and its expiry (wall-clock ms). */
export function encodeExpiringRecord(key: string, value: string, expiresAt: number): Buffer {
  return encodeJsonRecord(TYPE_SET_EXPIRING, JSON.stringify([[key, value, expiresAt]]));
}

/** An EXPIRE record of these keys. */
export function encodeExpire(keys: readonly string[]): Buffer {
  return encodeJsonRecord(TYPE_EXPIRE, JSON.stringify(keys));
}

/** A DELETE record of these keys. */
export function encodeDelete(keys: readonly string[]): Buffer {
  return encodeJsonRecord(TYPE_DELETE, JSON.stringify(keys));
}

/** A REVISION record: the revision counter at a snapshot. */
export function encodeRevision(revision: number): Buffer {
  return encodeJsonRecord(TYPE_REVISION, `[${revision}]`);
}

/** UTF-8 bytes one pair takes inside a SET payload, separator included (the compaction estimate). */
export function pairRecordBytes(key: string, value: string): number {
  return Buffer.byteLength(JSON.stringify(key), 'utf8') + Buffer.byteLength(JSON.stringify(value), 'utf8') + 4;
}

/** A SNAPSHOT record from entries already JSON-encoded, whose total UTF-8 size is known: one copy each. */
function encodeSnapshotParts(parts: readonly string[], partBytes: number): Buffer {
  const payloadBytes = partBytes + 2 + Math.max(0, parts.length - 1);
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + payloadBytes);
  let at = RECORD_HEADER_BYTES;
  out[at++] = 0x5b; // [
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[at++] = 0x2c; // ,
    at += out.write(parts[i]!, at, 'utf8');
  }
  out[at] = 0x5d; // ]
  return sealRecord(out, TYPE_SNAPSHOT, payloadBytes);
}

/** Pairs are grouped into snapshot records of about this size: each is encoded in one go on the event loop. */
export const SNAPSHOT_RECORD_TARGET = 1024 * 1024;

/**
 * The SNAPSHOT records of a snapshot: entries grouped up to `targetBytes` of payload, an entry larger
 * than that alone in its record, and no payload over `maxPayloadBytes` UTF-8 bytes — except that an
 * entry alone in its record may pass it by its version (VERSION_BYTES at most), so that a pair that fit
 * a one-pair request record always fits. A pair that does not fit so is a RangeError: the writer never
 * accepts one (see `MAX_RECORD_BYTES`). A generator, so a caller can write record by record and never
 * hold the whole snapshot encoded.
 */
export function* snapshotRecords(entries: Iterable<VersionedPair>, maxPayloadBytes: number = DEFAULT_RECORD_LIMIT, targetBytes: number = SNAPSHOT_RECORD_TARGET): Generator<Buffer> {
  const group = Math.min(targetBytes, maxPayloadBytes);
  let parts: string[] = [];
  let partBytes = 0;
  for (const [key, value, version, expiresAt] of entries) {
    const pair = '[' + JSON.stringify(key) + ',' + JSON.stringify(value);
    const pairBytes = Buffer.byteLength(pair, 'utf8');
    const json = pair + ',' + version + (expiresAt === undefined ? ']' : ',' + expiresAt + ']');
    const bytes = pairBytes + json.length - pair.length;
    // payload = brackets + parts + one comma between each two
    if (parts.length > 0 && 2 + partBytes + parts.length + bytes > group) {
      yield encodeSnapshotParts(parts, partBytes);
      parts = [];
      partBytes = 0;
    }
    // a one-pair request's record, `[` pair `]]`, is what the writer's limit was checked against
    if (pairBytes + 3 > maxPayloadBytes) throw new RangeError(`one pair needs a record of ${pairBytes + 3} bytes, over the limit of ${maxPayloadBytes}`);
    parts.push(json);
    partBytes += bytes;
  }
  if (parts.length > 0) yield encodeSnapshotParts(parts, partBytes);
}

/** A snapshot as compaction writes it after MAGIC: the revision, then the entries at their versions. */
export function* encodeSnapshot(revision: number, entries: Iterable<VersionedPair>, maxPayloadBytes: number = DEFAULT_RECORD_LIMIT): Generator<Buffer> {
  yield encodeRevision(revision);
  yield* snapshotRecords(entries, maxPayloadBytes);
}

/**
 * A whole log file's bytes holding `pairs` (a snapshot, as compaction writes it, as if one write had
 * set them all: revision and versions 1), for tools and tests that need a big log quickly: `MAGIC`
 * then the records, in pieces to write one after the other.
 */
export function* encodeLog(pairs: Iterable<Pair>, maxPayloadBytes: number = DEFAULT_RECORD_LIMIT): Generator<Buffer> {
  yield MAGIC;
  yield* encodeSnapshot(
    1,
    (function* () {
      for (const [key, value] of pairs) yield [key, value, 1] as const;
    })(),
    maxPayloadBytes,
  );
}

/**
 * What a good record asks replay to do. A handler without `snapshot` gets a SNAPSHOT record's pairs
 * through `set`; one without `revision` does not see REVISION records.
 */
export interface ReplayHandler {
  set(pairs: Pair[]): void;
  delete(keys: string[]): void;
  /** a SET_EXPIRING record; a handler without it gets the pairs through `set` */
  setExpiring?(entries: ExpiringPair[]): void;
  /** an EXPIRE record; a handler without it gets the keys through `delete` */
  expire?(keys: string[]): void;
  snapshot?(entries: VersionedPair[]): void;
  revision?(revision: number): void;
  /** told where each good record starts, before its own handler is called */
  at?(offset: number): void;
}

/** A record's content. */
type Decoded =
  | { readonly set: Pair[] }
  | { readonly delete: string[] }
  | { readonly snapshot: VersionedPair[] }
  | { readonly revision: number }
  | { readonly setExpiring: ExpiringPair[] }
  | { readonly expire: string[] };

export type ReplayResult =
  /** no log yet (an empty file) */
  | { readonly kind: 'empty' }
  | { readonly kind: 'ok'; readonly version: FormatVersion; readonly records: number; readonly bytes: number }
  /** the last record is incomplete (a crash in the middle of a write): everything before it is good */
  | { readonly kind: 'truncated'; readonly version: FormatVersion; readonly records: number; readonly goodBytes: number; readonly fileBytes: number }
  /** damage: bytes that are not an intact record and not a torn last write; refuse, or truncate there if told to */
  | { readonly kind: 'corrupt'; readonly version: FormatVersion; readonly records: number; readonly offset: number; readonly reason: string }
  /** not a tcpkv log at all */
  | { readonly kind: 'failed'; readonly reason: string };

/** A revision or version as the log holds it: a whole number a double holds exactly. */
const isCount = (n: unknown, min: number): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= min;

/** The payload's items if it is a well-formed record of its type, else why not. */
function parsePayload(type: number, text: string): Decoded | string {
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
  if (type === TYPE_SNAPSHOT) {
    for (let i = 0; i < items.length; i++) {
      const item: unknown = items[i];
      if (!Array.isArray(item) || (item.length !== 3 && item.length !== 4) || typeof item[0] !== 'string' || typeof item[1] !== 'string' || !isCount(item[2], 1) || (item.length === 4 && !isCount(item[3], 1))) {
        return `checksum matches but item ${i} of a SNAPSHOT record is not a [key, value, version(, expiresAt)] entry`;
      }
    }
    return { snapshot: items as VersionedPair[] };
  }
  if (type === TYPE_SET_EXPIRING) {
    for (let i = 0; i < items.length; i++) {
      const item: unknown = items[i];
      if (!Array.isArray(item) || item.length !== 3 || typeof item[0] !== 'string' || typeof item[1] !== 'string' || !isCount(item[2], 1)) {
        return `checksum matches but item ${i} of a SET_EXPIRING record is not a [key, value, expiresAt] entry`;
      }
    }
    return { setExpiring: items as ExpiringPair[] };
  }
  if (type === TYPE_REVISION) {
    if (items.length !== 1 || !isCount(items[0], 0)) return 'checksum matches but a REVISION record is not [revision]';
    return { revision: items[0] as number };
  }
  const name = type === TYPE_EXPIRE ? 'EXPIRE' : 'DELETE';
  for (let i = 0; i < items.length; i++) if (typeof items[i] !== 'string') return `checksum matches but item ${i} of a ${name} record is not a key string`;
  return type === TYPE_EXPIRE ? { expire: items as string[] } : { delete: items as string[] };
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

/** What the bytes at one offset are. */
type RecordAt =
  | { readonly kind: 'record'; readonly type: number; readonly payload: Buffer; readonly end: number }
  /** the file ends inside this record; from v2 on its header (if whole) is intact, so the length is true */
  | { readonly kind: 'short'; readonly length: number | undefined }
  /** not an intact record; `end` where its length says it ends, if the length can be read */
  | { readonly kind: 'bad'; readonly reason: string; readonly end: number | undefined };

function headerBytes(version: FormatVersion): number {
  return version === 1 ? 9 : RECORD_HEADER_BYTES;
}

/** Whether `type` is a record type of this format version. */
function knownType(type: number | undefined, version: FormatVersion): boolean {
  return type === TYPE_SET || type === TYPE_DELETE || (version === 3 && type !== undefined && type >= TYPE_REVISION && type <= TYPE_EXPIRE);
}

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 (zlib's) of a header's first 9 bytes, without a subarray and a native call per record. */
function headerCrc(header: Buffer): number {
  let c = -1;
  for (let i = 0; i < 9; i++) c = CRC_TABLE[(c ^ header[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function readRecord(source: LogSource, at: number, version: FormatVersion): RecordAt {
  const size = source.size;
  const headerLength = headerBytes(version);
  if (size - at < headerLength) return { kind: 'short', length: undefined };
  const header = source.read(at, headerLength);
  const length = header.readUInt32LE(0);
  // the writer seals with zlib's crc32: every replay checks the two agree
  if (version !== 1 && headerCrc(header) !== header.readUInt32LE(9)) return { kind: 'bad', reason: 'record header checksum mismatch', end: undefined };
  if (length > MAX_REPLAY_BYTES) return { kind: 'bad', reason: `record length ${length} is not plausible`, end: undefined };
  const end = at + headerLength + length;
  if (end > size) return { kind: 'short', length };
  if (version !== 1) {
    const type = header[4]!;
    const storedCrc = header.readUInt32LE(5);
    const payload = source.read(at + headerLength, length);
    if (crc32(payload) !== storedCrc) return { kind: 'bad', reason: 'checksum mismatch', end };
    return { kind: 'record', type, payload, end };
  }
  const storedCrc = header.readUInt32LE(4);
  const body = source.read(at + 8, length + 1); // type and payload: what a v1 checksum covers
  if (crc32(body) !== storedCrc) return { kind: 'bad', reason: 'checksum mismatch', end };
  return { kind: 'record', type: body[0]!, payload: body.subarray(1), end };
}

/** A record's content if it is well formed, else why not (its checksum held: this is never a torn write). */
function decodeRecord(type: number, payload: Buffer, version: FormatVersion): Decoded | string {
  if (!knownType(type, version)) return `unknown record type ${type}`;
  return parsePayload(type, payload.toString('utf8'));
}

const SCAN_CHUNK_BYTES = WINDOW_BYTES - 64;

/**
 * The first offset at or after `from` where an intact, well-formed record starts, if any. Cheap tests
 * first: a payload is JSON text, so it opens with `[`, and a type byte (1 to 6, a control character) never occurs inside one
 * (JSON escapes control characters); the checksums are computed only where both fit.
 */
export function findIntactRecord(source: LogSource, from: number, version: FormatVersion): number | undefined {
  const headerLength = headerBytes(version);
  const typeAt = version === 1 ? 8 : 4;
  const minRecord = headerLength + 2; // "[]"
  for (let base = from; base + minRecord <= source.size; base += SCAN_CHUNK_BYTES) {
    const chunk = source.read(base, Math.min(SCAN_CHUNK_BYTES + minRecord, source.size - base));
    const last = Math.min(SCAN_CHUNK_BYTES, chunk.length - minRecord + 1);
    for (let i = 0; i < last; i++) {
      const type = chunk[i + typeAt];
      if (!knownType(type, version) || chunk[i + headerLength] !== 0x5b) continue;
      const r = readRecord(source, base + i, version);
      if (r.kind === 'record' && typeof decodeRecord(r.type, r.payload, version) !== 'string') return base + i;
    }
  }
  return undefined;
}

/** The format of a log by its header; undefined if it is not a tcpkv log (or not yet a whole header). */
function formatOf(source: LogSource): FormatVersion | undefined {
  if (source.size < MAGIC.length) return undefined;
  const head = source.read(0, MAGIC.length);
  return head.equals(MAGIC) ? 3 : head.equals(MAGIC_V2) ? 2 : head.equals(MAGIC_V1) ? 1 : undefined;
}

/**
 * Is a record that is not intact a torn last write (true), or damage (false)? Only the end of the file
 * can be torn. v2 and v3: a file ending inside a record whose header is intact; or a zero-filled tail (some
 * filesystems leave one after a crash), which may begin inside the record. v1: a record running past
 * the end, or the last one failing its checksum, when no intact record follows it.
 */
function isTorn(source: LogSource, at: number, r: Exclude<RecordAt, { kind: 'record' }>, version: FormatVersion): boolean {
  if (isAllZero(source, at)) return true;
  if (version !== 1) {
    if (r.kind === 'short') return true;
    // a payload whose last bytes are zeros, with only zeros after it (a record never ends in 0: "]")
    return r.end !== undefined && source.read(r.end - 1, 1)[0] === 0 && isAllZero(source, r.end);
  }
  if (r.kind === 'short' || r.end === source.size) return findIntactRecord(source, at + 1, 1) === undefined;
  return false;
}

/**
 * Walks the log, handing each good record to `handler` in order, and says how it ended: whole, with a
 * torn last write (everything before it is good), or damaged at an offset (nothing from there on was
 * handed over). `from` (a record's start, as `handler.at` was told it) walks only the records from
 * there on.
 */
export function replay(log: Buffer | LogSource, handler: ReplayHandler, from?: number): ReplayResult {
  const source = Buffer.isBuffer(log) ? bufferSource(log) : log;
  const size = source.size;
  if (size === 0) return { kind: 'empty' };
  const version = formatOf(source);
  if (version === undefined) {
    // a crash while the header itself was written
    const head = source.read(0, Math.min(size, MAGIC.length));
    if (size < MAGIC.length && [MAGIC, MAGIC_V2, MAGIC_V1].some((magic) => magic.subarray(0, size).equals(head))) return { kind: 'truncated', version: FORMAT_VERSION, records: 0, goodBytes: 0, fileBytes: size };
    // a later tcpkv's log: say so, rather than call it no log at all (nothing is changed either way)
    const newer = /^TCPKV-LOG v([0-9]{1,4})\n/.exec(source.read(0, Math.min(size, 32)).toString('latin1'));
    if (newer !== null && Number(newer[1]) > FORMAT_VERSION) {
      return { kind: 'failed', reason: `log format v${newer[1]} was written by a newer tcpkv; this one reads formats v1 to v${FORMAT_VERSION}: run the newer tcpkv (a downgrade needs a dump and restore)` };
    }
    return { kind: 'failed', reason: 'not a tcpkv log (bad header)' };
  }
  let at = Math.max(MAGIC.length, from ?? 0);
  let records = 0;
  while (at < size) {
    const r = readRecord(source, at, version);
    if (r.kind !== 'record') {
      if (isTorn(source, at, r, version)) return { kind: 'truncated', version, records, goodBytes: at, fileBytes: size };
      const reason = r.kind === 'bad' ? r.reason : `record length ${r.length ?? '?'} runs past the end of the file, but intact records follow`;
      return { kind: 'corrupt', version, records, offset: at, reason };
    }
    const decoded = decodeRecord(r.type, r.payload, version);
    if (typeof decoded === 'string') return { kind: 'corrupt', version, records, offset: at, reason: decoded };
    handler.at?.(at);
    if ('set' in decoded) handler.set(decoded.set);
    else if ('delete' in decoded) handler.delete(decoded.delete);
    else if ('setExpiring' in decoded) {
      if (handler.setExpiring) handler.setExpiring(decoded.setExpiring);
      else handler.set(decoded.setExpiring.map(([key, value]) => [key, value] as const));
    } else if ('expire' in decoded) {
      if (handler.expire) handler.expire(decoded.expire);
      else handler.delete(decoded.expire);
    } else if ('snapshot' in decoded) {
      if (handler.snapshot) handler.snapshot(decoded.snapshot);
      else handler.set(decoded.snapshot.map(([key, value]) => [key, value] as const));
    } else handler.revision?.(decoded.revision);
    records++;
    at = r.end;
  }
  return { kind: 'ok', version, records, bytes: at };
}

/** What cutting a damaged log at `offset` would drop: the records still readable after the damage. */
export interface DamageSurvey {
  /** bytes from the damage to the end of the file */
  readonly bytes: number;
  /** intact records after the damage (the damaged bytes themselves are not counted) */
  readonly readableRecords: number;
  /** distinct keys those records write or delete */
  readonly keys: ReadonlySet<string>;
}

/**
 * Reads past damage: from `offset`, finds each intact record (resynchronising after every further bad
 * stretch) and counts them and the keys they touch. What TCPKV_LOG_REPAIR=truncate would cut.
 */
export function surveyDamage(log: Buffer | LogSource, offset: number): DamageSurvey {
  const source = Buffer.isBuffer(log) ? bufferSource(log) : log;
  const version = formatOf(source) ?? FORMAT_VERSION;
  const keys = new Set<string>();
  let readableRecords = 0;
  let at = findIntactRecord(source, offset + 1, version);
  while (at !== undefined && at < source.size) {
    const r = readRecord(source, at, version);
    const decoded = r.kind === 'record' ? decodeRecord(r.type, r.payload, version) : undefined;
    if (r.kind !== 'record' || decoded === undefined || typeof decoded === 'string') {
      at = findIntactRecord(source, at + 1, version);
      continue;
    }
    readableRecords++;
    if ('set' in decoded) for (const [key] of decoded.set) keys.add(key);
    else if ('snapshot' in decoded) for (const [key] of decoded.snapshot) keys.add(key);
    else if ('setExpiring' in decoded) for (const [key] of decoded.setExpiring) keys.add(key);
    else if ('delete' in decoded) for (const key of decoded.delete) keys.add(key);
    else if ('expire' in decoded) for (const key of decoded.expire) keys.add(key);
    at = r.end;
  }
  return { bytes: source.size - offset, readableRecords, keys };
}
