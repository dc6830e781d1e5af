import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  encodeDelete,
  encodeJsonRecord,
  encodeLog,
  encodeRecord,
  encodeRevision,
  encodeSnapshot,
  MAGIC,
  MAGIC_V1,
  MAGIC_V2,
  pairRecordBytes,
  replay,
  RECORD_HEADER_BYTES,
  snapshotRecords,
  surveyDamage,
  TYPE_DELETE,
  TYPE_REVISION,
  TYPE_SET,
  TYPE_SNAPSHOT,
  VERSION_BYTES,
  type ReplayResult,
} from '../../services/server/store/log-format.js';
import type { VersionedPair } from '../../services/server/store/memory-store.js';
import type { Pair } from '../../services/server/store/store.js';

const batches: Pair[][] = [[['a', '1'], ['b', '2']], [['a', '3']], [['키', '값'], ['url', 'http://x:1/']], [['z', '']]];
const log = Buffer.concat([MAGIC, ...batches.map(encodeRecord)]);
const recordStarts = batches.reduce<number[]>((starts, b) => [...starts, starts[starts.length - 1]! + encodeRecord(b).length], [MAGIC.length]);

function collect(buf: Buffer) {
  const seen: Pair[][] = [];
  const result = replay(buf, { set: (pairs) => seen.push(pairs), delete: () => undefined });
  return { result, seen };
}

describe('log format and replay', () => {
  it('replays every record in order', () => {
    const { result, seen } = collect(log);
    expect(result).toEqual({ kind: 'ok', version: 3, records: 4, bytes: log.length });
    expect(seen).toEqual(batches);
  });

  it('an empty file is empty; a header alone is ok with no records', () => {
    expect(collect(Buffer.alloc(0)).result).toEqual({ kind: 'empty' });
    expect(collect(MAGIC).result).toEqual({ kind: 'ok', version: 3, records: 0, bytes: MAGIC.length });
  });

  it('a log cut at ANY offset inside its last record is a torn tail keeping every complete record', () => {
    const lastStart = recordStarts[3]!;
    for (let cut = lastStart + 1; cut < log.length; cut++) {
      const { result, seen } = collect(log.subarray(0, cut));
      expect(result, `cut at ${cut}`).toEqual({ kind: 'truncated', version: 3, records: 3, goodBytes: lastStart, fileBytes: cut });
      expect(seen).toEqual(batches.slice(0, 3));
    }
  });

  it('a cut inside the header is a torn tail too', () => {
    expect(collect(MAGIC.subarray(0, 5)).result).toEqual({ kind: 'truncated', version: 3, records: 0, goodBytes: 0, fileBytes: 5 });
  });

  it('a zero-filled tail (what some filesystems leave after a crash) is a torn tail', () => {
    const { result } = collect(Buffer.concat([log, Buffer.alloc(100)]));
    expect(result).toMatchObject({ kind: 'truncated', records: 4, goodBytes: log.length });
  });

  it('a damaged record with data after it is corruption, reported at its offset', () => {
    const damaged = Buffer.from(log);
    damaged[recordStarts[1]! + RECORD_HEADER_BYTES + 2]! ^= 0xff; // a payload byte of record 2
    const { result, seen } = collect(damaged);
    expect(result).toEqual({ kind: 'corrupt', version: 3, records: 1, offset: recordStarts[1], reason: 'checksum mismatch' });
    expect(seen).toEqual(batches.slice(0, 1));
  });

  it('a damaged LAST record whose bytes are all there is damage too: a torn write leaves a prefix, never a changed byte', () => {
    const damaged = Buffer.from(log);
    damaged[log.length - 1]! ^= 0x01;
    expect(collect(damaged).result).toMatchObject({ kind: 'corrupt', records: 3, offset: recordStarts[3], reason: 'checksum mismatch' });
  });

  it('the last record zero-filled from inside its payload to the end of the file is a torn tail', () => {
    const zeroed = Buffer.concat([log, Buffer.alloc(40)]);
    zeroed.fill(0, recordStarts[3]! + RECORD_HEADER_BYTES + 3);
    expect(collect(zeroed).result).toMatchObject({ kind: 'truncated', records: 3, goodBytes: recordStarts[3] });
  });

  it('a damaged length (header checksum mismatch) is damage wherever it is, the last record included', () => {
    for (const start of recordStarts.slice(0, 4)) {
      const damaged = Buffer.from(log);
      damaged[start + 2]! ^= 0x01; // 64 KiB more: past the end of the file
      expect(collect(damaged).result).toMatchObject({ kind: 'corrupt', offset: start, reason: 'record header checksum mismatch' });
    }
  });

  it('an implausible length is corruption, not a tail, even with a header checksum to match', () => {
    const damaged = Buffer.from(log);
    damaged.writeUInt32LE(0xfffffff0, recordStarts[2]!);
    expect(collect(damaged).result).toMatchObject({ kind: 'corrupt', offset: recordStarts[2] });
    reseal(damaged, recordStarts[2]!);
    expect(collect(damaged).result).toMatchObject({ kind: 'corrupt', offset: recordStarts[2], reason: 'record length 4294967280 is not plausible' });
  });

  it('a file that is not a tcpkv log fails', () => {
    expect(collect(Buffer.from('{"some":"json"}\n')).result).toEqual({ kind: 'failed', reason: 'not a tcpkv log (bad header)' });
  });

  it('a log of a newer format fails naming it, and what to do', () => {
    expect(collect(Buffer.from('TCPKV-LOG v4\n\u0000\u0000')).result).toEqual({
      kind: 'failed',
      reason: 'log format v4 was written by a newer tcpkv; this one reads formats v1 to v3: run the newer tcpkv (a downgrade needs a dump and restore)',
    });
  });
});

/** Recomputes the header checksum of the v2 record at `at`, after a test changed its header on purpose. */
function reseal(buf: Buffer, at: number): void {
  buf.writeUInt32LE(crc32(buf.subarray(at, at + 9)), at + 9);
}

/**
 * Replays into a Map the way the store does (SET sets, DELETE removes), and numbers the writes the way
 * the store does: SET and DELETE take the next revision, REVISION sets it, SNAPSHOT keeps its versions.
 */
function replayToMap(buf: Buffer) {
  const data = new Map<string, string>();
  const versions = new Map<string, number>();
  let revision = 0;
  const result = replay(buf, {
    set: (pairs) => {
      revision++;
      for (const [k, v] of pairs) {
        data.set(k, v);
        versions.set(k, revision);
      }
    },
    delete: (keys) => {
      revision++;
      for (const k of keys) {
        data.delete(k);
        versions.delete(k);
      }
    },
    snapshot: (entries) => {
      for (const [k, v, version] of entries) {
        data.set(k, v);
        versions.set(k, version);
      }
    },
    revision: (n) => {
      revision = n;
    },
  });
  return { result, data, versions, revision };
}

/** A record whose checksum is right, whatever its payload: what a bug, not a torn write, would leave. */
function checkedRecord(type: number, payload: string): Buffer {
  return encodeJsonRecord(type, payload);
}

describe('record shapes are checked at replay (a good checksum is not enough)', () => {
  const cases: [string, number, string][] = [
    ['a pair with one string', TYPE_SET, '[["a"]]'],
    ['null instead of a pair', TYPE_SET, '[null]'],
    ['a numeric key', TYPE_SET, '[[1,"x"]]'],
    ['a numeric value', TYPE_SET, '[["k",2]]'],
    ['a pair of three', TYPE_SET, '[["k","v","w"]]'],
    ['an object', TYPE_SET, '{"k":"v"}'],
    ['not JSON', TYPE_SET, '[["k",'],
    ['a DELETE of a number', TYPE_DELETE, '[1]'],
    ['a DELETE of a pair', TYPE_DELETE, '[["k","v"]]'],
    ['a SNAPSHOT pair without a version', TYPE_SNAPSHOT, '[["k","v"]]'],
    ['a SNAPSHOT version that is a string', TYPE_SNAPSHOT, '[["k","v","3"]]'],
    ['a SNAPSHOT version 0', TYPE_SNAPSHOT, '[["k","v",0]]'],
    ['a SNAPSHOT version that is not whole', TYPE_SNAPSHOT, '[["k","v",1.5]]'],
    ['a SNAPSHOT version past 2^53', TYPE_SNAPSHOT, '[["k","v",9007199254740993]]'],
    ['a REVISION of two numbers', TYPE_REVISION, '[1,2]'],
    ['a REVISION below 0', TYPE_REVISION, '[-1]'],
    ['a REVISION that is a string', TYPE_REVISION, '["7"]'],
    ['an empty REVISION', TYPE_REVISION, '[]'],
  ];
  for (const [name, type, payload] of cases) {
    it(`${name}: corruption at its offset, never a TypeError, nothing of it applied`, () => {
      const first = encodeRecord([['a', '1']]);
      const buf = Buffer.concat([MAGIC, first, checkedRecord(type, payload), encodeRecord([['b', '2']])]);
      const { result, data } = replayToMap(buf);
      expect(result).toMatchObject({ kind: 'corrupt', records: 1, offset: MAGIC.length + first.length });
      expect([...data]).toEqual([['a', '1']]);
      // the last record too: a matching checksum means it was written whole, so it is not a torn tail
      expect(replayToMap(Buffer.concat([MAGIC, first, checkedRecord(type, payload)])).result).toMatchObject({ kind: 'corrupt', offset: MAGIC.length + first.length });
    });
  }

  it('an unknown record type with a good checksum is corruption', () => {
    const odd = Buffer.from(encodeRecord([['k', 'v']]));
    odd[4] = 7;
    reseal(odd, 0);
    expect(replayToMap(Buffer.concat([MAGIC, odd])).result).toMatchObject({ kind: 'corrupt', reason: 'unknown record type 7' });
  });
});

describe('DELETE records', () => {
  it('replay applies sets and deletes in order', () => {
    const buf = Buffer.concat([MAGIC, encodeRecord([['a', '1'], ['b', '2']]), encodeDelete(['a']), encodeRecord([['a', '3']]), encodeDelete(['b', 'nope'])]);
    const { result, data } = replayToMap(buf);
    expect(result).toMatchObject({ kind: 'ok', records: 4 });
    expect([...data]).toEqual([['a', '3']]);
  });
});

// strings that stress the encoding: JSON escapes a control character as 6 bytes, Hangul takes 3 bytes,
// a character outside the BMP 4 (two UTF-16 units)
const nasty = fc.string({ unit: fc.constantFrom('a', ':', '&', '"', '\\', '\u0001', '\u001f', '\t', '김', '값', '😀', '\u2028', '\u007f'), maxLength: 60 });

/** A version as big as a long-lived store's may be, or small. */
const someVersion = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(Number.MAX_SAFE_INTEGER));
const versioned = (pairs: readonly Pair[], version = 1): VersionedPair[] => pairs.map(([k, v]) => [k, v, version]);

describe('snapshot records are split by bytes', () => {
  it('every record stays within the limit (one alone passes it by its version at most), and the records replay to exactly the entries', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(nasty, nasty, someVersion), { selector: ([k]) => k, maxLength: 80 }), fc.integer({ min: 400, max: 4000 }), (entries, limit) => {
        const fits = entries.filter(([k, v]) => encodeRecord([[k, v]]).length - RECORD_HEADER_BYTES <= limit);
        const records = [...snapshotRecords(fits, limit, limit)];
        for (const r of records) {
          const count = (JSON.parse(r.subarray(RECORD_HEADER_BYTES).toString('utf8')) as unknown[]).length;
          expect(r.readUInt32LE(0)).toBeLessThanOrEqual(count === 1 ? limit + VERSION_BYTES : limit);
        }
        const { result, data, versions } = replayToMap(Buffer.concat([MAGIC, ...records]));
        expect(result.kind).toBe('ok');
        expect([...data]).toEqual(fits.map(([k, v]) => [k, v]));
        expect([...versions]).toEqual(fits.map(([k, , version]) => [k, version]));
      }),
      { numRuns: 300 },
    );
  });

  it('a pair that fits a one-pair request record always fits a snapshot record, whatever its version', () => {
    fc.assert(
      fc.property(nasty, nasty, someVersion, (k, v, version) => {
        const limit = encodeRecord([[k, v]]).length - RECORD_HEADER_BYTES;
        expect([...snapshotRecords([[k, v, version]], limit)]).toHaveLength(1);
        expect(() => [...snapshotRecords([[k, v, version]], limit - 1)]).toThrow(RangeError);
      }),
    );
  });

  it('pairRecordBytes is the UTF-8 size the encoder gives a pair (so compaction measures what it writes)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(nasty, nasty), { minLength: 1, maxLength: 20 }), (pairs) => {
        const payload = encodeRecord(pairs).length - RECORD_HEADER_BYTES;
        // each pair's size includes one separator; the list has brackets and one separator fewer
        expect(pairs.reduce((n, [k, v]) => n + pairRecordBytes(k, v), 0)).toBe(payload - 2 + 1);
      }),
    );
  });

  it('1,000 pairs of 280 KB are grouped by bytes (about 1 MiB a record), none over the limit', () => {
    const value = 'v'.repeat(280_000);
    const pairs: [string, string][] = Array.from({ length: 1000 }, (_, i) => [`k${i}`, value]);
    let count = 0;
    for (const r of snapshotRecords(versioned(pairs, 123_456), 64 * 1024 * 1024)) {
      expect(r.readUInt32LE(0)).toBeLessThanOrEqual(1024 * 1024);
      count++;
    }
    expect(count).toBe(334); // three pairs a record
  });

  it('a pair larger than the grouping target is a record of its own, up to the limit', () => {
    const big = 'v'.repeat(3 * 1024 * 1024);
    const sizes = [...snapshotRecords(versioned([['a', 'x'], ['b', big], ['c', 'y']]), 64 * 1024 * 1024)].map((r) => r.readUInt32LE(0));
    expect(sizes).toHaveLength(3);
    expect(sizes[1]).toBeGreaterThan(3 * 1024 * 1024);
  });

  it('a record type byte is SNAPSHOT; a snapshot starts with its REVISION', () => {
    expect([...snapshotRecords([['k', 'v', 1]])][0]![4]).toBe(TYPE_SNAPSHOT);
    const [revision, first] = [...encodeSnapshot(9, [['k', 'v', 4]])];
    expect(revision![4]).toBe(TYPE_REVISION);
    expect(revision!.subarray(RECORD_HEADER_BYTES).toString()).toBe('[9]');
    expect(first!.subarray(RECORD_HEADER_BYTES).toString()).toBe('[["k","v",4]]');
  });
});

describe('versions: replay numbers the writes', () => {
  it('v3: SET and DELETE take the next revision, REVISION sets the counter, SNAPSHOT keeps its versions', () => {
    const buf = Buffer.concat([
      MAGIC,
      encodeRevision(40),
      ...snapshotRecords([['a', '1', 7], ['b', '2', 40]]),
      encodeRecord([['c', '3'], ['a', '4']]),
      encodeDelete(['b']),
      encodeRecord([['d', '5']]),
      encodeDelete(['nope']),
    ]);
    const { result, data, versions, revision } = replayToMap(buf);
    expect(result).toMatchObject({ kind: 'ok', version: 3, records: 6 });
    expect([...data]).toEqual([['a', '4'], ['c', '3'], ['d', '5']]);
    expect([...versions]).toEqual([['a', 41], ['c', 41], ['d', 43]]);
    expect(revision).toBe(44);
  });

  it('v2 (no REVISION or SNAPSHOT records): versions are the ordinals of the records', () => {
    const buf = Buffer.concat([MAGIC_V2, encodeRecord([['a', '1'], ['b', '2']]), encodeDelete(['a']), encodeRecord([['b', '3']]), encodeRecord([['c', '4']])]);
    const { result, versions, revision } = replayToMap(buf);
    expect(result).toMatchObject({ kind: 'ok', version: 2, records: 4 });
    expect([...versions]).toEqual([['b', 3], ['c', 4]]);
    expect(revision).toBe(4);
  });

  it('types 3 and 4 are damage in a v2 log (its format has no such records)', () => {
    for (const record of [encodeRevision(1), ...snapshotRecords([['k', 'v', 1]])]) {
      const buf = Buffer.concat([MAGIC_V2, encodeRecord([['a', '1']]), record]);
      expect(replayToMap(buf).result).toMatchObject({ kind: 'corrupt', version: 2, records: 1, reason: `unknown record type ${record[4]!}` });
    }
  });

  it('a handler without `snapshot` gets a snapshot\'s pairs through `set` (log checks count keys so)', () => {
    const seen: Pair[][] = [];
    replay(Buffer.concat([...encodeLog([['a', '1'], ['b', '2']])]), { set: (pairs) => seen.push(pairs), delete: () => undefined });
    expect(seen).toEqual([[['a', '1'], ['b', '2']]]);
  });
});

// ---- format v1 (written by earlier versions): still read, with a scan standing in for a header checksum

/** A v1 record, as earlier versions wrote it: length, CRC-32 of type and payload, type, payload. */
function v1Record(type: number, json: string): Buffer {
  const payload = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(9 + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out[8] = type;
  payload.copy(out, 9);
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

const v1Log = Buffer.concat([MAGIC_V1, ...batches.map((b) => v1Record(TYPE_SET, JSON.stringify(b)))]);
const v1Starts = batches.reduce<number[]>((starts, b) => [...starts, starts[starts.length - 1]! + 9 + Buffer.byteLength(JSON.stringify(b))], [MAGIC_V1.length]);

describe('format v1', () => {
  it('replays every record, and says it is v1', () => {
    const { result, seen } = collect(v1Log);
    expect(result).toEqual({ kind: 'ok', version: 1, records: 4, bytes: v1Log.length });
    expect(seen).toEqual(batches);
  });

  it('a cut anywhere inside the last record is a torn tail', () => {
    for (let cut = v1Starts[3]! + 1; cut < v1Log.length; cut++) expect(collect(v1Log.subarray(0, cut)).result).toMatchObject({ kind: 'truncated', version: 1, records: 3, goodBytes: v1Starts[3] });
  });

  it('a length pointing past the end with intact records after it is damage (the scan finds them), on every record but the last', () => {
    for (const [i, start] of v1Starts.slice(0, 4).entries()) {
      const damaged = Buffer.from(v1Log);
      damaged[start + 2]! ^= 0x01;
      const { result } = collect(damaged);
      if (i < 3) expect(result, `record ${i}`).toMatchObject({ kind: 'corrupt', offset: start });
      else expect(result).toMatchObject({ kind: 'truncated', records: 3 });
    }
  });
});

// ---- single flips and cuts: refuse, or start with exactly the records before the damage

/** Would the server start on this (without repair), and with what data? */
/** What a start holds: the data, every key's version, and the revision the next write follows. */
interface Held {
  data: Map<string, string>;
  versions: Map<string, number>;
  revision: number;
}

function outcome(buf: Buffer): { starts: boolean; data: Held; result: ReplayResult } {
  const { result, data, versions, revision } = replayToMap(buf);
  return { starts: result.kind === 'ok' || result.kind === 'truncated' || result.kind === 'empty', data: { data, versions, revision }, result };
}

/** The data of the records that end at or before `offset`: what a start may hold. */
function dataBefore(records: Buffer[], magic: Buffer, offset: number): Held {
  let end = magic.length;
  const kept: Buffer[] = [];
  for (const r of records) {
    end += r.length;
    if (end > offset) break;
    kept.push(r);
  }
  const { data, versions, revision } = replayToMap(Buffer.concat([magic, ...kept]));
  return { data, versions, revision };
}

const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '키', '😀', '"', '\u0001'), minLength: 1, maxLength: 4 });
const value = fc.string({ unit: fc.constantFrom('x', 'y', '값', '\u0000', '\u0002', '\\', ']'), maxLength: 30 });
const op = fc.oneof(
  fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 4 }).map((pairs) => ({ set: pairs as Pair[] })),
  fc.array(key, { minLength: 1, maxLength: 3 }).map((keys) => ({ delete: keys })),
);
const ops = fc.array(op, { minLength: 1, maxLength: 12 });

/** v3 adds a snapshot's records: a REVISION, and SNAPSHOT entries with versions */
const v3Op = fc.oneof(
  op,
  fc.integer({ min: 0, max: 1_000_000 }).map((revision) => ({ revision })),
  fc.array(fc.tuple(key, value, someVersion), { minLength: 1, maxLength: 4 }).map((entries) => ({ snapshot: entries as VersionedPair[] })),
);
type AnyOp = { set: Pair[] } | { delete: string[] } | { revision: number } | { snapshot: VersionedPair[] };
const encodeAny = (o: AnyOp): Buffer =>
  'set' in o ? encodeRecord(o.set) : 'delete' in o ? encodeDelete(o.delete) : 'revision' in o ? encodeRevision(o.revision) : [...snapshotRecords(o.snapshot, 1 << 20, 1 << 20)][0]!;

const encoders: Record<string, { magic: Buffer; ops: fc.Arbitrary<AnyOp[]>; encode: (o: AnyOp) => Buffer }> = {
  v3: { magic: MAGIC, ops: fc.array(v3Op, { minLength: 1, maxLength: 12 }), encode: encodeAny },
  v2: { magic: MAGIC_V2, ops, encode: encodeAny },
  v1: { magic: MAGIC_V1, ops, encode: (o: AnyOp) => ('set' in o ? v1Record(TYPE_SET, JSON.stringify(o.set)) : v1Record(TYPE_DELETE, JSON.stringify((o as { delete: string[] }).delete))) },
};

describe('any single flipped bit or cut: refuses to start, or starts with exactly the records before it', () => {
  for (const [name, { magic, ops: someOps, encode }] of Object.entries(encoders)) {
    it(`${name}: a flipped bit`, () => {
      fc.assert(
        fc.property(someOps, fc.nat(), (o, where) => {
          const records = o.map(encode);
          const buf = Buffer.concat([magic, ...records]);
          const bit = where % (buf.length * 8);
          buf[bit >> 3]! ^= 1 << (bit & 7);
          const { starts, data, result } = outcome(buf);
          // "v2" and "v3" differ by one bit, and both read SET and DELETE records alike: a header flipped
          // from one to the other, on a log holding no record only v3 has, reads every record just the same
          const sameRecords = bit >> 3 < magic.length && name !== 'v1' && result.kind === 'ok' && result.version !== 1;
          if (sameRecords) expect(data).toEqual(dataBefore(records, magic, buf.length));
          else if (starts) expect(data).toEqual(dataBefore(records, magic, bit >> 3));
          // damage before the last record always refuses; v2 and v3 protect every byte, the last record's too
          const lastStart = buf.length - records[records.length - 1]!.length;
          if (!sameRecords && (name !== 'v1' || bit >> 3 < lastStart)) expect(starts, `flip at bit ${bit}: ${JSON.stringify(result)}`).toBe(false);
        }),
        { numRuns: 2000 },
      );
    });

    it(`${name}: a cut`, () => {
      fc.assert(
        fc.property(someOps, fc.nat(), (o, where) => {
          const records = o.map(encode);
          const buf = Buffer.concat([magic, ...records]);
          const cut = where % (buf.length + 1);
          const { starts, data } = outcome(buf.subarray(0, cut));
          expect(starts, `cut at ${cut}`).toBe(true);
          expect(data).toEqual(dataBefore(records, magic, cut));
        }),
        { numRuns: 1000 },
      );
    });
  }

  it('v3, exhaustively on one log: every one of its bits flipped refuses, and names the record it is in', () => {
    // a snapshot's records too, so that the header read as v2's fails at the first of them
    const snapshot = [encodeRevision(5), ...snapshotRecords([['k', 'v', 3]])];
    const withSnapshot = Buffer.concat([log, ...snapshot]);
    const starts = [...recordStarts, log.length, log.length + snapshot[0]!.length];
    const versionByte = MAGIC.indexOf('3');
    for (let bit = 0; bit < withSnapshot.length * 8; bit++) {
      const buf = Buffer.from(withSnapshot);
      buf[bit >> 3]! ^= 1 << (bit & 7);
      const { result } = outcome(buf);
      const byte = bit >> 3;
      if (byte === versionByte && buf[byte] === 0x32) expect(result).toMatchObject({ kind: 'corrupt', version: 2, offset: log.length, reason: 'unknown record type 3' });
      else if (byte < MAGIC.length) expect(result.kind, `bit ${bit}: ${JSON.stringify(result)}`).not.toMatch(/^(ok|truncated)$/);
      else expect(result, `bit ${bit}`).toMatchObject({ kind: 'corrupt', offset: starts.findLast((s) => s <= byte) });
    }
  });

  it('v3 header read as v2 (one flipped bit) on a log of SET and DELETE records alone: the same data and versions', () => {
    const buf = Buffer.from(log);
    buf[MAGIC.indexOf('3')] = 0x32;
    const asV2 = replayToMap(buf);
    const asV3 = replayToMap(log);
    expect(asV2.result).toMatchObject({ kind: 'ok', version: 2 });
    expect([asV2.data, asV2.versions, asV2.revision]).toEqual([asV3.data, asV3.versions, asV3.revision]);
  });
});

describe('what a cut at the damage would drop', () => {
  it('counts the readable records after the damage and the keys they touch, resynchronising after each bad stretch', () => {
    const pieces = [encodeRecord([['a', '1']]), encodeRecord([['b', '2']]), encodeRecord([['c', '3'], ['d', '4']]), encodeDelete(['a']), encodeRecord([['e', '5']])];
    const buf = Buffer.concat([MAGIC, ...pieces]);
    const starts = pieces.reduce<number[]>((s, p) => [...s, s[s.length - 1]! + p.length], [MAGIC.length]);
    buf[starts[1]! + 1]! ^= 0x10; // the length of b's record
    buf[starts[3]! + RECORD_HEADER_BYTES + 1]! ^= 0x01; // the payload of the delete
    const { result } = collect(buf);
    expect(result).toMatchObject({ kind: 'corrupt', offset: starts[1] });
    const survey = surveyDamage(buf, starts[1]!);
    expect(survey.readableRecords).toBe(2); // c+d and e; the delete is damaged too
    expect([...survey.keys].sort()).toEqual(['c', 'd', 'e']);
    expect(survey.bytes).toBe(buf.length - starts[1]!);
  });

  it('nothing readable after damage at the last record', () => {
    const damaged = Buffer.from(log);
    damaged[log.length - 2]! ^= 0x01;
    expect(surveyDamage(damaged, recordStarts[3]!)).toMatchObject({ readableRecords: 0 });
  });
});
