// Versions and conditional writes in the etcd store, against a real etcd on loopback: a version is the
// kv/ key's mod revision, the condition is decided by etcd in the write's transaction (two replicas
// racing the same compare-and-set: exactly one wins), a refusal reports the version etcd saw even when
// the replica's copy is behind, and a write through one replica is read with its version through another.

import { execFileSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OrderedEntries } from '../../services/server/store/etcd-cache.js';
import { EtcdCalls } from '../../services/server/store/etcd-calls.js';
import { conditionalDelete, conditionalPut, firstCandidate, type KeyWriteOptions } from '../../services/server/store/etcd-key-writes.js';
import { EtcdKeyspace, WriteStamps } from '../../services/server/store/etcd-keyspace.js';
import { etcdLeaseGrants, LeaseBuckets } from '../../services/server/store/etcd-leases.js';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { NO_STORE_EVENTS } from '../../services/server/events.js';
import { StoreFullError, StoreUnavailableError, UNCONDITIONAL, type Condition, type KeyPutResult } from '../../services/server/store/store.js';
import { startEtcd, useLocalEtcd, type LocalEtcd } from '../support/etcd.js';

const quiet = pino({ level: 'silent' });
const ifVersions = (...versions: number[]): Condition => ({ kind: 'versions', versions });

let etcd: LocalEtcd;
let raw: Etcd3;
let prefixes = 0;
const stores: EtcdStore[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: [etcd.endpoint] });
});
afterAll(async () => {
  for (const s of stores) await s.close();
  raw?.close();
  await etcd?.destroy();
});

function newPrefix(): string {
  return `versions${process.pid}-${++prefixes}/`;
}

/** A replica's store on `prefix`, ready (its copy synced). */
async function replica(prefix: string, timeoutMs = 3000): Promise<EtcdStore> {
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs, logger: quiet });
  stores.push(store);
  await store.start();
  const started = Date.now();
  while ((await store.readiness()) !== undefined) {
    if (Date.now() - started > 20_000) throw new Error(`not ready: ${await store.readiness()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return store;
}

/** The kv/ key's mod revision as etcd holds it (undefined: no such key). */
async function modRevision(prefix: string, key: string, client = raw): Promise<number | undefined> {
  const response = await client.kv.range({ key: Buffer.from(`${prefix}kv/${key}`), keys_only: true });
  const kv = response.kvs[0];
  return kv ? Number(kv.mod_revision) : undefined;
}

function applied(result: KeyPutResult | { ok: boolean }): number {
  expect(result.ok).toBe(true);
  return (result as { version: number }).version;
}

describe('etcd store versions', () => {
  it("a key's version is etcd's mod revision of its kv/ key; every write has its own, larger one", async () => {
    const prefix = newPrefix();
    const store = await replica(prefix);
    expect(await store.createAll([['a', '1'], ['b', '2']])).toEqual({ ok: true });
    const created = (await store.getVersioned('a'))!.version;
    expect(created).toBe(await modRevision(prefix, 'a'));
    expect((await store.getVersioned('b'))!.version).toBe(created);
    await store.upsertAll([['a', '3']]);
    const upserted = (await store.getVersioned('a'))!.version;
    expect(upserted).toBeGreaterThan(created);
    expect(upserted).toBe(await modRevision(prefix, 'a'));
    const put = applied(await store.putKey('a', '4', UNCONDITIONAL));
    expect(put).toBeGreaterThan(upserted);
    expect(put).toBe(await modRevision(prefix, 'a'));
    expect(await store.getVersioned('a')).toEqual({ value: '4', version: put });
    const page = await store.page({ prefix: '', after: undefined, limit: 10 });
    expect(page.items).toEqual([['a', '4'], ['b', '2']]);
    expect(page.versions).toEqual([put, created]);
    // the delete's version is the revision its transaction made: etcd's revision right after it
    const removed = applied(await store.deleteKey('b', UNCONDITIONAL));
    expect(removed).toBeGreaterThan(put);
    expect(Number((await raw.kv.range({ key: Buffer.from(`${prefix}kv/a`) })).header.revision)).toBe(removed);
  });

  it("versions are the cluster's revisions: writes outside tcpkv's prefix move them too", async () => {
    const prefix = newPrefix();
    const store = await replica(prefix);
    const first = applied(await store.putKey('k', '1', UNCONDITIONAL));
    for (let i = 0; i < 3; i++) await raw.put(`elsewhere-${prefix}${i}`).value('x');
    const second = applied(await store.putKey('k', '2', UNCONDITIONAL));
    expect(second).toBe(first + 4);
  });

  it('a write through replica A is read with the same version through replica B (getVersioned and page), at once', async () => {
    const prefix = newPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    for (let i = 0; i < 10; i++) {
      const version = applied(await a.putKey(`k${i % 3}`, `v${i}`, UNCONDITIONAL));
      expect(await b.getVersioned(`k${i % 3}`)).toEqual({ value: `v${i}`, version });
      const page = await b.page({ prefix: '', after: undefined, limit: 10 });
      expect(page.versions[page.items.findIndex(([k]) => k === `k${i % 3}`)]).toBe(version);
      // and a compare-and-set through B with that version applies
      const next = applied(await b.putKey(`k${i % 3}`, `w${i}`, ifVersions(version)));
      expect(await a.getVersioned(`k${i % 3}`)).toEqual({ value: `w${i}`, version: next });
    }
  });

  it("two replicas race a compare-and-set on one version: exactly one applies, the other reports the winner's version", async () => {
    const prefix = newPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    let version = applied(await a.putKey('counter', '0', UNCONDITIONAL));
    const wins = { a: 0, b: 0 };
    for (let round = 1; round <= 30; round++) {
      const [ra, rb] = await Promise.all([a.putKey('counter', `a${round}`, ifVersions(version)), b.putKey('counter', `b${round}`, ifVersions(version))]);
      const winners = [ra, rb].filter((r) => r.ok);
      expect(winners).toHaveLength(1);
      const won = winners[0] as { version: number };
      const lost = ra.ok ? rb : ra;
      expect(lost).toEqual({ ok: false, current: won.version });
      if (ra.ok) wins.a++;
      else wins.b++;
      expect(await modRevision(prefix, 'counter')).toBe(won.version);
      expect(await (ra.ok ? b : a).getVersioned('counter')).toEqual({ value: ra.ok ? `a${round}` : `b${round}`, version: won.version });
      version = won.version;
    }
    console.log(`compare-and-set race over 30 rounds: replica A won ${wins.a}, replica B won ${wins.b}`);
  });

  it('putKey conditions: absent, exists and versions, decided by etcd; a refusal changes nothing', async () => {
    const prefix = newPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    const v1 = applied(await a.putKey('k', '1', { kind: 'absent' }));
    expect(await b.putKey('k', '2', { kind: 'absent' })).toEqual({ ok: false, current: v1 });
    expect(await b.putKey('none', '2', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
    expect(await b.putKey('none', '2', ifVersions(v1))).toEqual({ ok: false, current: undefined });
    expect(await b.putKey('k', '2', ifVersions(v1 + 1000))).toEqual({ ok: false, current: v1 });
    // a version of 0 (etcd compares a missing key as all zeros) never creates a key
    expect(await b.putKey('none', '2', ifVersions(0))).toEqual({ ok: false, current: undefined });
    expect(await b.putKey('none', '2', ifVersions())).toEqual({ ok: false, current: undefined });
    expect(await modRevision(prefix, 'none')).toBeUndefined();
    expect(await a.getVersioned('k')).toEqual({ value: '1', version: v1 });
    const v2 = applied(await b.putKey('k', '2', { kind: 'exists' }));
    expect(await a.putKey('k', '3', ifVersions(v1))).toEqual({ ok: false, current: v2 });
    const put = await a.putKey('k', '3', ifVersions(v1, v2));
    expect(put).toMatchObject({ ok: true, created: false });
    expect(await b.getVersioned('k')).toEqual({ value: '3', version: applied(put) });
    expect(await a.putKey('fresh', '1', UNCONDITIONAL)).toMatchObject({ ok: true, created: true });
    expect(await a.putKey('fresh', '2', UNCONDITIONAL)).toMatchObject({ ok: true, created: false });
  });

  it('deleteKey conditions: deletes kv/, ord/ and the stamp only at a matching version; the refusal names the version', async () => {
    const prefix = newPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    // created with another key: each has an ord/ entry
    expect(await a.createAll([['x', '1'], ['y', '2']])).toEqual({ ok: true });
    const v = (await a.getVersioned('x'))!.version;
    expect((await raw.kv.range({ key: Buffer.from(`${prefix}ord/x`) })).kvs).toHaveLength(1);
    expect(await b.deleteKey('x', { kind: 'absent' })).toEqual({ ok: false, current: v });
    expect(await b.deleteKey('x', ifVersions(v - 1))).toEqual({ ok: false, current: v });
    expect(await b.deleteKey('missing', UNCONDITIONAL)).toEqual({ ok: false, current: undefined });
    expect(await b.deleteKey('missing', { kind: 'absent' })).toEqual({ ok: false, current: undefined });
    expect(await b.deleteKey('missing', ifVersions(0))).toEqual({ ok: false, current: undefined });
    expect(await a.getVersioned('x')).toEqual({ value: '1', version: v });
    const removed = applied(await b.deleteKey('x', ifVersions(v)));
    expect(removed).toBeGreaterThan(v);
    expect(await modRevision(prefix, 'x')).toBeUndefined();
    expect((await raw.kv.range({ key: Buffer.from(`${prefix}ord/x`) })).kvs).toHaveLength(0);
    expect((await raw.kv.range({ key: Buffer.from(`${prefix}kv/`) })).kvs).toHaveLength(0);
    expect(await a.getVersioned('x')).toBeUndefined();
    expect(await a.deleteKey('x', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
    expect(applied(await a.deleteKey('y', { kind: 'exists' }))).toBeGreaterThan(removed);
    // the cursor of a deleted key still continues the walk
    expect(await a.page({ prefix: '', after: 'x', limit: 10 })).toEqual({ items: [], versions: [], next: undefined });
  });
});

describe('etcd conditional writes with a copy that is behind', () => {
  /** The write functions over a real etcd, with a copy frozen as given, and the transactions counted. */
  function writer(prefix: string, copy: OrderedEntries): { options: KeyWriteOptions; txns: () => number } {
    let txns = 0;
    const calls = new EtcdCalls({ logger: quiet, events: NO_STORE_EVENTS, maxTxnOps: 128 });
    return {
      options: {
        client: raw,
        keyspace: new EtcdKeyspace(prefix),
        stamps: new WriteStamps(),
        calls: {
          call: (what, isWrite, run) => {
            txns++;
            return calls.call(what, isWrite, run);
          },
        },
        copy: () => copy,
        revisionDespiteNoSpace: () => Promise.reject(new Error('no NOSPACE here')),
        timeoutMs: 3000,
        leases: new LeaseBuckets(etcdLeaseGrants(raw)),
      },
      txns: () => txns,
    };
  }

  it('versions: a copy at an older candidate costs one more transaction, then applies at the version etcd holds', async () => {
    const prefix = newPrefix();
    const store = await replica(prefix);
    const v1 = applied(await store.putKey('k', '1', UNCONDITIONAL));
    const v2 = applied(await store.putKey('k', '2', UNCONDITIONAL));
    const stale = new OrderedEntries();
    stale.set('k', '1', v1);
    const { options, txns } = writer(prefix, stale);
    const put = await conditionalPut(options, 'k', '3', ifVersions(v1, v2));
    expect(put).toMatchObject({ ok: true, created: false });
    expect(txns()).toBe(2);
    expect(await modRevision(prefix, 'k')).toBe(applied(put));
    // a candidate above the copy's is compared first: one transaction
    const v3 = applied(put);
    const again = writer(prefix, stale);
    expect(await conditionalPut(again.options, 'k', '4', ifVersions(v1 - 1, v3))).toMatchObject({ ok: true });
    expect(again.txns()).toBe(1);
  });

  it("refusals report etcd's version, not the copy's: absent, versions and any against a stale copy", async () => {
    const prefix = newPrefix();
    const store = await replica(prefix);
    const v1 = applied(await store.putKey('k', '1', UNCONDITIONAL));
    const v2 = applied(await store.putKey('k', '2', UNCONDITIONAL));
    // the copy says there is no such key
    const empty = writer(prefix, new OrderedEntries());
    expect(await conditionalPut(empty.options, 'k', 'x', { kind: 'absent' })).toEqual({ ok: false, current: v2 });
    expect(await conditionalPut(empty.options, 'k', 'x', ifVersions(v1))).toEqual({ ok: false, current: v2 });
    expect(await conditionalDelete(empty.options, 'k', ifVersions(v1))).toEqual({ ok: false, current: v2 });
    expect(await modRevision(prefix, 'k')).toBe(v2);
    // unconditional: the copy's guess (absent) fails the compare-and-swap, the second transaction applies
    const before = empty.txns();
    expect(await conditionalPut(empty.options, 'k', 'y', UNCONDITIONAL)).toMatchObject({ ok: true, created: false });
    expect(empty.txns() - before).toBe(2);
    // the copy holds a key etcd no longer has
    const v3 = applied(await store.deleteKey('k', UNCONDITIONAL));
    const ghost = new OrderedEntries();
    ghost.set('k', 'y', v3 - 1);
    const stale = writer(prefix, ghost);
    expect(await conditionalPut(stale.options, 'k', 'z', ifVersions(v3 - 1))).toEqual({ ok: false, current: undefined });
    expect(await conditionalDelete(stale.options, 'k', ifVersions(v3 - 1))).toEqual({ ok: false, current: undefined });
    expect(await conditionalPut(stale.options, 'k', 'z', UNCONDITIONAL)).toMatchObject({ ok: true, created: true });
  });

  it('firstCandidate: the copy version if listed, else the smallest above it', () => {
    expect(firstCandidate([5, 9], 5)).toBe(5);
    expect(firstCandidate([5, 9, 12], 7)).toBe(9);
    expect(firstCandidate([5, 9], undefined)).toBe(5);
    expect(firstCandidate([3, 4], 7)).toBe(3);
    expect(firstCandidate([], 7)).toBe(0);
  });
});

describe('etcd conditional writes when etcd does not answer', () => {
  it('putKey and deleteKey past the deadline: 503 saying the write may have been applied', async () => {
    const prefix = newPrefix();
    const store = await replica(prefix, 800);
    const v = applied(await store.putKey('k', '1', UNCONDITIONAL));
    // this test's etcd, found by its own data directory, stopped: calls hang until their deadline
    const pid = Number(execFileSync('pgrep', ['-f', '--', etcd.dataDir]).toString().trim().split('\n')[0]);
    process.kill(pid, 'SIGSTOP');
    try {
      const outcomes = await Promise.all([
        Promise.resolve(store.putKey('k', '2', ifVersions(v))).catch((e: unknown) => e),
        Promise.resolve(store.deleteKey('k', ifVersions(v))).catch((e: unknown) => e),
      ]);
      for (const outcome of outcomes) {
        expect(outcome).toBeInstanceOf(StoreUnavailableError);
        expect((outcome as StoreUnavailableError).indeterminate).toBe(true);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });
});

describe('etcd conditional writes under the NOSPACE alarm', () => {
  const small = useLocalEtcd({ flags: ['--quota-backend-bytes=6000000'] });

  it('conditional PUTs crossing the quota: each acknowledged one holds the version it was answered with (NOSPACE answers etcd applied too), a 507 applied nothing; conditional deletes go on', async () => {
    const prefix = newPrefix();
    const store = new EtcdStore({ endpoints: [small().endpoint], prefix, timeoutMs: 3000, logger: quiet });
    stores.push(store);
    expect(await store.start()).toBe(true);
    const client = new Etcd3({ hosts: [small().endpoint] });
    try {
      const value = 'x'.repeat(50_000);
      // 8 writers at once, so that writes are in flight when etcd crosses its quota: etcd applies the
      // one that crosses it and answers NOSPACE all the same, and the NOSPACE check finds its version
      const acknowledged: { key: string; version: number }[] = [];
      const refused: string[] = [];
      const uncertain: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async (_, writer) => {
          for (let i = 0; i < 60 && refused.length === 0; i++) {
            const key = `fill${writer}-${i}`;
            try {
              acknowledged.push({ key, version: applied(await store.putKey(key, value, { kind: 'absent' })) });
            } catch (error) {
              if (error instanceof StoreFullError) refused.push(key);
              else if (error instanceof StoreUnavailableError && error.indeterminate) uncertain.push(key);
              else throw error;
            }
          }
        }),
      );
      console.log(`NOSPACE: ${acknowledged.length} conditional PUTs acknowledged, ${uncertain.length} uncertain, ${refused.length} answered 507`);
      expect(refused.length).toBeGreaterThan(0);
      expect(uncertain.length).toBeLessThanOrEqual(8);
      // every acknowledged write holds the version it was answered with; 507 applied nothing
      for (const { key, version } of acknowledged) expect(await modRevision(prefix, key, client)).toBe(version);
      for (const key of refused) expect(await modRevision(prefix, key, client)).toBeUndefined();
      const alarms = await client.maintenance.alarm({ action: 'Get', memberID: 0, alarm: 'None' });
      expect(alarms.alarms.map((a) => a.alarm)).toEqual(['Nospace']);
      await expect(Promise.resolve().then(() => store.putKey('fill0', 'y', { kind: 'exists' }))).rejects.toBeInstanceOf(StoreFullError);
      // deletes free space under the alarm: conditions decided as always
      const first = acknowledged[0]!;
      expect(await store.deleteKey(first.key, ifVersions(first.version + 1_000_000))).toEqual({ ok: false, current: first.version });
      expect(await store.deleteKey(first.key, ifVersions(first.version))).toMatchObject({ ok: true });
      expect(await store.getVersioned(first.key)).toBeUndefined();
    } finally {
      client.close();
    }
  }, 120_000);
});
