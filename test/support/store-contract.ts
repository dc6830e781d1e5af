// The Store contract (services/server/store/store.ts) as one table of cases, run against every store
// (hono's runTest idea, one level down from the rule cases): cursors over deletes and re-creates,
// repeated keys in one call, all-or-nothing, 507 only when the store grows, the limits it shows,
// readiness, close. A new store passes this table before it is wired in (docs/store.md, "Adding a
// store").

import { describe, expect, it } from 'vitest';
import { StoreFullError, type Pair, type Store, type StoreLimits } from '../../services/server/store/store.js';

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
      expect(await store.page({ prefix: '', after: undefined, limit: 2 })).toEqual({ items: [['b', '1'], ['a', '20']], next: 'a' });
      expect(await store.page({ prefix: '', after: 'a', limit: 2 })).toEqual({ items: [['ab', '3'], ['c', '4']], next: undefined });
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
      expect(await store.page({ prefix: '', after: 'c', limit: 3 })).toEqual({ items: [['e', 'e'], ['f', 'f'], ['g', 'g']], next: 'g' });
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
      expect(await store.page({ prefix: '', after: 'b', limit: 3 })).toEqual({ items: [['c', '1'], ['d', '1'], ['e', '1']], next: 'e' });
      expect(await store.page({ prefix: '', after: 'e', limit: 3 })).toEqual({ items: [['a', '2']], next: undefined });
    },
  },
  {
    name: 'a cursor key deleted and created again stands at its new place (the end)',
    async run(store) {
      await store.createAll(['a', 'b', 'c'].map((k) => [k, '1'] as const));
      await store.delete('b');
      await store.createAll([['x', '1']]);
      await store.upsertAll([['b', '2']]);
      expect(await store.page({ prefix: '', after: 'b', limit: 5 })).toEqual({ items: [], next: undefined });
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
