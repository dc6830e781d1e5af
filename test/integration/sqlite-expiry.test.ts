// Keys that expire, in the SQLite store, on real database files: a key with a TTL is read until its
// expiry and never from then on (get, getVersioned, page, listing), whether or not the sweeper has
// removed it yet; its removal is a write of its own (a revision, a deletion in `changes`); a write
// without a TTL clears it; conditions see an expired key as absent; an expiry that passed while the
// file was closed is never served and its removal is recorded once the store opens; a file from
// before expiry is given the column in place. Then 20,000 keys expiring over 9 s: the lateness of
// their removal and how long a GET waits meanwhile.

import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../services/server/store/change-feed.js';
import { sqliteDriver } from '../../services/server/store/sqlite-driver.js';
import { UNCONDITIONAL, type Store, type StoreLimits } from '../../services/server/store/store.js';
import { useChildServers } from '../support/child-servers.js';
import { exchange, runClient, spawnServer } from '../support/net.js';
import { sleep } from '../support/sleep.js';
import { useTempDirs } from '../support/temp-dirs.js';

/** The part of node:sqlite the fixtures use (the @types/node of the oldest supported Node lacks it). */
interface Database {
  exec(sql: string): void;
  prepare(sql: string): { run(...params: unknown[]): unknown; all(...params: unknown[]): Record<string, unknown>[] };
  close(): void;
}
const moduleName = 'node:sqlite';
const sqlite = (await import(moduleName).catch(() => undefined)) as { DatabaseSync: new (file: string) => Database } | undefined;

const tempDir = useTempDirs();
const track = useChildServers();
const LOOSE: StoreLimits = { maxKeys: 1_000_000, maxDataBytes: 1_000_000_000 };
const FEED = { maxChanges: 1_000_000, maxBytes: 256 * 1024 * 1024 };
const newFile = () => join(tempDir('tcpkv-sqlite-expiry-'), 'data.db');

function open(file: string, logger = pino({ level: 'silent' })): Promise<Store> {
  return sqliteDriver.open({ sqliteFile: file }, { limits: LOOSE, logger, feedLimits: FEED });
}

function logged(): { logger: ReturnType<typeof pino>; lines: { level: number; msg: string; keys?: number }[] } {
  const lines: { level: number; msg: string; keys?: number }[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }), done()) });
  return { logger: pino({ level: 'info' }, sink), lines };
}

/** Rows of a query on a closed store's file, read with node:sqlite itself. */
function query(file: string, sql: string): Record<string, unknown>[] {
  const db = new sqlite!.DatabaseSync(file);
  try {
    return db.prepare(sql).all().map((row) => ({ ...row }));
  } finally {
    db.close();
  }
}

/** Every change recorded after `since` (none gone). */
function changesAfter(store: Store, since: number): Change[] {
  const read = store.changes.read(since, '', 1_000_000, 1e12);
  if ('gone' in read) throw new Error(`changes after ${since} are gone (oldest ${read.gone})`);
  return [...read.changes];
}

/** Waits until `done()` holds, looking every few ms, at most `timeoutMs`. */
async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(5);
  }
}

/** What each read shows of `key` now. */
async function seen(store: Store, key: string) {
  const page = await store.page({ prefix: '', after: undefined, limit: 1000 });
  const listing = await store.listing();
  const text = Buffer.concat(listing.slices).toString('utf8');
  return {
    get: (await store.get(key)) !== undefined,
    getVersioned: (await store.getVersioned(key)) !== undefined,
    page: page.items.some(([k]) => k === key),
    listing: text.split('\n').some((line) => line.startsWith(`${key}:`)),
  };
}
const ALL_SEEN = { get: true, getVersioned: true, page: true, listing: true };
const NONE_SEEN = { get: false, getVersioned: false, page: false, listing: false };

describe.runIf(sqlite !== undefined)('SqliteStore: keys that expire', () => {
  it('a key with a TTL is read until its expiry, never from then on, and its removal is a revision of its own with a deletion in changes', async () => {
    const store = await open(newFile());
    try {
      await store.upsertAll([['stay', '1']]);
      const before = Date.now();
      const put = await store.putKey('k', 'v', UNCONDITIONAL, 1000);
      const after = Date.now();
      expect(put).toEqual({ ok: true, version: 2, created: true });
      const versioned = (await store.getVersioned('k'))!;
      expect(versioned).toMatchObject({ value: 'v', version: 2 });
      expect(versioned.expiresAt).toBeGreaterThanOrEqual(before + 1000);
      expect(versioned.expiresAt).toBeLessThanOrEqual(after + 1000);
      const expiresAt = versioned.expiresAt!;
      // every read, every few ms, up to the expiry and past it: seen by all before, by none after
      let firstGone = Infinity;
      while (Date.now() < expiresAt + 300) {
        const t0 = Date.now();
        const s = await seen(store, 'k');
        const t1 = Date.now();
        if (t1 < expiresAt) expect(s).toEqual(ALL_SEEN);
        if (t0 >= expiresAt) expect(s).toEqual(NONE_SEEN);
        if (s.get) expect(t0).toBeLessThan(expiresAt);
        else firstGone = Math.min(firstGone, t0);
        await sleep(3);
      }
      // polled every few ms: gone soon after its expiry
      expect(firstGone).toBeLessThan(expiresAt + 100);
      // the sweeper removed it: one revision, a deletion in changes
      await until(() => store.revision === 3, 2000);
      expect(changesAfter(store, 2)).toEqual([{ key: 'k', value: undefined, version: 3 }]);
      expect(store.usage()).toEqual({ keys: 1, dataBytes: 'stay'.length + 1 });
      expect(await store.get('stay')).toBe('1');
    } finally {
      await store.close();
    }
  });

  it('a later write without a TTL (putKey, upsertAll) clears the expiry; putKey with another TTL moves it; createAll of an expired key creates it without one', async () => {
    const store = await open(newFile());
    try {
      await store.putKey('a', '1', UNCONDITIONAL, 1000);
      await store.putKey('b', '1', UNCONDITIONAL, 1000);
      await store.putKey('c', '1', UNCONDITIONAL, 1000);
      await store.putKey('d', '1', UNCONDITIONAL, 1000);
      expect(await store.putKey('a', '2', UNCONDITIONAL)).toEqual({ ok: true, version: 5, created: false });
      await store.upsertAll([['b', '2']]);
      await store.putKey('c', '2', UNCONDITIONAL, 5000);
      expect(await store.getVersioned('a')).toEqual({ value: '2', version: 5 });
      expect(await store.getVersioned('b')).toEqual({ value: '2', version: 6 });
      expect((await store.getVersioned('c'))?.expiresAt).toBeGreaterThan(Date.now() + 3000);
      await sleep(1300);
      expect([await store.get('a'), await store.get('b'), await store.get('c'), await store.get('d')]).toEqual(['2', '2', '2', undefined]);
      // d expired; created again it is new and has no TTL
      expect(await store.createAll([['d', '3']])).toEqual({ ok: true });
      const d = await store.getVersioned('d');
      expect(d).toEqual({ value: '3', version: store.revision });
      await sleep(100);
      // d's expiry took one revision (8) before the create (9), whichever of the sweeper or the create came first
      expect(changesAfter(store, 7)).toEqual([
        { key: 'd', value: undefined, version: 8 },
        { key: 'd', value: '3', version: 9 },
      ]);
    } finally {
      await store.close();
    }
  });

  it('conditions: a TTL’d key has a version to match; an expired key is absent to every condition; its place is a cursor like a deleted key’s', async () => {
    const store = await open(newFile());
    try {
      await store.createAll([['first', '0']]);
      expect(await store.putKey('lock', 'me', { kind: 'absent' }, 1000)).toEqual({ ok: true, version: 2, created: true });
      await store.createAll([['last', '0']]);
      expect(await store.putKey('lock', 'you', { kind: 'absent' }, 1000)).toEqual({ ok: false, current: 2 });
      // renewed with If-Match: a new version and a new expiry
      expect(await store.putKey('lock', 'me', { kind: 'versions', versions: [2] }, 1000)).toEqual({ ok: true, version: 4, created: false });
      await sleep(1200);
      expect(await store.putKey('lock', 'me', { kind: 'versions', versions: [4] }, 1000)).toEqual({ ok: false, current: undefined });
      expect(await store.putKey('lock', 'me', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
      expect(await store.deleteKey('lock', { kind: 'exists' })).toEqual({ ok: false, current: undefined });
      expect(await store.delete('lock')).toBe(false);
      // the page after the expired key goes on after the place it stood
      expect(await store.page({ prefix: '', after: 'lock', limit: 10 })).toEqual({ items: [['last', '0']], versions: [3], next: undefined });
      const taken = await store.putKey('lock', 'you', { kind: 'absent' }, 1000);
      expect(taken).toEqual({ ok: true, version: store.revision, created: true });
      // created again: at the end, after `last`
      expect((await store.page({ prefix: '', after: undefined, limit: 10 })).items).toEqual([['first', '0'], ['last', '0'], ['lock', 'you']]);
    } finally {
      await store.close();
    }
  });

  it('across a restart: a key whose expiry passed while the file was closed is never served, and its removal is recorded at open; a later one keeps its expiry', async () => {
    const file = newFile();
    const store = await open(file);
    await store.putKey('short', '1', UNCONDITIONAL, 1000);
    await store.putKey('long', '2', UNCONDITIONAL, 60_000);
    await store.putKey('never', '3', UNCONDITIONAL);
    await store.putKey('again', '4', UNCONDITIONAL, 1000);
    const longExpiry = (await store.getVersioned('long'))!.expiresAt;
    await store.close();
    await sleep(1200);
    // the closed file still holds the row: only the open store removes it
    expect(query(file, 'SELECT key FROM entries ORDER BY seq').map((r) => r.key)).toEqual(['short', 'long', 'never', 'again']);
    const again = await open(file);
    try {
      expect(again.revision).toBe(4);
      // before any sweep has run (no turn of the event loop since open)
      expect(await seen(again, 'short')).toEqual(NONE_SEEN);
      expect(await again.getVersioned('long')).toEqual({ value: '2', version: 2, expiresAt: longExpiry });
      // a write of an expired key before the sweep: the expiry first, a revision of its own
      expect(await again.createAll([['again', '5']])).toEqual({ ok: true });
      expect(again.revision).toBe(6);
      await until(() => again.revision === 7, 2000);
      expect(changesAfter(again, 4)).toEqual([
        { key: 'again', value: undefined, version: 5 },
        { key: 'again', value: '5', version: 6 },
        { key: 'short', value: undefined, version: 7 },
      ]);
      expect(again.usage()?.keys).toBe(3);
    } finally {
      await again.close();
    }
    expect(query(file, 'SELECT key FROM entries ORDER BY seq').map((r) => r.key)).toEqual(['long', 'never', 'again']);
    expect(query(file, 'SELECT revision FROM meta')).toEqual([{ revision: 7 }]);
  });

  it('a file from before expiry is given expires_at and its index in place, logged once; its keys never expire', async () => {
    const file = newFile();
    const db = new sqlite!.DatabaseSync(file);
    db.exec(`
      CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL, bytes INTEGER NOT NULL, version INTEGER NOT NULL);
      CREATE TABLE graves (n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL);
      CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
      INSERT INTO entries (key, value, bytes, version) VALUES ('a', '1', 2, 1), ('b', '2', 2, 3);
      INSERT INTO meta (id, revision) VALUES (1, 4);
    `);
    db.close();
    const { logger, lines } = logged();
    const store = await open(file, logger);
    try {
      expect(lines.filter((l) => /expires_at added/.test(l.msg))).toMatchObject([{ level: 40, keys: 2 }]);
      expect(await store.getVersioned('b')).toEqual({ value: '2', version: 3 });
      expect(store.revision).toBe(4);
      expect(await store.putKey('a', '9', UNCONDITIONAL, 1000)).toEqual({ ok: true, version: 5, created: false });
    } finally {
      await store.close();
    }
    expect(query(file, `SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'entries_expiry'`)).toEqual([{ name: 'entries_expiry' }]);
    const again = logged();
    await (await open(file, again.logger)).close();
    expect(again.lines.filter((l) => /expires_at added/.test(l.msg))).toEqual([]);
  });

  it('20,000 keys expiring over 9 s: removed on time (lateness p50/p99 printed) while a GET every 10 ms waits no longer than the big-data bounds', async () => {
    const KEYS = 20_000;
    const file = newFile();
    // the keys are written straight into the file (one transaction: 20,000 putKeys would be 20,000
    // synchronous commits); the store opened on it finds them as a restart would
    const start = Date.now() + 1500;
    const expiry = new Map<string, number>();
    const db = new sqlite!.DatabaseSync(file);
    db.exec(`
      CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL, bytes INTEGER NOT NULL, version INTEGER NOT NULL, expires_at INTEGER);
      CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
      INSERT INTO meta (id, revision) VALUES (1, 1);
      BEGIN;
    `);
    const insert = db.prepare('INSERT INTO entries (key, value, bytes, version, expires_at) VALUES (?, ?, ?, 1, ?)');
    for (let i = 0; i < KEYS; i++) {
      const key = `key${String(i).padStart(5, '0')}`;
      // spread over 1..10 s after `start`, in an order unlike insertion order
      const at = start + 1000 + ((i * 7919) % KEYS) * (9000 / KEYS);
      expiry.set(key, Math.round(at));
      insert.run(key, 'x'.repeat(32), key.length + 32, Math.round(at));
    }
    insert.run('kept', 'v', 5, null);
    db.exec('COMMIT');
    db.close();
    const store = await open(file);
    try {
      expect(store.usage()?.keys).toBe(KEYS + 1);
      const lateness: number[] = [];
      const waits: number[] = [];
      let since = store.revision!;
      let probing = true;
      // the GET probe: a get every 10 ms, how long after it was due it had its answer
      const probe = (async () => {
        let due = performance.now() + 10;
        while (probing) {
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
          expect(await store.get('kept')).toBe('v');
          waits.push(performance.now() - due);
          due += 10;
          if (due < performance.now()) due = performance.now() + 10;
        }
      })();
      const deadline = start + 10_000 + 5000;
      while (lateness.length < KEYS && Date.now() < deadline) {
        await store.changes.changed(500);
        const now = Date.now();
        for (const change of changesAfter(store, since)) {
          expect(change.value).toBeUndefined();
          lateness.push(now - expiry.get(change.key)!);
          since = change.version;
        }
      }
      probing = false;
      await probe;
      expect(lateness.length).toBe(KEYS);
      const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
      const at = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;
      const late = sorted(lateness);
      const wait = sorted(waits);
      console.log(
        `SQLite expiry: ${KEYS} keys over 9 s in ${store.revision! - 1} sweeps; lateness (removal − expiry) p50 ${at(late, 0.5)} ms, p99 ${at(late, 0.99)} ms, max ${late[late.length - 1]} ms; ` +
          `GET probe: ${wait.length} samples, p50 ${at(wait, 0.5).toFixed(1)} ms, p99 ${at(wait, 0.99).toFixed(1)} ms, max ${wait[wait.length - 1]!.toFixed(1)} ms`,
      );
      expect(late[0]).toBeGreaterThanOrEqual(0);
      expect(at(late, 0.99)).toBeLessThan(250);
      expect(at(wait, 0.99)).toBeLessThan(50);
      expect(wait[wait.length - 1]).toBeLessThan(100);
      expect(store.usage()).toEqual({ keys: 1, dataBytes: 5 });
      expect((await store.page({ prefix: '', after: undefined, limit: 10 })).items).toEqual([['kept', 'v']]);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('over HTTP: the client puts with --ttl, GET and HEAD answer Tcpkv-Expires-At, a TTL out of range is the server\'s 400, and from its expiry the key is 404', async () => {
    const server = track(await spawnServer({ TCPKV_STORE: 'sqlite', TCPKV_SQLITE_FILE: newFile() }));
    const at = `127.0.0.1:${server.port}`;
    const before = Date.now();
    const put = await runClient(['put', '--server', at, 'session', 'alive', '--ttl', '1']);
    expect([put.code, put.stdout]).toEqual([0, '200 OK\nCreated session\n']);
    const read = await exchange(server.port, 'GET /kv/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nHEAD /kv/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 2, { heads: [false, true] });
    const expiresAt = read.responses.map((r) => r.headers.find(([name]) => name === 'tcpkv-expires-at')?.[1]);
    expect(expiresAt[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(expiresAt[1]).toBe(expiresAt[0]);
    const when = Date.parse(expiresAt[0]!);
    expect(when).toBeGreaterThanOrEqual(before + 1000);
    expect(when).toBeLessThan(Date.now() + 1000);
    const tooLong = await runClient(['put', '--server', at, 'x', 'y', '--ttl', '31536001']);
    expect([tooLong.code, tooLong.stdout.replace(/^400 [^\n]*\n/, '400\n')]).toEqual([1, '400\nttl must be a whole number of seconds from 1 to 31536000.\n']);
    const notNumber = await runClient(['put', '--server', at, 'x', 'y', '--ttl', '1.5']);
    expect([notNumber.code, notNumber.stderr]).toEqual([2, 'tcpkv-client: --ttl takes a whole number of seconds, not "1.5"\n']);
    await sleep(Math.max(0, when - Date.now()) + 50);
    const gone = await exchange(server.port, 'GET /kv/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1);
    expect(gone.responses[0]!.status).toBe(404);
    // a later put without --ttl: no expiry
    await runClient(['put', '--server', at, 'session', 'again']);
    const again = await exchange(server.port, 'GET /kv/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1);
    expect([again.responses[0]!.status, again.responses[0]!.headers.some(([name]) => name === 'tcpkv-expires-at')]).toEqual([200, false]);
  });
});
