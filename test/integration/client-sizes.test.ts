// tcpkv-client at real sizes and real timings, over real loopback sockets: an answer of many MiB is
// read in time linear in its size (standard and seed framing), the bytes printed are the bytes the
// server sent, --timeout bounds connecting plus the whole answer (a server dribbling bytes cannot hold
// the client, nor the image's health-check fallback, past it), stdin that is not UTF-8 is refused
// rather than altered, and `scenario --json` is one document on one line.

import { spawn } from 'node:child_process';
import { get as httpGet } from 'node:http';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, TcpkvClient } from '../../services/client/client.js';
import { CLIENT_BIN, ROOT, runClient, spawnServer, startServer, type ChildServer, type InProcessServer, tinyServer } from '../support/net.js';

/** Answers every request with `answer`, written in pieces of 16 KiB (so it arrives in many chunks). */
const answering = (answer: () => Buffer) =>
  tinyServer((socket) =>
    socket.once('data', () => {
      const bytes = answer();
      for (let at = 0; at < bytes.length; at += 16 * 1024) socket.write(bytes.subarray(at, at + 16 * 1024));
      socket.end();
    }),
  );

/** CPU time this process has used, in ms (user and system, every thread). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Text of about `bytes` UTF-8 bytes, one-, two- and three-byte characters mixed. */
function text(bytes: number): string {
  const unit = 'value 0123456789 가나다 é\n';
  return unit.repeat(Math.ceil(bytes / Buffer.byteLength(unit)));
}

/**
 * Runs a command to its end without blocking this process (whose event loop serves the servers here);
 * stdout is kept as bytes, so a character split between two reads stays whole.
 */
function runCommand(command: string, args: string[], input?: Buffer): Promise<{ status: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const proc = spawn(command, args, { env: { PATH: process.env.PATH ?? '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => stdout.push(c));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('close', (status) => resolve({ status, stdout: Buffer.concat(stdout).toString(), stderr, ms: performance.now() - t0 }));
    proc.stdin.end(input ?? Buffer.alloc(0));
  });
}

/** tcpkv-client with these arguments. */
const cli = (args: string[], input?: Buffer) => runCommand(process.execPath, [CLIENT_BIN, ...args], input);

/** The body of GET `path` as node:http reads it: the reference for what the server sent. */
function nodeHttpBody(port: number, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve(Buffer.concat(parts)));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe('reading a big answer takes time linear in its size', () => {
  it('TcpkvClient reads 16 MiB within 4× the CPU time of a socket that keeps the chunks and joins them once (8× in the seed framing, which counts characters)', async () => {
    // CPU time of this process (the server here writes the same bytes for both readers): other
    // processes on a busy machine do not stretch it as they stretch the wall clock
    const body = text(16 * 2 ** 20);
    const answers = {
      standard: Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`), Buffer.from(body)]),
      // the seed's server: `\r\n\n` after the headers, Content-Length in characters
      seed: Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${[...body].length}\r\n\n`), Buffer.from(body)]),
    };
    let current = answers.standard;
    const server = await answering(() => current);
    try {
      const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'standard', timeoutMs: 120_000 });
      /** The least a reader can do: keep each chunk, join them once at the end, decode once (here: the answer's head too). */
      const plainRead = () =>
        new Promise<string>((resolve, reject) => {
          const socket = connect({ host: '127.0.0.1', port: server.port }, () => socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
          const parts: Buffer[] = [];
          socket.on('data', (c: Buffer) => parts.push(c));
          socket.on('end', () => resolve(Buffer.concat(parts).toString()));
          socket.on('error', reject);
        });
      const best = { client: { standard: Infinity, seed: Infinity }, plain: { standard: Infinity, seed: Infinity } };
      // best of three, the readers alternating, so a busy moment of the machine costs one sample only
      for (let round = 0; round < 3; round++) {
        for (const framing of ['standard', 'seed'] as const) {
          current = answers[framing];
          let t0 = cpuMs();
          const answer = await client.send({ method: 'GET', path: '' });
          // the body as text, as the plain reader ends with it (the client decodes it when first read)
          expect(answer.kind === 'response' && answer.response.body.length).toBe(body.length);
          best.client[framing] = Math.min(best.client[framing], cpuMs() - t0);
          expect(answer.kind === 'response' && answer.response.body === body).toBe(true);
          t0 = cpuMs();
          expect((await plainRead()).length).toBeGreaterThan(body.length);
          best.plain[framing] = Math.min(best.plain[framing], cpuMs() - t0);
        }
      }
      const ratios = (['standard', 'seed'] as const).map((f) => best.client[f] / best.plain[f]);
      console.log(`16 MiB, CPU: TcpkvClient ${best.client.standard.toFixed(0)} ms (seed framing ${best.client.seed.toFixed(0)}), plain socket ${best.plain.standard.toFixed(0)} ms (${best.plain.seed.toFixed(0)}); ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}`);
      // linear: about 1, and up to about 3 in the seed framing, whose count of characters (a loop over
      // every byte) the plain reader does not do; joining what has come on every chunk: 20 and more
      expect(ratios[0]).toBeLessThan(4);
      expect(ratios[1]).toBeLessThan(8);
    } finally {
      server.close();
    }
  }, 180_000);

  it('an answer sent before the request (a server at its limit answers on accept) is read, not lost', async () => {
    const busy = await tinyServer((socket) => socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy'));
    try {
      const r = await cli(['get', 'a', '--server', `127.0.0.1:${busy.port}`]);
      expect([r.status, r.stdout]).toEqual([4, '503 Service Unavailable\nbusy\n']);
    } finally {
      busy.close();
    }
  });

  describe('tcpkv-client prints the bytes tcpkv-server sent', () => {
    let server: ChildServer;
    beforeAll(async () => {
      server = await spawnServer({ TCPKV_MAX_BODY_BYTES: String(9 * 2 ** 20) });
    });
    afterAll(() => server.kill('SIGKILL'));

    it('get KEY of an 8 MiB value, and get (GET /) of a 50,000-key listing', async () => {
      const at = `127.0.0.1:${server.port}`;
      const value = text(8 * 2 ** 20).replaceAll('\n', ' ');
      const put = await cli(['put', 'big', '-', '--server', at], Buffer.from(value));
      expect([put.status, put.stderr]).toEqual([0, '']);
      const got = await cli(['get', 'big', '-q', '--server', at]);
      expect(got.status).toBe(0);
      expect(got.stdout === `${(await nodeHttpBody(server.port, '/kv/big')).toString()}\n`).toBe(true);
      expect(got.stdout === `${value}\n`).toBe(true);
      await runClient(['delete', 'big', '--server', at]);

      const library = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'standard', timeoutMs: 60_000 });
      for (let batch = 0; batch < 5; batch++) {
        const pairs = Array.from({ length: 10_000 }, (_, i) => `key-${batch}-${String(i).padStart(5, '0')}: ${'v'.repeat(80)}`);
        const a = await library.send({ method: 'POST', path: 'create', body: pairs.join('&') });
        expect(a.kind === 'response' && a.response.status).toBe(200);
      }
      const listing = await cli(['get', '--server', at]);
      expect(listing.status).toBe(0);
      const reference = (await nodeHttpBody(server.port, '/')).toString();
      expect(reference.length).toBeGreaterThan(4_500_000);
      expect(listing.stdout === `200 OK\n${reference}${reference.endsWith('\n') ? '' : '\n'}`).toBe(true);
    }, 120_000);
  });
});

/** Answers every request with `answer`, one byte every `gapMs`. */
const dribbling = (answer: string, gapMs = 500) =>
  tinyServer((socket) =>
    socket.once('data', () => {
      const bytes = Buffer.from(answer);
      let at = 0;
      const timer = setInterval(() => {
        if (socket.destroyed || at >= bytes.length) {
          clearInterval(timer);
          socket.end();
          return;
        }
        socket.write(bytes.subarray(at, at + 1));
        at += 1;
      }, gapMs);
      socket.on('close', () => clearInterval(timer));
    }),
  );

describe('--timeout bounds connecting and the whole answer, not the gaps between bytes', () => {
  // 29 bytes at one every 0.5 s: a reader timed only on gaps waits 14.5 s for it, and succeeds
  const ANSWER = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello';

  it('`--timeout 2000 get a` against a server dribbling a byte every 0.5 s: ends in about 2 s, exit 3, one line on stderr', async () => {
    const slow = await dribbling(ANSWER);
    try {
      const r = await cli(['--timeout', '2000', 'get', 'a', '--server', `127.0.0.1:${slow.port}`]);
      console.log(`dribbling server, --timeout 2000: ${r.ms.toFixed(0)} ms, exit ${r.status}, stderr ${JSON.stringify(r.stderr)}`);
      expect(r.status).toBe(3);
      expect(r.ms).toBeGreaterThan(1900);
      expect(r.ms).toBeLessThan(6000);
      expect(r.stderr).toMatch(/^tcpkv-client: no complete answer from 127\.0\.0\.1:\d+ within 2000 ms \(\d+ bytes received\)[^\n]*\n$/);
      const json = await cli(['--timeout', '1000', '--json', 'get', 'a', '--server', `127.0.0.1:${slow.port}`]);
      expect(json.status).toBe(3);
      expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'TIMEOUT', maybeApplied: true } });
    } finally {
      slow.close();
    }
  }, 60_000);

  it('the library: send() rejects with TIMEOUT once the time is up, whatever has arrived', async () => {
    const slow = await dribbling(ANSWER, 200);
    try {
      const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: slow.port }], dialect: 'standard', timeoutMs: 1000 });
      const t0 = performance.now();
      const error = await client.send({ method: 'GET', path: '' }).catch((e: unknown) => e);
      const ms = performance.now() - t0;
      expect(error).toBeInstanceOf(ClientError);
      expect(error).toMatchObject({ code: 'TIMEOUT', maybeApplied: true });
      expect(ms).toBeGreaterThan(950);
      expect(ms).toBeLessThan(3000);
    } finally {
      slow.close();
    }
  }, 30_000);

  it("the image's health-check fallback (the client's HEAD on the data port) fails in about its 3 s against a dribbling server", async () => {
    const slow = await dribbling('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    try {
      const line = /exec node \/app\/dist\/services\/client\/cli\.js head[^\n]*/.exec(readFileSync(join(ROOT, 'services/server/healthcheck.sh'), 'utf8'));
      expect(line).not.toBeNull();
      const r = await runCommand('sh', ['-c', `host=127.0.0.1; TCPKV_PORT=${slow.port}; ${line![0].replaceAll('/app/', ROOT)}`]);
      expect(r.status).toBe(3);
      expect(r.ms).toBeLessThan(7000);
    } finally {
      slow.close();
    }
  }, 60_000);
});

describe('stdin and --json', () => {
  let server: InProcessServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.close());

  it('`put KEY -` refuses stdin that is not UTF-8 (exit 2, nothing sent) instead of storing U+FFFD', async () => {
    const at = `127.0.0.1:${server.port}`;
    const r = await runClient(['put', 'bin', '-', '--server', at], {}, Buffer.from([0x61, 0x62, 0xff, 0x63, 0x0a]));
    expect([r.code, r.stdout]).toEqual([2, '']);
    expect(r.stderr).toBe('tcpkv-client: put: stdin is not valid UTF-8 (byte 2 of 5 is 0xff); a value is UTF-8 text\n');
    expect((await runClient(['get', 'bin', '--server', at])).code).toBe(1); // 404: nothing was stored
    // a cut character at the end is refused too; valid text, a line break at its end dropped, is stored
    expect((await runClient(['put', 'bin', '--server', at], {}, Buffer.from([0xea, 0xb0]))).code).toBe(2);
    const ok = await runClient(['put', 'bin', '-', '--server', at], {}, Buffer.from('가\r\n'));
    expect(ok.code).toBe(0);
    expect((await runClient(['get', 'bin', '-q', '--server', at])).stdout).toBe('가\n');
  });

  it('`scenario --json` prints one JSON document on one line', async () => {
    const fresh = await startServer();
    try {
      const r = await runClient(['scenario', '--json', '--server', `127.0.0.1:${fresh.port}`]);
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n')).toHaveLength(2);
      expect(r.stdout.endsWith('\n')).toBe(true);
      const doc = JSON.parse(r.stdout) as { passed: number; failed: number; cases: unknown[] };
      expect([doc.passed, doc.failed, doc.cases.length]).toEqual([16, 0, 16]);
    } finally {
      await fresh.close();
    }
  });
});
