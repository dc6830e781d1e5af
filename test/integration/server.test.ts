// The server over real loopback sockets: the seed client's exact bytes, standard HTTP clients,
// pipelining, framing errors and limits, access control, END, and robustness against junk.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildRequest, TcpkvClient } from '../../services/client/client.js';
import { SCENARIO, splitSeedUrl } from '../../services/client/scenario.js';
import { Texts } from '../../services/protocol/texts.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import { runRuleCases } from '../support/run-rule-cases.js';
import { exchange, openSocket, seedExchange, seedRequestBytes, sleep, spawnServer, startServer, type InProcessServer } from '../support/net.js';

const run = promisify(execFile);

runRuleCases('over a real socket', {
  newStore: () => new MemoryStore(),
  async send(store, bytes, head) {
    const server = await startServer({ store });
    try {
      const { responses } = await exchange(server.port, bytes, 1, { heads: [head] });
      return responses[0]!;
    } finally {
      // the store outlives this server: the next request of the same case gets a new server on it
      await server.server.shutdown('case done', { keepStore: true });
    }
  },
});

describe('the seed client’s exact bytes (cases 1–15 of the seed scenario, then END)', () => {
  it('gets the statuses and texts of the seed scenario with one connection and one read per request, and END stops the process with 0', async () => {
    const server = await spawnServer();
    try {
      for (const c of SCENARIO) {
        const { host, path } = splitSeedUrl(c.url, '127.0.0.1');
        const hostPath = path === undefined ? '?/?' : `${host}/${path}`;
        const text = await seedExchange(server.port, seedRequestBytes(c.method, hostPath, c.body));
        if (c.n === 16) {
          expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
          break;
        }
        const status = c.status.seed as number;
        expect(text, `case ${c.n}`).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [A-Z_]+\\r\\n`));
        expect(text).toContain('\r\n\r\n');
        const body = text.slice(text.indexOf('\r\n\r\n') + 4);
        for (const t of c.contains) expect(body, `case ${c.n}`).toContain(t);
      }
      expect(await server.exited).toBe(0);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('tcpkv-client scenario', () => {
  it('exits 0 against tcpkv-server, which then stops', async () => {
    const server = await spawnServer();
    try {
      const { stdout } = await run(process.execPath, ['dist/services/client/cli.js', 'scenario', '--server', `127.0.0.1:${server.port}`]);
      expect(stdout).toContain('16/16 cases passed');
      expect(await server.exited).toBe(0);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('--json reports every case, in the standard dialect too', async () => {
    const server = await spawnServer();
    try {
      const { stdout } = await run(process.execPath, ['dist/services/client/cli.js', 'scenario', '--json', '--dialect', 'standard', '--server', `127.0.0.1:${server.port}`]);
      const report = JSON.parse(stdout) as { passed: number; failed: number; cases: { n: number; ok: boolean }[] };
      expect(report).toMatchObject({ passed: 16, failed: 0 });
      expect(report.cases.map((c) => c.n)).toEqual(SCENARIO.map((c) => c.n));
      expect(await server.exited).toBe(0);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('exits non-zero when a case fails (a server that refuses every host)', async () => {
    const server = await spawnServer({ TCPKV_ALLOWED_HOSTS: 'nobody.example' });
    try {
      await expect(run(process.execPath, ['dist/services/client/cli.js', 'scenario', '--server', `127.0.0.1:${server.port}`])).rejects.toMatchObject({ code: 1 });
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('standard HTTP/1.1 clients', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it('fetch: every route', async () => {
    const base = `http://127.0.0.1:${server.port}`;
    const head = await fetch(`${base}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    const created = await fetch(`${base}/create`, { method: 'POST', body: 'fetch: yes&url: http://x:1/' });
    expect([created.status, await created.text()]).toEqual([200, `fetch:yes\nurl:http://x:1/\n${Texts.postOk}`]);
    const updated = await fetch(`${base}/update`, { method: 'PUT', body: 'fetch: again' });
    expect(await updated.text()).toContain('fetch: yes => again');
    const list = await fetch(`${base}/`);
    expect(list.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await list.text()).toContain('fetch:again');
    const wrong = await fetch(`${base}/create`);
    expect([wrong.status, await wrong.text()]).toEqual([404, Texts.createNeedsPost]);
    const missing = await fetch(`${base}/nowhere`, { method: 'POST', body: 'a: 1' });
    expect(missing.status).toBe(404);
  });

  it('fetch: a streamed (chunked) upload', async () => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('stream'));
        controller.enqueue(new TextEncoder().encode('ed: 1&chunks: 2'));
        controller.close();
      },
    });
    const r = await fetch(`http://127.0.0.1:${server.port}/create`, { method: 'POST', body, duplex: 'half' } as RequestInit);
    expect([r.status, await r.text()]).toEqual([200, `streamed:1\nchunks:2\n${Texts.postOk}`]);
  });

  it('curl: keep-alive across requests, HEAD, chunked upload', async () => {
    const url = `http://127.0.0.1:${server.port}`;
    const { stdout, stderr } = await run('curl', ['-sv', '-X', 'PUT', '--data', 'curl: 1', `${url}/update`, '--next', '-s', `${url}/`, '--next', '-sI', `${url}/`]);
    expect(stdout).toContain('curl: 1');
    expect(stdout).toMatch(/curl:1[\s\S]*HTTP\/1\.1 200 OK\r\n/); // the GET's body, then the HEAD's headers
    expect(stderr).toMatch(/Re-using existing connection|Reusing existing connection/);
    const chunked = await run('curl', ['-s', '-H', 'Transfer-Encoding: chunked', '--data-binary', 'chunky: yes', `${url}/create`]);
    expect(chunked.stdout).toBe(`chunky:yes\n${Texts.postOk}`);
  });

  it("Python's http.client: every route on one keep-alive connection", async () => {
    const script = `
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', ${server.port})
out = []
for method, path, body in [('HEAD','/',None), ('POST','/create','py: 3.11'), ('PUT','/update','py: 3'), ('GET','/',None), ('GET','/create',None), ('PUT','/x','a: 1')]:
    c.request(method, path, body)
    r = c.getresponse()
    text = r.read().decode()
    out.append('%s %d %s' % (method, r.status, text.splitlines()[0] if text else ''))
print(c.sock is not None)
print('\\n'.join(out))
`;
    const { stdout } = await run('python3', ['-c', script]);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('True'); // still connected: keep-alive held
    expect(lines.slice(1)).toEqual(['HEAD 200 ', 'POST 200 py:3.11', 'PUT 200 Update Data as follow:', 'GET 200 The data in DB is as follows.', `GET 404 ${Texts.createNeedsPost}`, `PUT 404 ${Texts.noRoute}`]);
  });

  it('100 pipelined requests sent in one write get 100 answers, in order', async () => {
    let bytes = '';
    for (let i = 0; i < 100; i++) bytes += `POST /create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${`p${i}: ${i}`.length}\r\n\r\np${i}: ${i}`;
    const { responses, closed } = await exchange(server.port, bytes, 100);
    expect(responses).toHaveLength(100);
    responses.forEach((r, i) => expect(r.body).toBe(`p${i}:${i}\n${Texts.postOk}`));
    expect(closed).toBe(false);
  });

  it('a large body (900 KB, under the 1 MiB limit) is read whole, in one request or chunked', async () => {
    const value = 'v'.repeat(900_000);
    const plain = await fetch(`http://127.0.0.1:${server.port}/create`, { method: 'POST', body: `big: ${value}` });
    expect(plain.status).toBe(200);
    const stream = new ReadableStream({
      start(controller) {
        for (let i = 0; i < 9; i++) controller.enqueue(new TextEncoder().encode(i === 0 ? `big2: ${'w'.repeat(99_994)}` : 'w'.repeat(100_000)));
        controller.close();
      },
    });
    const chunked = await fetch(`http://127.0.0.1:${server.port}/create`, { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect(chunked.status).toBe(200);
    expect((await chunked.text()).length).toBeGreaterThan(900_000);
  });

  it('Connection: close is honoured', async () => {
    const { responses, closed } = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n', 2, { waitMs: 1000 });
    expect(responses).toHaveLength(1);
    expect(responses[0]!.headers).toContainEqual(['connection', 'close']);
    expect(closed).toBe(true);
  });

  it('HTTP/1.0 closes unless keep-alive is asked for', async () => {
    const a = await exchange(server.port, 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n', 1, { waitMs: 1000 });
    expect(a.closed).toBe(true);
    const b = await exchange(server.port, 'GET / HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n', 1, { waitMs: 300 });
    expect(b.responses[0]!.headers).toContainEqual(['connection', 'keep-alive']);
    expect(b.closed).toBe(false);
  });

  it('Expect: 100-continue gets an interim 100 before the body is sent', async () => {
    const socket = await openSocket(server.port);
    const received: string[] = [];
    socket.on('data', (c: Buffer) => received.push(c.toString()));
    socket.write('POST /create HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n');
    await sleep(100);
    expect(received.join('')).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    socket.write('ex: 10');
    await sleep(100);
    expect(received.join('')).toContain('ex:10\nPost Successfully OK');
    socket.destroy();
  });
});

describe('framing errors and limits close the connection', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await startServer({ limits: { maxHeaderBytes: 1024, maxBodyBytes: 64, headersTimeoutMs: 300, bodyTimeoutMs: 300 } });
  });
  afterAll(() => server.close());

  const refusals: [string, string, number][] = [
    ['CL + TE', 'POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['differing Content-Lengths', 'POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\na: 1&b', 400],
    ['a bad Content-Length', 'POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x10\r\n\r\n', 400],
    ['a header block over the limit', `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'x'.repeat(2000)}\r\n\r\n`, 431],
    ['a body over the limit', `POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n${'a: 1&'.repeat(20)}`, 413],
    ['missing Host', 'GET / HTTP/1.1\r\n\r\n', 400],
    ['HTTP/3.0', 'GET / HTTP/3.0\r\nHost: localhost\r\n\r\n', 505],
  ];
  for (const [name, bytes, status] of refusals) {
    it(`${name} → ${status} and close`, async () => {
      const { responses, closed } = await exchange(server.port, bytes + 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', 2, { waitMs: 1500 });
      expect(responses.map((r) => r.status)).toEqual([status]);
      expect(responses[0]!.headers).toContainEqual(['connection', 'close']);
      expect(closed).toBe(true);
    });
  }

  it('headers not complete within the timeout → 408 and close, logged with the peer', async () => {
    const started = Date.now();
    const { responses, closed } = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: loc', 1, { waitMs: 3000 });
    expect(responses.map((r) => r.status)).toEqual([408]);
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(server.logs.some((l) => l.code === 'TCPKV_ERR_HEADERS_TIMEOUT' && l.peer === '127.0.0.1')).toBe(true);
  });

  it('a body that stalls → 408 and close', async () => {
    const { responses, closed } = await exchange(server.port, 'POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\na: 1', 1, { waitMs: 3000 });
    expect(responses.map((r) => r.status)).toEqual([408]);
    expect(closed).toBe(true);
  });

  it('a slow but steady client within the timeout is served', async () => {
    const parts = ['GET / HTTP/1.1\r\n', 'Host: localhost\r\n', '\r\n'];
    const { responses } = await exchange(server.port, parts, 1, { gapMs: 80 });
    expect(responses.map((r) => r.status)).toEqual([200]);
  });

  it('limit hits are logged with their code', () => {
    const codes = server.logs.map((l) => l.code).filter(Boolean);
    expect(codes).toEqual(expect.arrayContaining(['TCPKV_ERR_CL_AND_TE', 'TCPKV_ERR_HEADERS_TOO_LARGE', 'TCPKV_ERR_BODY_TOO_LARGE']));
  });
});

describe('robustness: an answer, never a crash', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());
  afterEach(async () => {
    // after every hostile input the server still serves a normal request
    const { responses } = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', 1);
    expect(responses[0]?.status).toBe(200);
  });

  it('binary junk → 400 and close', async () => {
    const junk = Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 7919 + 13) % 256));
    const { responses, closed } = await exchange(server.port, junk, 1, { waitMs: 1500 });
    expect(responses[0]?.status).toBe(400);
    expect(closed).toBe(true);
  });

  it('a TLS ClientHello → 400', async () => {
    const hello = Buffer.from('160301020001000000fc0303', 'hex');
    const { responses } = await exchange(server.port, hello, 1, { waitMs: 1500 });
    expect(responses[0]?.status).toBe(400);
  });

  it('invalid UTF-8 in a body → 400 with a clear text', async () => {
    const bytes = buildRequest({ method: 'POST', path: 'create', body: Buffer.from([0x6b, 0x3a, 0xc3, 0x28]) }, 'standard', '127.0.0.1', 1);
    const { responses } = await exchange(server.port, bytes, 1);
    expect([responses[0]?.status, responses[0]?.body]).toEqual([400, Texts.badUtf8]);
  });

  it('a reset in the middle of a request', async () => {
    const socket = await openSocket(server.port);
    socket.write('POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nhalf');
    await sleep(20);
    socket.resetAndDestroy();
    await sleep(50);
  });

  it('a half-closed client still gets its answer', async () => {
    const socket = await openSocket(server.port);
    const data: Buffer[] = [];
    socket.on('data', (c: Buffer) => data.push(c));
    const ended = new Promise((r) => socket.on('end', r));
    socket.end('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await ended;
    expect(Buffer.concat(data).toString()).toMatch(/^HTTP\/1\.1 200 OK/);
  });
});

describe('backpressure: a client that pipelines and never reads', () => {
  it('makes the server stop reading; what the server buffers stays bounded', async () => {
    const server = await startServer({ limits: { maxPipelined: 16 } });
    try {
      const socket = await openSocket(server.port);
      socket.pause(); // never read the answers
      const request = Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      const batch = Buffer.concat(Array.from({ length: 1000 }, () => request));
      let written = 0;
      // write 40 MB of requests (about 1.1 million) as fast as the socket takes them, for at most 3 s
      const deadline = Date.now() + 3000;
      while (written < 40e6 && Date.now() < deadline) {
        if (!socket.write(batch)) {
          // wait for drain, or 200 ms (the server may never drain us: that is the point)
          let onDrain: () => void = () => undefined;
          await Promise.race([new Promise<void>((r) => socket.once('drain', (onDrain = r))), sleep(200)]);
          socket.off('drain', onDrain);
        }
        written += batch.length;
      }
      await sleep(300);
      const [connection] = [...(server.server as unknown as { connections: Set<{ socket: import('node:net').Socket }> }).connections];
      const serverRead = connection!.socket.bytesRead;
      const serverQueued = connection!.socket.writableLength;
      // The server read far less than was offered, and holds at most a few MB of answers.
      expect(serverRead).toBeLessThan(written / 2);
      expect(serverQueued).toBeLessThan(8 * 1024 * 1024);
      await sleep(500);
      expect(connection!.socket.bytesRead - serverRead).toBeLessThan(256 * 1024); // reading has stopped
      socket.destroy();
    } finally {
      await server.close();
    }
  });
});

describe('access control', () => {
  it('a peer outside TCPKV_ALLOWED_CLIENTS gets 403 and is closed; one inside is served', async () => {
    const server = await startServer({ allowedClients: '127.0.0.1/32' });
    try {
      const refused = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', 1, { localAddress: '127.0.0.2', waitMs: 2000 });
      expect(refused.responses.map((r) => [r.status, r.body])).toEqual([[403, 'Client not allowed: 127.0.0.2']]);
      expect(refused.closed).toBe(true);
      const served = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n', 1, { localAddress: '127.0.0.1' });
      expect(served.responses[0]!.status).toBe(200);
      expect(server.logs.some((l) => l.msg === 'client not allowed' && l.peer === '127.0.0.2')).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('the seed client from 127.0.0.2 is refused too, with one read', async () => {
    const server = await startServer({ allowedClients: '127.0.0.1' });
    try {
      const text = await seedExchange(server.port, seedRequestBytes('GET', '127.0.0.1/'), '127.0.0.2');
      expect(text).toMatch(/^HTTP\/1\.1 403 FORBIDDEN\r\n[\s\S]*Client not allowed: 127\.0\.0\.2$/);
    } finally {
      await server.close();
    }
  });

  it('maximum connections: the excess is closed at once, established clients keep working', async () => {
    const server = await startServer({ maxConnections: 3 });
    try {
      const kept = await Promise.all([openSocket(server.port), openSocket(server.port), openSocket(server.port)]);
      await sleep(50);
      const extra = await openSocket(server.port);
      const closed = await new Promise<boolean>((r) => {
        extra.on('close', () => r(true));
        setTimeout(() => r(false), 2000);
      });
      expect(closed).toBe(true);
      expect(server.logs.some((l) => l.limit === 'maxConnections')).toBe(true);
      const answer = await new Promise<string>((r) => {
        kept[0]!.once('data', (c: Buffer) => r(c.toString()));
        kept[0]!.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      });
      expect(answer).toMatch(/^HTTP\/1\.1 200/);
      for (const s of kept) s.destroy();
    } finally {
      await server.close();
    }
  });
});

describe('END', () => {
  it('with a token configured: missing or wrong → 403 and still serving; right → 200 and exit 0', async () => {
    const server = await spawnServer({ TCPKV_SHUTDOWN_TOKEN: 'tok-123' });
    try {
      const url = `127.0.0.1:${server.port}`;
      const client = (token?: string) => new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'seed', token, timeoutMs: 3000 });
      const none = await client().send({ method: 'END', path: '' });
      expect(none.kind === 'response' && [none.response.status, none.response.body]).toEqual([403, Texts.shutdownBadToken]);
      const wrong = await client('nope').send({ method: 'END', path: '' });
      expect(wrong.kind === 'response' && wrong.response.status).toBe(403);
      const alive = await client().send({ method: 'GET', path: '' });
      expect(alive.kind === 'response' && alive.response.status).toBe(200);
      const { stdout } = await run(process.execPath, ['dist/services/client/cli.js', 'shutdown', '--server', url, '--token', 'tok-123']);
      expect(stdout).toContain('200 OK');
      expect(await server.exited).toBe(0);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('switched off: 403 even from loopback', async () => {
    const server = await startServer({ shutdownEnabled: false });
    try {
      const { responses } = await exchange(server.port, seedRequestBytes('END', '127.0.0.1/'), 1);
      expect([responses[0]!.status, responses[0]!.body]).toEqual([403, Texts.shutdownDisabled]);
      expect(server.shutdownRequests).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('SIGTERM and SIGINT shut down gracefully with exit 0, finishing the request in flight', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const server = await spawnServer();
      const socket = await openSocket(server.port);
      const data: Buffer[] = [];
      socket.on('data', (c: Buffer) => data.push(c));
      socket.write('POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\r\nsig: ');
      await sleep(100);
      server.kill(signal);
      await sleep(100);
      socket.write('on\r\n');
      expect(await server.exited).toBe(0);
      expect(Buffer.concat(data).toString()).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*Connection: close[\s\S]*sig:on/);
      expect(server.output()).toContain('"msg":"stopped"');
      socket.destroy();
    }
  });
});

describe('configuration errors', () => {
  it('a bad setting stops the server with one line naming it and exit 2', async () => {
    for (const [env, name] of [
      [{ TCPKV_PORT: '70000' }, 'TCPKV_PORT'],
      [{ TCPKV_BIND: 'localhost' }, 'TCPKV_BIND'],
      [{ TCPKV_ALLOWED_CLIENTS: '10.0.0.300/8' }, 'TCPKV_ALLOWED_CLIENTS'],
      [{ TCPKV_FSYNC: 'sometimes' }, 'TCPKV_FSYNC'],
      [{ TCPKV_SHUTDOWN: 'maybe' }, 'TCPKV_SHUTDOWN'],
      [{ TCPKV_MAX_BODY_BYTES: '-1' }, 'TCPKV_MAX_BODY_BYTES'],
    ] as const) {
      const result = await run(process.execPath, ['dist/services/server/main.js'], { env: { PATH: process.env.PATH, ...env } }).catch((e: { code: number; stderr: string }) => e);
      expect(result).toMatchObject({ code: 2 });
      const lines = (result as { stderr: string }).stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(name);
    }
  });

  it('flags win over the environment', async () => {
    const server = await spawnServer({ TCPKV_PORT: '1' }, ['--allowed-hosts', 'flag.example']);
    try {
      const { responses } = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: flag.example\r\n\r\n', 1);
      expect(responses[0]!.status).toBe(200);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('warns when listening beyond loopback to everyone without a token', async () => {
    const server = await spawnServer({ TCPKV_BIND: '0.0.0.0' });
    try {
      for (let i = 0; i < 50 && !server.output().includes('"level":40'); i++) await sleep(20);
      expect(server.output()).toMatch(/"level":40[^\n]*TCPKV_ALLOWED_CLIENTS=\*/);
    } finally {
      server.kill('SIGKILL');
    }
  });
});
