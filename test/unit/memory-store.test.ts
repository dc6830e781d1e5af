// The indexed memory store against a plain Map model: every sequence of writes, deletes, listings and
// pages agrees with what an insertion-ordered Map would answer; plus the limits.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultStoreLimits, MemoryStore, utf8Bytes } from '../../services/server/store/memory-store.js';
import { REMEMBERED_CURSORS, StoreFullError, UnknownCursorError, type Pair } from '../../services/server/store/store.js';

function modelListing(model: Map<string, string>): string {
  let s = '';
  for (const [k, v] of model) s += `\n${k}:${v}`;
  return s;
}

function modelPage(model: Map<string, string>, prefix: string, after: string | undefined, limit: number): Pair[] {
  const all = [...model];
  const start = after === undefined ? 0 : all.findIndex(([k]) => k === after) + 1;
  return all.slice(start).filter(([k]) => k.startsWith(prefix)).slice(0, limit);
}

const key = fc.oneof(fc.constantFrom('a', 'b', 'ab', 'abc', '김', 'x'), fc.string({ minLength: 1, maxLength: 6 }));
const value = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('', '값', '🚀', 'v'.repeat(3000)));
const op = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), pairs: fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('upsert' as const), pairs: fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('delete' as const), key }),
  fc.record({ kind: fc.constant('bulk' as const), n: fc.integer({ min: 1, max: 700 }) }),
  fc.record({ kind: fc.constant('check' as const) }),
);

describe('MemoryStore', () => {
  it('agrees with an insertion-ordered Map on writes, deletes, get, listing, pages and usage', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const store = new MemoryStore({ limits: { maxKeys: 1e9, maxDataBytes: 1e12 } });
        const model = new Map<string, string>();
        let bulk = 0;
        const check = () => {
          const listing = store.listing();
          const text = modelListing(model);
          expect(listing.slices.join('')).toBe(text);
          expect(listing.bytes).toBe(Buffer.byteLength(text));
          expect(listing.count).toBe(model.size);
          let bytes = 0;
          for (const [k, v] of model) {
            bytes += utf8Bytes(k) + utf8Bytes(v);
            expect(store.get(k)).toBe(v);
          }
          expect(store.usage()).toEqual({ keys: model.size, dataBytes: bytes });
          // a walk by pages, whole and by a prefix
          for (const prefix of ['', 'a']) {
            const walked: Pair[] = [];
            let after: string | undefined;
            for (let guard = 0; guard < 10_000; guard++) {
              const page = store.page({ prefix, after, limit: 7 });
              expect(page.items).toEqual(modelPage(model, prefix, after, 7));
              walked.push(...page.items);
              if (page.next === undefined) break;
              after = page.next;
            }
            expect(walked).toEqual([...model].filter(([k]) => k.startsWith(prefix)));
          }
        };
        for (const o of ops) {
          if (o.kind === 'create') {
            const keys = o.pairs.map(([k]) => k);
            if (new Set(keys).size !== keys.length) continue; // the rules refuse repeated keys before the store
            const existing = keys.find((k) => model.has(k));
            const r = store.createAll(o.pairs);
            if (existing !== undefined) expect(r).toEqual({ ok: false, existingKey: existing });
            else {
              expect(r).toEqual({ ok: true });
              for (const [k, v] of o.pairs) model.set(k, v);
            }
          } else if (o.kind === 'upsert') {
            const pairs = [...new Map(o.pairs)];
            const r = store.upsertAll(pairs);
            expect(r.previous).toEqual(pairs.map(([k]) => model.get(k)));
            for (const [k, v] of pairs) model.set(k, v);
          } else if (o.kind === 'delete') {
            expect(store.delete(o.key)).toBe(model.delete(o.key));
          } else if (o.kind === 'bulk') {
            const pairs: Pair[] = Array.from({ length: o.n }, (_, i) => [`bulk${bulk}-${i}`, `v${i}`]);
            bulk++;
            store.restore(pairs);
            for (const [k, v] of pairs) model.set(k, v);
          } else {
            check();
          }
        }
        check();
      }),
      { numRuns: 150 },
    );
  });

  it('shares unchanged slices between listings and re-renders only the changed block', () => {
    const store = new MemoryStore();
    store.restore(Array.from({ length: 10_000 }, (_, i): Pair => [`k${i}`, `value ${i}`]));
    const a = store.listing();
    expect(a.slices.length).toBeGreaterThan(10);
    store.upsertAll([['k5000', 'changed']]);
    const b = store.listing();
    expect(b.slices.length).toBe(a.slices.length);
    const differing = b.slices.filter((s, i) => s !== a.slices[i]);
    expect(differing).toHaveLength(1);
    expect(differing[0]!.toString('utf8')).toContain('\nk5000:changed\n');
    expect(store.listing()).toBe(b); // same revision: the same snapshot
  });

  it('deleting every key of a block drops it from the listing; pages walk over it', () => {
    const store = new MemoryStore();
    store.restore(Array.from({ length: 2000 }, (_, i): Pair => [`k${i}`, 'v']));
    for (let i = 0; i < 1500; i++) store.delete(`k${i}`);
    expect(store.listing().slices.join('')).toBe(Array.from({ length: 500 }, (_, i) => `\nk${1500 + i}:v`).join(''));
    expect(store.page({ prefix: '', after: undefined, limit: 1 }).items).toEqual([['k1500', 'v']]);
  });

  it('a page after a deleted cursor key continues from where it stood', () => {
    const store = new MemoryStore();
    store.restore([['a', '1'], ['b', '2']]);
    store.delete('a');
    expect(store.page({ prefix: '', after: 'a', limit: 10 })).toEqual({ items: [['b', '2']], versions: [1], next: undefined });
  });

  it('deleted keys are remembered as cursors for the last REMEMBERED_CURSORS deletes; older ones are refused, and their blocks go', () => {
    const store = new MemoryStore();
    const n = REMEMBERED_CURSORS + 600;
    store.restore(Array.from({ length: n }, (_, i): Pair => [`k${i}`, 'v']));
    for (let i = 0; i < n - 1; i++) store.delete(`k${i}`);
    // the oldest 599 deletes are forgotten (more than two blocks of 256 entries: those blocks left the chain)
    expect(() => store.page({ prefix: '', after: 'k0', limit: 5 })).toThrow(UnknownCursorError);
    expect(() => store.page({ prefix: '', after: 'k598', limit: 5 })).toThrow(UnknownCursorError);
    expect(store.page({ prefix: '', after: 'k599', limit: 5 })).toEqual({ items: [[`k${n - 1}`, 'v']], versions: [1], next: undefined });
    expect(store.list()).toEqual([[`k${n - 1}`, 'v']]);
    expect(store.usage()).toEqual({ keys: 1, dataBytes: `k${n - 1}`.length + 1 });
    // a key created again is a new entry at the end, and its grave is gone
    store.createAll([['k700', 'again'], ['z', '1']]);
    expect(store.page({ prefix: '', after: 'k700', limit: 5 })).toEqual({ items: [['z', '1']], versions: [n + 1], next: undefined });
    expect(store.listing().slices.join('')).toBe(`\nk${n - 1}:v\nk700:again\nz:1`);
  });

  it('a sparse prefix costs a bounded scan per page: short pages with a cursor', () => {
    const store = new MemoryStore();
    store.restore(Array.from({ length: 25_000 }, (_, i): Pair => [`k${i}`, 'v']));
    store.restore([['needle', 'x']]);
    const first = store.page({ prefix: 'needle', after: undefined, limit: 10 });
    expect(first.items).toEqual([]);
    expect(first.next).toBe('k9999');
    const second = store.page({ prefix: 'needle', after: first.next, limit: 10 });
    const third = store.page({ prefix: 'needle', after: second.next, limit: 10 });
    expect(third).toEqual({ items: [['needle', 'x']], versions: [2], next: undefined });
  });

  it('limits: keys and bytes, nothing applied, shrinking writes and deletes always pass', () => {
    const store = new MemoryStore({ limits: { maxKeys: 3, maxDataBytes: 20 } });
    store.createAll([['a', '1'], ['b', '2']]);
    expect(() => store.createAll([['c', '3'], ['d', '4']])).toThrow(StoreFullError);
    expect(() => store.createAll([['c', '3'], ['d', '4']])).toThrow('Storage is full: TCPKV_MAX_KEYS=3');
    expect(store.usage()).toEqual({ keys: 2, dataBytes: 4 });
    expect(() => store.upsertAll([['a', 'x'.repeat(20)]])).toThrow('Storage is full: TCPKV_MAX_DATA_BYTES=20');
    expect(store.get('a')).toBe('1');
    // loaded past the limits (a replay): read-only for growth
    store.restore([['c', 'x'.repeat(30)], ['d', '4']]);
    expect(store.overLimits()).toBe('TCPKV_MAX_KEYS=3');
    expect(() => store.createAll([['e', '5']])).toThrow(StoreFullError);
    expect(store.upsertAll([['c', 'short']]).previous).toEqual(['x'.repeat(30)]);
    expect(store.delete('d')).toBe(true);
  });

  it('default limits come from the heap the process has', () => {
    const limits = defaultStoreLimits(320 * 2 ** 20);
    expect(limits.maxKeys).toBeGreaterThan(400_000);
    // both limits at their worst measured costs: a third of the heap
    expect(limits.maxKeys * 128 + limits.maxDataBytes * 3).toBeLessThanOrEqual((320 * 2 ** 20) / 3 + 1);
  });

  it('stored text is independent of the strings given (no sliced parent pinned once rendered)', () => {
    const store = new MemoryStore();
    const big = ' '.repeat(1_000_000) + 'value' + ' '.repeat(1_000_000);
    store.restore([['k', big.trim()]]);
    const slice = store.listing().slices[0]!;
    expect(slice.toString('utf8')).toBe('\nk:value');
    // the block's own allocation, not a view into a larger shared buffer
    expect(slice.buffer.byteLength).toBe(slice.length);
    expect(store.get('k')).toBe('value');
  });

  it('multi-byte text survives re-rendering a block: values kept, changed, deleted around it', () => {
    const store = new MemoryStore();
    store.restore([['이름', '홍길동'], ['emoji', '😀 ok'], ['plain', 'ascii'], ['키', '값']]);
    expect(store.listing().slices.map((s) => s.toString('utf8')).join('')).toBe('\n이름:홍길동\nemoji:😀 ok\nplain:ascii\n키:값');
    store.upsertAll([['plain', '바뀐 값']]);
    expect(store.delete('emoji')).toBe(true);
    const listing = store.listing();
    const text = Buffer.concat(listing.slices).toString('utf8');
    expect(text).toBe('\n이름:홍길동\nplain:바뀐 값\n키:값');
    expect(listing.bytes).toBe(Buffer.byteLength(text));
    expect(store.get('이름')).toBe('홍길동');
    expect(store.get('키')).toBe('값');
    expect(store.get('plain')).toBe('바뀐 값');
  });
});
