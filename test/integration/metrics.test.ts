// /metrics on the admin port of a real tcpkv-server process: the text passes `promtool check
// metrics` (Prometheus's own linter; a missing promtool is a failure), and each metric moves when the
// thing it counts happens — requests, bytes, connections, refusals, limit hits, END attempts, the
// store's size and limits, the log's size, fsyncs and compactions.

import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { TcpkvMetrics } from '../../services/server/metrics.js';
import { LogStore } from '../../services/server/store/log-store.js';
import { exchange, freePort, openSocket, sleep, spawnServer, type ChildServer } from '../support/net.js';
import { eventually, promtoolCheck, scrape, valueOf } from '../support/prometheus-text.js';
import { useChildServers } from '../support/child-servers.js';
import { useTempDirs } from '../support/temp-dirs.js';

const track = useChildServers();
const tempDir = useTempDirs();

/** A server with its admin port on; returns it and the admin port. */
async function start(env: Record<string, string> = {}): Promise<{ server: ChildServer; adminPort: number }> {
  const adminPort = await freePort();
  const server = await spawnServer({ TCPKV_ADMIN_PORT: String(adminPort), ...env });
  track(server);
  await eventually(() => Promise.resolve(server.output()), (o) => o.includes('admin port listening'), 10_000, 'admin port listening');
  return { server, adminPort };
}

const req = (method: string, target: string, body = '', headers = '') =>
  `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}${body || method === 'PUT' || method === 'POST' ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`;

/** How much each named sample grew between two scrapes. */
const delta = (before: string, after: string, name: string, labels: Record<string, string> = {}) => (valueOf(after, name, labels) ?? 0) - (valueOf(before, name, labels) ?? 0);

describe('/metrics', () => {
  it('passes promtool check metrics after traffic of every kind (promtool must be installed)', async () => {
    const { server, adminPort } = await start({ TCPKV_MAX_BODY_BYTES: '64', TCPKV_SHUTDOWN_TOKEN: 'right' });
    await exchange(server.port, [req('PUT', '/kv/a', 'one'), req('GET', '/kv/a'), req('GET', '/kv/none'), req('GET', '/'), req('HEAD', '/')], 5, { heads: [false, false, false, false, true] });
    await exchange(server.port, req('PUT', '/kv/b', 'x'.repeat(100)), 1);
    await exchange(server.port, req('END', '/', '', 'Authorization: Bearer wrong\r\n'), 1);
    const text = await scrape(adminPort);
    const check = promtoolCheck(text);
    expect(check.error, 'promtool is missing: scripts/ensure-docker.sh installs it from Debian\'s prometheus package').toBeUndefined();
    expect(check.output).toBe('');
    expect(check.status).toBe(0);
    // every family the operators' queries use is there
    for (const name of ['tcpkv_requests_total', 'tcpkv_request_duration_seconds_count', 'tcpkv_request_body_bytes_total', 'tcpkv_response_bytes_total', 'tcpkv_store_max_keys', 'tcpkv_connections_open', 'tcpkv_limit_hits_total', 'tcpkv_end_attempts_total', 'tcpkv_store_keys', 'nodejs_eventloop_lag_seconds', 'process_cpu_seconds_total', 'process_resident_memory_bytes']) {
      expect(valueOf(text, name), name).toBeDefined();
    }
  });

  it('counts requests by method, route and status, their durations and bytes, and connections', async () => {
    const { server, adminPort } = await start({ TCPKV_MAX_KEYS: '1000', TCPKV_MAX_DATA_BYTES: '65536' });
    const before = await scrape(adminPort);
    const writes = [req('PUT', '/kv/k', 'value'), req('GET', '/kv/k'), req('GET', '/kv/k'), req('GET', '/kv/missing'), req('GET', '/')];
    const x = await exchange(server.port, writes, writes.length);
    expect(x.responses.map((r) => r.status)).toEqual([200, 200, 200, 404, 200]);
    const during = await openSocket(server.port);
    const open = await eventually(() => scrape(adminPort), (t) => delta(before, t, 'tcpkv_connections_open') === 1, 5_000, 'one connection open');
    during.destroy();
    const after = await eventually(() => scrape(adminPort), (t) => delta(before, t, 'tcpkv_connections_open') === 0, 5_000, 'connections closed');

    expect(delta(before, after, 'tcpkv_requests_total', { method: 'PUT', route: 'kv-key', status: '200' })).toBe(1);
    expect(delta(before, after, 'tcpkv_requests_total', { method: 'GET', route: 'kv-key', status: '200' })).toBe(2);
    expect(delta(before, after, 'tcpkv_requests_total', { method: 'GET', route: 'kv-key', status: '404' })).toBe(1);
    expect(delta(before, after, 'tcpkv_requests_total', { method: 'GET', route: 'listing', status: '200' })).toBe(1);
    expect(delta(before, after, 'tcpkv_request_duration_seconds_count', { route: 'kv-key' })).toBe(4);
    expect(delta(before, after, 'tcpkv_request_duration_seconds_bucket', { route: 'kv-key', le: '+Inf' })).toBe(4);
    expect(delta(before, after, 'tcpkv_request_duration_seconds_sum', { route: 'kv-key' })).toBeGreaterThan(0);
    expect(delta(before, after, 'tcpkv_request_body_bytes_total')).toBe('value'.length);
    // at least the five heads and the bodies ("value" twice, the 404 text, the listing)
    expect(delta(before, after, 'tcpkv_response_bytes_total')).toBeGreaterThan(5 * 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n'.length + 10);
    expect(delta(before, after, 'tcpkv_connections_total')).toBe(2);
    expect(delta(before, open, 'tcpkv_connections_open')).toBe(1);
    expect(valueOf(after, 'tcpkv_store_keys')).toBe(1);
    expect(valueOf(after, 'tcpkv_store_data_bytes')).toBe('k'.length + 'value'.length);
    expect(valueOf(after, 'tcpkv_store_max_keys')).toBe(1000);
    expect(valueOf(after, 'tcpkv_store_max_data_bytes')).toBe(65536);
  });

  it('counts each limit hit by its error code (413, 414, 431, 408)', async () => {
    const { server, adminPort } = await start({
      TCPKV_MAX_BODY_BYTES: '16',
      TCPKV_MAX_TARGET_BYTES: '64',
      TCPKV_MAX_HEADER_BYTES: '512',
      TCPKV_HEADERS_TIMEOUT_MS: '300',
    });
    const before = await scrape(adminPort);
    expect((await exchange(server.port, req('PUT', '/kv/a', 'x'.repeat(17)), 1)).responses[0]?.status).toBe(413);
    expect((await exchange(server.port, req('GET', `/kv/${'t'.repeat(80)}`), 1)).responses[0]?.status).toBe(414);
    expect((await exchange(server.port, req('GET', '/', '', `X-Big: ${'h'.repeat(600)}\r\n`), 1)).responses[0]?.status).toBe(431);
    expect((await exchange(server.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n', 1, { waitMs: 3_000 })).responses[0]?.status).toBe(408);
    const after = await scrape(adminPort);
    for (const code of ['TCPKV_ERR_BODY_TOO_LARGE', 'TCPKV_ERR_TARGET_TOO_LONG', 'TCPKV_ERR_HEADERS_TOO_LARGE', 'TCPKV_ERR_HEADERS_TIMEOUT']) {
      expect(delta(before, after, 'tcpkv_limit_hits_total', { code }), code).toBe(1);
    }
    expect(server.output()).toMatch(/limit/);
  });

  it('counts refused connections by reason: the allow-list and the connection limit', async () => {
    const { server, adminPort } = await start({ TCPKV_ALLOWED_CLIENTS: '127.0.0.1', TCPKV_MAX_CONNECTIONS: '1' });
    const before = await scrape(adminPort);
    // from 127.0.0.2 (loopback, not on the list): 403 and closed
    const refused = await exchange(server.port, req('GET', '/'), 1, { localAddress: '127.0.0.2' });
    expect(refused.responses[0]?.status).toBe(403);
    const holder = await openSocket(server.port);
    await eventually(() => scrape(adminPort), (t) => valueOf(t, 'tcpkv_connections_open') === 1, 5_000, 'the holder counted');
    const second = await exchange(server.port, req('GET', '/'), 1, { waitMs: 2_000 });
    expect(second.closed).toBe(true);
    expect(second.responses).toHaveLength(0);
    holder.destroy();
    const after = await scrape(adminPort);
    expect(delta(before, after, 'tcpkv_connections_refused_total', { reason: 'allow-list' })).toBe(1);
    expect(delta(before, after, 'tcpkv_connections_refused_total', { reason: 'max-connections' })).toBe(1);
  });

  it('counts END attempts by outcome: a wrong token, END turned off', async () => {
    const withToken = await start({ TCPKV_SHUTDOWN_TOKEN: 'right' });
    const off = await start({ TCPKV_SHUTDOWN: 'off' });
    for (const token of ['wrong', 'also-wrong']) {
      expect((await exchange(withToken.server.port, req('END', '/', '', `Authorization: Bearer ${token}\r\n`), 1)).responses[0]?.status).toBe(403);
    }
    expect((await exchange(off.server.port, req('END', '/'), 1)).responses[0]?.status).toBe(403);
    expect(valueOf(await scrape(withToken.adminPort), 'tcpkv_end_attempts_total', { outcome: 'bad-token' })).toBe(2);
    expect(valueOf(await scrape(off.adminPort), 'tcpkv_end_attempts_total', { outcome: 'disabled' })).toBe(1);
    expect(valueOf(await scrape(off.adminPort), 'tcpkv_end_attempts_total', { outcome: 'accepted' })).toBe(0);
  });
  it('log store (the server process): the log\'s size, its fsyncs and a compaction move', async () => {
    const dir = tempDir('tcpkv-metrics-log-');
    const { server, adminPort } = await start({ TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'always', TCPKV_COMPACT_MIN_BYTES: '0', TCPKV_COMPACT_FACTOR: '1.1' });
    const before = await scrape(adminPort);
    // the same key rewritten: the log grows past 1.1× the live data, so it is compacted
    for (let i = 0; i < 20; i++) expect((await exchange(server.port, req('PUT', '/kv/same', `value-${i}`), 1)).responses[0]?.status).toBe(200);
    const after = await eventually(() => scrape(adminPort), (t) => delta(before, t, 'tcpkv_log_compactions_total', { result: 'ok' }) >= 1, 10_000, 'a compaction counted');
    expect(valueOf(after, 'tcpkv_log_bytes')).toBeGreaterThan(0);
    expect(delta(before, after, 'tcpkv_log_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(20);
    expect(delta(before, after, 'tcpkv_log_fsync_failures_total')).toBe(0);
    expect(delta(before, after, 'tcpkv_log_compaction_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(valueOf(after, 'tcpkv_store_keys')).toBe(1);
    expect(valueOf(after, 'tcpkv_store_max_keys')).toBeGreaterThan(0);
    expect(promtoolCheck(after).output).toBe('');
  });
});

describe('TcpkvMetrics (in process)', () => {
  it('a real log store reports its fsyncs and compactions to it (StoreEvents)', async () => {
    const dir = tempDir('tcpkv-metrics-events-');
    const metrics = new TcpkvMetrics({ defaultMetrics: false });
    const store = await LogStore.open({ dir, fsync: 'always', compactFactor: 1.1, compactMinBytes: 0, repair: 'off', logger: pino({ level: 'silent' }), events: metrics });
    metrics.attachStore(store);
    try {
      for (let i = 0; i < 20; i++) await store.upsertAll([['same', `value-${i}`]]);
      const text = await eventually(async () => (await metrics.render()).body, (t) => (valueOf(t, 'tcpkv_log_compactions_total', { result: 'ok' }) ?? 0) >= 1, 10_000, 'a compaction counted');
      expect(valueOf(text, 'tcpkv_log_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(20);
      expect(valueOf(text, 'tcpkv_log_compaction_duration_seconds_count')).toBeGreaterThanOrEqual(1);
      expect(valueOf(text, 'tcpkv_log_bytes')).toBe(store.logBytes);
      expect(valueOf(text, 'tcpkv_store_keys')).toBe(1);
      expect(valueOf(text, 'tcpkv_store_ready')).toBe(1);
    } finally {
      await store.close();
    }
    expect(await metrics.readiness()).toBe('the log is closed');
    expect(valueOf((await metrics.render()).body, 'tcpkv_store_ready')).toBe(0);
  });

  it('etcd calls and breakers (StoreEvents as the etcd store reports them) become latency, failures and one-hot states', async () => {
    const metrics = new TcpkvMetrics({ defaultMetrics: false });
    metrics.etcdCall('range', 0.002, true);
    metrics.etcdCall('range', 0.004, false);
    metrics.etcdCall('txn', 0.01, true);
    metrics.etcdBreaker('http://etcd1:2379', 'open');
    metrics.etcdBreaker('http://etcd2:2379', 'closed');
    metrics.etcdBreaker('http://etcd1:2379', 'half-open');
    const { body } = await metrics.render();
    expect(promtoolCheck(body).output).toBe('');
    expect(valueOf(body, 'tcpkv_etcd_request_duration_seconds_count', { operation: 'range' })).toBe(2);
    expect(valueOf(body, 'tcpkv_etcd_request_duration_seconds_bucket', { operation: 'range', le: '0.0025' })).toBe(1);
    expect(valueOf(body, 'tcpkv_etcd_request_failures_total', { operation: 'range' })).toBe(1);
    expect(valueOf(body, 'tcpkv_etcd_request_failures_total', { operation: 'txn' })).toBe(0);
    expect(valueOf(body, 'tcpkv_etcd_breaker_state', { member: 'http://etcd1:2379', state: 'half-open' })).toBe(1);
    expect(valueOf(body, 'tcpkv_etcd_breaker_state', { member: 'http://etcd1:2379' })).toBe(1);
    expect(valueOf(body, 'tcpkv_etcd_breaker_state', { member: 'http://etcd2:2379', state: 'closed' })).toBe(1);
  });

  it('keeps label values bounded: unknown codes, statuses and operations past the limit count as "other"', async () => {
    const metrics = new TcpkvMetrics({ defaultMetrics: false, limits: { maxKeys: 10, maxDataBytes: 1000 } });
    for (let i = 0; i < 200; i++) {
      metrics.limitHit(`TCPKV_ERR_MADE_UP_${i}`);
      metrics.etcdCall(`op-${i}`, 0.001, i % 2 === 0);
    }
    metrics.limitHit('not a code!');
    for (let status = 100; status < 600; status++) metrics.requestDone('GET', 'kv-key', status, 0.0001, 10, 20);
    metrics.requestDone('BREW', 'other', 999, 0.5, 1, 1);
    const { body } = await metrics.render();
    expect(promtoolCheck(body).output).toBe('');
    const codes = new Set(body.split('\n').filter((l) => l.startsWith('tcpkv_limit_hits_total{')).map((l) => /code="([^"]*)"/.exec(l)![1]));
    expect(codes.size).toBeLessThanOrEqual(64);
    expect(valueOf(body, 'tcpkv_limit_hits_total')).toBe(201);
    expect(valueOf(body, 'tcpkv_requests_total')).toBe(501);
    expect(valueOf(body, 'tcpkv_requests_total', { method: 'other', route: 'other', status: 'other' })).toBe(1);
    expect(new Set(body.split('\n').filter((l) => l.startsWith('tcpkv_requests_total{')).map((l) => /status="([^"]*)"/.exec(l)![1])).size).toBeLessThanOrEqual(32);
    expect(valueOf(body, 'tcpkv_etcd_request_failures_total')).toBe(100);
    expect(valueOf(body, 'tcpkv_store_max_keys')).toBe(10);
    expect(valueOf(body, 'tcpkv_store_max_data_bytes')).toBe(1000);
    // no store attached yet: not ready, and no store gauges
    expect(await metrics.readiness()).toMatch(/not open/);
    expect(valueOf(body, 'tcpkv_store_keys')).toBeUndefined();
    await sleep(0);
  });
});
