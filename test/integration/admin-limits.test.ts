// The admin port under connections that never send anything, or never finish their request: probes
// still get their answer, and such connections are closed after the documented timeout.

import { get, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TIMEOUT_MS, AdminServer, MAX_ADMIN_CONNECTIONS } from '../../services/server/admin.js';
import { TcpkvMetrics } from '../../services/server/metrics.js';
import { openSocket } from '../support/net.js';

const admins: AdminServer[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const a of admins.splice(0)) await a.close();
});

async function startAdmin(timeoutMs?: number): Promise<number> {
  const admin = new AdminServer({ bind: '127.0.0.1', port: 0, metrics: new TcpkvMetrics(), logger: pino({ level: 'silent' }), draining: () => false, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  admins.push(admin);
  return (await admin.listen()).port;
}

function healthz(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 3000 }, (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    r.on('timeout', () => r.destroy(new Error('no answer within 3 s')));
    r.on('error', reject);
  });
}

async function holdSockets(port: number, n: number, send = ''): Promise<Socket[]> {
  const held = await Promise.all(Array.from({ length: n }, () => openSocket(port)));
  for (const s of held) {
    s.on('error', () => {});
    s.resume(); // a 408 the server may send first must not keep 'end' (and 'close') from coming
    if (send !== '') s.write(send);
    sockets.push(s);
  }
  return held;
}

const closedWithin = (socket: Socket, ms: number) =>
  new Promise<number | undefined>((resolve) => {
    const t0 = performance.now();
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => resolve(undefined), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - t0);
    });
  });

describe('the admin port cannot be locked by idle connections', () => {
  it(`/healthz answers with ${MAX_ADMIN_CONNECTIONS + 8} silent sockets and 8 half-sent requests open`, async () => {
    const port = await startAdmin();
    await holdSockets(port, MAX_ADMIN_CONNECTIONS + 8);
    await holdSockets(port, 8, 'GET /healthz HTTP/1.1\r\nHost: x\r\n');
    for (let i = 0; i < 5; i++) expect(await healthz(port)).toBe(200);
  });

  it('a silent socket and a half-sent request are closed after the timeout', async () => {
    const port = await startAdmin(1000);
    const [silent] = await holdSockets(port, 1);
    const [slow] = await holdSockets(port, 1, 'GET /healthz HTTP/1.1\r\n');
    const [silentMs, slowMs] = await Promise.all([closedWithin(silent!, 4000), closedWithin(slow!, 4000)]);
    expect(silentMs).toBeDefined();
    expect(slowMs).toBeDefined();
    expect(silentMs!).toBeGreaterThan(800);
    expect(slowMs!).toBeGreaterThan(800);
  });

  it(`with the defaults, a silent socket is closed after ${ADMIN_TIMEOUT_MS / 1000} s, as docs/operations.md says`, async () => {
    expect(ADMIN_TIMEOUT_MS).toBe(10_000);
    const port = await startAdmin();
    const [silent] = await holdSockets(port, 1);
    const ms = await closedWithin(silent!, ADMIN_TIMEOUT_MS + 3000);
    expect(ms).toBeDefined();
    expect(ms!).toBeGreaterThan(ADMIN_TIMEOUT_MS - 500);
  }, 20_000);
});
