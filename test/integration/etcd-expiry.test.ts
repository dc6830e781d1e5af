// Keys that expire in the etcd store, against a real etcd on loopback with three replicas over one
// prefix: a putKey with a TTL puts the key with its expiry second's lease; etcd deletes it when the
// lease ends, and every replica stops returning it from that end on, removes it and records the
// deletion (with its own revision) in its feed. A later put without a TTL detaches the key from its
// lease. The choice of a lease per second over a lease per key is measured here (grants, etcd calls
// per write, deletion revisions), and so is the lateness of 10,000 keys with TTLs of 1 to 10 s.

import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import type { ChangeFeed } from '../../services/server/store/change-feed.js';
import { UNCONDITIONAL } from '../../services/server/store/store.js';
import { startEtcd, type LocalEtcd } from '../support/etcd.js';

const quiet = pino({ level: 'silent' });

let etcd: LocalEtcd;
let raw: Etcd3;
let prefixes = 0;
const stores: EtcdStore[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: [etcd.endpoint] });
}, 60_000);
afterAll(async () => {
  for (const s of stores) await s.close();
  raw?.close();
  await etcd?.destroy();
});

function newPrefix(): string {
  return `expiry${process.pid}-${++prefixes}/`;
}

async function replica(prefix: string): Promise<EtcdStore> {
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs: 5000, logger: quiet });
  stores.push(store);
  await store.start();
  const started = Date.now();
  while ((await store.readiness()) !== undefined) {
    if (Date.now() - started > 20_000) throw new Error(`not ready: ${await store.readiness()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return store;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every deletion the feed records from `since` on, with when this process saw it (until stop()). */
function followDeletions(feed: ChangeFeed, since: number): { seen: Map<string, { at: number; version: number }>; stop: () => void } {
  const seen = new Map<string, { at: number; version: number }>();
  let stopped = false;
  let next = since;
  void (async () => {
    while (!stopped) {
      const read = feed.read(next, '', 100_000, 1 << 30);
      if ('gone' in read) throw new Error(`feed gone at ${read.gone}`);
      const at = Date.now();
      for (const c of read.changes) if (c.value === undefined && !seen.has(c.key)) seen.set(c.key, { at, version: c.version });
      next = read.next;
      await feed.changed(200);
    }
  })();
  return { seen, stop: () => (stopped = true) };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('etcd store expiry', () => {
  it('expires on time on every replica, is never read after its expiry, and is a deletion in each feed', async () => {
    const prefix = newPrefix();
    const replicas = [await replica(prefix), await replica(prefix), await replica(prefix)];
    const since = replicas.map((r) => r.changes.revision);
    const followers = replicas.map((r, n) => followDeletions(r.changes, since[n]!));
    const wrote = Date.now();
    const put = await replicas[0]!.putKey('session', 'alive', UNCONDITIONAL, 1500);
    expect(put.ok).toBe(true);
    const version = put.ok ? put.version : 0;
    const expiresAt: number[] = [];
    for (const r of replicas) {
      const held = await r.getVersioned('session');
      expect(held).toMatchObject({ value: 'alive', version });
      expiresAt.push(held!.expiresAt!);
    }
    // the same end everywhere: the lease's, at or after the write plus its TTL, within its second
    expect(new Set(expiresAt).size).toBe(1);
    const end = expiresAt[0]!;
    expect(end).toBeGreaterThanOrEqual(wrote + 1500);
    expect(end).toBeLessThanOrEqual(Date.now() + 1500 + 1000);
    // read on every replica until gone: no answer from a read begun at or after the end
    const goneAt: (number | undefined)[] = [undefined, undefined, undefined];
    while (goneAt.some((g) => g === undefined) && Date.now() < end + 5000) {
      await Promise.all(
        replicas.map(async (r, n) => {
          if (goneAt[n] !== undefined) return;
          const began = Date.now();
          const [value, versioned, page] = await Promise.all([r.get('session'), r.getVersioned('session'), r.page({ prefix: '', after: undefined, limit: 10 })]);
          const listed = page.items.some(([k]) => k === 'session');
          if (value !== undefined || versioned !== undefined || listed) expect(began).toBeLessThan(end);
          else goneAt[n] = Date.now();
        }),
      );
      await sleep(10);
    }
    // gone from the first read after the end (a round of reads takes a few ms; more on a busy machine)
    for (const g of goneAt) expect(g! - end).toBeLessThan(500);
    // etcd deletes it (its lease ended), and every replica's feed has that deletion, one version for all
    const deadline = Date.now() + 6000;
    while (followers.some((f) => !f.seen.has('session')) && Date.now() < deadline) await sleep(20);
    for (const f of followers) f.stop();
    const deletions = followers.map((f) => f.seen.get('session'));
    for (const d of deletions) expect(d?.version).toBeGreaterThan(version);
    expect(new Set(deletions.map((d) => d!.version)).size).toBe(1);
    const late = deletions.map((d) => d!.at - end);
    console.log(`one key, TTL 1.5 s: hidden on every replica ${goneAt.map((g) => g! - end).join('/')} ms after its end; etcd's deletion in the feeds ${late.join('/')} ms after it`);
    expect((await raw.kv.range({ key: Buffer.from(`${prefix}kv/session`) })).kvs).toHaveLength(0);
    for (const r of replicas) expect((await r.list()).map(([k]) => k)).not.toContain('session');
  });

  it('a replica started after the write learns the expiry from its list (the lease id), hides the key and records its deletion', async () => {
    const prefix = newPrefix();
    const a = await replica(prefix);
    await a.upsertAll([['stays', 'v']]);
    const put = await a.putKey('short', 'v', UNCONDITIONAL, 2000);
    const end = (await a.getVersioned('short'))!.expiresAt!;
    const late = await replica(prefix);
    const follower = followDeletions(late.changes, late.changes.revision);
    expect(await late.getVersioned('short')).toEqual({ value: 'v', version: put.ok ? put.version : 0, expiresAt: end });
    await sleep(Math.max(0, end - Date.now()) + 20);
    expect(await late.get('short')).toBeUndefined();
    expect((await late.page({ prefix: '', after: undefined, limit: 10 })).items.map(([k]) => k)).toEqual(['stays']);
    const deadline = Date.now() + 5000;
    while (!follower.seen.has('short') && Date.now() < deadline) await sleep(20);
    follower.stop();
    expect(follower.seen.get('short')?.version).toBeGreaterThan(put.ok ? put.version : 0);
  });

  it('is cleared by a later write without a TTL (putKey, upsertAll)', async () => {
    const prefix = newPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    await a.putKey('k1', 'v', UNCONDITIONAL, 1000);
    await a.putKey('k2', 'v', UNCONDITIONAL, 1000);
    expect((await b.getVersioned('k1'))?.expiresAt).toBeDefined();
    await b.putKey('k1', 'kept', UNCONDITIONAL);
    await b.upsertAll([['k2', 'kept too']]);
    for (const s of [a, b]) {
      expect((await s.getVersioned('k1'))?.expiresAt).toBeUndefined();
      expect((await s.getVersioned('k2'))?.expiresAt).toBeUndefined();
    }
    const kv = (await raw.kv.range({ key: Buffer.from(`${prefix}kv/k1`) })).kvs[0]!;
    expect(kv.lease).toBe('0');
    await sleep(3500);
    for (const s of [a, b]) {
      expect(await s.get('k1')).toBe('kept');
      expect(await s.get('k2')).toBe('kept too');
    }
  });

  it('takes conditions: create with a TTL, renew at its version, refused at another, free again once expired', async () => {
    const prefix = newPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    const created = await a.putKey('lock', 'me', { kind: 'absent' }, 1000);
    expect(created).toMatchObject({ ok: true, created: true });
    const v1 = created.ok ? created.version : 0;
    expect(await b.putKey('lock', 'other', { kind: 'absent' }, 1000)).toEqual({ ok: false, current: v1 });
    const firstEnd = (await a.getVersioned('lock'))!.expiresAt!;
    const renewed = await a.putKey('lock', 'me', { kind: 'versions', versions: [v1] }, 3000);
    expect(renewed.ok).toBe(true);
    const v2 = renewed.ok ? renewed.version : 0;
    expect((await b.getVersioned('lock'))!.expiresAt!).toBeGreaterThan(firstEnd);
    expect(await b.putKey('lock', 'other', { kind: 'versions', versions: [v1] }, 1000)).toEqual({ ok: false, current: v2 });
    // the first lease ends: the renewed key is on another one and stays
    await sleep(Math.max(0, firstEnd - Date.now()) + 1200);
    expect(await b.get('lock')).toBe('me');
    // expired: gone, and a create succeeds once etcd has deleted it
    const secondEnd = (await b.getVersioned('lock'))!.expiresAt!;
    await sleep(Math.max(0, secondEnd - Date.now()) + 50);
    expect(await b.get('lock')).toBeUndefined();
    const deadline = Date.now() + 5000;
    let again = await b.putKey('lock', 'other', { kind: 'absent' }, 1000);
    while (!again.ok && Date.now() < deadline) {
      await sleep(100);
      again = await b.putKey('lock', 'other', { kind: 'absent' }, 1000);
    }
    expect(again).toMatchObject({ ok: true, created: true });
    expect(await a.deleteKey('lock', { kind: 'versions', versions: [again.ok ? again.version : 0] })).toMatchObject({ ok: true });
  });

  it('a lease per second against a lease per key: grants, etcd calls per write, deletion revisions', async () => {
    const keys = 1000;
    const ttlMs = 2000;
    // a lease per second, through the store
    const prefix = newPrefix();
    const store = await replica(prefix);
    const since = store.changes.revision;
    const follower = followDeletions(store.changes, since);
    const grantsBefore = store.leases.grants;
    let started = performance.now();
    for (let from = 0; from < keys; from += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.putKey(`b${from + i}`, 'v', UNCONDITIONAL, ttlMs)));
    }
    const bucketSeconds = (performance.now() - started) / 1000;
    const bucketGrants = store.leases.grants - grantsBefore;
    // a lease per key, with a plain client: a grant, then the put with it
    const perKeyPrefix = newPrefix();
    started = performance.now();
    for (let from = 0; from < keys; from += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const grant = await raw.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000), ID: 0 });
          await raw.kv.put({ key: Buffer.from(`${perKeyPrefix}kv/p${from + i}`), value: Buffer.from('v'), lease: grant.ID });
        }),
      );
    }
    const perKeySeconds = (performance.now() - started) / 1000;
    const deletionRevisions = async (p: string, wait: number) => {
      const revisions = new Set<string>();
      const watcher = await raw.watch().prefix(`${p}kv/`).create();
      watcher.on('delete', (kv) => revisions.add(kv.mod_revision));
      await sleep(wait);
      await watcher.cancel();
      return revisions.size;
    };
    const perKeyRevisions = await deletionRevisions(perKeyPrefix, ttlMs + 3000);
    const deadline = Date.now() + 5000;
    while (follower.seen.size < keys && Date.now() < deadline) await sleep(50);
    follower.stop();
    const bucketRevisions = new Set([...follower.seen.values()].map((d) => d.version)).size;
    console.log(
      `${keys} TTL'd writes, 50 at a time: a lease per second ${bucketGrants} grants (${(bucketGrants / bucketSeconds).toFixed(1)}/s), ` +
        `${((keys + bucketGrants) / keys).toFixed(3)} etcd calls per write, ${(keys / bucketSeconds).toFixed(0)} writes/s, deleted in ${bucketRevisions} revisions; ` +
        `a lease per key ${keys} grants (${(keys / perKeySeconds).toFixed(0)}/s), 2 calls per write, ${(keys / perKeySeconds).toFixed(0)} writes/s, deleted in ${perKeyRevisions} revisions`,
    );
    expect(follower.seen.size).toBe(keys);
    expect(bucketGrants).toBeLessThanOrEqual(Math.ceil(bucketSeconds) + 2);
    // every key of one lease goes in one revision
    expect(bucketRevisions).toBeLessThanOrEqual(bucketGrants);
  }, 60_000);

  it('10,000 keys with TTLs of 1 to 10 s expire on time on both replicas (lateness p50/p99)', async () => {
    const keys = 10_000;
    const prefix = newPrefix();
    const replicas = [await replica(prefix), await replica(prefix)];
    const followers = replicas.map((r) => followDeletions(r.changes, r.changes.revision));
    const due = new Map<string, number>();
    const started = performance.now();
    let n = 0;
    const writer = async (store: EtcdStore) => {
      while (n < keys) {
        const key = `k${n++}`;
        const ttlMs = 1000 + Math.floor(Math.random() * 9000);
        const at = Date.now();
        const put = await store.putKey(key, 'v', UNCONDITIONAL, ttlMs);
        expect(put.ok).toBe(true);
        due.set(key, at + ttlMs);
      }
    };
    await Promise.all(Array.from({ length: 64 }, (_, i) => writer(replicas[i % 2]!)));
    const writeSeconds = (performance.now() - started) / 1000;
    const lastDue = Math.max(...due.values());
    // reads meanwhile: never a key past its due time plus its second (and the moments between this
    // test's clock reading and the store's, before the lease is chosen)
    let reads = 0;
    let slowestGetMs = 0;
    // the event loop while the replicas apply etcd's deletions (both replicas run in this process)
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    while (Date.now() < lastDue + 1500) {
      const key = `k${Math.floor(Math.random() * keys)}`;
      const began = Date.now();
      const value = await replicas[reads % 2]!.get(key);
      slowestGetMs = Math.max(slowestGetMs, Date.now() - began);
      if (value !== undefined) expect(began).toBeLessThan(due.get(key)! + 1000 + 250);
      reads++;
      await sleep(5);
    }
    const deadline = Date.now() + 10_000;
    while (followers.some((f) => f.seen.size < keys) && Date.now() < deadline) await sleep(100);
    for (const f of followers) f.stop();
    loopDelay.disable();
    const grants = replicas.reduce((sum, r) => sum + r.leases.grants, 0);
    for (const [i, f] of followers.entries()) {
      expect(f.seen.size).toBe(keys);
      const lateness = [...f.seen].map(([key, d]) => d.at - due.get(key)!).sort((x, y) => x - y);
      // a lease ends at the end of its key's second at the earliest: never before the key is due
      for (const key of due.keys()) expect(f.seen.get(key)!.at).toBeGreaterThanOrEqual(due.get(key)!);
      console.log(
        `replica ${i}: ${keys} keys, TTLs 1-10 s, written in ${writeSeconds.toFixed(1)} s with ${grants} lease grants: ` +
          `removal - due p50 ${percentile(lateness, 50)} ms, p99 ${percentile(lateness, 99)} ms, max ${lateness[lateness.length - 1]} ms; ` +
          `${reads} GETs meanwhile, slowest ${slowestGetMs} ms; event loop delay p99 ${(loopDelay.percentile(99) / 1e6).toFixed(0)} ms, max ${(loopDelay.max / 1e6).toFixed(0)} ms`,
      );
      expect(percentile(lateness, 99)).toBeLessThan(3000);
    }
  }, 120_000);
});
