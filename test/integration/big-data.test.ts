// Real data at real sizes, over real sockets against a real server process: a million keys loaded,
// listed through GET / while a HEAD probe measures how long the event loop keeps small requests
// waiting, walked page by page; and a server with a small heap fed writes until the store is full.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import { HttpConn, loadKeys, percentile, startThreadProbes } from '../support/http-conn.js';
import { spawnServer, type ChildServer } from '../support/net.js';

const KEYS = 1_000_000;
/** listings read while the probe runs (the first one also renders what the last writes left) */
const LISTINGS = 8;
const keyOf = (i: number) => `key${String(i).padStart(7, '0')}`;
// ~100 bytes per entry: a 10-byte key and a 90-byte value that differs per key
const valueOf = (i: number) => `value-${i}-`.padEnd(90, 'abcdefghij');

/** sha256 and length of the listing the store must hold: the header line, then `\nkey:value` per key. */
function expectedListing(): { sha256: string; bytes: number } {
  const hash = createHash('sha256');
  let bytes = Texts.listingHeader.length;
  hash.update(Texts.listingHeader);
  let chunk = '';
  for (let i = 0; i < KEYS; i++) {
    chunk += `\n${keyOf(i)}:${valueOf(i)}`;
    if (chunk.length > 1 << 20) {
      hash.update(chunk);
      bytes += chunk.length;
      chunk = '';
    }
  }
  hash.update(chunk);
  bytes += chunk.length;
  return { sha256: hash.digest('hex'), bytes };
}

describe('a million keys', () => {
  let server: ChildServer;
  /** an idle server probed at the same moments: what the machine does to any server */
  let control: ChildServer;
  let conn: HttpConn;

  beforeAll(async () => {
    server = await spawnServer({ TCPKV_LOG_LEVEL: 'info' });
    control = await spawnServer({ TCPKV_LOG_LEVEL: 'info' });
    conn = await HttpConn.open(server.port);
    const started = performance.now();
    await loadKeys(conn, KEYS, keyOf, valueOf);
    console.log(`loaded ${KEYS} keys × ~100 B through 1 MB POST bodies in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }, 120_000);

  afterAll(() => {
    conn?.close();
    server?.kill('SIGKILL');
    control?.kill('SIGKILL');
  });

  it('GET / streams the whole listing, byte-identical, while HEAD every 10 ms stays fast (p99 < 50 ms, max < 100 ms)', async () => {
    const expected = expectedListing();
    {
      // HEADs every 10 ms from one thread to this server and to an idle one: on a shared two-core
      // machine the thread, the network and both servers can be held up by other work, and the idle
      // server shows how much at the same moments
      const probes = startThreadProbes([server.port, control.port], 10);
      await new Promise((r) => setTimeout(r, 200));
      const started = performance.now();
      const runs: number[] = [];
      for (let i = 0; i < LISTINGS; i++) {
        const t = performance.now();
        const answer = await conn.request('GET', '/', '', { hash: true });
        runs.push(performance.now() - t);
        expect(answer.status).toBe(200);
        expect(Number(answer.headers['content-length'])).toBe(expected.bytes);
        expect(answer.bodyBytes).toBe(expected.bytes);
        expect(answer.sha256).toBe(expected.sha256);
      }
      const [samples, idle] = (await probes.stop()) as [number[], number[]];
      const p50 = percentile(samples, 50);
      const p99 = percentile(samples, 99);
      const max = Math.max(...samples);
      const idleP99 = percentile(idle, 99);
      const idleMax = Math.max(...idle);
      console.log(
        `GET / of ${(expected.bytes / 2 ** 20).toFixed(1)} MiB ×${LISTINGS} in ${((performance.now() - started) / 1000).toFixed(1)} s (each ${runs.map((r) => r.toFixed(0)).join(', ')} ms); ` +
          `HEAD probe: ${samples.length} samples, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms ` +
          `(an idle server at the same moments: p99 ${idleP99.toFixed(1)} ms, max ${idleMax.toFixed(1)} ms)`,
      );
      expect(samples.length).toBeGreaterThan(20);
      // the bounds hold on a quiet machine as they are; on a busy one, what the idle server waited at
      // the same moments is allowed on top (the code before: p99 ≈ 1 s)
      expect(p99).toBeLessThan(50 + idleP99);
      expect(max).toBeLessThan(100 + idleMax);
    }
  }, 120_000);

  it('a page walk through every key by GET /kv?limit=1000&after=… costs the same per page at the end as at the start', async () => {
    const times: number[] = [];
    let after: string | null = null;
    let seen = 0;
    const started = performance.now();
    for (;;) {
      const target: string = `/kv?limit=1000${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
      const t = performance.now();
      const answer = await conn.request('GET', target);
      times.push(performance.now() - t);
      expect(answer.status).toBe(200);
      const page = JSON.parse(answer.body.toString('utf8')) as { items: { key: string; value: string }[]; next: string | null };
      // insertion order, nothing skipped, nothing repeated
      expect(page.items[0]?.key).toBe(keyOf(seen));
      expect(page.items[page.items.length - 1]?.value).toBe(valueOf(seen + page.items.length - 1));
      seen += page.items.length;
      if (page.next === null) break;
      after = page.next;
    }
    expect(seen).toBe(KEYS);
    const first = percentile(times.slice(0, 50), 50);
    const last = percentile(times.slice(-50), 50);
    console.log(`page walk: ${times.length} pages of 1000 in ${((performance.now() - started) / 1000).toFixed(1)} s; median of the first 50 pages ${first.toFixed(2)} ms, of the last 50 ${last.toFixed(2)} ms (ratio ${(last / first).toFixed(2)})`);
    expect(last).toBeLessThan(2 * first + 1); // +1 ms: a loaded machine's noise on a ~2–5 ms figure
  }, 120_000);
});

describe('a server with a 128 MB heap fed writes until the store is full', () => {
  it('answers 507 naming the limit, never dies, and still answers GET', async () => {
    const server = await spawnServer({ NODE_OPTIONS: '--max-old-space-size=128' });
    const conn = await HttpConn.open(server.port);
    try {
      const limitsLine = server.output().split('\n').find((l) => l.includes('"msg":"store limits"'))!;
      const { maxKeys, maxDataBytes } = JSON.parse(limitsLine) as { maxKeys: number; maxDataBytes: number };
      console.log(`derived limits under --max-old-space-size=128: TCPKV_MAX_KEYS=${maxKeys}, TCPKV_MAX_DATA_BYTES=${maxDataBytes}`);

      // 1. small pairs until the key limit
      let stored = 0;
      let full: { status: number; body: string } | undefined;
      while (full === undefined) {
        const pairs: string[] = [];
        for (let i = 0; i < 10_000; i++) pairs.push(`k${stored + i}: v`);
        const answer = await conn.request('POST', '/create', pairs.join('&'));
        if (answer.status === 200) stored += 10_000;
        else full = { status: answer.status, body: answer.body.toString() };
        expect(stored).toBeLessThanOrEqual(maxKeys);
      }
      expect(full).toEqual({ status: 507, body: `Storage is full: TCPKV_MAX_KEYS=${maxKeys}` });

      // 2. larger values into existing keys until the byte limit (updates add bytes, not keys)
      const big = 'x'.repeat(900_000);
      let updated = 0;
      let fullBytes: { status: number; body: string } | undefined;
      while (fullBytes === undefined) {
        const answer = await conn.request('PUT', `/kv/k${updated}`, big);
        if (answer.status === 200) updated++;
        else fullBytes = { status: answer.status, body: answer.body.toString() };
        expect(updated * big.length).toBeLessThanOrEqual(maxDataBytes);
      }
      expect(fullBytes).toEqual({ status: 507, body: `Storage is full: TCPKV_MAX_DATA_BYTES=${maxDataBytes}` });

      // still serving: the listing, whole; deletes free room again
      const listing = await conn.request('GET', '/', '', { hash: true });
      expect(listing.status).toBe(200);
      expect(listing.bodyBytes).toBeGreaterThan(updated * big.length);
      expect((await conn.request('DELETE', '/kv/k0')).status).toBe(200);
      expect((await conn.request('PUT', '/kv/k1', 'small')).status).toBe(200);
      expect(server.proc.exitCode).toBeNull();
      const warnings = server.output().split('\n').filter((l) => l.includes('storage is full'));
      expect(warnings.length).toBe(1); // once a minute, however many writes were refused
      console.log(`128 MB heap: ${stored} keys, then ${updated} values of 900 KB; 507 on both limits; GET of ${(listing.bodyBytes / 2 ** 20).toFixed(1)} MiB answered`);
    } finally {
      conn.close();
      server.kill('SIGKILL');
    }
  }, 120_000);
});

describe('stored keys and values are copies, never slices of a request body', () => {
  it('300 POSTs of 1 MB of spaces around a 16-byte value fit a 64 MB heap and barely move RSS', async () => {
    const server = await spawnServer({ NODE_OPTIONS: '--max-old-space-size=64' });
    const conn = await HttpConn.open(server.port);
    try {
      const pad = ' '.repeat(500_000);
      const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${server.proc.pid}/status`, 'utf8'))![1]) * 1024;
      await conn.request('POST', '/create', 'warm: up');
      const before = rss();
      for (let i = 0; i < 300; i++) {
        const answer = await conn.request('POST', '/create', `key${i}:${pad}value-${String(i).padStart(10, '0')}${pad}`);
        expect(answer.status).toBe(200);
      }
      const listing = await conn.request('GET', '/');
      expect(listing.body.toString()).toContain('\nkey299:value-0000000299');
      const grown = rss() - before;
      console.log(`300 POSTs of 1 MB around a 16-byte value: listing ${listing.bodyBytes} B, RSS +${(grown / 2 ** 20).toFixed(1)} MiB`);
      expect(server.proc.exitCode).toBeNull();
      // before: every value pinned its whole decoded body (+300 MB, or out of heap at 64 MB)
      expect(grown).toBeLessThan(64 * 2 ** 20);
    } finally {
      conn.close();
      server.kill('SIGKILL');
    }
  }, 60_000);
});
