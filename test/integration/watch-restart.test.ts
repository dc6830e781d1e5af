// Watches across a restart of the log store. The store itself: the history a watcher is served after
// a restart is the one the last process had, as far as the replayed tail of the log reaches (after
// the last compaction's snapshot, within the history's bounds). A real server process: a watcher
// (the client library's watchChanges) records every change while writers put, delete and let keys
// expire, through a graceful stop and a SIGKILL of the server; it reconnects by itself and, compared
// with the writers' acknowledgements and a final listing, has missed and repeated nothing.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { watchChanges, WatchGoneError, type WatchChange } from '../../services/client/watch.js';
import { type Change, type ChangeFeedLimits } from '../../services/server/store/change-feed.js';
import { LogStore } from '../../services/server/store/log-store.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import { UNCONDITIONAL } from '../../services/server/store/store.js';
import { useChildServers } from '../support/child-servers.js';
import { freePort, spawnServer, startServer, tinyServer, type ChildServer } from '../support/net.js';
import { sleep } from '../support/sleep.js';
import { useTempDirs } from '../support/temp-dirs.js';
import { ackedVersion, listAll, watchProblems, type AckedWrite } from '../support/watch-history.js';

const tempDir = useTempDirs();
const track = useChildServers();

const ALL = Number.MAX_SAFE_INTEGER;

function openLog(dir: string, feedLimits: ChangeFeedLimits = { maxChanges: 100_000, maxBytes: 64 << 20 }) {
  return LogStore.open({ dir, fsync: 'no', compactFactor: 1000, compactMinBytes: 1 << 30, repair: 'off', logger: pino({ level: 'silent' }), feedLimits });
}

/** Everything the store's history serves after `since` (or where it reaches back to). */
function history(store: LogStore, since: number): readonly Change[] | { gone: number } {
  const read = store.changes.read(since, '', ALL, ALL);
  return 'gone' in read ? { gone: read.gone } : read.changes;
}

/** Writes of every kind the log records: SET (one key, several, one repeated), DELETE, SET_EXPIRING. */
async function someWrites(store: LogStore, tag: string): Promise<void> {
  await store.upsertAll([[`${tag}/a`, '1']]);
  await store.upsertAll([
    [`${tag}/b`, '2'],
    [`${tag}/c`, '3'],
    [`${tag}/b`, '2bis'],
  ]);
  await store.createAll([[`${tag}/d`, '4']]);
  await store.putKey(`${tag}/a`, '1bis', UNCONDITIONAL);
  await store.deleteKey(`${tag}/c`, UNCONDITIONAL);
  await store.delete(`${tag}/d`);
  await store.putKey(`${tag}/ttl`, 'soon gone', UNCONDITIONAL, 1000);
  await store.putKey(`${tag}/e`, 'é ✓', { kind: 'absent' });
}

describe('log store: a restart keeps the watch history', () => {
  it('serves every change the replayed log holds, from any revision it covers, including expiries before and after the restart', async () => {
    const dir = tempDir('tcpkv-watch-restart-');
    let store = await openLog(dir);
    await someWrites(store, 'one');
    // the sweeper expires one/ttl while the store runs (an EXPIRE record)
    const deadline = Date.now() + 10_000;
    while (store.changes.revision < 9 && Date.now() < deadline) await sleep(50);
    await someWrites(store, 'two');
    const before = history(store, 0);
    expect(Array.isArray(before) && before.some((c) => c.key === 'one/ttl' && c.value === undefined)).toBe(true);
    const revision = store.changes.revision;
    await store.close();
    // two/ttl expires while the store is closed: the next open expires it first, as a change
    await sleep(1200);

    store = await openLog(dir);
    try {
      expect(store.changes.revision).toBe(revision + 1);
      expect(history(store, revision)).toEqual([{ key: 'two/ttl', value: undefined, version: revision + 1 }]);
      const after = history(store, 0);
      expect(after).toEqual([...(before as Change[]), { key: 'two/ttl', value: undefined, version: revision + 1 }]);
      // from every revision on: exactly the changes after it
      for (let since = 0; since <= revision + 1; since++) expect(history(store, since)).toEqual((after as Change[]).filter((c) => c.version > since));
    } finally {
      await store.close();
    }
  });

  it.each([5, 100, 1000])('keeps what its bounds allow (%i changes), as the running store did: a watcher from before the oldest is told the oldest', async (maxChanges) => {
    const dir = tempDir('tcpkv-watch-restart-');
    const limits = { maxChanges, maxBytes: 1 << 20 };
    let store = await openLog(dir, limits);
    const writes = 300;
    for (let i = 0; i < writes; i++) await store.upsertAll([[`k${i % 3}`, `v${i}`]]);
    const oldest = store.changes.oldest;
    const kept = history(store, oldest);
    expect(oldest).toBe(Math.max(0, writes - maxChanges));
    await store.close();

    store = await openLog(dir, limits);
    try {
      expect(store.changes.oldest).toBe(oldest);
      expect(history(store, oldest)).toEqual(kept);
      expect(history(store, oldest - 1)).toEqual({ gone: oldest });
    } finally {
      await store.close();
    }
  });

  it('after a compaction the history starts at the snapshot: the changes written since it come back', async () => {
    const dir = tempDir('tcpkv-watch-restart-');
    let store = await openLog(dir);
    for (let i = 0; i < 10; i++) await store.upsertAll([[`k${i % 4}`, `v${i}`]]);
    await store.compact();
    const snapshotRevision = store.changes.revision;
    await store.putKey('k1', 'after', UNCONDITIONAL);
    await store.deleteKey('k2', UNCONDITIONAL);
    const tail = history(store, snapshotRevision);
    expect(tail).toHaveLength(2);
    await store.close();

    store = await openLog(dir);
    try {
      expect(store.changes.oldest).toBe(snapshotRevision);
      expect(history(store, snapshotRevision)).toEqual(tail);
      expect(history(store, snapshotRevision - 1)).toEqual({ gone: snapshotRevision });
    } finally {
      await store.close();
    }
  });
});

describe('a watcher through restarts of a log-store server', () => {
  it('reconnects by itself after a graceful stop and a SIGKILL, and misses and repeats nothing', async () => {
    const dir = tempDir('tcpkv-watch-restart-');
    const port = await freePort();
    // fsync=always: every write acknowledged before the SIGKILL is in the log the next process replays
    const start = async (): Promise<ChildServer> => {
      const server = track(await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'always' }, ['--port', String(port)]));
      expect(server.port).toBe(port);
      return server;
    };
    let server = await start();
    const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port }], dialect: 'standard', timeoutMs: 5000 });

    const seen: WatchChange[] = [];
    const retries: string[] = [];
    const stopWatch = new AbortController();
    let watchFailed: unknown;
    const watching = (async () => {
      for await (const change of watchChanges(client, { prefix: '', since: 0, waitMs: 1000, retryDelayMs: 100, signal: stopWatch.signal, onRetry: (r) => retries.push(r) })) seen.push(change);
    })().catch((error: unknown) => (watchFailed = error));

    const acked: AckedWrite[] = [];
    let writing = true;
    const writer = async (id: number) => {
      for (let seq = 0; writing; seq++) {
        const n = (id * 7 + seq) % 12;
        const roll = (seq * 5 + id) % 10;
        try {
          if (roll < 2) {
            const key = `k${n}`;
            const answer = await client.send({ method: 'DELETE', path: '', target: `/kv/${key}` });
            const version = ackedVersion(answer);
            if (answer.kind === 'response' && answer.response.status === 200 && version !== undefined) acked.push({ key, version, value: undefined });
          } else {
            // some keys expire a second after their last write: the expiry is a change too
            const key = roll === 2 ? `t${n % 4}` : `k${n}`;
            const value = `w${id}-${seq}`;
            const answer = await client.send({ method: 'PUT', path: '', target: `/kv/${key}${roll === 2 ? '?ttl=1' : ''}`, body: value });
            const version = ackedVersion(answer);
            if (answer.kind === 'response' && answer.response.status === 200 && version !== undefined) acked.push({ key, version, value });
          }
        } catch {
          // the server is down: this write was not acknowledged (it may or may not have been applied)
          await sleep(50);
        }
      }
    };
    const writers = [0, 1, 2].map((id) => writer(id));

    await sleep(1500);
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    await sleep(300);
    server = await start();
    await sleep(1500);
    server.kill('SIGKILL');
    await server.exited;
    await sleep(300);
    await start();
    await sleep(1500);
    writing = false;
    await Promise.all(writers);

    // the keys with a TTL expire (their deletions are changes), then one last write marks the end
    await sleep(2500);
    const marker = await client.send({ method: 'PUT', path: '', target: '/kv/zz-end', body: 'end' });
    const end = ackedVersion(marker)!;
    acked.push({ key: 'zz-end', version: end, value: 'end' });
    const deadline = Date.now() + 20_000;
    while (watchFailed === undefined && !seen.some((c) => c.version >= end) && Date.now() < deadline) await sleep(50);
    stopWatch.abort();
    await watching;

    // a 410 here is the history lost in the restart (the watcher would have to list again)
    expect(watchFailed).toBeUndefined();
    const listing = await listAll(client);
    expect(acked.length).toBeGreaterThan(100);
    expect(seen.some((c) => c.key.startsWith('t') && c.deleted === true)).toBe(true);
    expect(retries.length).toBeGreaterThan(0);
    expect(watchProblems(seen, acked, listing)).toEqual([]);
  }, 90_000);
});

describe('a watcher given several servers, one of which no longer has its history', () => {
  /** A server that answers every request 410, as a replica that started after the watcher's revision. */
  const goneServer = () =>
    tinyServer((socket) => {
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const body = JSON.stringify({ error: 'gone', code: 'TCPKV_ERR_WATCH_GONE', oldest: 1000 });
        socket.end(`HTTP/1.1 410 Gone\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      });
    });

  it('asks the next server after a 410, and ends with WatchGoneError only when every one answered it', async () => {
    const gone = await goneServer();
    const other = await goneServer();
    const store = new MemoryStore();
    const server = await startServer({ store });
    try {
      store.putKey('a', '1', UNCONDITIONAL);
      store.putKey('b', '2', UNCONDITIONAL);
      const servers = [gone.port, server.port].map((port) => ({ host: '127.0.0.1', port }));
      const retries: string[] = [];
      const seen: WatchChange[] = [];
      for await (const change of watchChanges(new TcpkvClient({ servers, dialect: 'standard', timeoutMs: 5000 }), { prefix: '', since: 0, waitMs: 0, retryDelayMs: 10, onRetry: (r) => retries.push(r) })) {
        seen.push(change);
        if (seen.length === 2) break;
      }
      expect(seen.map((c) => [c.key, c.version])).toEqual([
        ['a', 1],
        ['b', 2],
      ]);
      expect(retries).toEqual([expect.stringContaining('no longer keeps the changes after revision 0') as unknown]);

      const allGone = [gone.port, other.port].map((port) => ({ host: '127.0.0.1', port }));
      const ending = (async () => {
        for await (const change of watchChanges(new TcpkvClient({ servers: allGone, dialect: 'standard', timeoutMs: 5000 }), { prefix: '', since: 0, waitMs: 0, retryDelayMs: 10 })) seen.push(change);
      })();
      await expect(ending).rejects.toBeInstanceOf(WatchGoneError);
      await expect(ending).rejects.toMatchObject({ oldest: 1000 });
    } finally {
      await server.close();
      gone.close();
      other.close();
    }
  });
});
