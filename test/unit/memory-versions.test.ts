// The memory store's versions and one-key conditional writes (store.ts, "versions", "conditions"):
// against a plain model, every write's answer, every key's version and the revision agree; plus the
// replay API the log store builds on (numbered records, snapshots at their own versions).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import { StoreFullError, type Pair } from '../../services/server/store/store.js';
import { sameAnswer, SMALL_LIMITS, VersionModel, versionOp, type CreateRefusal, type VersionAnswer, type VersionOp } from '../support/versions-model.js';

function run(store: MemoryStore, model: VersionModel, op: VersionOp): [VersionAnswer, VersionAnswer | CreateRefusal] {
  const condition = op.kind === 'putKey' || op.kind === 'deleteKey' ? model.condition(op.key, op.spec) : undefined;
  const expected = model.apply(op, condition);
  let got: VersionAnswer;
  try {
    switch (op.kind) {
      case 'create':
        got = store.createAll(op.pairs);
        break;
      case 'upsert':
        got = store.upsertAll(op.pairs);
        break;
      case 'delete':
        got = store.delete(op.key);
        break;
      case 'putKey':
        got = store.putKey(op.key, op.value, condition!);
        break;
      case 'deleteKey':
        got = store.deleteKey(op.key, condition!);
        break;
    }
  } catch (error) {
    if (!(error instanceof StoreFullError)) throw error;
    got = 'full';
  }
  return [got, expected];
}

/** Every key with its value and version, in order, read through page() and getVersioned(). */
function held(store: MemoryStore): [string, string, number][] {
  const page = store.page({ prefix: '', after: undefined, limit: 1000 });
  const rows = page.items.map(([k, v], i): [string, string, number] => [k, v, page.versions[i]!]);
  for (const [k, v, version] of rows) expect(store.getVersioned(k)).toEqual({ value: v, version });
  return rows;
}

describe('MemoryStore versions', () => {
  it('agrees with the model: answers, versions and the revision, refusals and 507s taking none', () => {
    fc.assert(
      fc.property(fc.array(versionOp, { minLength: 1, maxLength: 60 }), (ops) => {
        const store = new MemoryStore({ limits: SMALL_LIMITS });
        const model = new VersionModel(SMALL_LIMITS);
        for (const op of ops) {
          const [got, expected] = run(store, model, op);
          expect(sameAnswer(got, expected), `${JSON.stringify(op)}: ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`).toBe(true);
          expect(store.revision).toBe(model.revision);
        }
        expect(held(store)).toEqual(model.snapshot());
      }),
      { numRuns: 500 },
    );
  });

  it('a fresh store starts at 1; one write, one revision, shared by all its keys', () => {
    const store = new MemoryStore();
    expect(store.revision).toBe(0);
    expect(store.createAll([['a', '1'], ['b', '2']])).toEqual({ ok: true });
    expect(store.getVersioned('a')).toEqual({ value: '1', version: 1 });
    expect(store.getVersioned('b')).toEqual({ value: '2', version: 1 });
    store.upsertAll([['b', '3'], ['c', '4'], ['b', '5']]);
    expect([store.versionOf('a'), store.versionOf('b'), store.versionOf('c')]).toEqual([1, 2, 2]);
    expect(store.createAll([['a', 'again']])).toEqual({ ok: false, existingKey: 'a' });
    expect(store.delete('nope')).toBe(false);
    expect(store.revision).toBe(2);
    expect(store.delete('a')).toBe(true);
    expect(store.revision).toBe(3);
    expect(store.getVersioned('a')).toBeUndefined();
  });

  it('putKey and deleteKey: conditions, created, the version found when refused, order kept', () => {
    const store = new MemoryStore();
    expect(store.putKey('k', 'v1', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
    expect(store.putKey('k', 'v1', { kind: 'absent' })).toEqual({ ok: true, version: 1, created: true });
    expect(store.putKey('k', 'v2', { kind: 'absent' })).toEqual({ ok: false, current: 1 });
    store.putKey('m', 'x', { kind: 'any' });
    expect(store.putKey('k', 'v2', { kind: 'versions', versions: [7, 1] })).toEqual({ ok: true, version: 3, created: false });
    expect(store.putKey('k', 'v3', { kind: 'versions', versions: [1] })).toEqual({ ok: false, current: 3 });
    // an update keeps the key's place
    expect(store.list()).toEqual([['k', 'v2'], ['m', 'x']]);
    expect(store.deleteKey('k', { kind: 'versions', versions: [1] })).toEqual({ ok: false, current: 3 });
    expect(store.deleteKey('nope', { kind: 'any' })).toEqual({ ok: false, current: undefined });
    expect(store.deleteKey('k', { kind: 'versions', versions: [3] })).toEqual({ ok: true, version: 4 });
    expect(store.revision).toBe(4);
    // created again: a new entry at the end
    expect(store.putKey('k', 'v4', { kind: 'any' })).toEqual({ ok: true, version: 5, created: true });
    expect(store.list()).toEqual([['m', 'x'], ['k', 'v4']]);
  });

  it('putKey past a limit throws StoreFullError and takes no revision; a failed condition answers first', () => {
    const store = new MemoryStore({ limits: { maxKeys: 1, maxDataBytes: 10 } });
    store.putKey('a', '1', { kind: 'any' });
    expect(() => store.putKey('b', '1', { kind: 'any' })).toThrow(StoreFullError);
    expect(() => store.putKey('a', 'x'.repeat(20), { kind: 'exists' })).toThrow(StoreFullError);
    expect(store.putKey('b', '1', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
    expect(store.revision).toBe(1);
    expect(store.putKey('a', 'shrunk', { kind: 'versions', versions: [1] })).toEqual({ ok: true, version: 2, created: false });
  });

  it('replay: restoreDeletes is one revision whatever it removes; a snapshot keeps its versions and raises the counter', () => {
    const store = new MemoryStore();
    store.raiseRevision(40);
    store.restoreVersioned([
      ['a', '1', 7],
      ['b', '2', 40],
    ]);
    expect(store.revision).toBe(40);
    expect(store.listing().slices.join('')).toBe('\na:1\nb:2');
    store.restore([['c', '3']]);
    store.restoreDeletes(['b', 'nope']);
    store.restoreDeletes(['nope']);
    expect(store.revision).toBe(43);
    expect(held(store)).toEqual([
      ['a', '1', 7],
      ['c', '3', 41],
    ]);
    // a snapshot entry beyond the counter raises it: versions are never reused
    store.restoreVersioned([['d', '4', 50]]);
    store.raiseRevision(45);
    expect(store.revision).toBe(50);
    expect(store.listing().slices.join('')).toBe('\na:1\nc:3\nd:4');
  });

  it('frozenPairs carries the versions and the revision of its moment', async () => {
    const store = new MemoryStore();
    const pairs = Array.from({ length: 1000 }, (_, i): Pair => [`k${i}`, `v${i}`]);
    store.restore(pairs);
    store.restore([['k5', 'five']]);
    store.delete('k7');
    const frozen = await store.frozenPairs();
    store.restore([['k5', 'later']]);
    expect(frozen.revision).toBe(3);
    const rows = [...frozen.versioned()];
    expect(rows).toHaveLength(999);
    expect(rows[5]).toEqual(['k5', 'five', 2]);
    expect(rows[6]).toEqual(['k6', 'v6', 1]);
    expect(rows.map(([k, v]) => [k, v])).toEqual([...frozen]);
  });

  it('versions past 2^32 are kept exactly', () => {
    const store = new MemoryStore();
    store.raiseRevision(2 ** 40);
    expect(store.putKey('k', 'v', { kind: 'any' })).toEqual({ ok: true, version: 2 ** 40 + 1, created: true });
    expect(store.page({ prefix: '', after: undefined, limit: 5 }).versions).toEqual([2 ** 40 + 1]);
  });
});
