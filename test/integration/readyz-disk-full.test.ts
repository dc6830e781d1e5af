// /readyz of a real tcpkv-server process whose log lives on a full disk (a real 64 KiB tmpfs in a
// private mount namespace): 503 with the reason while the log cannot be written.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exchange, freePort, spawnServer, type ChildServer } from '../support/net.js';
import { admin, eventually, scrape, valueOf } from '../support/prometheus-text.js';

let server: ChildServer | undefined;
let dir: string | undefined;
afterAll(async () => {
  server?.kill('SIGKILL');
  await server?.exited;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string>, wrap: string[]): Promise<{ server: ChildServer; adminPort: number }> {
  const adminPort = await freePort();
  server = await spawnServer({ TCPKV_ADMIN_PORT: String(adminPort), ...env }, [], wrap);
  const s = server;
  await eventually(() => Promise.resolve(s.output()), (o) => o.includes('admin port listening'), 10_000, 'admin port listening');
  return { server: s, adminPort };
}

const req = (method: string, target: string, body = '') => `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('/readyz and a full disk', () => {
  it('/readyz answers 503 with the reason while the log cannot be written (a full 64 KiB tmpfs)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'tcpkv-admin-full-'));
    // a private mount namespace: the tmpfs exists only for this server process
    const { server, adminPort } = await start({ TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'always' }, ['unshare', '-rm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs "${dir}" && exec "$@"`, 'sh']);
    expect((await admin(adminPort, '/readyz')).status).toBe(200);
    let full = false;
    for (let i = 0; i < 200 && !full; i++) {
      const r = await exchange(server.port, req('PUT', `/kv/k${i}`, 'v'.repeat(1000)), 1);
      full = r.responses[0]?.status === 503;
    }
    expect(full, 'the disk never filled').toBe(true);
    const ready = await admin(adminPort, '/readyz');
    expect(ready.status, ready.body).toBe(503);
    expect(ready.body).toMatch(/^not ready: /);
    expect(valueOf(await scrape(adminPort), 'tcpkv_store_ready')).toBe(0);
    expect((await admin(adminPort, '/healthz')).status).toBe(200);
  });
});

