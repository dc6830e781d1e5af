// Keys that expire, in the memory store and the log store (real files): a key expires on time and is
// never read after its expiry (get, getVersioned, page, listing), swept or not; a later write without
// a TTL clears the expiry; the removal is a write of its own, a deletion with its revision in
// `changes`; conditions see a TTL'd key's version and an expired key as absent; the log keeps the
// expiry across a restart and a compaction, and a key whose expiry passed while the store was closed
// is never served again (its removal is one EXPIRE record, written again if a crash lost it). The
// store API takes any ttlMs (the rules hold requests to MIN_TTL_MS..MAX_TTL_MS): short TTLs keep this
// file fast. Last, 100,000 keys with TTLs of 1 to 10 s on each store: the lateness of their removal
// (p50/p99) and the longest the event loop was held meanwhile are printed and bounded; and on the log
// store 100,000 keys across a restart: none that expired while it was closed is served, the rest
// expire on time.

import { readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../services/server/store/change-feed.js';
import { encodeExpire, encodeExpiringRecord, encodeJsonRecord, encodeSnapshot, MAGIC, MAGIC_V2, replay, TYPE_EXPIRE, TYPE_SET_EXPIRING } from '../../services/server/store/log-format.js';
import { LOG_NAME, LogStore, REAL_FILE_OPS, type LogFileOps } from '../../services/server/store/log-store.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import { UNCONDITIONAL, type Condition, type Store } from '../../services/server/store/store.js';
import { useTempDirs } from '../support/temp-dirs.js';

const tempDir = useTempDirs();
const silent = pino({ level: 'silent' });

const openLog = (dir: string, fileOps?: LogFileOps) =>
  LogStore.open({ dir, fsync: 'no', compactFactor: 2, compactMinBytes: 1 << 30, repair: 'off', logger: silent, ...(fileOps ? { fileOps } : {}) });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const versions = (...v: number[]): Condition => ({ kind: 'versions', versions: v });

/** The feed's changes after `since`. */
function changesAfter(store: Store, since: number): readonly Change[] {
  const read = store.changes.read(since, '', 1_000_000, 1 << 30);
  if ('gone' in read) throw new Error(`feed gone back to ${read.gone}`);
  return read.changes;
}

/** Whether any read path shows `key`. */
function seen(store: Store, key: string): boolean {
  const listing = store.listing();
  const text = Buffer.concat(listing.slices as Buffer[]).toString('utf8');
  return store.get(key) !== undefined || store.getVersioned(key) !== undefined || store.page({ limit: 1000, prefix: '' }).items.some(([k]) => k === key) || text.includes(`\n${key}:`);
}

/** Blocks the event loop for `ms` (a store's timer cannot run meanwhile). */
function hold(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

type Maker = { name: string; make(): Promise<Store> };
const makers: Maker[] = [
  { name: 'memory', make: () => Promise.resolve(new MemoryStore({ logger: silent })) },
  { name: 'log', make: () => openLog(tempDir('tcpkv-expiry-')) },
];

describe.each(makers)('$name store: keys that expire', ({ make }) => {
  it('expires on time, is never read after, and its removal is a deletion with its own revision in changes', async () => {
    const store = await make();
    try {
      await store.upsertAll([['stay', 'v']]);
      const wallBefore = Date.now();
      const put = await store.putKey('k', 'v1', UNCONDITIONAL, 200);
      expect(put).toMatchObject({ ok: true, created: true });
      const version = (put as { version: number }).version;
      const got = store.getVersioned('k')!;
      expect(got.version).toBe(version);
      // expiresAt is the monotonic deadline on the wall clock, rounded to the millisecond: ±1 ms
      expect(got.expiresAt).toBeGreaterThanOrEqual(wallBefore + 200 - 1);
      expect(got.expiresAt).toBeLessThanOrEqual(Date.now() + 200 + 5);
      // the store's deadline (±1 ms), not 200 ms from now: the log store counts from the write's
      // arrival, and a busy machine may take a while to answer it
      const deadline = performance.now() + (got.expiresAt! - Date.now());
      let readsAfter = 0;
      // read every path until well after the expiry: once the clock passed it (measured before the
      // read), nothing may show the key
      while (performance.now() < deadline + 150) {
        const before = performance.now();
        const shown = seen(store, 'k');
        if (before >= deadline + 2) {
          readsAfter++;
          expect(shown).toBe(false);
        } else if (before < deadline - 20) expect(shown).toBe(true);
        await sleep(1);
      }
      expect(readsAfter).toBeGreaterThan(10);
      expect(store.get('stay')).toBe('v');
      const removal = changesAfter(store, version);
      expect(removal).toEqual([{ key: 'k', value: undefined, version: version + 1 }]);
      expect(store.revision).toBe(version + 1);
    } finally {
      await store.close();
    }
  });

  it('a later write without a TTL clears the expiry (putKey, upsertAll)', async () => {
    const store = await make();
    try {
      await store.putKey('a', '1', UNCONDITIONAL, 100);
      await store.putKey('a', '2', UNCONDITIONAL);
      await store.putKey('b', '1', UNCONDITIONAL, 100);
      await store.upsertAll([['b', '2']]);
      const rev = store.revision;
      expect(store.getVersioned('a')!.expiresAt).toBeUndefined();
      await sleep(250);
      expect(store.get('a')).toBe('2');
      expect(store.get('b')).toBe('2');
      expect(store.revision).toBe(rev);
      // and a TTL given again replaces the earlier one
      await store.putKey('c', '1', UNCONDITIONAL, 5000);
      await store.putKey('c', '2', UNCONDITIONAL, 100);
      await sleep(250);
      expect(store.get('c')).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('conditions: a TTL-ed key has a version; an expired one is absent; a write on it after its expiry follows the removal', async () => {
    const store = await make();
    try {
      const first = (await store.putKey('lock', 'me', { kind: 'absent' }, 150)) as { ok: true; version: number };
      expect(first.ok).toBe(true);
      expect(await store.putKey('lock', 'you', { kind: 'absent' }, 150)).toEqual({ ok: false, current: first.version });
      // renewal with If-Match
      const renewed = (await store.putKey('lock', 'me', versions(first.version), 150)) as { ok: true; version: number };
      expect(renewed.ok).toBe(true);
      expect(await store.putKey('lock', 'x', versions(first.version))).toEqual({ ok: false, current: renewed.version });
      // the sweeper cannot run while the loop is held: the key has expired but is not removed yet
      hold(200);
      expect(store.get('lock')).toBeUndefined();
      expect(store.listing().count).toBe(0);
      expect(store.page({ limit: 10, prefix: '' }).items).toEqual([]);
      const taken = (await store.putKey('lock', 'you', { kind: 'absent' }, 5000)) as { ok: true; version: number; created: boolean };
      expect(taken).toMatchObject({ ok: true, created: true });
      // the expiry took its own revision before the write
      const feed = changesAfter(store, renewed.version);
      expect(feed).toEqual([
        { key: 'lock', value: undefined, version: renewed.version + 1 },
        { key: 'lock', value: 'you', version: renewed.version + 2 },
      ]);
      expect(taken.version).toBe(renewed.version + 2);
      expect(await store.deleteKey('lock', versions(taken.version))).toEqual({ ok: true, version: taken.version + 1 });
    } finally {
      await store.close();
    }
  });

  it('a cursor on a key that expired goes on from its place', async () => {
    const store = await make();
    try {
      await store.upsertAll([['p1', 'v']]);
      await store.putKey('p2', 'v', UNCONDITIONAL, 100);
      await store.upsertAll([['p3', 'v']]);
      const page = store.page({ limit: 2, prefix: '' });
      expect(page.items.map(([k]) => k)).toEqual(['p1', 'p2']);
      await sleep(250);
      expect(store.page({ limit: 10, prefix: '', after: 'p2' }).items.map(([k]) => k)).toEqual(['p3']);
    } finally {
      await store.close();
    }
  });
});

describe('log store: expiry across restarts', () => {
  it('keeps the expiry across a restart and a compaction, then expires the key', async () => {
    const dir = tempDir('tcpkv-expiry-');
    let store = await openLog(dir);
    await store.putKey('k', 'v', UNCONDITIONAL, 1500);
    await store.upsertAll([['plain', 'p']]);
    const expiresAt = store.getVersioned('k')!.expiresAt!;
    const version = store.getVersioned('k')!.version;
    await store.compact();
    await store.close();
    store = await openLog(dir);
    try {
      const after = store.getVersioned('k')!;
      expect(after).toMatchObject({ value: 'v', version });
      // the same instant, give or take the clocks' rounding
      expect(Math.abs(after.expiresAt! - expiresAt)).toBeLessThanOrEqual(2);
      expect(store.getVersioned('plain')!.expiresAt).toBeUndefined();
      await sleep(Math.max(0, expiresAt - Date.now()) + 150);
      expect(store.get('k')).toBeUndefined();
      expect(changesAfter(store, store.revision - 1)).toEqual([{ key: 'k', value: undefined, version: store.revision }]);
    } finally {
      await store.close();
    }
  });

  it('an expiry that passed while closed is never served: one EXPIRE record at open, its deletions in changes after the replayed writes; a crash before it changes nothing', async () => {
    const dir = tempDir('tcpkv-expiry-');
    let store = await openLog(dir);
    await store.putKey('gone1', 'v', UNCONDITIONAL, 100);
    await store.putKey('gone2', 'v', UNCONDITIONAL, 100);
    await store.putKey('kept', 'v', UNCONDITIONAL, 60_000);
    const revision = store.revision;
    await store.close();
    await sleep(200);

    // the first open crashes before its EXPIRE record is on the log (the write fails)
    const failing: LogFileOps = {
      ...REAL_FILE_OPS,
      write: (handle: FileHandle, data: Buffer, path: string) => Promise.reject(Object.assign(new Error(`EIO: ${path}`), { code: 'EIO' })),
    };
    await expect(openLog(dir, failing)).rejects.toThrow();
    const types: number[] = [];
    const recordTypes = (bytes: Buffer) => {
      types.length = 0;
      replay(bytes, {
        set: () => types.push(1),
        delete: () => types.push(2),
        setExpiring: () => types.push(TYPE_SET_EXPIRING),
        expire: () => types.push(TYPE_EXPIRE),
      });
      return [...types];
    };
    expect(recordTypes(readFileSync(join(dir, LOG_NAME)))).toEqual([TYPE_SET_EXPIRING, TYPE_SET_EXPIRING, TYPE_SET_EXPIRING]);

    store = await openLog(dir);
    try {
      for (const key of ['gone1', 'gone2']) expect(seen(store, key)).toBe(false);
      expect(store.get('kept')).toBe('v');
      // the removal took one revision; the watch history holds the replayed writes, then it
      expect(store.revision).toBe(revision + 1);
      expect(changesAfter(store, store.revision)).toEqual([]);
      const read = store.changes.read(revision, '', 10, 1 << 20);
      expect('changes' in read && [...read.changes].sort((x, y) => x.key.localeCompare(y.key))).toEqual([
        { key: 'gone1', value: undefined, version: revision + 1 },
        { key: 'gone2', value: undefined, version: revision + 1 },
      ]);
      expect(store.changes.read(0, '', 10, 1 << 20)).toMatchObject({ changes: [{ key: 'gone1' }, { key: 'gone2' }, { key: 'kept' }, {}, {}] });
    } finally {
      await store.close();
    }
    expect(recordTypes(readFileSync(join(dir, LOG_NAME)))).toEqual([TYPE_SET_EXPIRING, TYPE_SET_EXPIRING, TYPE_SET_EXPIRING, TYPE_EXPIRE]);
    // a further open has nothing left to expire
    store = await openLog(dir);
    try {
      expect(store.revision).toBe(revision + 1);
      expect(store.get('gone1')).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});

describe('log format: the expiry records', () => {
  it('SET_EXPIRING, EXPIRE and SNAPSHOT entries with an expiry are read back; malformed ones are damage; v2 knows none of them', () => {
    const got: unknown[] = [];
    const handler = {
      set: (p: unknown) => got.push(['set', p]),
      delete: (k: unknown) => got.push(['delete', k]),
      setExpiring: (e: unknown) => got.push(['setExpiring', e]),
      expire: (k: unknown) => got.push(['expire', k]),
      snapshot: (e: unknown) => got.push(['snapshot', e]),
    };
    const log = Buffer.concat([MAGIC, encodeExpiringRecord('a', 'x', 1_800_000_000_000), encodeExpire(['a', 'b']), ...encodeSnapshot(7, [['c', 'y', 3, 1_800_000_000_001], ['d', 'z', 4]])]);
    expect(replay(log, handler)).toMatchObject({ kind: 'ok', records: 4 });
    expect(got).toEqual([
      ['setExpiring', [['a', 'x', 1_800_000_000_000]]],
      ['expire', ['a', 'b']],
      ['snapshot', [['c', 'y', 3, 1_800_000_000_001], ['d', 'z', 4]]],
    ]);
    const bad = Buffer.concat([MAGIC, encodeJsonRecord(TYPE_SET_EXPIRING, '[["a","x"]]')]);
    expect(replay(bad, handler)).toMatchObject({ kind: 'corrupt', reason: expect.stringContaining('SET_EXPIRING') as unknown });
    const badSnapshot = Buffer.concat([MAGIC, encodeJsonRecord(4, '[["a","x",1,"soon"]]')]);
    expect(replay(badSnapshot, handler)).toMatchObject({ kind: 'corrupt' });
    expect(replay(Buffer.concat([MAGIC_V2, encodeExpire(['a'])]), handler)).toMatchObject({ kind: 'corrupt', reason: `unknown record type ${TYPE_EXPIRE}` });
  });
});

/** When each key's removal reaches the store's feed from now on (wall-clock ms), by key. */
function recordRemovals(store: Store): Map<string, number> {
  const removedAt = new Map<string, number>();
  const record = store.changes.record.bind(store.changes);
  store.changes.record = (version, changes) => {
    const now = Date.now();
    for (const [key, value] of changes) if (value === undefined) removedAt.set(key, now);
    record(version, changes);
  };
  return removedAt;
}

/** Percentile of sorted numbers. */
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

describe.each(makers)('$name store: 100,000 keys with TTLs of 1 to 10 s', ({ name, make }) => {
  it('expire on time without holding the event loop', async () => {
    const store = await make();
    const KEYS = 100_000;
    try {
      const removedAt = recordRemovals(store);
      const expiresAt = new Map<string, number>();
      const BATCH = 5000;
      for (let i = 0; i < KEYS; i += BATCH) {
        const puts: Promise<unknown>[] = [];
        for (let j = i; j < i + BATCH; j++) puts.push(store.putKey(`key-${j}`, `value-${j}`, UNCONDITIONAL, 1000 + Math.floor(Math.random() * 9000)));
        await Promise.all(puts);
        for (let j = i; j < i + BATCH; j++) expiresAt.set(`key-${j}`, store.getVersioned(`key-${j}`)!.expiresAt!);
      }
      // the longest the loop was held while the keys expired: the gaps of a 5 ms timer, less its period
      let maxHold = 0;
      let reads = 0;
      let last = performance.now();
      const probe = setInterval(() => {
        const now = performance.now();
        maxHold = Math.max(maxHold, now - last - 5);
        last = now;
        // a GET meanwhile never returns an expired key
        const key = `key-${Math.floor(Math.random() * KEYS)}`;
        const before = Date.now();
        if (store.get(key) !== undefined) expect(before).toBeLessThan(expiresAt.get(key)! + 1);
        reads++;
      }, 5);
      const allDue = Math.max(...expiresAt.values());
      while (removedAt.size < KEYS && Date.now() < allDue + 5000) await sleep(50);
      clearInterval(probe);
      expect(removedAt.size).toBe(KEYS);
      const lateness = [...removedAt].map(([key, at]) => at - expiresAt.get(key)!).sort((a, b) => a - b);
      const p50 = pct(lateness, 50);
      const p99 = pct(lateness, 99);
      console.log(`${name} store, ${KEYS} keys: removal lateness p50 ${p50} ms, p99 ${p99} ms, max ${lateness[lateness.length - 1]} ms; longest event-loop hold ${maxHold.toFixed(1)} ms over ${reads} reads`);
      // the expiry wall-clock ms is rounded: a removal may be reported up to 1 ms "early"
      expect(lateness[0]).toBeGreaterThanOrEqual(-1);
      // the bounds the code keeps today on a busy two-core machine; the goal is tens of ms for both
      // (removing keys at random places re-renders their blocks: see the sweeper's notes)
      expect(p99).toBeLessThan(2000);
      expect(maxHold).toBeLessThan(300);
      expect(store.usage().keys).toBe(0);
    } finally {
      await store.close();
    }
  }, 60_000);
});

describe('log store: 100,000 keys with TTLs of 4 to 24 s, across a restart', () => {
  it('revives none of the keys that expired while it was closed, and expires the rest on time', async () => {
    const dir = tempDir('tcpkv-expiry-restart-');
    const KEYS = 100_000;
    let store = await openLog(dir);
    const expiresAt = new Map<string, number>();
    const BATCH = 5000;
    // expiries spread over 4 to 24 s from now, however long the writes take on a busy machine, so
    // that some pass while the store is closed (or opening) and most after
    const start = Date.now();
    for (let i = 0; i < KEYS; i += BATCH) {
      const puts: Promise<unknown>[] = [];
      for (let j = i; j < i + BATCH; j++) puts.push(store.putKey(`key-${j}`, `value-${j}`, UNCONDITIONAL, Math.max(1000, start + 4000 + Math.floor(Math.random() * 20_000) - Date.now())));
      await Promise.all(puts);
      for (let j = i; j < i + BATCH; j++) expiresAt.set(`key-${j}`, store.getVersioned(`key-${j}`)!.expiresAt!);
    }
    const first = Math.min(...expiresAt.values());
    // closed from a little after the first expiries, for a second
    await sleep(Math.max(0, first + 500 - Date.now()));
    await store.close();
    await sleep(1000);
    const openedAt = Date.now();
    store = await openLog(dir);
    const openMs = Date.now() - openedAt;
    try {
      const removedAt = recordRemovals(store);
      // every key, read once right after the open: an expired one is never served, a live one always
      let served = 0;
      let expiredAtRead = 0;
      for (const [key, at] of expiresAt) {
        const before = Date.now();
        const value = store.get(key);
        if (value !== undefined) {
          served++;
          // not after its expiry (a millisecond of rounding between the clocks aside)
          expect(before, key).toBeLessThanOrEqual(at + 1);
        } else {
          expiredAtRead++;
          // never early (a millisecond of rounding between the clocks aside)
          expect(Date.now(), key).toBeGreaterThanOrEqual(at - 1);
        }
      }
      expect(expiredAtRead).toBeGreaterThan(0);
      expect(served).toBeGreaterThan(0);
      // the next three seconds of expiries (after the reads above, which held the event loop): each
      // removed on time
      const readsEnded = Date.now();
      const watchedUntil = readsEnded + 3000;
      await sleep(3500);
      const due = [...expiresAt].filter(([, at]) => at > readsEnded && at <= watchedUntil);
      expect(due.length).toBeGreaterThan(0);
      const lateness = due.map(([key, at]) => (removedAt.get(key) ?? Infinity) - at).sort((a, b) => a - b);
      const p99 = pct(lateness, 99);
      console.log(`log store, ${KEYS} keys across a restart: opened in ${openMs} ms; ${expiredAtRead} expired while closed or opening (none served), ${served} served; of the ${due.length} due in the next 3 s, removal lateness p50 ${pct(lateness, 50)} ms, p99 ${p99} ms`);
      expect(lateness[0]).toBeGreaterThanOrEqual(-1);
      expect(p99).toBeLessThan(2000);
    } finally {
      await store.close();
    }
  }, 90_000);
});
