#!/usr/bin/env node
// A replica over etcd serving a big listing while writes go on: one local etcd member (the `etcd`
// binary on PATH, on loopback), KEYS keys of about 120 bytes (key plus value) written in tcpkv's etcd
// layout, one tcpkv replica over it. Measured on that replica, first without writes, then with
// WRITES_PER_S PUTs a second (through the same replica, each changing one key):
//
//   GET /            the whole listing, one at a time on one connection: median and p90 time
//   GET /kv/<key>    one key at a time on another connection, all along: p50 and p99
//   memory           the replica's RSS after both phases, against the data (UTF-8 bytes of keys
//                    plus values), what it grew by over a replica of an empty prefix, and after a
//                    full GC (lib/mem-probe.mjs) its heap and buffers
//
//   npm run build && node bench/replica-listing.mjs      (BENCH_KEYS=450000 BENCH_PHASE_S=20 BENCH_WRITES_PER_S=20)
//
// Prints one JSON line with the figures and the ratios the replica is held to: GET / with writes
// within 1.5× its time without, a one-key GET's p99 under 50 ms, RSS within 3× the data.
// Loopback only; every process started is stopped at the end.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3 } from 'etcd3';
import { exchange, httpRequest } from './lib/client.mjs';
import { probe, probeArgs, rssBytes } from './lib/mem.mjs';
import { start, stopAll } from './lib/procs.mjs';
import { removeServerCwd, startTcpkv } from './lib/servers.mjs';

const KEYS = Number(process.env.BENCH_KEYS ?? 450_000);
const PHASE_S = Number(process.env.BENCH_PHASE_S ?? 20);
const WRITES_PER_S = Number(process.env.BENCH_WRITES_PER_S ?? 20);
const PREFIX = 'bench/';
const log = (line) => process.stderr.write(`${line}\n`);
const keyOf = (i) => `key-${String(i).padStart(7, '0')}`;
const valueOf = (i) => `${'v'.repeat(100)}-${String(i).padStart(7, '0')}`;

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startEtcd(dir) {
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const proc = start(
    'etcd',
    [
      '--name', 'bench', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
      '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `bench=http://127.0.0.1:${peer}`,
      '--quota-backend-bytes', String(4 * 2 ** 30), '--max-txn-ops', '20000', '--max-request-bytes', String(8 * 2 ** 20),
      '--log-level', 'error', '--logger', 'zap',
    ],
  );
  proc.name = 'etcd';
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${endpoint}/health`)).ok) return { proc, endpoint };
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error('etcd did not answer within 10 s');
}

/** The keys in tcpkv's etcd layout: <P>kv/<key> = value, <P>ord/<key> = its place in its transaction, and the write stamp. */
async function load(endpoint) {
  const client = new Etcd3({ hosts: endpoint });
  const per = 5000;
  try {
    for (let from = 0; from < KEYS; from += per) {
      const success = [];
      for (let i = from; i < Math.min(KEYS, from + per); i++) {
        success.push({ request_put: { key: Buffer.from(`${PREFIX}kv/${keyOf(i)}`), value: Buffer.from(valueOf(i)) } });
        success.push({ request_put: { key: Buffer.from(`${PREFIX}ord/${keyOf(i)}`), value: Buffer.from(String(i - from)) } });
      }
      success.push({ request_put: { key: Buffer.from(`${PREFIX}kv/`), value: Buffer.alloc(0) } });
      await client.kv.txn({ compare: [], success, failure: [] });
    }
  } finally {
    client.close();
  }
}

/**
 * A keep-alive connection that sends one request at a time and resolves each answer's status and byte
 * count ('closed' if the server closed the connection first; the next request opens a new one).
 */
function connection(port) {
  let socket;
  let pending;
  let buffered = Buffer.alloc(0);
  let need;
  let status;
  let total;
  const open = () =>
    new Promise((resolve, reject) => {
      buffered = Buffer.alloc(0);
      need = undefined;
      const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
      s.once('connect', () => resolve(s));
      s.once('error', reject);
      s.on('error', () => {});
      s.on('close', () => {
        if (socket === s) socket = undefined;
        const done = pending;
        pending = undefined;
        done?.({ status: 'closed', bytes: 0 });
      });
      // the body is counted, never kept: a listing is tens of megabytes
      s.on('data', (chunk) => {
        let at = 0;
        while (at < chunk.length) {
          if (need === undefined) {
            buffered = buffered.length === 0 ? chunk.subarray(at) : Buffer.concat([buffered, chunk.subarray(at)]);
            at = chunk.length;
            const end = buffered.indexOf('\r\n\r\n');
            if (end < 0) return;
            const head = buffered.subarray(0, end).toString('latin1');
            status = Number(head.slice(9, 12));
            need = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
            total = end + 4 + need;
            const rest = buffered.subarray(end + 4);
            buffered = Buffer.alloc(0);
            const take = Math.min(need, rest.length);
            need -= take;
            if (rest.length > take) buffered = rest.subarray(take);
          } else {
            const take = Math.min(need, chunk.length - at);
            need -= take;
            at += take;
          }
          if (need === 0) {
            need = undefined;
            const done = pending;
            pending = undefined;
            done?.({ status, bytes: total });
            if (buffered.length > 0) {
              const left = buffered;
              buffered = Buffer.alloc(0);
              s.emit('data', left);
            }
          }
        }
      });
    });
  return {
    async request(raw) {
      socket ??= await open();
      return new Promise((resolve) => {
        pending = resolve;
        socket.write(raw);
      });
    },
    close: () => socket?.destroy(),
  };
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const round = (x) => Math.round(x * 10) / 10;

/** Resident bytes by kind of mapping: malloc's heap ([heap]), anonymous maps (the V8 heap, large malloc blocks), the rest. */
function rssByKind(pid) {
  const kinds = { mallocHeap: 0, anonymous: 0, other: 0 };
  let kind = 'other';
  let range = '';
  const anonymous = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      range = head[1];
      kind = head[2] === '[heap]' ? 'mallocHeap' : head[2] === '' ? 'anonymous' : 'other';
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) {
      kinds[kind] += Number(rss[1]) * 1024;
      if (kind === 'anonymous') anonymous.push([range, Number(rss[1])]);
    }
  }
  if (process.env.BENCH_VERBOSE) log(`largest anonymous mappings (kB resident): ${JSON.stringify(anonymous.sort((x, y) => y[1] - x[1]).slice(0, 12))} of ${anonymous.length}`);
  return Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, round(v / 2 ** 20)]));
}

/** One phase: GET / in a loop, one-key GETs in a loop, and (if asked) PUTs at a fixed rate. */
async function phase(port, writesPerS) {
  const listing = connection(port);
  const single = connection(port);
  const writer = connection(port);
  const until = performance.now() + PHASE_S * 1000;
  const listTimes = [];
  const getTimes = [];
  let listBytes = 0;
  let writes = 0;
  const statuses = {};
  const count = (s) => (statuses[s] = (statuses[s] ?? 0) + 1);
  const listLoop = (async () => {
    while (performance.now() < until) {
      const t0 = performance.now();
      const a = await listing.request(httpRequest('GET', '/'));
      listTimes.push(performance.now() - t0);
      listBytes = a.bytes;
      count(a.status);
    }
  })();
  const getLoop = (async () => {
    for (let n = 0; performance.now() < until; n++) {
      const t0 = performance.now();
      const a = await single.request(httpRequest('GET', `/kv/${keyOf((n * 7919) % KEYS)}`));
      getTimes.push(performance.now() - t0);
      count(a.status);
      await sleep(5);
    }
  })();
  const writeLoop = (async () => {
    if (writesPerS === 0) return;
    const start = performance.now();
    for (let n = 0; performance.now() < until; n++) {
      const a = await writer.request(httpRequest('PUT', `/kv/${keyOf((n * 104729) % KEYS)}`, `${'w'.repeat(100)}-${n}`));
      count(a.status === 200 ? 'put-200' : `put-${a.status}`);
      writes++;
      const next = start + ((n + 1) * 1000) / writesPerS;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  await Promise.all([listLoop, getLoop, writeLoop]);
  for (const c of [listing, single, writer]) c.close();
  return {
    listings: listTimes.length,
    listingBytes: listBytes,
    listingMedianMs: round(quantile(listTimes, 0.5)),
    listingP90Ms: round(quantile(listTimes, 0.9)),
    gets: getTimes.length,
    getP50Ms: round(quantile(getTimes, 0.5)),
    getP99Ms: round(quantile(getTimes, 0.99)),
    writesPerS: round(writes / PHASE_S),
    statuses,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'tcpkv-bench-replica-'));
const procs = [];
try {
  const etcd = await startEtcd(dir);
  procs.push(etcd.proc);
  // a replica's own footprint: one over an empty prefix, after a few reads
  const empty = await startTcpkv({ env: { TCPKV_ETCD_ENDPOINTS: etcd.endpoint, TCPKV_ETCD_PREFIX: 'empty/' } });
  for (let i = 0; i < 50 && (await exchange(empty.port, httpRequest('GET', '/'))).status !== 200; i++) await sleep(200);
  for (let i = 0; i < 20; i++) await exchange(empty.port, httpRequest('GET', '/'));
  const emptyRss = rssBytes(empty.pid);
  await stopAll([empty]);

  let t0 = performance.now();
  await load(etcd.endpoint);
  log(`loaded ${KEYS} keys into etcd in ${Math.round(performance.now() - t0)} ms`);
  let dataBytes = 0;
  for (let i = 0; i < KEYS; i++) dataBytes += Buffer.byteLength(keyOf(i)) + Buffer.byteLength(valueOf(i));

  t0 = performance.now();
  const probeFile = join(dir, 'probe.json');
  // BENCH_REPLICA_NODE_ARGS: more Node flags for the replica (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`)
  const extraNodeArgs = (process.env.BENCH_REPLICA_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const replica = await startTcpkv({ nodeArgs: [...probeArgs(), ...extraNodeArgs], env: { TCPKV_ETCD_ENDPOINTS: etcd.endpoint, TCPKV_ETCD_PREFIX: PREFIX, BENCH_MEM_FILE: probeFile } });
  procs.push(replica);
  for (;;) {
    const a = await exchange(replica.port, httpRequest('GET', `/kv/${keyOf(KEYS - 1)}`));
    if (a.status === 200) break;
    if (performance.now() - t0 > 1_200_000) throw new Error(`the replica did not serve within 1200 s (last answer ${a.status})`);
    await sleep(200);
  }
  const syncedMs = Math.round(performance.now() - t0);
  log(`replica serving after ${syncedMs} ms; phase without writes (${PHASE_S} s)`);
  const quiet = await phase(replica.port, 0);
  log(`phase with ${WRITES_PER_S} writes/s (${PHASE_S} s)`);
  const busy = await phase(replica.port, WRITES_PER_S);
  const rss = rssBytes(replica.pid);
  // after a full GC: what the replica holds, apart from garbage not yet collected
  await sleep(500);
  const usage = (await probe(replica.pid, probeFile)) ?? {};
  await sleep(300);
  const held = { rss: rssBytes(replica.pid), heapUsed: usage.heapUsed, heapTotal: usage.heapTotal, arrayBuffers: usage.arrayBuffers };
  const result = {
    bench: 'replica listing under writes',
    keys: KEYS,
    dataMB: round(dataBytes / 2 ** 20),
    syncedMs,
    withoutWrites: quiet,
    withWrites: busy,
    rssMB: round(rss / 2 ** 20),
    emptyReplicaRssMB: round(emptyRss / 2 ** 20),
    listingWithWritesRatio: round(busy.listingMedianMs / quiet.listingMedianMs),
    rssToData: round(rss / dataBytes),
    rssGrowthToData: round((rss - emptyRss) / dataBytes),
    afterGc: {
      rssMB: round(held.rss / 2 ** 20),
      heapUsedMB: round(held.heapUsed / 2 ** 20),
      heapTotalMB: round(held.heapTotal / 2 ** 20),
      arrayBuffersMB: round(held.arrayBuffers / 2 ** 20),
      rssMBByKind: rssByKind(replica.pid),
    },
    heldToData: round((held.heapUsed + held.arrayBuffers) / dataBytes),
    holds: {
      listingWithin1_5x: busy.listingMedianMs <= 1.5 * quiet.listingMedianMs,
      getP99Under50ms: busy.getP99Ms < 50,
      rssWithin3xData: rss <= 3 * dataBytes,
      heldWithin3xData: held.heapUsed + held.arrayBuffers <= 3 * dataBytes,
    },
  };
  console.log(JSON.stringify(result));
  if (process.env.BENCH_VERBOSE) log(replica.stdoutLines.join("\n"));
} finally {
  await stopAll(procs);
  removeServerCwd();
  rmSync(dir, { recursive: true, force: true });
}
