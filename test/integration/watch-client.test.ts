// The client's watch across failures (services/client/watch.ts, and the CLI's `watch` built on it):
// two real servers over one store stand for two replicas; the watcher's server shuts down mid-watch
// and the watch goes on from the next server at the last revision it saw — nothing missed, nothing
// repeated; a server answering 503 is gone past the same way. A 410 ends it with the server's answer.

import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { watchChanges, WatchGoneError, type WatchChange } from '../../services/client/watch.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import { UNCONDITIONAL } from '../../services/server/store/store.js';
import { CLIENT_BIN, ROOT, startServer, type InProcessServer } from '../support/net.js';

const servers: InProcessServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.server.shutdown('case done', { keepStore: true });
});

async function twoServersOneStore(store = new MemoryStore()): Promise<[InProcessServer, InProcessServer, MemoryStore]> {
  const a = await startServer({ store });
  const b = await startServer({ store });
  servers.push(a, b);
  return [a, b, store];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('watchChanges (library)', () => {
  it('goes on from the next server at the last revision seen when its server shuts down', async () => {
    const [a, b, store] = await twoServersOneStore();
    const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: a.port }, { host: '127.0.0.1', port: b.port }], dialect: 'standard', timeoutMs: 2000 });
    const start = store.revision;
    const seen: WatchChange[] = [];
    const retries: string[] = [];
    const stop = new AbortController();
    const watching = (async () => {
      for await (const change of watchChanges(client, { prefix: 'w/', since: start, waitMs: 5000, retryDelayMs: 20, signal: stop.signal, onRetry: (r) => retries.push(r) })) {
        seen.push(change);
        if (seen.length === 6) stop.abort();
      }
    })();
    const written: number[] = [];
    for (let i = 0; i < 3; i++) written.push(((await store.putKey(`w/${i}`, `v${i}`, UNCONDITIONAL)) as { version: number }).version);
    while (seen.length < 3) await sleep(10);
    // the watcher's server goes away while it waits in a long poll
    await a.server.shutdown('replica gone', { keepStore: true });
    servers.splice(servers.indexOf(a), 1);
    written.push(((await store.putKey('w/3', 'v3', UNCONDITIONAL)) as { version: number }).version);
    written.push(((await store.deleteKey('w/0', UNCONDITIONAL)) as { version: number }).version);
    await store.putKey('other', 'not watched', UNCONDITIONAL);
    written.push(((await store.putKey('w/4', 'v4', UNCONDITIONAL)) as { version: number }).version);
    await watching;
    expect(seen.map((c) => c.version)).toEqual(written);
    expect(seen.map((c) => (c.deleted ? `-${c.key}` : `${c.key}=${c.value}`))).toEqual(['w/0=v0', 'w/1=v1', 'w/2=v2', 'w/3=v3', '-w/0', 'w/4=v4']);
    // a shut-down server refuses connections: the client moves on by itself, nothing to report
    expect(retries).toEqual([]);
  });

  it('goes past a server that answers 503 (a replica without its store) to the next one', async () => {
    const [b, , store] = await twoServersOneStore();
    // stands for a replica that cannot reach its store: every request answered 503
    const unavailable = createServer((socket) => {
      socket.once('data', () => socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => unavailable.listen(0, '127.0.0.1', resolve));
    try {
      const port = (unavailable.address() as AddressInfo).port;
      const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port }, { host: '127.0.0.1', port: b.port }], dialect: 'standard', timeoutMs: 2000 });
      const since = store.revision;
      const version = ((await store.putKey('k', 'v', UNCONDITIONAL)) as { version: number }).version;
      const retries: string[] = [];
      const watch = watchChanges(client, { prefix: '', since, waitMs: 1000, retryDelayMs: 10, onRetry: (r) => retries.push(r) });
      expect((await watch.next()).value).toEqual({ key: 'k', value: 'v', version });
      await watch.return();
      expect(retries).toEqual(['503 Service Unavailable']);
    } finally {
      unavailable.close();
    }
  });

  it('ends with WatchGoneError naming the oldest revision when the history asked for is gone', async () => {
    const store = new MemoryStore({ feedLimits: { maxChanges: 4, maxBytes: 1 << 20 } });
    const [a] = await twoServersOneStore(store);
    const start = store.revision;
    for (let i = 0; i < 10; i++) await store.putKey(`k${i}`, 'v', UNCONDITIONAL);
    const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: a.port }], dialect: 'standard', timeoutMs: 2000 });
    const watch = watchChanges(client, { prefix: '', since: start, waitMs: 100 });
    const error = await watch.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WatchGoneError);
    expect((error as WatchGoneError).oldest).toBeGreaterThan(start);
  });
});

describe('tcpkv-client watch (CLI)', () => {
  it('prints every change once across a server that shuts down, then stops at --count', async () => {
    const [a, b, store] = await twoServersOneStore();
    const since = store.revision;
    const proc = spawn(process.execPath, [CLIENT_BIN, '--server', `127.0.0.1:${a.port},127.0.0.1:${b.port}`, 'watch', 'w/', '--since', String(since), '--wait', '5', '--count', '4'], {
      env: { PATH: process.env.PATH ?? '' },
      cwd: ROOT + 'test',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('close', resolve));
    const v1 = ((await store.putKey('w/a', '1', UNCONDITIONAL)) as { version: number }).version;
    const v2 = ((await store.putKey('w/b', '2', UNCONDITIONAL)) as { version: number }).version;
    for (let waited = 0; stdout.split('\n').length < 3 && waited < 10_000; waited += 20) await sleep(20);
    await a.server.shutdown('replica gone', { keepStore: true });
    servers.splice(servers.indexOf(a), 1);
    const v3 = ((await store.deleteKey('w/a', UNCONDITIONAL)) as { version: number }).version;
    const v4 = ((await store.putKey('w/c', '3', UNCONDITIONAL)) as { version: number }).version;
    expect(await exited).toBe(0);
    expect(stdout).toBe(`${v1} PUT w/a: 1\n${v2} PUT w/b: 2\n${v3} DELETE w/a\n${v4} PUT w/c: 3\n`);
    expect(stderr).toBe('');
  });
});
