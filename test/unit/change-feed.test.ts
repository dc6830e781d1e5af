// The watch history (services/server/store/change-feed.ts): reads after a revision under a prefix,
// answers cut only between writes, the bounds by changes and by bytes (oldest writes dropped whole,
// "gone" naming how far back it reaches), reset and advance, waiting — and, as a property, that a
// reader going on from each answer's `next` gets every change exactly once, in order, whatever the
// bounds and answer sizes.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChangeFeed, type Change } from '../../services/server/store/change-feed.js';

const big = { maxChanges: 1_000_000, maxBytes: 1_000_000_000 };
const changesOf = (r: ReturnType<ChangeFeed['read']>) => ('gone' in r ? r : r.changes.map((c) => [c.key, c.value ?? null, c.version]));

describe('change feed', () => {
  it('reads the changes after a revision, in order, under a prefix; next is where to go on', () => {
    const feed = new ChangeFeed(big);
    feed.reset(10);
    feed.record(11, [['a/1', 'x'], ['b/1', 'y']]);
    feed.record(12, [['a/1', undefined]]);
    feed.record(13, [['b/2', 'z']]);
    expect(changesOf(feed.read(10, '', 100, 1e9))).toEqual([['a/1', 'x', 11], ['b/1', 'y', 11], ['a/1', null, 12], ['b/2', 'z', 13]]);
    expect(feed.read(10, 'a/', 100, 1e9)).toEqual({ changes: [{ key: 'a/1', value: 'x', version: 11 }, { key: 'a/1', value: undefined, version: 12 }], next: 13 });
    expect(feed.read(11, 'b/', 100, 1e9)).toEqual({ changes: [{ key: 'b/2', value: 'z', version: 13 }], next: 13 });
    // nothing new: next is the head, so a waiting reader does not scan the same changes again
    expect(feed.read(13, '', 100, 1e9)).toEqual({ changes: [], next: 13 });
    // a reader from the future (a replica behind the one it watched before) waits where it is
    expect(feed.read(20, '', 100, 1e9)).toEqual({ changes: [], next: 20 });
    expect(feed.read(9, '', 100, 1e9)).toEqual({ gone: 10 });
  });

  it('an answer is cut between writes, never inside one; a write larger than the limit comes whole', () => {
    const feed = new ChangeFeed(big);
    feed.record(1, [['a', '1'], ['b', '1'], ['c', '1']]);
    feed.record(2, [['d', '2']]);
    const first = feed.read(0, '', 2, 1e9);
    expect(first).toMatchObject({ next: 1 });
    expect((first as { changes: Change[] }).changes).toHaveLength(3);
    expect(feed.read(1, '', 2, 1e9)).toMatchObject({ changes: [{ key: 'd' }], next: 2 });
    feed.record(3, [['e', '3']]);
    feed.record(4, [['f', '4']]);
    expect(feed.read(2, '', 1, 1e9)).toMatchObject({ changes: [{ key: 'e' }], next: 3 });
  });

  it('past its bounds it drops the oldest writes whole, and a reader from before them is told how far back it reaches', () => {
    const feed = new ChangeFeed({ maxChanges: 3, maxBytes: 1e9 });
    feed.record(1, [['a', '1'], ['b', '1']]);
    feed.record(2, [['c', '2']]);
    expect(feed.oldest).toBe(0);
    feed.record(3, [['d', '3']]);
    // 4 changes > 3: write 1 goes, both its changes
    expect(feed.oldest).toBe(1);
    expect(feed.size.changes).toBe(2);
    expect(feed.read(0, '', 10, 1e9)).toEqual({ gone: 1 });
    expect(changesOf(feed.read(1, '', 10, 1e9))).toEqual([['c', '2', 2], ['d', '3', 3]]);
    // by bytes: each change costs at least its strings twice over; the newest write always stays
    const small = new ChangeFeed({ maxChanges: 100, maxBytes: 200 });
    small.record(1, [['k', 'v'.repeat(40)]]);
    small.record(2, [['k', 'v'.repeat(500)]]);
    expect(small.oldest).toBe(1);
    expect(small.size.changes).toBe(1);
    expect(changesOf(small.read(1, '', 10, 1e9))).toEqual([['k', 'v'.repeat(500), 2]]);
  });

  it('refuses a revision that does not grow; advance moves the head without a change', () => {
    const feed = new ChangeFeed(big);
    feed.record(5, [['a', '1']]);
    expect(() => feed.record(5, [['b', '1']])).toThrow(RangeError);
    feed.advance(9);
    expect(feed.revision).toBe(9);
    expect(feed.read(5, '', 10, 1e9)).toEqual({ changes: [], next: 9 });
    feed.record(10, [['b', '2']]);
    expect(changesOf(feed.read(0, '', 10, 1e9))).toEqual([['a', '1', 5], ['b', '2', 10]]);
  });

  it('changed() resolves on the next record, or at its timeout', async () => {
    const feed = new ChangeFeed(big);
    const woken = feed.changed(10_000);
    expect(feed.waiting).toBe(1);
    feed.record(1, [['a', '1']]);
    await woken;
    expect(feed.waiting).toBe(0);
    const started = performance.now();
    await feed.changed(50);
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(feed.waiting).toBe(0);
  });

  it('property: reading on from each answer’s next gives every change under the prefix once, in order (while nothing is dropped)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.tuple(fc.constantFrom('a/1', 'a/2', 'b/1', 'c'), fc.option(fc.string({ maxLength: 20 }), { nil: undefined })), { minLength: 1, maxLength: 4 }), { maxLength: 40 }),
        fc.constantFrom('', 'a/', 'b/'),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 400 }),
        (writes, prefix, limit, maxBytes) => {
          const feed = new ChangeFeed(big);
          const expected: [string, string | null, number][] = [];
          writes.forEach((changes, i) => {
            feed.record(i + 1, changes);
            for (const [k, v] of changes) if (k.startsWith(prefix)) expected.push([k, v ?? null, i + 1]);
          });
          const seen: [string, string | null, number][] = [];
          let since = 0;
          for (let reads = 0; reads < 1000; reads++) {
            const r = feed.read(since, prefix, limit, maxBytes);
            if ('gone' in r) throw new Error('gone');
            seen.push(...r.changes.map((c): [string, string | null, number] => [c.key, c.value ?? null, c.version]));
            expect(r.next).toBeGreaterThanOrEqual(since);
            if (r.next === since && r.changes.length === 0) break;
            since = r.next;
          }
          expect(seen).toEqual(expected);
          expect(since).toBe(writes.length);
        },
      ),
      { numRuns: 300, seed: 20261207 },
    );
  });
});
