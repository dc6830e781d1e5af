import { describe, expect, it } from 'vitest';
import { encodeRecord, MAGIC, replay, RECORD_HEADER_BYTES } from '../../services/server/store/log-format.js';
import type { Pair } from '../../services/server/store/store.js';

const batches: Pair[][] = [[['a', '1'], ['b', '2']], [['a', '3']], [['키', '값'], ['url', 'http://x:1/']], [['z', '']]];
const log = Buffer.concat([MAGIC, ...batches.map(encodeRecord)]);
const recordStarts = batches.reduce<number[]>((starts, b) => [...starts, starts[starts.length - 1]! + encodeRecord(b).length], [MAGIC.length]);

function collect(buf: Buffer) {
  const seen: Pair[][] = [];
  const result = replay(buf, (pairs) => seen.push(pairs));
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
