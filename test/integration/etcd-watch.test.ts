// Watches in the etcd store, against a real etcd on loopback: each replica serves watches from its own
// watch-fed copy, so a write through one replica reaches the watchers of another with etcd's revision
// as its version (the ETag any replica answers); a watcher moving from one replica to another with its
// last revision misses nothing and sees nothing twice; a replica that starts afresh starts its history
// at its first list (older `since`: 410, and from its revision on it serves).

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { startEtcd, type LocalEtcd } from '../support/etcd.js';
import { startServer, type InProcessServer } from '../support/net.js';

interface WatchAnswer {
  changes: { key: string; value?: string; deleted?: true; version: number }[];
  revision: number;
}

const quiet = pino({ level: 'silent' });
let etcd: LocalEtcd;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await etcd?.destroy();
});

/** A replica: an etcd store on `prefix` behind its own server on loopback. */
async function replica(prefix: string): Promise<{ server: InProcessServer; store: EtcdStore; send: (method: string, target: string, body?: string) => Promise<{ status: number; body: string; etag: string | undefined }>; close(): Promise<void> }> {
  const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs: 3000, logger: quiet });
  await store.start();
  for (let i = 0; (await store.readiness()) !== undefined; i++) {
    if (i > 1000) throw new Error('replica not ready');
    await new Promise((r) => setTimeout(r, 20));
  }
  const server = await startServer({ store });
  const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'standard', timeoutMs: 10_000 });
  const send = async (method: string, target: string, body = '') => {
    const answer = await client.send({ method, path: '', target, body, waitMs: 30_000 });
    if (answer.kind !== 'response') throw new Error('closed');
    return { status: answer.response.status, body: answer.response.body, etag: answer.response.headers.find(([n]) => n === 'etag')?.[1] };
  };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.server.shutdown('test done', { keepStore: true });
    await store.close();
  };
  closers.push(close);
  return { server, store, send, close };
}

describe('etcd store: watches from each replica’s copy', () => {
  it('a write through one replica reaches a watcher of another, with etcd’s revision as its version', async () => {
    const prefix = `watch${process.pid}-a/`;
    const a = await replica(prefix);
    const b = await replica(prefix);
    const from = (JSON.parse((await b.send('GET', '/kv?watch&wait=0')).body) as WatchAnswer).revision;
    const pending = b.send('GET', `/kv?watch&since=${from}&wait=20`);
    await new Promise((r) => setTimeout(r, 200));
    const put = await a.send('PUT', '/kv/x', '1');
    const answer = JSON.parse((await pending).body) as WatchAnswer;
    expect(answer.changes).toEqual([{ key: 'x', value: '1', version: Number(/"(\d+)"/.exec(put.etag!)![1]) }]);
    expect((await b.send('GET', '/kv/x')).etag).toBe(put.etag);
  });

  it('a watcher moving between replicas with its last revision misses nothing and repeats nothing', async () => {
    const prefix = `watch${process.pid}-b/`;
    const replicas = [await replica(prefix), await replica(prefix), await replica(prefix)];
    let since = (JSON.parse((await replicas[0]!.send('GET', '/kv?watch&wait=0')).body) as WatchAnswer).revision;
    const written: [string, string | undefined][] = [];
    const seen: [string, string | undefined][] = [];
    for (let round = 0; round < 12; round++) {
      // writes through every replica, several writes per round, a delete now and then
      for (let i = 0; i < 3; i++) {
        const key = `k${(round * 3 + i) % 7}`;
        const through = replicas[(round + i) % 3]!;
        if ((round + i) % 5 === 4) {
          if ((await through.send('DELETE', `/kv/${key}`)).status === 200) written.push([key, undefined]);
        } else {
          const value = `r${round}i${i}`;
          expect((await through.send('PUT', `/kv/${key}`, value)).status).toBe(200);
          written.push([key, value]);
        }
      }
      // the watcher asks a different replica each round, from the last revision it was given
      const answer = JSON.parse((await replicas[round % 3]!.send('GET', `/kv?watch&since=${since}&wait=5`)).body) as WatchAnswer;
      for (const c of answer.changes) seen.push([c.key, c.value]);
      since = answer.revision;
    }
    // what is still to come after the last round
    for (let i = 0; i < 10 && seen.length < written.length; i++) {
      const answer = JSON.parse((await replicas[i % 3]!.send('GET', `/kv?watch&since=${since}&wait=5`)).body) as WatchAnswer;
      for (const c of answer.changes) seen.push([c.key, c.value]);
      since = answer.revision;
    }
    expect(seen).toEqual(written);
  });

  it('a replica started afresh serves the history from its first list on; an older since is 410', async () => {
    const prefix = `watch${process.pid}-c/`;
    const a = await replica(prefix);
    const before = (JSON.parse((await a.send('GET', '/kv?watch&wait=0')).body) as WatchAnswer).revision;
    await a.send('PUT', '/kv/old', '1');
    const fresh = await replica(prefix);
    const gone = await fresh.send('GET', `/kv?watch&since=${before}&wait=0`);
    expect(gone.status).toBe(410);
    const oldest = (JSON.parse(gone.body) as { oldest: number }).oldest;
    await a.send('PUT', '/kv/new', '2');
    const answer = JSON.parse((await fresh.send('GET', `/kv?watch&since=${oldest}&wait=5`)).body) as WatchAnswer;
    expect(answer.changes.map((c) => c.key)).toEqual(['new']);
  });
});
