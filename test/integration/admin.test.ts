// The admin port of a real tcpkv-server process: off unless TCPKV_ADMIN_PORT is set, on loopback by
// default; /healthz, /readyz and /metrics and nothing else; /readyz says 503 with the reason while
// the server drains and while etcd has no quorum (three real etcd members on loopback, two of them
// killed), and 200 again once it can write. And the etcd metrics from a real etcd store: a killed
// member's breaker opens, calls without a quorum fail and are counted.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { exchange, freePort, openSocket, sleep, spawnServer, SERVER_BIN, type ChildServer } from '../support/net.js';
import { pino } from 'pino';
import { TcpkvMetrics } from '../../services/server/metrics.js';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { admin, eventually, promtoolCheck, scrape, valueOf } from '../support/prometheus-text.js';
import { useChildServers } from '../support/child-servers.js';
import { startEtcdCluster } from '../support/etcd.js';

const track = useChildServers();

async function start(env: Record<string, string> = {}, wrap: string[] = []): Promise<{ server: ChildServer; adminPort: number }> {
  const adminPort = await freePort();
  const server = await spawnServer({ TCPKV_ADMIN_PORT: String(adminPort), ...env }, [], wrap);
  track(server);
  await eventually(() => Promise.resolve(server.output()), (o) => o.includes('admin port listening'), 10_000, 'admin port listening');
  return { server, adminPort };
}

const req = (method: string, target: string, body = '', headers = '') =>
  `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}${body || method === 'PUT' ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`;

/** Runs tcpkv-server expecting it to refuse to start; its exit status and stderr. */
function startFails(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [SERVER_BIN, '--port', '0'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('the admin port', () => {
  it('is off unless TCPKV_ADMIN_PORT is set', async () => {
    const server = await spawnServer();
    track(server);
    await sleep(300);
    expect(server.output()).not.toContain('admin port');
  });

  it('answers /healthz, /readyz and /metrics on 127.0.0.1 by default, and 404 to anything else', async () => {
    const { server, adminPort } = await start();
    expect(server.output()).toMatch(new RegExp(`"address":"127\\.0\\.0\\.1","port":${adminPort}[^\\n]*admin port listening`));
    expect(await admin(adminPort, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await admin(adminPort, '/readyz')).toMatchObject({ status: 200, body: 'ready\n' });
    const metrics = await admin(adminPort, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(metrics.body).toContain('# TYPE tcpkv_requests_total counter');
    expect(await admin(adminPort, '/healthz', 'HEAD')).toMatchObject({ status: 200, body: '' });
    for (const [path, method] of [['/', 'GET'], ['/kv/a', 'GET'], ['/metricsx', 'GET'], ['/healthz', 'POST'], ['/readyz', 'DELETE']] as const) {
      expect((await admin(adminPort, path, method)).status, `${method} ${path}`).toBe(404);
    }
    // the data port is untouched: /metrics there is the store's business (the seed's rules), not Prometheus text
    const data = await exchange(server.port, req('GET', '/metrics'), 1);
    expect(data.responses[0]?.body ?? '').not.toContain('tcpkv_requests_total');
  });

  it('a bad TCPKV_ADMIN_PORT, or one in use, stops the start with one line and exit 2', async () => {
    const bad = await startFails({ TCPKV_ADMIN_PORT: 'ninety' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('TCPKV_ADMIN_PORT');
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const busy = await startFails({ TCPKV_ADMIN_PORT: String(port) });
      expect(busy.code).toBe(2);
      expect(busy.stderr).toMatch(/TCPKV_ADMIN_PORT.*EADDRINUSE/);
      expect(busy.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      taken.close();
    }
  });

  it('/readyz answers 503 "shutting down" while the data port drains; END is counted; the process exits 0', async () => {
    const { server, adminPort } = await start({ TCPKV_SHUTDOWN_TIMEOUT_MS: '2000' });
    // a client stalled in the middle of a body keeps the drain going
    const stalled = await openSocket(server.port);
    stalled.write('PUT /kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly part of it');
    await sleep(100);
    const end = await exchange(server.port, req('END', '/'), 1);
    expect(end.responses[0]?.status).toBe(200);
    const ready = await admin(adminPort, '/readyz');
    expect(ready).toMatchObject({ status: 503, body: 'not ready: shutting down\n' });
    expect((await admin(adminPort, '/healthz')).status).toBe(200);
    const text = await scrape(adminPort);
    expect(valueOf(text, 'tcpkv_end_attempts_total', { outcome: 'accepted' })).toBe(1);
    expect(valueOf(text, 'tcpkv_store_ready')).toBe(1);
    expect(await server.exited).toBe(0);
    stalled.destroy();
  });
});

// ---- three etcd members on loopback --------------------------------------------------------------

describe('the etcd metrics, from a real etcd store (StoreEvents)', () => {
  it('a killed member opens its breaker; without quorum, calls fail and are counted', async () => {
    const cluster = await startEtcdCluster();
    const metrics = new TcpkvMetrics({ defaultMetrics: false });
    const store = new EtcdStore({ endpoints: cluster.endpoints.split(','), prefix: 'tcpkv-metrics/', timeoutMs: 1000, logger: pino({ level: 'silent' }), events: metrics });
    metrics.attachStore(store);
    const body = async () => (await metrics.render()).body;
    try {
      await store.upsertAll([['a', '1']]);
      expect(valueOf(await body(), 'tcpkv_etcd_request_duration_seconds_count')).toBeGreaterThan(0);

      const dead = cluster.members[0]!;
      await dead.kill();
      // calls go on (the others still have a quorum); the first one sent to the dead member opens its breaker
      const opened = await eventually(
        async () => {
          await Promise.resolve(store.upsertAll([['a', String(Date.now())]])).catch(() => undefined);
          return body();
        },
        (t) => valueOf(t, 'tcpkv_etcd_breaker_state', { member: dead.clientUrl, state: 'open' }) === 1 || valueOf(t, 'tcpkv_etcd_breaker_state', { member: dead.clientUrl, state: 'half-open' }) === 1,
        20_000,
        'the dead member\'s breaker opened',
      );
      expect(valueOf(opened, 'tcpkv_etcd_breaker_state', { member: dead.clientUrl, state: 'closed' })).toBe(0);
      await cluster.members[1]!.kill();
      const failed = await eventually(
        async () => {
          await Promise.resolve(store.upsertAll([['a', 'no quorum']])).catch(() => undefined);
          return body();
        },
        (t) => (valueOf(t, 'tcpkv_etcd_request_failures_total') ?? 0) > 0,
        20_000,
        'a failed etcd call counted',
      );
      expect(valueOf(failed, 'tcpkv_store_ready')).toBe(0);
      expect(promtoolCheck(failed).output).toBe('');
    } finally {
      await store.close().catch(() => undefined);
      await cluster.destroy();
    }
  });
});

describe('the admin port over etcd', () => {
  it('/readyz answers 503 while etcd has no quorum (2 of 3 members killed) and 200 once it is back', async () => {
    const cluster = await startEtcdCluster();
    try {
      const { server, adminPort } = await start({ TCPKV_ETCD_ENDPOINTS: cluster.endpoints, TCPKV_ETCD_TIMEOUT_MS: '1000' });
      await eventually(() => admin(adminPort, '/readyz'), (r) => r.status === 200, 20_000, '/readyz 200 with etcd up');
      expect((await exchange(server.port, req('PUT', '/kv/a', '1'), 1)).responses[0]?.status).toBe(200);

      await cluster.members[1]!.kill();
      await cluster.members[2]!.kill();
      const lost = await eventually(() => admin(adminPort, '/readyz'), (r) => r.status === 503, 20_000, '/readyz 503 without quorum');
      expect(lost.body).toMatch(/^not ready: .*(quorum|etcd)/);
      expect((await admin(adminPort, '/healthz')).status).toBe(200);

      await cluster.members[1]!.start();
      await cluster.members[2]!.start();
      await eventually(() => admin(adminPort, '/readyz'), (r) => r.status === 200, 30_000, '/readyz 200 with quorum back');
    } finally {
      await cluster.destroy();
    }
  });
});
