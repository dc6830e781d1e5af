// The etcd store against a real etcd on loopback (Debian's etcd 3.4): each defect of the earlier
// store that a deployment would meet, with the behaviour that replaces it. Each test failed on the
// store that ranged the whole prefix per read and built PUT from nested transactions.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore, checkEtcdPrefix, type EtcdStoreOptions } from '../../services/server/store/etcd-store.js';
import { StoreFullError, StoreUnavailableError, ValueTooLargeError, type Pair } from '../../services/server/store/store.js';
import { StartupError } from '../../services/common/errors.js';
import { REPO_ROOT } from '../support/docker.js';
import { startEtcd, type LocalEtcd } from '../support/etcd.js';

const quiet = pino({ level: 'silent' });
const stores: EtcdStore[] = [];
let prefixes = 0;

function newStore(etcd: LocalEtcd, options: Partial<EtcdStoreOptions> = {}): EtcdStore {
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix: `d${process.pid}-${++prefixes}/`, timeoutMs: 3000, logger: quiet, ...options });
  stores.push(store);
  return store;
}

/** A logger whose lines a test can read. */
function capturingLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

afterAll(async () => {
  for (const s of stores) await s.close().catch(() => {});
});

describe('etcd store defects, default etcd', () => {
  let etcd: LocalEtcd;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd.destroy();
  });

  it('a listing of 55 MB (over gRPC’s 4 MiB per answer) is read: listed in pages, served from the cache', async () => {
    const writer = newStore(etcd);
    const value = 'v'.repeat(55_000);
    for (let batch = 0; batch < 50; batch++) {
      const pairs: Pair[] = Array.from({ length: 20 }, (_, i) => [`key${String(batch * 20 + i).padStart(4, '0')}`, value]);
      expect(await writer.createAll(pairs)).toEqual({ ok: true });
    }
    // a replica starting now lists it all; another that was running follows it by the watch
    const fresh = newStore(etcd, { prefix: writer.prefix });
    const started = Date.now();
    expect(await fresh.readiness()).toMatch(/not synced/);
    while ((await fresh.readiness()) !== undefined && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 100));
    console.log(JSON.stringify({ listedMs: Date.now() - started, readiness: await fresh.readiness() }));
    const listing = await fresh.listing();
    expect(listing.count).toBe(1000);
    expect(listing.bytes).toBeGreaterThan(50_000_000);
    expect(listing.slices.join('').startsWith(`\nkey0000:${value}\nkey0001:`)).toBe(true);
    expect((await fresh.page({ prefix: 'key09', after: 'key0950', limit: 3 })).items.map(([k]) => k)).toEqual(['key0951', 'key0952', 'key0953']);
    expect((await writer.listing()).count).toBe(1000);
  }, 120_000);

  it('a write of more pairs than one etcd transaction takes: 413 naming the limit, nothing applied, not an outage', async () => {
    const store = newStore(etcd);
    const pairs = (n: number, tag: string): Pair[] => Array.from({ length: n }, (_, i) => [`${tag}${i}`, 'x']);
    await expect(store.createAll(pairs(64, 'a'))).rejects.toThrow(/at most 63 pairs .*TCPKV_ETCD_MAX_TXN_OPS=128/);
    await expect(store.upsertAll(pairs(70, 'b'))).rejects.toBeInstanceOf(ValueTooLargeError);
    expect((await store.listing()).count).toBe(0);
    expect(await store.createAll(pairs(63, 'c'))).toEqual({ ok: true });
    expect((await store.upsertAll(pairs(63, 'c'))).previous.every((p) => p === 'x')).toBe(true);
    // told etcd takes more than it does: etcd's refusal is a 413 too, and the member stays in use
    const misconfigured = newStore(etcd, { maxTxnOps: 1024 });
    await expect(misconfigured.createAll(pairs(100, 'd'))).rejects.toBeInstanceOf(ValueTooLargeError);
    expect(await misconfigured.createAll(pairs(1, 'e'))).toEqual({ ok: true });
  });

  it('a value etcd would refuse as too large: 413 before the call; one under the limit is stored (PUT no longer sends it twice)', async () => {
    const store = newStore(etcd);
    expect((await store.upsertAll([['big', 'x'.repeat(800_000)]])).previous).toEqual([undefined]);
    expect((await store.get('big'))?.length).toBe(800_000);
    await expect(store.upsertAll([['bigger', 'x'.repeat(1_600_000)]])).rejects.toThrow(/TCPKV_ETCD_MAX_REQUEST_BYTES/);
    await expect(store.createAll([['k'.repeat(400_000), 'x']])).rejects.toBeInstanceOf(ValueTooLargeError);
    expect(await store.get('bigger')).toBeUndefined();
  });

  it('DELETE is one transaction: removed from listing, get and pages; a second DELETE says there was no such key', async () => {
    const [a, b] = [newStore(etcd), undefined];
    void b;
    const other = newStore(etcd, { prefix: a.prefix });
    await a.createAll([['x', '1'], ['y', '2'], ['z', '3']]);
    expect(await a.delete('y')).toBe(true);
    expect(await other.delete('y')).toBe(false);
    expect(await other.get('y')).toBeUndefined();
    expect((await other.list()).map(([k]) => k)).toEqual(['x', 'z']);
    expect((await other.page({ prefix: '', after: 'x', limit: 10 })).items).toEqual([['z', '3']]);
    expect(await other.createAll([['y', '4']])).toEqual({ ok: true });
    expect((await a.list()).map(([k]) => k)).toEqual(['x', 'z', 'y']); // created again: at the end
  });

  it('concurrent reads share one barrier: 200 GETs cost a handful of etcd round trips, each still sees the write before it', async () => {
    const store = newStore(etcd);
    await store.createAll([['n', '0']]);
    await store.get('n');
    const before = store.barrierCalls;
    const answers = await Promise.all(Array.from({ length: 200 }, () => store.get('n')));
    expect(answers.every((v) => v === '0')).toBe(true);
    expect(store.barrierCalls - before).toBeLessThanOrEqual(3);
    await store.upsertAll([['n', '1']]);
    expect(await store.get('n')).toBe('1'); // read-your-writes: the barrier is after the write
  });

  it('store limits are checked against the cache: 507 naming the limit, nothing applied; deletes make room', async () => {
    const store = newStore(etcd, { limits: { maxKeys: 3, maxDataBytes: 40 } });
    await store.createAll([['a', '1'], ['b', '2']]);
    await expect(store.createAll([['c', '3'], ['d', '4']])).rejects.toThrow(/TCPKV_MAX_KEYS=3/);
    await expect(store.upsertAll([['a', 'x'.repeat(50)]])).rejects.toThrow(/TCPKV_MAX_DATA_BYTES=40/);
    expect(await store.list()).toEqual([['a', '1'], ['b', '2']]);
    expect(store.usage()).toEqual({ keys: 2, dataBytes: 4 });
    expect(await store.delete('a')).toBe(true);
    expect(await store.createAll([['c', '3'], ['d', '4']])).toEqual({ ok: true });
  });

  it('the prefix deleted outside tcpkv (etcdctl del --prefix): the next read waits for the deletions, never the old copy', async () => {
    const store = newStore(etcd);
    const prefix = store.prefix;
    await store.createAll(Array.from({ length: 50 }, (_, i) => [`w${i}`, 'x'] as const));
    expect((await store.listing()).count).toBe(50);
    const admin = new Etcd3({ hosts: etcd.endpoint });
    try {
      for (let round = 0; round < 5; round++) {
        await admin.delete().prefix(prefix);
        expect((await store.listing()).count).toBe(0);
        await store.createAll([[`again${round}`, 'y']]);
      }
    } finally {
      admin.close();
    }
  });

  it('prefixes that would nest are refused; distinct ones are isolated', async () => {
    expect(checkEtcdPrefix('tcpkv/')).toBeUndefined();
    expect(checkEtcdPrefix('tcpkv/kv/')).toMatch(/"kv" or "ord" segment/);
    expect(checkEtcdPrefix('tcpkv/ord/x/')).toMatch(/segment/);
    expect(checkEtcdPrefix('tcpkv')).toMatch(/must end with "\/"/);
    const outer = newStore(etcd, { prefix: `iso${process.pid}/` });
    const inner = newStore(etcd, { prefix: `iso${process.pid}/team/` });
    await outer.createAll([['a', 'outer']]);
    await inner.createAll([['a', 'inner'], ['b', 'inner']]);
    expect(await outer.list()).toEqual([['a', 'outer']]);
    expect(await inner.list()).toEqual([['a', 'inner'], ['b', 'inner']]);
  });

  it('a wiped etcd (new cluster, revisions from 1) is noticed, logged, and the old copy never served', async () => {
    const wiped = await startEtcd();
    try {
      const { logger, lines } = capturingLogger();
      const store = newStore(wiped, { logger });
      await store.createAll([['before', '1'], ['b2', '2']]);
      for (let i = 0; i < 20; i++) await store.upsertAll([['before', String(i)]]);
      expect((await store.listing()).count).toBe(2);
      await wiped.wipe();
      let count: number | undefined;
      for (let i = 0; i < 50 && count !== 0; i++) {
        count = await store.listing().then((l) => l.count, () => undefined);
        if (count !== 0) await new Promise((r) => setTimeout(r, 200));
      }
      expect(count).toBe(0);
      expect(lines.some((l) => /cluster id changed|went back in revisions/.test(l) && /"level":50/.test(l))).toBe(true);
    } finally {
      await wiped.destroy();
    }
  });
});

describe('etcd store defects, etcd with a small space quota', () => {
  let etcd: LocalEtcd;
  beforeAll(async () => {
    etcd = await startEtcd({ flags: ['--quota-backend-bytes=20000000'] });
  });
  afterAll(async () => {
    await etcd.destroy();
  });

  it('PUT is held to the space quota: 507 once etcd is full (before, nested transactions grew past it unchecked); the write that crossed it is not called unapplied', async () => {
    const store = newStore(etcd);
    const value = 'q'.repeat(50_000);
    let full: unknown;
    let lastAcknowledged = -1;
    // etcd applies the write that takes it past the quota and answers NOSPACE all the same: that
    // answer may not say "nothing was applied" (a 507); the writes after it are refused unapplied
    const uncertain: number[] = [];
    for (let i = 0; i < 700 && full === undefined; i++) {
      try {
        await store.upsertAll([['one', `${i}${value}`]]);
        lastAcknowledged = i;
      } catch (error) {
        if (error instanceof StoreUnavailableError && error.indeterminate) uncertain.push(i);
        else full = error;
      }
    }
    expect(full).toBeInstanceOf(StoreFullError);
    expect((full as StoreFullError).message).toMatch(/NOSPACE/);
    expect(uncertain.length).toBeLessThanOrEqual(1);
    const client = new Etcd3({ hosts: etcd.endpoint });
    try {
      const status = await client.maintenance.status();
      expect(Number(status.dbSize)).toBeLessThan(20_000_000 * 1.15);
    } finally {
      client.close();
    }
    // both kinds of write are refused (nothing applied); reads go on
    await expect(store.createAll([['two', 'x']])).rejects.toBeInstanceOf(StoreFullError);
    await expect(store.upsertAll([['one', 'x']])).rejects.toBeInstanceOf(StoreFullError);
    // the value is the last acknowledged write's, or the uncertain one's: never one answered 507
    const stored = Number.parseInt((await store.get('one'))!, 10);
    console.log(`space quota: ${lastAcknowledged + 1} PUTs acknowledged, uncertain: [${uncertain.join(', ')}], then 507; the stored value is write ${stored}`);
    expect([lastAcknowledged, ...uncertain]).toContain(stored);
  }, 120_000);

  it('concurrent writes crossing the quota: none answered 507 ("nothing applied") was applied', async () => {
    await etcd.wipe(); // the test before filled it: the same quota, empty again
    const store = newStore(etcd);
    const value = 'c'.repeat(50_000);
    const refused: string[] = [];
    const uncertain: string[] = [];
    let acknowledged = 0;
    // eight writers at once, new keys each time, until each is told etcd is full
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 200; i++) {
          const key = `c${w}-${i}`;
          try {
            await store.upsertAll([[key, value]]);
            acknowledged++;
          } catch (error) {
            if (error instanceof StoreUnavailableError && error.indeterminate) uncertain.push(key);
            else if (error instanceof StoreFullError) {
              refused.push(key);
              return;
            } else throw error;
          }
        }
      }),
    );
    const present = new Set((await store.list()).map(([k]) => k));
    console.log(`quota crossed by 8 writers: ${acknowledged} acknowledged, ${uncertain.length} uncertain (${uncertain.filter((k) => present.has(k)).length} of them applied), ${refused.length} answered 507`);
    expect(refused.length).toBe(8);
    expect(refused.filter((k) => present.has(k))).toEqual([]);
  }, 120_000);
});

describe('etcd store start-up check (the server process: one line, exit 2)', () => {
  let etcd: LocalEtcd;
  let dir: string;
  beforeAll(async () => {
    etcd = await startEtcd();
    dir = mkdtempSync(join(tmpdir(), 'tcpkv-etcd-start-'));
    const admin = new Etcd3({ hosts: etcd.endpoint });
    try {
      await admin.role('root').create();
      await admin.user('root').create('root-pw');
      await admin.user('root').addRole('root');
      await admin.role('app').create();
      await admin.role('app').grant({ permission: 'Readwrite', range: admin.range({ prefix: 'app/' }) });
      await admin.user('app').create('app-pw');
      await admin.user('app').addRole('app');
      await admin.user('stranger').create('stranger-pw');
      await admin.auth.authEnable({});
    } finally {
      admin.close();
    }
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  });
  afterAll(async () => {
    await etcd.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  function server(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [join(REPO_ROOT, 'dist/services/server/main.js')],
        { timeout: 20_000, env: { PATH: process.env.PATH ?? '', TCPKV_PORT: '0', TCPKV_BIND: '127.0.0.1', TCPKV_ETCD_ENDPOINTS: etcd.endpoint, TCPKV_ETCD_TIMEOUT_MS: '2000', ...env } },
        (_error, stdout, stderr) => resolve({ code: child.exitCode, stderr: stderr.toString(), stdout: stdout.toString() }),
      );
    });
  }

  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['a wrong password', { TCPKV_ETCD_PREFIX: 'app/', TCPKV_ETCD_USERNAME: 'app', TCPKV_ETCD_PASSWORD: 'wrong' }, /authentication failed|invalid user ID or password/],
    ['a user without rights on the prefix', { TCPKV_ETCD_PREFIX: 'app/', TCPKV_ETCD_USERNAME: 'stranger', TCPKV_ETCD_PASSWORD: 'stranger-pw' }, /permission denied/],
    ['a CA file with http:// endpoints', { TCPKV_ETCD_PREFIX: 'app/', TCPKV_ETCD_CA_FILE: 'CA' }, /use.? http:\/\//],
    ['a CA path that is a directory', { TCPKV_ETCD_PREFIX: 'app/', TCPKV_ETCD_CA_FILE: 'DIR' }, /is a directory/],
    ['a prefix nested in another deployment', { TCPKV_ETCD_PREFIX: 'tcpkv/kv/' }, /TCPKV_ETCD_PREFIX=tcpkv\/kv\/.*segment/],
  ];
  for (const [name, env, message] of cases) {
    it(`${name}: one clear line on stderr, exit 2`, async () => {
      const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === 'CA' ? join(dir, 'ca.pem') : v === 'DIR' ? dir : v]));
      const r = await server(resolved);
      expect(r.code, r.stderr + r.stdout).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }, 30_000);
  }

  it('the right user starts and serves', async () => {
    const store = newStore(etcd, { prefix: 'app/', username: 'app', password: 'app-pw' });
    await store.start();
    expect(await store.createAll([['k', 'v']])).toEqual({ ok: true });
    expect(await store.get('k')).toBe('v');
    const stranger = newStore(etcd, { prefix: 'app/', username: 'stranger', password: 'stranger-pw' });
    await expect(stranger.start()).rejects.toThrow(/permission denied/);
    await expect(stranger.createAll([['k2', 'v']])).rejects.toSatisfy((e: unknown) => e instanceof StoreUnavailableError && !e.indeterminate);
  });

  it('a refused start is a StartupError with a code and the setting to look at', async () => {
    const wrong = newStore(etcd, { prefix: 'app/', username: 'app', password: 'wrong' });
    const error = await wrong.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartupError);
    expect(error).toMatchObject({ code: 'TCPKV_ERR_ETCD_ACCESS_REFUSED', setting: 'TCPKV_ETCD_USERNAME' });
    expect((error as Error).message).toMatch(/authentication failed|invalid user ID or password/);
    await wrong.close();
  });
});
