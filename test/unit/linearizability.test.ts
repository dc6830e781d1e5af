// The linearizability checker (test/support/linearizability.ts) on hand-made histories whose verdict
// is known, and on random histories built linearizable by construction.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkHistory, linearizable, partition, step, type HistoryOp, type Operation } from '../support/linearizability.js';

let clock = 0;
const op = (client: number, call: number, ret: number, o: Operation): HistoryOp => ({ client, call, ret, op: o });
const U = Infinity;

describe('linearizability checker: compare-and-set (If-Match, If-None-Match: *)', () => {
  const put = (v: string) => op(9, 0, 1, { kind: 'upsert', pairs: [['k', v]], result: { previous: [undefined] } });

  it('a legal history: create-only, a CAS from the value read, a 412 naming the value then, a conditional delete', () => {
    const h = [
      op(1, 0, 1, { kind: 'cas-put', key: 'k', expected: undefined, value: 'a', result: { ok: true } }),
      op(2, 2, 3, { kind: 'cas-put', key: 'k', expected: undefined, value: 'b', result: { ok: false, current: 'a' } }),
      op(1, 4, 5, { kind: 'cas-put', key: 'k', expected: 'a', value: 'c', result: { ok: true } }),
      op(2, 6, 7, { kind: 'cas-put', key: 'k', expected: 'a', value: 'd', result: { ok: false, current: 'c' } }),
      op(1, 8, 9, { kind: 'cas-delete', key: 'k', expected: 'c', result: { ok: true } }),
      op(2, 10, 11, { kind: 'cas-delete', key: 'k', expected: 'c', result: { ok: false, current: undefined } }),
      op(2, 12, 13, { kind: 'get', key: 'k', result: { value: undefined } }),
    ];
    expect(checkHistory(h)).toMatchObject({ linearizable: true });
  });

  it('two concurrent CAS from the same value that both succeed are rejected; one of them failing is fine', () => {
    const both = [put('a'), op(1, 2, 5, { kind: 'cas-put', key: 'k', expected: 'a', value: 'x', result: { ok: true } }), op(2, 2, 5, { kind: 'cas-put', key: 'k', expected: 'a', value: 'y', result: { ok: true } })];
    expect(checkHistory(both).linearizable).toBe(false);
    const one = [put('a'), op(1, 2, 5, { kind: 'cas-put', key: 'k', expected: 'a', value: 'x', result: { ok: true } }), op(2, 2, 5, { kind: 'cas-put', key: 'k', expected: 'a', value: 'y', result: { ok: false, current: 'x' } })];
    expect(checkHistory(one).linearizable).toBe(true);
  });

  it('a 412 must name the value some order gives the key at that point', () => {
    // nothing ever wrote "z"
    expect(checkHistory([put('a'), op(1, 2, 3, { kind: 'cas-put', key: 'k', expected: 'b', value: 'x', result: { ok: false, current: 'z' } })]).linearizable).toBe(false);
    // a 412 although the key held the expected value for the whole operation
    expect(checkHistory([put('a'), op(1, 2, 3, { kind: 'cas-put', key: 'k', expected: 'a', value: 'x', result: { ok: false, current: 'a' } })]).linearizable).toBe(false);
    // a 412 "absent" from a conditional delete after an acknowledged write
    expect(checkHistory([put('a'), op(1, 2, 3, { kind: 'cas-delete', key: 'k', expected: 'b', result: { ok: false, current: undefined } })]).linearizable).toBe(false);
  });

  it('an unknown CAS may take effect or not, but only where its condition holds', () => {
    const lost = op(1, 2, U, { kind: 'cas-put', key: 'k', expected: 'a', value: 'x' });
    expect(checkHistory([put('a'), lost, op(2, 10, 11, { kind: 'get', key: 'k', result: { value: 'x' } })]).linearizable).toBe(true);
    expect(checkHistory([put('a'), lost, op(2, 10, 11, { kind: 'get', key: 'k', result: { value: 'a' } })]).linearizable).toBe(true);
    // it expected "b", which the key never held: its value can never appear
    const wrong = op(1, 2, U, { kind: 'cas-put', key: 'k', expected: 'b', value: 'x' });
    expect(checkHistory([put('a'), wrong, op(2, 10, 11, { kind: 'get', key: 'k', result: { value: 'x' } })]).linearizable).toBe(false);
  });

  it('step: a create-only CAS needs the key absent', () => {
    expect(step(new Map(), { kind: 'cas-put', key: 'k', expected: undefined, value: 'v', result: { ok: true } })).toEqual(new Map([['k', 'v']]));
    expect(step(new Map([['k', 'a']]), { kind: 'cas-put', key: 'k', expected: undefined, value: 'v', result: { ok: true } })).toBeUndefined();
    expect(step(new Map([['k', 'a']]), { kind: 'cas-put', key: 'k', expected: undefined, value: 'v', result: { ok: false, current: 'a' } })).toEqual(new Map([['k', 'a']]));
  });
});

describe('linearizability checker: hand-made histories', () => {
  it('a sequential history that follows the model is linearizable', () => {
    const h = [
      op(1, 0, 1, { kind: 'create', pairs: [['a', '1']], result: { ok: true } }),
      op(1, 2, 3, { kind: 'get', key: 'a', result: { value: '1' } }),
      op(2, 4, 5, { kind: 'upsert', pairs: [['a', '2'], ['b', '3']], result: { previous: ['1', undefined] } }),
      op(1, 6, 7, { kind: 'list', result: { pairs: [['a', '2'], ['b', '3']] } }),
      op(2, 8, 9, { kind: 'create', pairs: [['c', '4'], ['b', '5']], result: { ok: false, existingKey: 'b' } }),
      op(1, 10, 11, { kind: 'delete', key: 'a', result: { deleted: true } }),
      op(1, 12, 13, { kind: 'delete', key: 'a', result: { deleted: false } }),
      op(2, 14, 15, { kind: 'get', key: 'a', result: { value: undefined } }),
    ];
    expect(checkHistory(h)).toMatchObject({ linearizable: true });
  });

  it('a read overlapping a write may see it or not; but not see it and then lose it', () => {
    const write = op(1, 0, 10, { kind: 'upsert', pairs: [['a', '1']], result: { previous: [undefined] } });
    const sees = op(2, 1, 2, { kind: 'get', key: 'a', result: { value: '1' } });
    const misses = op(3, 3, 4, { kind: 'get', key: 'a', result: { value: undefined } });
    expect(checkHistory([write, sees]).linearizable).toBe(true);
    expect(checkHistory([write, misses]).linearizable).toBe(true);
    const r = checkHistory([write, sees, misses]);
    expect(r.linearizable).toBe(false);
    expect(r.counterexample).toHaveLength(3);
  });

  it('a stale read after an acknowledged write is caught, and the counterexample is that small', () => {
    const h: HistoryOp[] = [];
    // a long linearizable history on other keys around it
    for (let i = 0; i < 200; i++) {
      h.push(op(i % 6, i * 10, i * 10 + 5, { kind: 'upsert', pairs: [[`k${i % 7}`, `v${i}`]], result: { previous: [i >= 7 ? `v${i - 7}` : undefined] } }));
    }
    h.push(op(7, 1000, 1001, { kind: 'create', pairs: [['x', '1']], result: { ok: true } }));
    h.push(op(8, 1002, 1003, { kind: 'get', key: 'x', result: { value: undefined } }));
    const r = checkHistory(h);
    expect(r.linearizable).toBe(false);
    expect(r.parts).toBe(8);
    expect(r.counterexample!.map((c) => c.op.kind)).toEqual(['create', 'get']);
  });

  it('multi-key writes are all or nothing: seeing half of one is caught', () => {
    const create = op(1, 0, 1, { kind: 'create', pairs: [['a', '1'], ['b', '2']], result: { ok: true } });
    expect(checkHistory([create, op(2, 2, 3, { kind: 'list', result: { pairs: [['a', '1']] } })]).linearizable).toBe(false);
    // half of a concurrent one, through one-key reads
    const pending = op(1, 0, 100, { kind: 'upsert', pairs: [['a', '1'], ['b', '2']], result: { previous: [undefined, undefined] } });
    const h = [pending, op(2, 1, 2, { kind: 'get', key: 'a', result: { value: '1' } }), op(2, 3, 4, { kind: 'get', key: 'b', result: { value: undefined } })];
    expect(checkHistory(h).linearizable).toBe(false);
    expect(partition(h)).toHaveLength(1);
  });

  it('an unknown outcome may take effect late, or never, but not be undone', () => {
    const unknown = op(1, 0, U, { kind: 'upsert', pairs: [['a', '1']] });
    const read = (t: number, value: string | undefined) => op(2, t, t + 1, { kind: 'get', key: 'a', result: { value } });
    expect(checkHistory([unknown, read(5, undefined), read(7, undefined)]).linearizable).toBe(true); // never
    expect(checkHistory([unknown, read(5, undefined), read(7, '1')]).linearizable).toBe(true); // late
    expect(checkHistory([unknown, read(5, '1'), read(7, '1')]).linearizable).toBe(true);
    expect(checkHistory([unknown, read(5, '1'), read(7, undefined)]).linearizable).toBe(false); // undone
    // and never before it was invoked
    expect(checkHistory([read(0, '1'), op(1, 5, U, { kind: 'upsert', pairs: [['a', '1']] })]).linearizable).toBe(false);
  });

  it('a POST refused as existing needs the key to exist; a POST that won needs all keys absent', () => {
    const refused = op(1, 0, 1, { kind: 'create', pairs: [['a', '1']], result: { ok: false, existingKey: 'a' } });
    expect(checkHistory([refused]).linearizable).toBe(false);
    const twoWinners = [op(1, 0, 5, { kind: 'create', pairs: [['a', '1']], result: { ok: true } }), op(2, 0, 5, { kind: 'create', pairs: [['a', '2']], result: { ok: true } })];
    expect(checkHistory(twoWinners).linearizable).toBe(false);
    expect(step(new Map([['a', '1']]), { kind: 'create', pairs: [['a', '2']] })).toEqual(new Map([['a', '1']]));
  });

  it('PUT reports previous values: two PUTs cannot both have replaced the same value', () => {
    const h = [
      op(0, 0, 1, { kind: 'create', pairs: [['a', 's']], result: { ok: true } }),
      op(1, 2, 10, { kind: 'upsert', pairs: [['a', 'x']], result: { previous: ['s'] } }),
      op(2, 2, 10, { kind: 'upsert', pairs: [['a', 'y']], result: { previous: ['s'] } }),
    ];
    expect(checkHistory(h).linearizable).toBe(false);
  });

  it('partitions by connected components of keys; a whole-map read joins everything', () => {
    const h = [
      op(1, 0, 1, { kind: 'upsert', pairs: [['a', '1'], ['b', '1']], result: { previous: [undefined, undefined] } }),
      op(1, 2, 3, { kind: 'upsert', pairs: [['b', '2'], ['c', '1']], result: { previous: ['1', undefined] } }),
      op(2, 0, 1, { kind: 'get', key: 'd', result: { value: undefined } }),
    ];
    expect(partition(h).map((p) => p.length).sort()).toEqual([1, 2]);
    expect(partition([...h, op(3, 5, 6, { kind: 'list', result: { pairs: [] } })])).toHaveLength(1);
  });
});

/**
 * `n` operations of 6 clients on 4 keys, linearizable by construction: every third a PUT of two keys,
 * the rest one-key GETs; each spans the next five linearization points, so they overlap.
 */
function busyHistory(n: number): HistoryOp[] {
  const history: HistoryOp[] = [];
  let state = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const key = `k${i % 4}`;
    const o: Operation =
      i % 3 === 0
        ? { kind: 'upsert', pairs: [[key, `v${i}`], [`k${(i + 1) % 4}`, `v${i}`]], result: { previous: [state.get(key), state.get(`k${(i + 1) % 4}`)] } }
        : { kind: 'get', key, result: { value: state.get(key) } };
    state = new Map(step(state, o)!);
    history.push({ client: i % 6, call: i - 2.5, ret: i + 2.5, op: o });
  }
  return history;
}

describe('linearizability checker: random histories, linearizable by construction (property)', () => {
  it('any history whose results come from applying the operations at points inside their intervals passes', () => {
    const keys = ['a', 'b', 'c'];
    const arbOp = fc.oneof(
      fc.record({ kind: fc.constant('create' as const), keys: fc.uniqueArray(fc.constantFrom(...keys), { minLength: 1, maxLength: 2 }) }),
      fc.record({ kind: fc.constant('upsert' as const), keys: fc.uniqueArray(fc.constantFrom(...keys), { minLength: 1, maxLength: 2 }) }),
      fc.record({ kind: fc.constant('delete' as const), keys: fc.tuple(fc.constantFrom(...keys)) }),
      fc.record({ kind: fc.constant('get' as const), keys: fc.tuple(fc.constantFrom(...keys)) }),
      fc.record({ kind: fc.constant('list' as const), keys: fc.constant([] as string[]) }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(arbOp, fc.nat(100), fc.integer({ min: 1, max: 30 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean()), { minLength: 1, maxLength: 40 }), (specs) => {
        // each operation: [call, call+len], linearized at call + frac*len; apply in point order
        const planned = specs.map(([o, call, len, frac, unknown], i) => ({ o, call, ret: call + len, point: call + frac * len, unknown, i }));
        const byPoint = [...planned].sort((x, y) => x.point - y.point);
        let state = new Map<string, string>();
        const history: HistoryOp[] = [];
        for (const p of byPoint) {
          const value = `v${p.i}`;
          const pairs = p.o.keys.map((k) => [k, value] as const);
          let operation: Operation;
          if (p.o.kind === 'create') {
            const existing = pairs.find(([k]) => state.has(k));
            operation = { kind: 'create', pairs, result: existing ? { ok: false, existingKey: existing[0] } : { ok: true } };
          } else if (p.o.kind === 'upsert') operation = { kind: 'upsert', pairs, result: { previous: pairs.map(([k]) => state.get(k)) } };
          else if (p.o.kind === 'delete') operation = { kind: 'delete', key: p.o.keys[0]!, result: { deleted: state.has(p.o.keys[0]!) } };
          else if (p.o.kind === 'get') operation = { kind: 'get', key: p.o.keys[0]!, result: { value: state.get(p.o.keys[0]!) } };
          else operation = { kind: 'list', result: { pairs: [...state] } };
          state = new Map(step(state, operation)!);
          const isWrite = p.o.kind !== 'get' && p.o.kind !== 'list';
          // a write may also be recorded as unknown (its answer lost): it did take effect
          const recorded: Operation = isWrite && p.unknown ? ({ ...operation, result: undefined } as Operation) : operation;
          history.push({ client: p.i, call: p.call + clock, ret: isWrite && p.unknown ? Infinity : p.ret + clock, op: recorded });
        }
        clock += 1000;
        expect(checkHistory(history).linearizable).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('6 clients, 3000 operations on 4 keys with multi-key writes: checked in well under a few seconds', () => {
    const history = busyHistory(3000);
    const started = performance.now();
    expect(checkHistory(history).linearizable).toBe(true);
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(linearizable(history.slice(0, 10))).toBe(true);
  });

  it('many unknown outcomes that nothing observed (the 503s of a fault run) do not blow up the search', () => {
    // 2,000 operations as above, and 16 writes whose answers were lost early on: none of
    // them took effect, and no read saw their values. Left in the search, each may take effect at
    // any point, or never: 2^16 subsets times the positions, past any budget.
    const history = busyHistory(2000);
    for (let u = 0; u < 16; u++) history.push(op(6 + u, 10 + u * 7, U, { kind: u % 2 ? 'create' : 'upsert', pairs: [[`k${u % 4}`, `lost${u}`]] } as Operation));
    const started = performance.now();
    expect(checkHistory(history, { budget: 2_000_000 }).linearizable).toBe(true);
    expect(performance.now() - started).toBeLessThan(20_000);
    // one of them seen by a last read: it took effect after the last write of its key, and that checks too
    const seenLate = op(40, 2100, 2101, { kind: 'get', key: 'k0', result: { value: 'lost0' } });
    expect(checkHistory([...history, seenLate], { budget: 2_000_000 }).linearizable).toBe(true);
  });
});
