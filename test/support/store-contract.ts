// The Store contract (services/server/store/store.ts) as one table of cases, run against every store
// (hono's runTest idea, one level down from the rule cases): cursors over deletes and re-creates,
// repeated keys in one call, all-or-nothing, 507 only when the store grows, the limits it shows,
// readiness, close. A new store passes this table before it is wired in (docs/store.md, "Adding a
// store").

import { describe, expect, it } from 'vitest';
import { MIN_TTL_MS, StoreFullError, UNCONDITIONAL, type Condition, type Page, type Pair, type Store, type StoreLimits } from '../../services/server/store/store.js';

export interface StoreDriver {
  /** a fresh, empty store (limits: the store limits to enforce, where the case needs them) */
  open(limits?: StoreLimits): Promise<Store>;
  /** the same data opened again after `close` (stores that keep data); absent = nothing is kept */
  reopen?(closed: Store): Promise<Store>;
  /** releases what `open` took (a store a case closed itself may be given again) */
  dispose(store: Store): Promise<void>;
}

interface ContractCase {
  readonly name: string;
  readonly limits?: StoreLimits;
  run(store: Store, driver: StoreDriver): Promise<void>;
}

const LOOSE: StoreLimits = { maxKeys: 1_000_000, maxDataBytes: 1_000_000_000 };

async function keysOf(store: Store): Promise<string[]> {
  const keys: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await store.page({ prefix: '', after, limit: 1000 });
    keys.push(...page.items.map(([k]) => k));
    if (page.next === undefined) return keys;
    after = page.next;
  }
  throw new Error('the walk did not end');
}

async function pairsOf(store: Store): Promise<Pair[]> {
  const pairs: Pair[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.page({ prefix: '', after, limit: 1000 });
    pairs.push(...page.items);
    if (page.next === undefined) return pairs;
    after = page.next;
  }
}

/** A page's items and next (the older cases predate versions; the version cases check those). */
async function pageOf(store: Store, request: { prefix: string; after: string | undefined; limit: number }): Promise<Omit<Page, 'versions'>> {
  const { items, next } = await store.page(request);
  return { items, next };
}

async function versionOf(store: Store, key: string): Promise<number | undefined> {
  return (await store.getVersioned(key))?.version;
}

const ifVersions = (...versions: number[]): Condition => ({ kind: 'versions', versions });

/** Waits until `done()` holds, looking every 20 ms; fails after `timeoutMs`. */
async function until(done: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`not so within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const range = (n: number, name: (i: number) => string) => Array.from({ length: n }, (_, i) => name(i));

/** Walks `prefix` one key per page, deleting each key it is given before asking for the next page. */
async function drain(store: Store, prefix: string, limit: number): Promise<string[]> {
  const seen: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const page = await store.page({ prefix, after, limit });
    for (const [key] of page.items) {
      seen.push(key);
      await store.delete(key);
    }
    if (page.next === undefined) return seen;
    after = page.next;
  }
  throw new Error('the walk did not end');
}

export const STORE_CASES: readonly ContractCase[] = [
  {
    name: 'pages: insertion order, prefix, limit, next; an update keeps its place',
    async run(store) {
      await store.createAll([['b', '1'], ['a', '2'], ['ab', '3']]);
      await store.createAll([['c', '4']]);
      await store.upsertAll([['a', '20']]);
      expect(await pageOf(store, { prefix: '', after: undefined, limit: 2 })).toEqual({ items: [['b', '1'], ['a', '20']], next: 'a' });
      expect(await pageOf(store, { prefix: '', after: 'a', limit: 2 })).toEqual({ items: [['ab', '3'], ['c', '4']], next: undefined });
      expect((await store.page({ prefix: 'a', after: undefined, limit: 10 })).items).toEqual([['a', '20'], ['ab', '3']]);
    },
  },
  {
    name: 'a walk whose cursor key is deleted before every page returns every key (a queue drain, one key a page)',
    async run(store) {
      const jobs = range(60, (i) => `job/${String(i).padStart(3, '0')}`);
      // other keys in between, so the walk has something to skip
      for (let i = 0; i < jobs.length; i++) await store.createAll([[jobs[i]!, `v${i}`], [`other/${i}`, 'x']]);
      expect(await drain(store, 'job/', 1)).toEqual(jobs);
      expect((await store.page({ prefix: 'job/', after: undefined, limit: 10 })).items).toEqual([]);
    },
  },
  {
    name: 'the same drain with pages of 7',
    async run(store) {
      const jobs = range(50, (i) => `job/${i}`);
      await store.createAll(jobs.map((k) => [k, 'v'] as const));
      expect(await drain(store, 'job/', 7)).toEqual(jobs);
    },
  },
  {
    name: 'a cursor deleted with its neighbours: the walk continues from where it stood',
    async run(store) {
      await store.createAll(range(10, (i) => String.fromCharCode(97 + i)).map((k) => [k, k] as const));
      const first = await store.page({ prefix: '', after: undefined, limit: 3 });
      expect(first.next).toBe('c');
      for (const k of ['b', 'c', 'd']) await store.delete(k);
      expect(await pageOf(store, { prefix: '', after: 'c', limit: 3 })).toEqual({ items: [['e', 'e'], ['f', 'f'], ['g', 'g']], next: 'g' });
    },
  },
  {
    name: 'a cursor deleted while an earlier key is deleted and created again: the re-created key comes at the end, nothing is skipped',
    async run(store) {
      await store.createAll(['a', 'b', 'c', 'd', 'e'].map((k) => [k, '1'] as const));
      expect((await store.page({ prefix: '', after: undefined, limit: 2 })).next).toBe('b');
      await store.delete('b');
      await store.delete('a');
      await store.createAll([['a', '2']]);
      expect(await pageOf(store, { prefix: '', after: 'b', limit: 3 })).toEqual({ items: [['c', '1'], ['d', '1'], ['e', '1']], next: 'e' });
      expect(await pageOf(store, { prefix: '', after: 'e', limit: 3 })).toEqual({ items: [['a', '2']], next: undefined });
    },
  },
  {
    name: 'a cursor key deleted and created again stands at its new place (the end)',
    async run(store) {
      await store.createAll(['a', 'b', 'c'].map((k) => [k, '1'] as const));
      await store.delete('b');
      await store.createAll([['x', '1']]);
      await store.upsertAll([['b', '2']]);
      expect(await pageOf(store, { prefix: '', after: 'b', limit: 5 })).toEqual({ items: [], next: undefined });
      expect(await keysOf(store)).toEqual(['a', 'c', 'x', 'b']);
    },
  },
  {
    name: 'a cursor the store has no place for (never stored) is refused, never read as the end of the walk',
    async run(store) {
      await store.createAll([['a', '1']]);
      await expect(Promise.resolve().then(() => store.page({ prefix: '', after: 'never-stored', limit: 5 }))).rejects.toMatchObject({ name: 'UnknownCursorError' });
    },
  },
  {
    name: 'createAll with a key given twice is refused like an existing key: nothing is stored',
    async run(store) {
      expect(await store.createAll([['a', '1'], ['b', '2'], ['a', '3']])).toEqual({ ok: false, existingKey: 'a' });
      expect(await pairsOf(store)).toEqual([]);
      expect(store.usage() ?? { keys: 0, dataBytes: 0 }).toEqual({ keys: 0, dataBytes: 0 });
    },
  },
  {
    name: 'upsertAll with a key given twice: the last value wins, at the place of the first; previous is the value before the call',
    async run(store) {
      await store.createAll([['a', '0']]);
      expect(await store.upsertAll([['n', '1'], ['a', '2'], ['n', '3'], ['a', '4']])).toEqual({ previous: [undefined, '0', undefined, '0'] });
      expect(await pairsOf(store)).toEqual([['a', '4'], ['n', '3']]);
      expect(await store.get('n')).toBe('3');
    },
  },
  {
    name: 'upsertAll with a new key given twice grows the store by one key (no 507 at the limit)',
    limits: { maxKeys: 2, maxDataBytes: 1000 },
    async run(store) {
      await store.createAll([['a', '1']]);
      expect(await store.upsertAll([['x', '1'], ['x', '22']])).toEqual({ previous: [undefined, undefined] });
      expect(await pairsOf(store)).toEqual([['a', '1'], ['x', '22']]);
    },
  },
  {
    name: 'all or nothing: a create naming one existing key stores none of its keys',
    async run(store) {
      await store.createAll([['b', '1']]);
      expect(await store.createAll([['a', '1'], ['b', '2'], ['c', '3']])).toEqual({ ok: false, existingKey: 'b' });
      expect(await pairsOf(store)).toEqual([['b', '1']]);
    },
  },
  {
    name: '507 only when a write grows the store; nothing of a refused write is applied',
    limits: { maxKeys: 2, maxDataBytes: 12 },
    async run(store) {
      await store.createAll([['a', '1234'], ['b', '12']]); // 2 keys, 8 bytes
      await expect(Promise.resolve().then(() => store.createAll([['c', '1']]))).rejects.toBeInstanceOf(StoreFullError);
      await expect(Promise.resolve().then(() => store.upsertAll([['a', '1'], ['c', '1']]))).rejects.toBeInstanceOf(StoreFullError);
      await expect(Promise.resolve().then(() => store.upsertAll([['a', '123456789']]))).rejects.toBeInstanceOf(StoreFullError);
      expect(await pairsOf(store)).toEqual([['a', '1234'], ['b', '12']]);
      // not growing: a shorter value, the same length, a delete
      expect(await store.upsertAll([['a', '1']])).toEqual({ previous: ['1234'] });
      expect(await store.upsertAll([['b', '34']])).toEqual({ previous: ['12'] });
      expect(await store.delete('b')).toBe(true);
      expect(await store.createAll([['c', '1']])).toEqual({ ok: true });
      expect(await pairsOf(store)).toEqual([['a', '1'], ['c', '1']]);
    },
  },
  {
    name: 'the store shows its kind and the limits it enforces (the metrics read them from the interface)',
    limits: { maxKeys: 7, maxDataBytes: 700 },
    async run(store) {
      expect(store.kind).toMatch(/^[a-z][a-z0-9-]*$/);
      expect(store.limits).toEqual({ maxKeys: 7, maxDataBytes: 700 });
    },
  },
  {
    name: 'delete: true once, then false; get answers undefined after it',
    async run(store) {
      await store.createAll([['a', '1']]);
      expect(await store.delete('a')).toBe(true);
      expect(await store.delete('a')).toBe(false);
      expect(await store.get('a')).toBeUndefined();
    },
  },
  {
    name: 'readiness: an open store is ready',
    async run(store) {
      expect(store.readiness === undefined ? undefined : await store.readiness()).toBeUndefined();
    },
  },
  {
    name: 'close: resolves, twice too; what was acknowledged before it is there when opened again',
    async run(store, driver) {
      await store.createAll([['a', '1'], ['b', '2']]);
      await store.upsertAll([['a', '3']]);
      await store.delete('b');
      await store.close();
      await store.close();
      if (driver.reopen === undefined) return;
      const again = await driver.reopen(store);
      try {
        expect(await pairsOf(again)).toEqual([['a', '3']]);
      } finally {
        await driver.dispose(again);
      }
    },
  },
  {
    name: 'versions: every accepted write takes a larger version, shared by the keys it sets; getVersioned and pages agree',
    async run(store) {
      await store.createAll([['a', '1'], ['b', '2']]);
      const v1 = (await versionOf(store, 'a'))!;
      expect(v1).toBeGreaterThan(0);
      expect(await versionOf(store, 'b')).toBe(v1);
      await store.upsertAll([['a', '3'], ['n', '4']]);
      const v2 = (await versionOf(store, 'a'))!;
      expect(v2).toBeGreaterThan(v1);
      expect(await versionOf(store, 'n')).toBe(v2);
      expect(await versionOf(store, 'b')).toBe(v1);
      const put = await store.putKey('c', '5', UNCONDITIONAL);
      expect(put).toMatchObject({ ok: true, created: true });
      const v3 = (put as { version: number }).version;
      expect(v3).toBeGreaterThan(v2);
      expect(await store.getVersioned('c')).toEqual({ value: '5', version: v3 });
      const again = await store.putKey('c', '6', UNCONDITIONAL);
      expect(again).toMatchObject({ ok: true, created: false });
      const v4 = (again as { version: number }).version;
      expect(v4).toBeGreaterThan(v3);
      const page = await store.page({ prefix: '', after: undefined, limit: 10 });
      expect(page.items).toEqual([['a', '3'], ['b', '2'], ['n', '4'], ['c', '6']]);
      expect(page.versions).toEqual([v2, v1, v2, v4]);
      // a delete takes a version too: the key created again later has a larger one
      expect(await store.delete('a')).toBe(true);
      const removed = await store.deleteKey('n', UNCONDITIONAL);
      expect(removed).toMatchObject({ ok: true });
      expect((removed as { version: number }).version).toBeGreaterThan(v4);
      const back = await store.putKey('a', '7', UNCONDITIONAL);
      expect((back as { version: number }).version).toBeGreaterThan((removed as { version: number }).version);
      expect(await store.getVersioned('n')).toBeUndefined();
    },
  },
  {
    name: 'refused writes change no version: an existing key to createAll, a failed condition, a missing key to deleteKey',
    async run(store) {
      await store.createAll([['a', '1']]);
      const v = (await versionOf(store, 'a'))!;
      expect(await store.createAll([['a', '2']])).toEqual({ ok: false, existingKey: 'a' });
      expect(await store.putKey('a', '2', { kind: 'absent' })).toEqual({ ok: false, current: v });
      expect(await store.putKey('a', '2', ifVersions(v + 1000))).toEqual({ ok: false, current: v });
      expect(await store.deleteKey('a', ifVersions(v + 1000))).toEqual({ ok: false, current: v });
      expect(await store.deleteKey('missing', UNCONDITIONAL)).toEqual({ ok: false, current: undefined });
      expect(await store.getVersioned('a')).toEqual({ value: '1', version: v });
      expect(await pairsOf(store)).toEqual([['a', '1']]);
    },
  },
  {
    name: 'putKey conditions: absent creates only, exists updates only, versions updates only from one of them',
    async run(store) {
      const created = await store.putKey('k', '1', { kind: 'absent' });
      expect(created).toMatchObject({ ok: true, created: true });
      const v1 = (created as { version: number }).version;
      expect(await store.putKey('k', '2', { kind: 'absent' })).toEqual({ ok: false, current: v1 });
      expect(await store.putKey('missing', '1', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
      expect(await store.putKey('missing', '1', ifVersions(v1))).toEqual({ ok: false, current: undefined });
      const updated = await store.putKey('k', '3', { kind: 'exists' });
      expect(updated).toMatchObject({ ok: true, created: false });
      const v2 = (updated as { version: number }).version;
      // the version read before the last write no longer matches; either of two does
      expect(await store.putKey('k', '4', ifVersions(v1))).toEqual({ ok: false, current: v2 });
      const swapped = await store.putKey('k', '5', ifVersions(v1, v2));
      expect(swapped).toMatchObject({ ok: true, created: false });
      expect(await store.get('k')).toBe('5');
      expect(await store.get('missing')).toBeUndefined();
    },
  },
  {
    name: 'deleteKey conditions: removes only at a matching version; the deleted key stays a cursor',
    async run(store) {
      await store.createAll([['a', '1'], ['b', '2'], ['c', '3']]);
      const v = (await versionOf(store, 'b'))!;
      expect(await store.deleteKey('b', { kind: 'absent' })).toEqual({ ok: false, current: v });
      expect(await store.deleteKey('b', ifVersions(v - 1))).toEqual({ ok: false, current: v });
      expect(await store.get('b')).toBe('2');
      const removed = await store.deleteKey('b', ifVersions(v));
      expect(removed).toMatchObject({ ok: true });
      expect((removed as { version: number }).version).toBeGreaterThan(v);
      expect(await store.getVersioned('b')).toBeUndefined();
      expect(await store.deleteKey('b', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
      expect(await pageOf(store, { prefix: '', after: 'b', limit: 5 })).toEqual({ items: [['c', '3']], next: undefined });
    },
  },
  {
    name: 'putKey keeps insertion order: a new key goes to the end, an update keeps its place',
    async run(store) {
      await store.createAll([['a', '1'], ['b', '2']]);
      await store.putKey('c', '3', { kind: 'absent' });
      await store.putKey('a', '4', { kind: 'exists' });
      expect(await pairsOf(store)).toEqual([['a', '4'], ['b', '2'], ['c', '3']]);
    },
  },
  {
    name: 'putKey and the limits: 507 only when it grows the store, nothing applied',
    limits: { maxKeys: 1, maxDataBytes: 6 },
    async run(store) {
      expect(await store.putKey('a', '1234', UNCONDITIONAL)).toMatchObject({ ok: true });
      const v = (await versionOf(store, 'a'))!;
      await expect(Promise.resolve().then(() => store.putKey('b', '1', UNCONDITIONAL))).rejects.toBeInstanceOf(StoreFullError);
      await expect(Promise.resolve().then(() => store.putKey('a', '123456', ifVersions(v)))).rejects.toBeInstanceOf(StoreFullError);
      expect(await store.getVersioned('a')).toEqual({ value: '1234', version: v });
      expect(await store.putKey('a', '12', ifVersions(v))).toMatchObject({ ok: true });
    },
  },
  {
    name: 'compare-and-set under contention: of 8 writes expecting the same version, exactly one applies and the rest see its version',
    async run(store) {
      await store.createAll([['counter', '0']]);
      const v = (await versionOf(store, 'counter'))!;
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => Promise.resolve(store.putKey('counter', `w${i}`, ifVersions(v)))));
      const winners = results.filter((r) => r.ok);
      expect(winners).toHaveLength(1);
      const won = winners[0] as { version: number };
      for (const r of results) if (!r.ok) expect(r).toEqual({ ok: false, current: won.version });
      expect(await store.getVersioned('counter')).toEqual({ value: `w${results.findIndex((r) => r.ok)}`, version: won.version });
    },
  },
  {
    name: 'changes: every accepted write reaches the feed in order with its version (etcd: once its copy applies it); refusals do not',
    async run(store) {
      const start = store.changes.revision;
      await store.createAll([['a', '1'], ['b', '2']]);
      expect(await store.createAll([['a', '9']])).toEqual({ ok: false, existingKey: 'a' });
      await store.upsertAll([['a', '3'], ['n', '4'], ['a', '5']]);
      const put = (await store.putKey('c', '6', { kind: 'absent' })) as { ok: true; version: number };
      expect(await store.putKey('c', '7', { kind: 'absent' })).toMatchObject({ ok: false });
      expect(await store.delete('b')).toBe(true);
      expect(await store.delete('b')).toBe(false);
      const removed = (await store.deleteKey('n', UNCONDITIONAL)) as { ok: true; version: number };
      // a store whose feed follows a remote copy gets there soon after the answer
      for (let waited = 0; store.changes.revision < removed.version && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
      const read = store.changes.read(start, '', 1000, 1e9);
      if ('gone' in read) throw new Error('the feed lost its own writes');
      expect(read.changes.map((c) => [c.key, c.value ?? null])).toEqual([
        ['a', '1'],
        ['b', '2'],
        ['a', '5'],
        ['n', '4'],
        ['c', '6'],
        ['b', null],
        ['n', null],
      ]);
      const [a1, b2, a5, n4, c6, b, n] = read.changes.map((c) => c.version);
      expect(a1).toBe(b2);
      expect(a5).toBe(n4);
      expect(c6).toBe(put.version);
      expect(n).toBe(removed.version);
      for (const [earlier, later] of [[b2!, a5!], [n4!, c6!], [c6!, b!], [b!, n!]]) expect(later).toBeGreaterThan(earlier);
      expect(await store.getVersioned('a')).toEqual({ value: '5', version: a5 });
      expect(read.next).toBeGreaterThanOrEqual(removed.version);
      expect(store.changes.read(start, 'c', 1000, 1e9)).toMatchObject({ changes: [{ key: 'c', value: '6', version: c6 }] });
    },
  },
  {
    name: 'expiry: expiresAt is read back; from it on no read returns the key; its removal is a deletion of its own in changes; then the key is absent to conditions',
    async run(store) {
      const before = Date.now();
      const put = (await store.putKey('e', 'soon', UNCONDITIONAL, MIN_TTL_MS)) as { ok: true; version: number };
      const after = Date.now();
      await store.putKey('stay', 'v', UNCONDITIONAL);
      const expiresAt = (await store.getVersioned('e'))!.expiresAt!;
      // never early (but for a millisecond of rounding between the clocks); at most about a second
      // late (etcd rounds a lease up to its whole second)
      expect(expiresAt).toBeGreaterThanOrEqual(before + MIN_TTL_MS - 1);
      expect(expiresAt).toBeLessThanOrEqual(after + MIN_TTL_MS + 1000);
      expect((await store.getVersioned('stay'))!.expiresAt).toBeUndefined();
      await until(() => Date.now() > expiresAt + 1, 5000);
      // read from the expiry on, swept or not
      expect(await store.get('e')).toBeUndefined();
      expect(await store.getVersioned('e')).toBeUndefined();
      expect((await pairsOf(store)).map(([k]) => k)).toEqual(['stay']);
      // the removal: a deletion at a version no earlier write had (etcd: once etcd deletes the key)
      let removal: { key: string; value?: string; version: number } | undefined;
      await until(() => {
        const read = store.changes.read(put.version, 'e', 100, 1e9);
        removal = 'gone' in read ? undefined : read.changes.find((c) => c.key === 'e');
        return removal !== undefined;
      }, 10_000);
      expect(removal!.value).toBeUndefined();
      expect(removal!.version).toBeGreaterThan(put.version);
      expect(await store.putKey('e', 'x', ifVersions(put.version))).toMatchObject({ ok: false });
      const created = (await store.putKey('e', 'again', { kind: 'absent' })) as { ok: true; version: number };
      expect(created).toMatchObject({ ok: true, created: true });
      expect(created.version).toBeGreaterThan(removal!.version);
      expect((await store.getVersioned('e'))!.expiresAt).toBeUndefined();
    },
  },
  {
    name: 'expiry: a write without a TTL clears it, a write with another TTL replaces it, a delete ends it',
    async run(store) {
      await store.putKey('cleared', '1', UNCONDITIONAL, MIN_TTL_MS);
      await store.upsertAll([['cleared', '2']]);
      await store.putKey('replaced', '1', UNCONDITIONAL, MIN_TTL_MS);
      const start = Date.now();
      await store.putKey('replaced', '2', UNCONDITIONAL, 3_600_000);
      await store.putKey('deleted', '1', UNCONDITIONAL, MIN_TTL_MS);
      await store.deleteKey('deleted', UNCONDITIONAL);
      expect((await store.getVersioned('cleared'))!.expiresAt).toBeUndefined();
      expect((await store.getVersioned('replaced'))!.expiresAt).toBeGreaterThanOrEqual(start + 3_600_000 - 1);
      const since = store.changes.revision;
      // past the first TTLs (etcd: past its lease's end and etcd's two-second least lease)
      await new Promise((r) => setTimeout(r, 3000));
      expect(await store.get('cleared')).toBe('2');
      expect(await store.get('replaced')).toBe('2');
      expect(await store.get('deleted')).toBeUndefined();
      const read = store.changes.read(since, '', 100, 1e9);
      expect('gone' in read ? read : read.changes).toEqual([]);
    },
  },
  {
    name: 'versions are kept: opened again, every key has its version, and the next write outgrows the last delete',
    async run(store, driver) {
      await store.createAll([['a', '1'], ['b', '2']]);
      await store.putKey('a', '3', UNCONDITIONAL);
      await store.deleteKey('b', UNCONDITIONAL);
      await store.putKey('z', '9', UNCONDITIONAL);
      // the last write is a delete: its version belongs to no key, and the counter must still keep it
      const last = (await store.deleteKey('z', UNCONDITIONAL)) as { ok: true; version: number };
      expect(last.ok).toBe(true);
      const kept = await store.page({ prefix: '', after: undefined, limit: 10 });
      await store.close();
      if (driver.reopen === undefined) return;
      const again = await driver.reopen(store);
      try {
        expect(await again.page({ prefix: '', after: undefined, limit: 10 })).toEqual(kept);
        const next = (await again.putKey('n', '1', UNCONDITIONAL)) as { ok: true; version: number };
        expect(next.version).toBeGreaterThan(last.version);
      } finally {
        await driver.dispose(again);
      }
    },
  },
];

/** Runs every case against the stores `driver` opens, each on a fresh store. */
export function runStoreContract(label: string, driver: StoreDriver): void {
  describe(`Store contract: ${label}`, () => {
    for (const c of STORE_CASES) {
      it(c.name, async () => {
        const store = await driver.open(c.limits ?? LOOSE);
        try {
          await c.run(store, driver);
        } finally {
          await driver.dispose(store);
        }
      });
    }
  });
}
