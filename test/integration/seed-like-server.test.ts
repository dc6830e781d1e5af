// The client against a server with the seed's framing habits (SPEC §5's last paragraph).

import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { runClient } from '../support/net.js';
import { startSeedLikeServer, type SeedLikeServer } from '../support/seed-like-server.js';

describe('tcpkv-client against a seed-like server', () => {
  let server: SeedLikeServer | undefined;
  afterEach(() => server?.close());

  it('runs the scenario unchanged and exits 0; END gets a closed connection and the server stops', async () => {
    server = await startSeedLikeServer();
    const { code, stdout } = await runClient(['scenario', '--server', `127.0.0.1:${server.port}`]);
    expect(stdout).toContain('16/16 cases passed');
    expect(stdout).toMatch(/16\s+END 127\.0\.0\.1\/\s+server stops \(200 or closed\)\s+connection closed, no answer\s+PASS/);
    expect(code).toBe(0);
    await server.stopped;
  });

  it('reads a body whose Content-Length counts characters, not bytes, even when it arrives in pieces', async () => {
    server = await startSeedLikeServer();
    const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'seed', timeoutMs: 3000 });
    const created = await client.send({ method: 'POST', path: 'create', body: '이름: 김민식&과목: 컴퓨터네트워크' });
    expect(created.kind === 'response' && created.response.status).toBe(200);
    server.splitAt = 200; // past the headers and some bytes, well short of the body's last byte
    const listed = await client.send({ method: 'GET', path: '' });
    if (listed.kind !== 'response') throw new Error('no answer');
    expect(listed.response.seedFraming).toBe(true);
    expect(listed.response.body).toBe('The data in DB is as follows.\n이름:김민식\n과목:컴퓨터네트워크');
  });

  it('reports a timeout, not a hang, when a server reads the request and never answers', async () => {
    const silent = createServer((socket) => socket.on('data', () => undefined));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as AddressInfo).port;
      const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port }], dialect: 'seed', timeoutMs: 300 });
      const started = Date.now();
      await expect(client.send({ method: 'GET', path: '' })).rejects.toMatchObject({ code: 'TIMEOUT', maybeApplied: true });
      expect(Date.now() - started).toBeLessThan(2000);
      const cli = await runClient(['get', '--server', `127.0.0.1:${port}`, '--timeout', '300']);
      expect(cli.code).toBe(3);
      expect(cli.stderr).toContain('no answer');
    } finally {
      silent.close();
    }
  });

  it('moves to the next server only when connecting fails', async () => {
    server = await startSeedLikeServer();
    const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: server.port }], dialect: 'seed', timeoutMs: 3000 });
    const answer = await client.send({ method: 'GET', path: '' });
    expect(answer.kind === 'response' && answer.server.port).toBe(server.port);
  });
});
