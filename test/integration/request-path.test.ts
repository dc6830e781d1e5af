// The request path at its edges, over real loopback sockets: nothing runs behind a closing answer, the
// idle timeout never cuts off a pending answer and ignores wall-clock steps, HEAD answers never carry a
// body, a store's unknown failure is answered the same whether it is synchronous or not, and a
// pipelined `Expect: 100-continue` gets its 100 when its turn comes.

import { execFileSync } from 'node:child_process';
import { request as httpRequest, Agent, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import { NO_EVENTS, type EndOutcome, type ServerEvents } from '../../services/server/events.js';
import { exchange, openSocket, sleep, startServer, type InProcessServer } from '../support/net.js';
import { pino } from 'pino';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { useLocalEtcd } from '../support/etcd.js';
import { ScriptedStore } from '../support/scripted-store.js';

const H = 'Host: 127.0.0.1\r\n';
const req = (method: string, target: string, body = '', extra = '') => `${method} ${target} HTTP/1.1\r\n${H}${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** Counts what the server reports, to tell whether a request was evaluated at all. */
function countingEvents(): ServerEvents & { ends: EndOutcome[]; done: number } {
  const counts = { ends: [] as EndOutcome[], done: 0 };
  return Object.assign(counts, NO_EVENTS, {
    endAttempt: (outcome: EndOutcome) => void counts.ends.push(outcome),
    requestDone: () => void counts.done++,
  });
}

const servers: InProcessServer[] = [];
async function start(options: Parameters<typeof startServer>[0] = {}): Promise<InProcessServer> {
  const server = await startServer({ token: 'the-right-token', ...options });
  servers.push(server);
  return server;
}
afterEach(async () => {
  vi.restoreAllMocks();
  for (const server of servers.splice(0)) await server.close();
});

/** Every byte the server sends until it closes (or `waitMs` passes). */
async function readAll(socket: Socket, waitMs = 3000): Promise<{ text: string; closed: boolean }> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), waitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  return { text: Buffer.concat(chunks).toString('latin1'), closed };
}

describe('after an answer that closes the connection, nothing pipelined behind it is parsed, run or counted', () => {
  it('a refused END: the POST, the PUT and the further END guesses behind it are not applied and not counted', async () => {
    const events = countingEvents();
    const store = new ScriptedStore();
    const server = await start({ store, events });
    const guesses = Array.from({ length: 20 }, (_, i) => req('END', '/', '', `Authorization: Bearer guess-${i}\r\n`)).join('');
    const x = await exchange(server.port, req('END', '/', '', 'Authorization: Bearer wrong\r\n') + req('POST', '/create', 'x: 1') + req('PUT', '/kv/y', '2') + guesses, 30, { waitMs: 2000 });
    expect(x.responses.map((r) => r.status)).toEqual([403]);
    expect(x.closed).toBe(true);
    expect(store.memory.get('x')).toBeUndefined();
    expect(store.memory.get('y')).toBeUndefined();
    expect(events.ends).toEqual(['bad-token']);
    expect(events.done).toBe(1);
  });

  it('an asynchronous store: the refused END behind a pending write still stops what follows it', async () => {
    const store = new ScriptedStore({ delayMs: 50 });
    const server = await start({ store });
    const x = await exchange(server.port, req('PUT', '/kv/a', '1') + req('END', '/', '', 'Authorization: Bearer wrong\r\n') + req('PUT', '/kv/b', '2'), 3, { waitMs: 2000 });
    expect(x.responses.map((r) => r.status)).toEqual([200, 403]);
    expect(x.closed).toBe(true);
    await sleep(200); // longer than the store takes for a write it was given
    expect(store.memory.get('a')).toBe('1');
    expect(store.memory.get('b')).toBeUndefined();
  });

  it('an asynchronous store failure (500, closing): the PUT behind it is not applied', async () => {
    const store = new ScriptedStore({ delayMs: 20, explodeOn: 'boom' });
    const server = await start({ store });
    const x = await exchange(server.port, req('PUT', '/kv/boom', '1') + req('PUT', '/kv/after', '2'), 2, { waitMs: 2000 });
    expect(x.responses.map((r) => r.status)).toEqual([500]);
    expect(x.closed).toBe(true);
    await sleep(100);
    expect(store.memory.get('after')).toBeUndefined();
  });

  it('Connection: close and a parse error stop the pipeline where they are', async () => {
    const store = new ScriptedStore();
    const server = await start({ store });
    const a = await exchange(server.port, req('GET', '/kv/a', '', 'Connection: close\r\n') + req('PUT', '/kv/c', '3'), 2, { waitMs: 2000 });
    expect(a.responses.map((r) => r.status)).toEqual([404]);
    expect(a.closed).toBe(true);
    const b = await exchange(server.port, req('PUT', '/kv/d', '4') + 'NOT A REQUEST\r\n\r\n' + req('PUT', '/kv/e', '5'), 3, { waitMs: 2000 });
    expect(b.responses.map((r) => r.status)).toEqual([200, 400]);
    expect(b.closed).toBe(true);
    expect([store.memory.get('c'), store.memory.get('d'), store.memory.get('e')]).toEqual([undefined, '4', undefined]);
  });
});

describe('timeouts', () => {
  it('the idle timeout does not fire while the store has not answered: the late answer arrives, then idleness counts', async () => {
    const store = new ScriptedStore({ delayMs: 1200 });
    const server = await start({ store, limits: { idleTimeoutMs: 300 } });
    const socket = await openSocket(server.port);
    const sentAt = performance.now();
    socket.write(req('PUT', '/kv/slow', 'v'));
    const { text, closed } = await readAll(socket, 5000);
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toContain(Texts.createdKey('slow'));
    expect(store.memory.get('slow')).toBe('v');
    // and the idle timeout still closes the connection after the answer
    expect(closed).toBe(true);
    expect(performance.now() - sentAt).toBeGreaterThan(1200);
  });

  it('a wall-clock step forward does not close connections: timeouts run on a monotonic clock', async () => {
    const server = await start({ limits: { idleTimeoutMs: 5000, headersTimeoutMs: 5000 } });
    const socket = await openSocket(server.port);
    let closed = false;
    let received = '';
    socket.on('close', () => (closed = true));
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    socket.write(req('PUT', '/kv/a', '1'));
    await sleep(100);
    const realNow = Date.now.bind(Date);
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + 3_600_000); // NTP stepped the clock an hour ahead
    await sleep(2500); // more than two sweeps
    expect(closed).toBe(false);
    socket.write(req('GET', '/kv/a'));
    await sleep(200);
    expect(received.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
    socket.destroy();
  });
});

/** A request with Node's HTTP client on a one-socket keep-alive agent; resolves with the answer and whether the socket was reused. */
function nodeRequest(agent: Agent, port: number, method: string, path: string): Promise<{ status: number; body: string; reused: boolean; contentLength: string | undefined }> {
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: '127.0.0.1', port, method, path, agent }, (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: r.reusedSocket, contentLength: res.headers['content-length'] }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end();
  });
}

describe('HEAD answers never carry a body', () => {
  it('503 from a store that cannot be reached, on /kv/<key>, / and /kv: the next answer on the same connection reads fine (Node’s client)', async () => {
    const store = new ScriptedStore({ unavailable: true });
    const server = await start({ store });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const path of ['/kv/x', '/', '/kv']) {
        const head = await nodeRequest(agent, server.port, 'HEAD', path);
        expect(head.status, `HEAD ${path}`).toBe(503);
        expect(Number(head.contentLength)).toBe(Buffer.byteLength(Texts.storeUnavailable));
        const next = await nodeRequest(agent, server.port, 'GET', '/kv/x');
        expect(next).toMatchObject({ status: 503, body: Texts.storeUnavailable, reused: true });
      }
    } finally {
      agent.destroy();
    }
  });

  describe('on the etcd store, with etcd stopped (SIGSTOP)', () => {
    const etcd = useLocalEtcd();
    it('HEAD /kv/x, HEAD / and HEAD /kv answer 503 without a body; the next answer on the connection reads fine', async () => {
      const store = new EtcdStore({ endpoints: [etcd().endpoint], prefix: `head-${process.pid}-${Date.now()}/`, timeoutMs: 800, logger: pino({ level: 'silent' }) });
      await store.upsertAll([['x', '1']]);
      const server = await start({ store });
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      // this etcd's process, found by its own data directory: stopped, it answers nothing until its deadline
      const pid = Number(execFileSync('pgrep', ['-f', '--', etcd().dataDir]).toString().trim().split('\n')[0]);
      process.kill(pid, 'SIGSTOP');
      try {
        for (const path of ['/kv/x', '/', '/kv']) {
          const head = await nodeRequest(agent, server.port, 'HEAD', path);
          expect(head.status, `HEAD ${path}`).toBe(503);
          expect(head.body).toBe('');
          const next = await nodeRequest(agent, server.port, 'GET', '/kv/x');
          expect(next.status).toBe(503);
          expect(next.reused).toBe(true);
        }
      } finally {
        process.kill(pid, 'SIGCONT');
        agent.destroy();
      }
    }, 30_000);
  });

  it('414 for a HEAD whose target is too long: the head, and not one byte more', async () => {
    const server = await start();
    const socket = await openSocket(server.port);
    socket.write(`HEAD /kv/${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n`);
    const { text, closed } = await readAll(socket);
    expect(closed).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 414 /);
    expect(text.indexOf('\r\n\r\n')).toBe(text.length - 4);
    expect(Number(/Content-Length: (\d+)/.exec(text)?.[1])).toBeGreaterThan(0);
  });

  it('500 for a HEAD whose store throws: no body either', async () => {
    const store = new ScriptedStore({ unavailable: true });
    const server = await start({ store });
    // an unknown failure from a read: the listing throws something that is not a store error
    store.listing = () => {
      throw new Error('disk on fire');
    };
    const socket = await openSocket(server.port);
    socket.write(`HEAD / HTTP/1.1\r\n${H}\r\n`);
    const { text, closed } = await readAll(socket);
    expect(closed).toBe(true);
    expect(text).toMatch(/^HTTP\/1\.1 500 /);
    expect(text.indexOf('\r\n\r\n')).toBe(text.length - 4);
  });
});

describe('a store’s unknown failure', () => {
  it('thrown synchronously: answered 500 and close, after the answers queued before it, in order', async () => {
    const store = new ScriptedStore({ explodeOn: 'boom' });
    store.memory.upsertAll([['a', '1']]);
    const server = await start({ store });
    const x = await exchange(server.port, req('GET', '/kv/a') + req('PUT', '/kv/b', '2') + req('PUT', '/kv/boom', '!') + req('PUT', '/kv/c', '3'), 4, { waitMs: 2000 });
    expect(x.responses.map((r) => [r.status, r.body])).toEqual([
      [200, '1'],
      [200, Texts.createdKey('b')],
      [500, 'Internal error'],
    ]);
    expect(x.responses[2]!.headers).toContainEqual(['connection', 'close']);
    expect(x.closed).toBe(true);
    expect(store.memory.get('c')).toBeUndefined();
    expect(server.logs.some((l) => l.msg === 'request failed' && String(l.err).includes('disk on fire'))).toBe(true);
  });
});

describe('Expect: 100-continue behind another request', () => {
  for (const delayMs of [0, 30]) {
    it(`gets its 100 Continue right after the answer before it (${delayMs === 0 ? 'synchronous' : 'asynchronous'} store)`, async () => {
      const store = new ScriptedStore({ delayMs });
      const server = await start({ store });
      const socket = await openSocket(server.port);
      let received = '';
      socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
      socket.write(req('PUT', '/kv/a', '1') + `PUT /kv/b HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 1\r\n\r\n`);
      const deadline = performance.now() + 3000;
      while (!received.includes('100 Continue') && performance.now() < deadline) await sleep(10);
      expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(received.endsWith(Texts.createdKey('a') + 'HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
      socket.write('2');
      while (!received.includes(Texts.createdKey('b')) && performance.now() < deadline) await sleep(10);
      expect(store.memory.get('b')).toBe('2');
      socket.destroy();
    });
  }
});
