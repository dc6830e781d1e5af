// What operators read in a real server's log: a request id (`<connection>.<sequence>`) in every line
// about a request, an access line with duration and bytes when TCPKV_ACCESS_LOG=on, and a refused
// END logged at warn but at most once a minute per peer — with the connection closed after each
// refusal, so token guessing costs a connection per try.

import { describe, expect, it } from 'vitest';
import { useChildServers } from '../support/child-servers.js';
import { exchange, sleep, spawnServer, type ChildServer } from '../support/net.js';

const track = useChildServers();

async function start(env: Record<string, string>): Promise<ChildServer> {
  const server = await spawnServer(env);
  track(server);
  return server;
}

const req = (method: string, target: string, body = '', headers = '') =>
  `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}${body !== '' ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`;

/** The JSON log lines the server wrote whose msg is `msg`. */
function lines(server: ChildServer, msg: string): Record<string, unknown>[] {
  return server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

async function until<T>(get: () => T, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (ok(v) || Date.now() > deadline) return v;
    await sleep(20);
  }
}

describe('request logging', () => {
  it('TCPKV_ACCESS_LOG=on: one info line per answered request with its id, duration and bytes; ids count per connection', async () => {
    const server = await start({ TCPKV_ACCESS_LOG: 'on' });
    const first = await exchange(server.port, [req('PUT', '/kv/a', 'hello'), req('GET', '/kv/a'), req('GET', '/kv/missing')], 3);
    expect(first.responses.map((r) => r.status)).toEqual([200, 200, 404]);
    await exchange(server.port, req('GET', '/'), 1);
    const access = await until(() => lines(server, 'request'), (l) => l.length >= 4);
    expect(access).toHaveLength(4);
    const [put, get, missing, listing] = access as Record<string, unknown>[] & { length: 4 };
    expect(put).toMatchObject({ level: 30, method: 'PUT', target: '/kv/a', status: 200, bytesIn: 5 });
    expect(get).toMatchObject({ method: 'GET', target: '/kv/a', status: 200, bytesIn: 0 });
    expect(missing).toMatchObject({ status: 404 });
    for (const line of access) {
      expect(typeof line.ms).toBe('number');
      expect(line.ms as number).toBeGreaterThanOrEqual(0);
      expect(line.bytesOut as number).toBeGreaterThan(0);
    }
    // the same connection, requests 1, 2, 3; the next connection has another number, request 1
    const conn = String(put!.req).split('.')[0];
    expect([put!.req, get!.req, missing!.req]).toEqual([`${conn}.1`, `${conn}.2`, `${conn}.3`]);
    expect(String(listing!.req)).toMatch(/^\d+\.1$/);
    expect(String(listing!.req)).not.toBe(`${conn}.1`);
  });

  it('no access lines by default (level info, TCPKV_ACCESS_LOG unset)', async () => {
    const server = await start({});
    await exchange(server.port, [req('GET', '/'), req('GET', '/kv/x')], 2);
    await sleep(200);
    expect(lines(server, 'request')).toHaveLength(0);
  });

  it('a limit hit names the request it stopped', async () => {
    const server = await start({ TCPKV_MAX_BODY_BYTES: '16' });
    const x = await exchange(server.port, [req('GET', '/'), req('PUT', '/kv/big', 'x'.repeat(100))], 2);
    expect(x.responses.map((r) => r.status)).toEqual([200, 413]);
    const hit = await until(() => server.output().split('\n').filter((l) => l.includes('TCPKV_ERR_BODY_TOO_LARGE')), (l) => l.length > 0);
    expect(hit).toHaveLength(1);
    expect(JSON.parse(hit[0]!)).toMatchObject({ level: 40, req: expect.stringMatching(/^\d+\.2$/) });
  });

  it('a refused END closes the connection, so pipelined guesses after it are never read', async () => {
    const server = await start({ TCPKV_SHUTDOWN_TOKEN: 'the-right-token' });
    const guesses = Array.from({ length: 50 }, (_, i) => req('END', '/', '', `Authorization: Bearer guess-${i}\r\n`));
    const x = await exchange(server.port, guesses, 50, { waitMs: 3000 });
    expect(x.responses.map((r) => r.status)).toEqual([403]);
    expect(x.closed).toBe(true);
  });

  it('refused ENDs are logged at warn once a minute per peer, with the number left unlogged', async () => {
    const server = await start({ TCPKV_SHUTDOWN_TOKEN: 'the-right-token' });
    for (let i = 0; i < 20; i++) {
      const x = await exchange(server.port, req('END', '/', '', `Authorization: Bearer guess-${i}\r\n`), 1);
      expect(x.responses[0]?.status).toBe(403);
    }
    // the server still serves, and was not stopped by any of it
    expect((await exchange(server.port, req('GET', '/'), 1)).responses[0]?.status).toBe(200);
    const refused = lines(server, 'END refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ level: 40, peer: '127.0.0.1', outcome: 'bad-token', suppressedSinceLastLine: 0, req: expect.stringMatching(/^\d+\.1$/) });
  });
});
