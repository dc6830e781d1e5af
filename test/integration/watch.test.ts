// Watches over real sockets, on every store kept in this process (memory, log, SQLite; etcd's are in
// etcd-watch.test.ts): the long poll (an answer as soon as a write lands, nothing missed or repeated
// when going on from each answer's revision, versions equal to the ETags, prefixes, wait=0, 410 once
// the history is dropped) and the stream (NDJSON lines in a chunked body; a reader that stops reading
// falls behind and is told the history is gone, the server holding no more than its history and the
// socket's buffer), and both ending at once when the server shuts down.

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import type { ChangeFeedLimits } from '../../services/server/store/change-feed.js';
import { LogStore } from '../../services/server/store/log-store.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import type { Store } from '../../services/server/store/store.js';
import { openSocket, startServer, type InProcessServer } from '../support/net.js';

interface WatchAnswer {
  changes: { key: string; value?: string; deleted?: true; version: number }[];
  revision: number;
}

const stores: { name: string; open(feedLimits?: ChangeFeedLimits): Promise<{ store: Store; dispose(): Promise<void> }> }[] = [
  { name: 'memory', open: async (feedLimits) => ({ store: new MemoryStore({ ...(feedLimits ? { feedLimits } : {}) }), dispose: async () => {} }) },
  {
    name: 'log',
    open: async (feedLimits) => {
      const dir = mkdtempSync(join(tmpdir(), 'tcpkv-watch-'));
      const store = await LogStore.open({ dir, fsync: 'no', compactFactor: 2, compactMinBytes: 1 << 20, repair: 'off', logger: pino({ level: 'silent' }), ...(feedLimits ? { feedLimits } : {}) });
      return { store, dispose: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
];

const servers: InProcessServer[] = [];
const disposals: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of disposals.splice(0)) await d();
});

async function serve(open: (typeof stores)[number]['open'], feedLimits?: ChangeFeedLimits, watchMaxWaitMs?: number) {
  const { store, dispose } = await open(feedLimits);
  disposals.push(dispose);
  const server = await startServer({ store, ...(watchMaxWaitMs !== undefined ? { watchMaxWaitMs } : {}) });
  servers.push(server);
  const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'standard', timeoutMs: 10_000 });
  const send = async (method: string, target: string, body = '', headers?: [string, string][]) => {
    const answer = await client.send({ method, path: '', target, body, ...(headers ? { headers } : {}), waitMs: 60_000 });
    if (answer.kind !== 'response') throw new Error('closed');
    return answer.response;
  };
  const watch = async (query: string): Promise<WatchAnswer> => {
    const r = await send('GET', `/kv?watch&${query}`);
    expect(r.status, r.body).toBe(200);
    return JSON.parse(r.body) as WatchAnswer;
  };
  return { server, store, send, watch };
}

/** Reads a chunked NDJSON stream: its lines as they come, and whether the body ended. */
function streamReader(socket: import('node:net').Socket) {
  let raw = Buffer.alloc(0);
  let headEnd = -1;
  let at = 0;
  let ended = false;
  const lines: string[] = [];
  let text = '';
  const listeners: (() => void)[] = [];
  socket.on('data', (chunk: Buffer) => {
    raw = Buffer.concat([raw, chunk]);
    if (headEnd < 0) {
      headEnd = raw.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      at = headEnd + 4;
    }
    for (;;) {
      const eol = raw.indexOf('\r\n', at);
      if (eol < 0) break;
      const size = parseInt(raw.toString('latin1', at, eol), 16);
      if (raw.length < eol + 2 + size + 2) break;
      if (size === 0) ended = true;
      text += raw.toString('utf8', eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    const parts = text.split('\n');
    text = parts.pop()!;
    lines.push(...parts);
    for (const l of listeners.splice(0)) l();
  });
  return {
    head: () => raw.toString('latin1', 0, Math.max(0, headEnd)),
    lines,
    get ended() {
      return ended;
    },
    async until(check: () => boolean, ms = 5000): Promise<void> {
      const deadline = performance.now() + ms;
      while (!check()) {
        if (performance.now() > deadline) throw new Error(`stream: condition not met within ${ms} ms; lines: ${lines.slice(-5).join(' | ')}`);
        await Promise.race([new Promise<void>((r) => listeners.push(r)), new Promise((r) => setTimeout(r, 50))]);
      }
    },
  };
}

describe.each(stores)('watch, $name store', ({ open }) => {
  it('a long poll answers as soon as a write lands, with the change and its version', async () => {
    const { send, watch } = await serve(open);
    const start = await watch('wait=0');
    const started = performance.now();
    const pending = watch(`since=${start.revision}&wait=20`);
    await new Promise((r) => setTimeout(r, 200));
    const put = await send('PUT', '/kv/a', '1');
    const answer = await pending;
    expect(performance.now() - started).toBeLessThan(5000);
    expect(answer.changes).toEqual([{ key: 'a', value: '1', version: Number(/"(\d+)"/.exec(put.headers.find(([n]) => n === 'etag')![1])![1]) }]);
    expect(answer.revision).toBe(answer.changes[0]!.version);
  });

  it('going on from each answer’s revision gives every change once, in order, under the prefix; versions are the ETags', async () => {
    const { send, watch } = await serve(open);
    const from = (await watch('wait=0')).revision;
    await send('POST', '/create', 'p/a: 1&p/b: 2&q: 3');
    await send('PUT', '/update', 'p/a: 11&p/c: 4');
    await send('PUT', '/kv/p/b', 'x');
    const etag = (await send('GET', '/kv/p/b')).headers.find(([n]) => n === 'etag')![1];
    expect((await send('PUT', '/kv/p/b', 'y', [['If-Match', etag]])).status).toBe(200);
    expect((await send('PUT', '/kv/p/b', 'z', [['If-Match', etag]])).status).toBe(412);
    expect((await send('DELETE', '/kv/p/a')).status).toBe(200);
    await send('PUT', '/kv/q', '33');
    const seen: WatchAnswer['changes'] = [];
    let since = from;
    for (let i = 0; i < 20; i++) {
      const a = await watch(`prefix=p/&since=${since}&limit=2&wait=0`);
      seen.push(...a.changes);
      if (a.changes.length === 0) break;
      since = a.revision;
    }
    expect(seen.map(({ key, value, deleted }) => [key, value ?? (deleted ? '<deleted>' : '?')])).toEqual([
      ['p/a', '1'],
      ['p/b', '2'],
      ['p/a', '11'],
      ['p/c', '4'],
      ['p/b', 'x'],
      ['p/b', 'y'],
      ['p/a', '<deleted>'],
    ]);
    // one write, one version; versions grow
    expect(seen[0]!.version).toBe(seen[1]!.version);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.version).toBeGreaterThanOrEqual(seen[i - 1]!.version);
    expect(`"${seen[5]!.version}"`).toBe((await send('GET', '/kv/p/b')).headers.find(([n]) => n === 'etag')![1]);
    // the key written last is outside the prefix: the watch's revision passed it anyway
    expect((await watch(`prefix=p/&since=${since}&wait=0`)).changes).toEqual([]);
  });

  it('a since older than the history kept is 410 naming the oldest; from there it is served', async () => {
    const { send, watch } = await serve(open, { maxChanges: 3, maxBytes: 1_000_000 });
    const from = (await watch('wait=0')).revision;
    for (let i = 0; i < 6; i++) await send('PUT', `/kv/k${i}`, String(i));
    const gone = await send('GET', `/kv?watch&since=${from}&wait=0`);
    expect(gone.status).toBe(410);
    const body = JSON.parse(gone.body) as { oldest: number; error: string };
    expect(body.oldest).toBeGreaterThan(from);
    expect(body.error).toMatch(/list the keys again/);
    const rest = await watch(`since=${body.oldest}&wait=0`);
    expect(rest.changes.map((c) => c.key)).toEqual(['k3', 'k4', 'k5']);
  });

  it('bad parameters are 400; a watch takes GET only', async () => {
    const { send } = await serve(open);
    expect((await send('GET', '/kv?watch&since=-1')).status).toBe(400);
    expect((await send('GET', '/kv?watch&wait=soon')).status).toBe(400);
    expect((await send('GET', '/kv?watch&limit=0')).status).toBe(400);
    const put = await send('PUT', '/kv?watch');
    expect(put.status).toBe(405);
    expect(put.headers.find(([n]) => n === 'allow')?.[1]).toBe('GET');
  });

  it('the stream: a chunked NDJSON body, a line per change and the revision after each batch', async () => {
    const { server, send, watch } = await serve(open);
    const from = (await watch('wait=0')).revision;
    const socket = await openSocket(server.port);
    const reader = streamReader(socket);
    socket.write(`GET /kv?watch&stream&prefix=s/&since=${from} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await send('PUT', '/kv/s/1', 'one');
    await send('PUT', '/kv/other', 'x');
    await send('DELETE', '/kv/s/1');
    await reader.until(() => reader.lines.filter((l) => l.includes('"key"')).length >= 2);
    expect(reader.head()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(reader.head()).toMatch(/Transfer-Encoding: chunked/);
    expect(reader.head()).toMatch(/Content-Type: application\/x-ndjson/);
    const changes = reader.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => 'key' in l);
    expect(changes.map((c) => [c.key, c.value ?? 'deleted'])).toEqual([
      ['s/1', 'one'],
      ['s/1', 'deleted'],
    ]);
    expect(reader.lines.some((l) => /^\{"revision":\d+\}$/.test(l))).toBe(true);
    socket.destroy();
  });

  it('a stream whose reader stops reading falls behind; once its history is dropped it gets the error line and the end', async () => {
    const { server, send } = await serve(open, { maxChanges: 50, maxBytes: 10_000_000 });
    const socket = await openSocket(server.port);
    const reader = streamReader(socket);
    socket.write(`GET /kv?watch&stream&since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await reader.until(() => reader.head() !== '');
    socket.pause();
    // ~40 MB of changes through a history of 50: the paused reader's socket fills, the stream stops
    // taking from the feed, and the feed drops what it has not taken
    const value = 'v'.repeat(100_000);
    for (let i = 0; i < 400; i++) await send('PUT', `/kv/big${i % 20}`, value);
    socket.resume();
    await reader.until(() => reader.ended, 20_000);
    const last = JSON.parse(reader.lines[reader.lines.length - 1]!) as { code?: string; oldest?: number };
    expect(last.code).toBe('TCPKV_ERR_WATCH_GONE');
    expect(last.oldest).toBeGreaterThan(0);
    // it got far fewer than the 400 changes: the rest were never held for it
    expect(reader.lines.length).toBeLessThan(400);
    socket.destroy();
  });

  it('waiting long polls and streams answer and end at once when the server shuts down', async () => {
    const { server, watch } = await serve(open);
    const socket = await openSocket(server.port);
    const reader = streamReader(socket);
    socket.write(`GET /kv?watch&stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await reader.until(() => reader.head() !== '');
    const poll = watch('wait=50');
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    const closedSocket = once(socket, 'close');
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    expect((await poll).changes).toEqual([]);
    await reader.until(() => reader.ended, 3000);
    expect(performance.now() - started).toBeLessThan(1500);
    await closedSocket;
  });

  it('a long poll waits no longer than TCPKV_WATCH_MAX_WAIT_MS, whatever its wait', async () => {
    const { watch } = await serve(open, undefined, 300);
    const started = performance.now();
    const answer = await watch('wait=30');
    const took = performance.now() - started;
    expect(answer.changes).toEqual([]);
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(5000);
  });
});
