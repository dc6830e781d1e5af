// DELETE and the store limits in the log store, on real files: deletes are logged records that replay
// in order and that compaction drops; a batch over the limits is refused op by op with nothing of the
// refused op applied or logged; a log loaded over the limits starts, read-only for growth.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LOG_NAME, LogStore, type LogStoreOptions } from '../../services/server/store/log-store.js';
import { StoreFullError } from '../../services/server/store/store.js';
import { exchange, spawnServer } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';

const tempDir = useTempDirs();

const freshDir = () => tempDir('tcpkv-ops-');
const openStore = (dir: string, options: Partial<LogStoreOptions> = {}) =>
  LogStore.open({ dir, fsync: 'always', compactFactor: 2, compactMinBytes: 1 << 30, repair: 'off', logger: pino({ level: 'silent' }), ...options });
const all = (store: LogStore) => store.page({ prefix: '', after: undefined, limit: 1000 }).items;

describe('DELETE in the log', () => {
  it('a delete is durable, replays in order with the writes around it, and compaction drops the key', async () => {
    const dir = freshDir();
    let store = await openStore(dir);
    try {
      await store.createAll([['a', '1'], ['b', '2'], ['c', '3']]);
      expect(await store.delete('b')).toBe(true);
      expect(await store.delete('b')).toBe(false);
      expect(await store.delete('never')).toBe(false);
      await store.upsertAll([['b', 'again']]); // a new key after its delete: at the end of the order
      expect(await store.delete('a')).toBe(true);
    } finally {
      await store.close();
    }
    store = await openStore(dir);
    try {
      expect(all(store)).toEqual([['c', '3'], ['b', 'again']]);
      await store.compact();
      expect(readFileSync(join(dir, LOG_NAME)).includes('"a"')).toBe(false); // the deleted key is gone from the file
    } finally {
      await store.close();
    }
    store = await openStore(dir);
    try {
      expect(all(store)).toEqual([['c', '3'], ['b', 'again']]);
    } finally {
      await store.close();
    }
  });

  it('DELETE /kv/<key> over a real server survives kill -9', async () => {
    const dir = freshDir();
    const env = { TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'always' };
    const request = (port: number, method: string, path: string, body = '') =>
      exchange(port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, 1).then((e) => e.responses[0]!);
    let server = await spawnServer(env);
    try {
      expect((await request(server.port, 'POST', '/create', 'x: 1&y: 2')).status).toBe(200);
      expect((await request(server.port, 'DELETE', '/kv/x')).status).toBe(200);
    } finally {
      server.kill('SIGKILL');
      await server.exited;
    }
    server = await spawnServer(env);
    try {
      expect((await request(server.port, 'GET', '/kv/x')).status).toBe(404);
      expect((await request(server.port, 'GET', '/kv/y')).body).toBe('2');
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('store limits in the log store', () => {
  it('a batch is checked op by op against memory plus the batch: the op over the limit gets 507, the others apply', async () => {
    const dir = freshDir();
    const store = await openStore(dir, { limits: { maxKeys: 3, maxDataBytes: 1000 } });
    try {
      await store.createAll([['a', '1']]);
      // in one batch: two new keys fit (3 in all), the third does not; a delete then makes room again
      const answers = await Promise.allSettled([store.createAll([['b', '2']]), store.upsertAll([['c', '3']]), store.createAll([['d', '4']]), store.delete('a'), store.createAll([['e', '5']])]);
      expect(answers.map((a) => a.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect((answers[2] as PromiseRejectedResult).reason).toBeInstanceOf(StoreFullError);
      await expect(store.upsertAll([['big', 'x'.repeat(1000)]])).rejects.toThrow(/TCPKV_MAX/);
      expect(all(store)).toEqual([['b', '2'], ['c', '3'], ['e', '5']]);
    } finally {
      await store.close();
    }
    const again = await openStore(dir);
    try {
      expect(all(again)).toEqual([['b', '2'], ['c', '3'], ['e', '5']]); // nothing refused was logged
    } finally {
      await again.close();
    }
  });

  it('a log loaded over the limits starts: growth is refused (507), deletes and shrinking updates work', async () => {
    const dir = freshDir();
    let store = await openStore(dir);
    await store.createAll(Array.from({ length: 10 }, (_, i) => [`k${i}`, 'value'] as const));
    await store.close();
    store = await openStore(dir, { limits: { maxKeys: 5, maxDataBytes: 1_000_000 } });
    try {
      expect(store.usage().keys).toBe(10);
      await expect(store.createAll([['new', 'v']])).rejects.toBeInstanceOf(StoreFullError);
      await store.upsertAll([['k0', 'v']]);
      expect(await store.delete('k1')).toBe(true);
      expect(store.get('k0')).toBe('v');
      expect(store.usage().keys).toBe(9);
    } finally {
      await store.close();
    }
  });
});

describe('store events', () => {
  it('each fsync and each compaction is reported (for the metrics)', async () => {
    const seen: string[] = [];
    const events = {
      logFsync: (seconds: number, ok: boolean) => void seen.push(`fsync ${ok} ${seconds >= 0}`),
      logCompaction: (seconds: number, ok: boolean) => void seen.push(`compaction ${ok} ${seconds >= 0}`),
      etcdCall: () => undefined,
      etcdBreaker: () => undefined,
    };
    const store = await openStore(freshDir(), { events });
    try {
      await store.upsertAll([['a', '1']]);
      await store.compact();
    } finally {
      await store.close();
    }
    expect(seen).toEqual(['fsync true true', 'compaction true true', 'fsync true true']); // the last at close
  });
});
