// The etcd store against a real etcd on loopback: the case table of rule-cases.ts (pure rules and over a
// real socket), conflicts between "replicas" (separate clients), read-your-writes across them, and
// an outage.

import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import { handle } from '../../services/server/routes.js';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { StoreUnavailableError } from '../../services/server/store/store.js';
import { startEtcd, type LocalEtcd } from '../support/etcd.js';
import { exchange, startServer } from '../support/net.js';
import { pureRulesTarget, runRuleCases, TEST_POLICY } from '../support/run-rule-cases.js';

let etcd: LocalEtcd;
let prefixes = 0;
const stores: EtcdStore[] = [];
const quiet = pino({ level: 'silent' });

function newStore(prefix = `t${process.pid}-${++prefixes}/`, timeoutMs = 2000): EtcdStore {
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs, logger: quiet });
  stores.push(store);
  return store;
}

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await etcd.destroy();
});

const policy = TEST_POLICY;

runRuleCases('rules over EtcdStore', pureRulesTarget(() => newStore()));

// the same table over a real socket: the listing's slices, /kv/<key> and /kv pages as sent on the wire
runRuleCases('over a real socket, EtcdStore', {
  newStore: () => newStore(),
  async send(store, bytes, head) {
    const server = await startServer({ store });
    try {
      return (await exchange(server.port, bytes, 1, { heads: [head] })).responses[0]!;
    } finally {
      await server.server.shutdown('case done', { keepStore: true });
    }
  },
});

describe('EtcdStore across replicas', () => {
  it('a write through one replica is read through another at once (linearizable reads)', async () => {
    const prefix = `ryw-${Date.now()}/`;
    const [a, b] = [newStore(prefix), newStore(prefix)];
    for (let i = 0; i < 20; i++) {
      expect(await a.createAll([[`k${i}`, `v${i}`]])).toEqual({ ok: true });
      expect((await b.list()).at(-1)).toEqual([`k${i}`, `v${i}`]);
    }
  });

  it('keys created together keep their order; an update keeps its place', async () => {
    const s = newStore();
    await s.createAll([['b', '1'], ['a', '2'], ['c', '3']]);
    await s.createAll([['d', '4']]);
    expect(await s.upsertAll([['a', '20'], ['e', '5'], ['f', '6']])).toEqual({ previous: ['2', undefined, undefined] });
    expect(await s.list()).toEqual([['b', '1'], ['a', '20'], ['c', '3'], ['d', '4'], ['e', '5'], ['f', '6']]);
  });

  it('concurrent POSTs of overlapping key sets through different replicas: exactly one wins each conflict, never a partial write (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { minLength: 1, maxLength: 4 }), { minLength: 2, maxLength: 6 }), async (keySets) => {
        const prefix = `race-${Date.now()}-${Math.random()}/`;
        const replicas = keySets.map(() => newStore(prefix));
        const results = await Promise.all(keySets.map((keys, r) => replicas[r]!.createAll(keys.map((k) => [k, `r${r}`] as const))));
        const data = new Map(await replicas[0]!.list());
        const winners = results.flatMap((res, r) => (res.ok ? [r] : []));
        // every winner's keys are all there with its value; no loser left any key
        for (const r of winners) for (const k of keySets[r]!) expect(data.get(k)).toBe(`r${r}`);
        for (const [, v] of data) expect(winners.map((r) => `r${r}`)).toContain(v);
        expect(data.size).toBe(winners.reduce((n, r) => n + keySets[r]!.length, 0));
        // winners are pairwise disjoint, and every loser overlaps some winner
        for (const [i, r] of winners.entries()) for (const q of winners.slice(i + 1)) expect(keySets[r]!.some((k) => keySets[q]!.includes(k))).toBe(false);
        results.forEach((res, r) => {
          if (!res.ok) expect(winners.some((w) => keySets[w]!.some((k) => keySets[r]!.includes(k)))).toBe(true);
        });
        await Promise.all(replicas.map((s) => s.close()));
      }),
      { numRuns: 25 },
    );
  });

  it('concurrent PUTs of one key through 8 replicas form one history: every previous value is reported exactly once', async () => {
    const prefix = `cas-${Date.now()}/`;
    const replicas = Array.from({ length: 8 }, () => newStore(prefix));
    await replicas[0]!.createAll([['counter', 'start']]);
    const writes = Array.from({ length: 40 }, (_, i) => i);
    const results = await Promise.all(writes.map((i) => replicas[i % 8]!.upsertAll([['counter', `w${i}`]])));
    const previous = results.map((r) => r.previous[0]);
    const final = new Map(await replicas[0]!.list()).get('counter')!;
    // a linear history start → w? → w? … → final: the previous values are start and all writes but the last
    expect([...previous, final].sort()).toEqual(['start', ...writes.map((i) => `w${i}`)].sort());
  });
});

describe('EtcdStore when etcd is down', () => {
  it('answers 503 (no crash, nothing applied) and recovers by itself when etcd is back', async () => {
    const store = newStore(undefined, 500);
    await store.createAll([['before', '1']]);
    await etcd.stop();
    await expect(store.list()).rejects.toBeInstanceOf(StoreUnavailableError);
    // the member's breaker is open now: the write never reaches etcd, so the 503 can say nothing changed
    await expect(store.createAll([['during', '1']])).rejects.toMatchObject({ indeterminate: false });
    const answer = await handle({ method: 'GET', target: '/', host: 'localhost', authorization: undefined, body: Buffer.alloc(0) }, store, policy, '127.0.0.1');
    expect([answer.status, answer.body]).toEqual([503, Texts.storeUnavailable]);
    await etcd.start();
    let recovered = false;
    for (let i = 0; i < 50 && !recovered; i++) {
      recovered = await store.list().then(() => true, () => false);
      if (!recovered) await new Promise((r) => setTimeout(r, 200));
    }
    expect(recovered).toBe(true);
    const data = new Map(await store.list());
    expect(data.get('before')).toBe('1');
    expect(data.has('during')).toBe(false); // etcd was down: it cannot have been applied
  });
});
