// The SQLite store: the Store contract (test/support/store-contract.ts) on real database files, and
// the server run with it as a real process — TCPKV_STORE=sqlite, data kept across a restart, a file
// another server holds refused at start, and its settings checked before anything opens; on a Node
// without node:sqlite (22.12, or any with --no-experimental-sqlite), the start-up refusal naming
// TCPKV_STORE. Where this Node has no node:sqlite, only that refusal is checked.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { SqliteStore, sqliteDriver } from '../../services/server/store/sqlite-driver.js';
import type { Store, StoreLimits } from '../../services/server/store/store.js';
import { useChildServers } from '../support/child-servers.js';
import { exchange, SERVER_BIN, spawnServer } from '../support/net.js';
import { runStoreContract } from '../support/store-contract.js';
import { useTempDirs } from '../support/temp-dirs.js';

const quiet = pino({ level: 'silent' });
const moduleName = 'node:sqlite';
const hasSqlite = await import(moduleName).then(
  () => true,
  () => false,
);
/** The server's own lines (Node 22 adds an ExperimentalWarning for node:sqlite on stderr). */
const ownLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('tcpkv-server:')).join('\n');
const tempDir = useTempDirs();
const track = useChildServers();

const files = new WeakMap<Store, { file: string; limits: StoreLimits }>();
const LOOSE: StoreLimits = { maxKeys: 1_000_000, maxDataBytes: 1_000_000_000 };
async function openSqlite(file: string, limits: StoreLimits = LOOSE): Promise<Store> {
  const store = await sqliteDriver.open({ sqliteFile: file }, { limits, logger: quiet });
  files.set(store, { file, limits });
  return store;
}

describe('tcpkv-server on a Node without node:sqlite', () => {
  it('TCPKV_STORE=sqlite stops the start with one line naming TCPKV_STORE, exit 2', () => {
    const r = spawnSync(process.execPath, ['--no-experimental-sqlite', SERVER_BIN, '--port', '0'], { env: { PATH: process.env.PATH ?? '', TCPKV_STORE: 'sqlite', TCPKV_SQLITE_FILE: join(tempDir('tcpkv-sqlite-'), 'data.db') }, encoding: 'utf8', timeout: 10_000 });
    expect([r.status, ownLines(r.stderr)]).toEqual([2, `tcpkv-server: invalid configuration: TCPKV_STORE=sqlite needs Node's built-in node:sqlite (Node 22.13 or later); this is Node ${process.version}`]);
  });
});

if (hasSqlite) runStoreContract('SqliteStore', {
  open: (limits?: StoreLimits) => openSqlite(join(tempDir('tcpkv-sqlite-'), 'data.db'), limits),
  reopen: (closed: Store) => {
    const { file, limits } = files.get(closed)!;
    return openSqlite(file, limits);
  },
  dispose: (store: Store) => store.close(),
});

describe.runIf(hasSqlite)('SqliteStore', () => {
  it('is what the driver opens, with its kind and limits; a file a store holds is refused to a second one, naming the setting', async () => {
    const file = join(tempDir('tcpkv-sqlite-'), 'data.db');
    const store = await openSqlite(file, { maxKeys: 5, maxDataBytes: 100 });
    try {
      expect(store).toBeInstanceOf(SqliteStore);
      expect([store.kind, store.limits]).toEqual(['sqlite', { maxKeys: 5, maxDataBytes: 100 }]);
      await expect(openSqlite(file)).rejects.toMatchObject({ name: 'ConfigError', setting: 'TCPKV_SQLITE_FILE', message: `TCPKV_SQLITE_FILE=${file}: the file is in use by another process` });
    } finally {
      await store.close();
    }
  });

  it('a file in a directory that does not exist: a ConfigError naming TCPKV_SQLITE_FILE', async () => {
    const file = join(tempDir('tcpkv-sqlite-'), 'no', 'such', 'data.db');
    await expect(openSqlite(file)).rejects.toMatchObject({ name: 'ConfigError', setting: 'TCPKV_SQLITE_FILE' });
  });

  it('a page with a prefix compares bytes: a prefix of a multi-byte key finds it, one byte short of a character does not match it', async () => {
    const store = await openSqlite(join(tempDir('tcpkv-sqlite-'), 'data.db'));
    try {
      await store.createAll([['한국', '1'], ['한글', '2'], ['x', '3']]);
      expect((await store.page({ prefix: '한', after: undefined, limit: 10 })).items).toEqual([['한국', '1'], ['한글', '2']]);
      expect((await store.page({ prefix: '한글', after: undefined, limit: 10 })).items).toEqual([['한글', '2']]);
    } finally {
      await store.close();
    }
  });
});

describe.runIf(hasSqlite)('tcpkv-server with TCPKV_STORE=sqlite', () => {
  it('serves writes, keeps them across a restart, and names the store in its start-up line', async () => {
    const file = join(tempDir('tcpkv-sqlite-'), 'data.db');
    const env = { TCPKV_STORE: 'sqlite', TCPKV_SQLITE_FILE: file };
    const first = track(await spawnServer(env));
    expect(first.output()).toMatch(/"store":"sqlite"/);
    const put = await exchange(first.port, 'PUT /kv/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello', 1);
    expect(put.responses[0]!.status).toBeLessThan(300);
    // a second server on the same file is refused at start: one line, exit 2
    const second = spawnSync(process.execPath, [SERVER_BIN, '--port', '0'], { env: { PATH: process.env.PATH ?? '', TCPKV_LOG_LEVEL: 'silent', ...env }, encoding: 'utf8', timeout: 10_000 });
    expect([second.status, ownLines(second.stderr)]).toEqual([2, `tcpkv-server: invalid configuration: TCPKV_SQLITE_FILE=${file}: the file is in use by another process`]);
    first.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const again = track(await spawnServer(env));
    const get = await exchange(again.port, 'GET /kv/a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1);
    expect([get.responses[0]!.status, get.responses[0]!.body]).toEqual([200, 'hello']);
  });

  it('an answered write survives the server killed at once (SIGKILL)', async () => {
    const file = join(tempDir('tcpkv-sqlite-'), 'data.db');
    const env = { TCPKV_SQLITE_FILE: file };
    const first = track(await spawnServer(env));
    const writes = Array.from({ length: 20 }, (_, i) => `PUT /kv/k${i} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\nv${i % 10}`);
    const put = await exchange(first.port, writes.join(''), writes.length);
    expect(put.responses.map((r) => r.status).every((s) => s < 300)).toBe(true);
    first.kill('SIGKILL');
    await first.exited;
    const again = track(await spawnServer(env));
    const reads = Array.from({ length: 20 }, (_, i) => `GET /kv/k${i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const got = await exchange(again.port, reads.join(''), reads.length);
    expect(got.responses.map((r) => [r.status, r.body])).toEqual(Array.from({ length: 20 }, (_, i) => [200, `v${i % 10}`]));
  });

  it('TCPKV_STORE=sqlite without TCPKV_SQLITE_FILE: one line naming both, exit 2', () => {
    const r = spawnSync(process.execPath, [SERVER_BIN, '--port', '0'], { env: { PATH: process.env.PATH ?? '', TCPKV_STORE: 'sqlite' }, encoding: 'utf8', timeout: 10_000 });
    expect([r.status, r.stderr.trim()]).toEqual([2, 'tcpkv-server: invalid configuration: TCPKV_STORE=sqlite needs TCPKV_SQLITE_FILE: the database file']);
  });
});
