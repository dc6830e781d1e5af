import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeDelete, encodeJsonRecord, encodeRecord, MAGIC, pairRecordBytes, replay, RECORD_HEADER_BYTES, snapshotRecords, TYPE_DELETE, TYPE_SET } from '../../services/server/store/log-format.js';
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
    expect(result).toEqual({ kind: 'ok', records: 4, bytes: log.length });
    expect(seen).toEqual(batches);
  });

  it('an empty file is empty; a header alone is ok with no records', () => {
    expect(collect(Buffer.alloc(0)).result).toEqual({ kind: 'empty' });
    expect(collect(MAGIC).result).toEqual({ kind: 'ok', records: 0, bytes: MAGIC.length });
  });

  it('a log cut at ANY offset inside its last record is a torn tail keeping every complete record', () => {
    const lastStart = recordStarts[3]!;
    for (let cut = lastStart + 1; cut < log.length; cut++) {
      const { result, seen } = collect(log.subarray(0, cut));
      expect(result, `cut at ${cut}`).toEqual({ kind: 'truncated', records: 3, goodBytes: lastStart, fileBytes: cut });
      expect(seen).toEqual(batches.slice(0, 3));
    }
  });

  it('a cut inside the header is a torn tail too', () => {
    expect(collect(MAGIC.subarray(0, 5)).result).toEqual({ kind: 'truncated', records: 0, goodBytes: 0, fileBytes: 5 });
  });

  it('a zero-filled tail (what some filesystems leave after a crash) is a torn tail', () => {
    const { result } = collect(Buffer.concat([log, Buffer.alloc(100)]));
    expect(result).toMatchObject({ kind: 'truncated', records: 4, goodBytes: log.length });
  });

  it('a damaged record with data after it is corruption, reported at its offset', () => {
    const damaged = Buffer.from(log);
    damaged[recordStarts[1]! + RECORD_HEADER_BYTES + 2]! ^= 0xff; // a payload byte of record 2
    const { result, seen } = collect(damaged);
    expect(result).toEqual({ kind: 'corrupt', records: 1, offset: recordStarts[1], reason: 'checksum mismatch' });
    expect(seen).toEqual(batches.slice(0, 1));
  });

  it('a damaged LAST record is a torn tail (it may be a write cut short)', () => {
    const damaged = Buffer.from(log);
    damaged[log.length - 1]! ^= 0xff;
    expect(collect(damaged).result).toMatchObject({ kind: 'truncated', records: 3, goodBytes: recordStarts[3] });
  });

  it('an implausible length is corruption, not a tail', () => {
    const damaged = Buffer.from(log);
    damaged.writeUInt32LE(0xfffffff0, recordStarts[2]!);
    expect(collect(damaged).result).toMatchObject({ kind: 'corrupt', offset: recordStarts[2] });
  });

  it('a file that is not a tcpkv log fails', () => {
    expect(collect(Buffer.from('{"some":"json"}\n')).result).toEqual({ kind: 'failed', reason: 'not a tcpkv log (bad header)' });
  });
});

/** Replays into a Map the way the store does (SET sets, DELETE removes). */
function replayToMap(buf: Buffer) {
  const data = new Map<string, string>();
  const result = replay(buf, {
    set: (pairs) => pairs.forEach(([k, v]) => data.set(k, v)),
    delete: (keys) => keys.forEach((k) => data.delete(k)),
  });
  return { result, data };
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
    odd[8] = 7;
    odd.writeUInt32LE(crc32(odd.subarray(8)), 4);
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

describe('snapshot records are split by bytes', () => {
  it('every record stays within the limit, and the records replay to exactly the pairs', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(nasty, nasty), { selector: ([k]) => k, maxLength: 80 }), fc.integer({ min: 400, max: 4000 }), (pairs, limit) => {
        const fits = pairs.filter(([k, v]) => encodeRecord([[k, v]]).length - RECORD_HEADER_BYTES <= limit);
        const records = [...snapshotRecords(fits, limit, limit)];
        for (const r of records) expect(r.readUInt32LE(0)).toBeLessThanOrEqual(limit);
        const { result, data } = replayToMap(Buffer.concat([MAGIC, ...records]));
        expect(result.kind).toBe('ok');
        expect([...data]).toEqual(fits);
      }),
      { numRuns: 300 },
    );
  });

  it('a pair that fits a one-pair request record always fits a snapshot record', () => {
    fc.assert(
      fc.property(nasty, nasty, (k, v) => {
        const limit = encodeRecord([[k, v]]).length - RECORD_HEADER_BYTES;
        expect([...snapshotRecords([[k, v]], limit)]).toHaveLength(1);
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
    for (const r of snapshotRecords(pairs, 64 * 1024 * 1024)) {
      expect(r.readUInt32LE(0)).toBeLessThanOrEqual(1024 * 1024);
      count++;
    }
    expect(count).toBe(334); // three pairs a record
  });

  it('a pair larger than the grouping target is a record of its own, up to the limit', () => {
    const big = 'v'.repeat(3 * 1024 * 1024);
    const sizes = [...snapshotRecords([['a', 'x'], ['b', big], ['c', 'y']], 64 * 1024 * 1024)].map((r) => r.readUInt32LE(0));
    expect(sizes).toHaveLength(3);
    expect(sizes[1]).toBeGreaterThan(3 * 1024 * 1024);
  });

  it('a record type byte is SET', () => {
    expect([...snapshotRecords([['k', 'v']])][0]![8]).toBe(TYPE_SET);
  });
});
