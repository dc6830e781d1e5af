// POSTs that arrive together share one etcd transaction (a group commit), against a real etcd on
// loopback: fewer transactions than POSTs, every POST still all-or-nothing with its own answer, the
// listing in arrival order, conflicts inside a group sorted out without applying anything twice, and
// an etcd whose operation limit is lower than tcpkv was told still answering each POST.

import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { NO_STORE_EVENTS, type StoreEvents } from '../../services/server/events.js';
import { EtcdStore, type EtcdStoreOptions } from '../../services/server/store/etcd-store.js';
import type { CreateResult, Pair } from '../../services/server/store/store.js';
import { useLocalEtcd, type LocalEtcd } from '../support/etcd.js';

const quiet = pino({ level: 'silent' });
const stores: EtcdStore[] = [];
let prefixes = 0;
const newPrefix = () => `g${process.pid}-${++prefixes}/`;

/** A store that counts its successful etcd calls by operation. */
function countingStore(etcd: LocalEtcd, options: Partial<EtcdStoreOptions> = {}): { store: EtcdStore; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const events: StoreEvents = { ...NO_STORE_EVENTS, etcdCall: (operation) => void calls.set(operation, (calls.get(operation) ?? 0) + 1) };
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: newPrefix(), timeoutMs: 3000, logger: quiet, events, ...options });
  stores.push(store);
  return { store, calls };
}

afterAll(async () => {
  for (const s of stores) await s.close().catch(() => {});
});

describe('group commit of POSTs, default etcd', () => {
  const etcd = useLocalEtcd();

  it('200 POSTs sent at once: all applied, each one together, in far fewer transactions', async () => {
    const prefix = newPrefix();
    const { store, calls } = countingStore(etcd(), { prefix });
    const posts: Pair[][] = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? [[`k${i}a`, `v${i}`], [`k${i}b`, `값 ${i}`]] : [[`k${i}`, `v${i}`]]));
    const results = await Promise.all(posts.map((pairs) => store.createAll(pairs)));
    expect(results.every((r) => r.ok)).toBe(true);
    const transactions = calls.get('create') ?? 0;
    console.log(`group commit: 200 concurrent POSTs in ${transactions} etcd transactions`);
    expect(transactions).toBeLessThan(50);
    expect(transactions).toBeGreaterThan(0);
    // a fresh replica lists from etcd (create revision, ord/): the same order as the one that wrote
    const { store: reader } = countingStore(etcd(), { prefix });
    // concurrent POSTs have no order among themselves; what holds: every pair is there once, a POST's
    // keys stay together in its order, and the order the writer's copy shows is the one etcd holds
    const listed = await store.list();
    const byKey = (a: readonly [string, string], b: readonly [string, string]) => (a[0] < b[0] ? -1 : 1);
    expect([...listed].sort(byKey)).toEqual(posts.flat().sort(byKey));
    for (let i = 0; i < 200; i += 3) {
      const at = listed.findIndex(([k]) => k === `k${i}a`);
      expect(listed[at + 1]).toEqual([`k${i}b`, `값 ${i}`]);
    }
    expect(await reader.list()).toEqual(listed);
  });

  it('conflicts inside a group: a POST with an existing key gets "exists", the others are applied once', async () => {
    const { store } = countingStore(etcd());
    expect(await store.createAll([['x', 'old']])).toEqual({ ok: true });
    const [a, b, c, d] = await Promise.all([
      store.createAll([['a1', 'A'], ['x', 'A']]), // x exists
      store.createAll([['b1', 'B']]),
      store.createAll([['a1', 'C']]), // a1 is in A: waits for the next transaction; A applied nothing
      store.createAll([['b1', 'D']]), // b1 is in B, which is applied first
    ]);
    // A can never win (x exists), so a1 is C's; exactly one of B and D has b1
    expect(a.ok).toBe(false);
    expect(['a1', 'x']).toContain((a as { existingKey: string }).existingKey);
    expect(c).toEqual({ ok: true });
    expect([b, d].filter((r) => r.ok)).toHaveLength(1);
    const loser = b.ok ? d : b;
    expect(loser).toEqual<CreateResult>({ ok: false, existingKey: 'b1' });
    const listed = new Map(await store.list());
    expect(listed).toEqual(new Map([['x', 'old'], ['a1', 'C'], ['b1', b.ok ? 'B' : 'D']]));
  });

  it('racing replicas: each key is created by exactly one POST, and no POST is half applied', async () => {
    const prefix = newPrefix();
    const replicas = [0, 1, 2].map(() => countingStore(etcd(), { prefix }).store);
    // 90 POSTs of two keys out of 20, spread over three replicas, all at once
    const posts: { replica: number; pairs: Pair[] }[] = Array.from({ length: 90 }, (_, i) => {
      const k1 = (i * 7) % 20;
      const k2 = (i * 11 + 3) % 20;
      const pairs: Pair[] = k1 === k2 ? [[`k${k1}`, `p${i}`]] : [[`k${k1}`, `p${i}`], [`k${k2}`, `p${i}`]];
      return { replica: i % 3, pairs };
    });
    const results = await Promise.all(posts.map((p) => replicas[p.replica]!.createAll(p.pairs)));
    const final = new Map(await replicas[0]!.list());
    const winners = posts.filter((_, i) => results[i]!.ok);
    // every winner wrote all its keys (no one else could have written them after)
    for (const w of winners) for (const [key, value] of w.pairs) expect(final.get(key)).toBe(value);
    // every key held was written by exactly one winner
    const owners = new Map<string, number>();
    for (const w of winners) for (const [key] of w.pairs) owners.set(key, (owners.get(key) ?? 0) + 1);
    for (const [key] of final) expect(owners.get(key)).toBe(1);
    // every loser named a key that exists
    posts.forEach((p, i) => {
      const r = results[i]!;
      if (!r.ok) {
        expect(p.pairs.map(([k]) => k)).toContain(r.existingKey);
        expect(final.has(r.existingKey)).toBe(true);
      }
    });
  });
});

describe('group commit with an etcd that hangs', () => {
  const etcd = useLocalEtcd();

  it('POSTs queued behind transactions to a hung etcd still answer 503 within the etcd deadline', async () => {
    // the one etcd under two names: after the first timeout the first name is skipped, so the
    // POSTs that waited go to the second name, which hangs as well (as a cluster's other members would
    // while a new leader is elected)
    const { store } = countingStore(etcd(), { timeoutMs: 1000, endpoints: [etcd().endpoint, etcd().endpoint.replace('http://', '')] });
    expect(await store.createAll([['warm', 'up']])).toEqual({ ok: true });
    // this etcd's process, found by its own data directory, stopped: calls hang until their deadline
    const pid = Number(execFileSync('pgrep', ['-f', '--', etcd().dataDir]).toString().trim().split('\n')[0]);
    process.kill(pid, 'SIGSTOP');
    try {
      // three rounds 300 ms apart: two transactions hang in both slots, the third round has to wait
      const started = performance.now();
      const rounds = [0, 1, 2].map(async (round) => {
        await new Promise((r) => setTimeout(r, round * 300));
        return Promise.all(
          Array.from({ length: 5 }, async (_, i) => {
            const sent = performance.now();
            const outcome = await store.createAll([[`hung${round}-${i}`, 'v']]).then(
              () => 'applied',
              (error: Error) => error.name,
            );
            return { round, outcome, ms: performance.now() - sent };
          }),
        );
      });
      const answers = (await Promise.all(rounds)).flat();
      console.log(`hung etcd: ${answers.length} POSTs answered after ${answers.map((a) => a.ms.toFixed(0)).join(', ')} ms (deadline 1000 ms), all within ${(performance.now() - started).toFixed(0)} ms`);
      for (const a of answers) {
        expect(a.outcome).toBe('StoreUnavailableError');
        expect(a.ms).toBeLessThan(1000 + 250);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
});

describe('group commit with an etcd whose --max-txn-ops is lower than tcpkv was told', () => {
  const etcd = useLocalEtcd({ flags: ['--max-txn-ops=16'] });

  it('a group etcd refuses is sent again one POST at a time: each fitting POST applied, the too-large one 413', async () => {
    const { store } = countingStore(etcd(), { maxTxnOps: 128 });
    const posts: Pair[][] = [...Array.from({ length: 10 }, (_, i): Pair[] => [[`s${i}`, 'v']]), Array.from({ length: 10 }, (_, i): Pair => [`big${i}`, 'v'])];
    const results = await Promise.allSettled(posts.map((pairs) => store.createAll(pairs)));
    for (let i = 0; i < 10; i++) expect(results[i]).toEqual({ status: 'fulfilled', value: { ok: true } });
    // alone, ten pairs need 21 operations: etcd's own 413, nothing applied
    expect(results[10]!.status).toBe('rejected');
    expect(((results[10] as PromiseRejectedResult).reason as Error).name).toBe('ValueTooLargeError');
    expect((await store.list()).map(([k]) => k).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));
  });
});
