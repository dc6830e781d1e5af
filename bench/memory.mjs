#!/usr/bin/env node
// Memory and listing figures of the store, each against a baseline measured in the same run:
//
//   1. heap per stored byte: tcpkv's V8 heap after a full GC, before and after loading a data set
//      (then one GET / so the listing is rendered), against the payload (UTF-8 bytes of keys plus
//      values) and against node:http holding the same data in a Map; the fixed per-key cost follows
//   2. RSS with 100 readers that never read against a 50 MB store, each sending PUT /update + GET /
//      pipelined: growth against 100 × the socket's high-water mark
//   3. GET / of a 100,000-key store with a write between every two GETs (wrk, bench/wrk/get-get-put.lua):
//      tcpkv against node:http doing the naive join once per write, as a ratio
//
//   npm run build && node bench/memory.mjs        (BENCH_DURATION=5 seconds per wrk run)
//
// Loopback only; every process started is stopped at the end.

import { Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exchange, httpRequest, sendMany } from './lib/client.mjs';
import { measure, probeArgs } from './lib/mem.mjs';
import { stopAll } from './lib/procs.mjs';
import { removeServerCwd, startNodeHttp, startTcpkv } from './lib/servers.mjs';
import { runWrk, wrkVersion } from './lib/wrk.mjs';

const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const MIB = 2 ** 20;
const log = (line) => process.stderr.write(`${line}\n`);
const procs = [];
const memDir = mkdtempSync(join(tmpdir(), 'tcpkv-bench-mem-'));

/** Preloads `count` pairs through POST /create bodies of up to 1000 pairs and ~900 KB. */
async function preload(port, count, keyOf, valueOf) {
  const pairBytes = Buffer.byteLength(`${keyOf(0)}: ${valueOf(0)}&`) + 8;
  const per = Math.max(1, Math.min(1000, Math.floor(900_000 / pairBytes)));
  const batches = Math.ceil(count / per);
  const statuses = await sendMany(
    port,
    batches,
    (b) => {
      const parts = [];
      for (let i = b * per; i < Math.min(count, (b + 1) * per); i++) parts.push(`${keyOf(i)}: ${valueOf(i)}`);
      return httpRequest('POST', '/create', parts.join('&'));
    },
    { connections: 2, depth: 4 },
  );
  if (Object.keys(statuses).some((s) => s !== '200')) throw new Error(`preload answered ${JSON.stringify(statuses)}`);
}

const payloadOf = (count, keyOf, valueOf) => {
  let bytes = 0;
  for (let i = 0; i < count; i++) bytes += Buffer.byteLength(keyOf(i)) + Buffer.byteLength(valueOf(i));
  return bytes;
};

async function heapFor(start, name, set) {
  const file = join(memDir, `${name}.json`);
  const proc = await start({ nodeArgs: probeArgs(), env: { BENCH_MEM_FILE: file } });
  procs.push(proc);
  try {
    const before = await measure(proc.pid, file);
    await preload(proc.port, set.count, set.keyOf, set.valueOf);
    await exchange(proc.port, httpRequest('GET', '/'), 120_000); // the listing rendered (tcpkv) / cached (node:http)
    const after = await measure(proc.pid, file);
    return { heap: after.heapUsed - before.heapUsed, external: after.external - before.external, rss: after.rss - before.rss };
  } finally {
    await stopAll([proc]);
  }
}

const results = { heap: [], readers: undefined, get: undefined };

async function heapPerByte() {
  const sets = [
    { name: '200,000 keys × ~100 B (ASCII)', count: 200_000, keyOf: (i) => `key${i}`, valueOf: (i) => `value-${i}-`.padEnd(90, 'x') },
    { name: '10,000 keys × 10 KB values', count: 10_000, keyOf: (i) => `key${i}`, valueOf: (i) => `v${i}`.padEnd(10_000, 'x') },
    { name: '100,000 keys × Korean values (~100 B)', count: 100_000, keyOf: (i) => `키${i}`, valueOf: (i) => `값${i}`.padEnd(33, '김') },
  ];
  for (const set of sets) {
    const payload = payloadOf(set.count, set.keyOf, set.valueOf);
    log(`heap: ${set.name} (payload ${(payload / MIB).toFixed(1)} MiB)…`);
    const tcpkv = await heapFor(startTcpkv, 'tcpkv', set);
    const nodeHttp = await heapFor(startNodeHttp, 'node-http', set);
    results.heap.push({ set: set.name, keys: set.count, payload, tcpkv, nodeHttp });
  }
}

async function neverReading() {
  const count = 500_000;
  const keyOf = (i) => `k${i}`;
  const valueOf = (i) => `value-${i}-`.padEnd(92, 'x');
  const file = join(memDir, 'readers.json');
  const proc = await startTcpkv({ nodeArgs: probeArgs(), env: { BENCH_MEM_FILE: file } });
  procs.push(proc);
  const sockets = [];
  try {
    log('readers: loading a 50 MB store…');
    await preload(proc.port, count, keyOf, valueOf);
    const listing = await exchange(proc.port, httpRequest('GET', '/'), 120_000);
    const before = (await measure(proc.pid, file)).rss; // after a full GC, as the figure after
    const highWaterMark = new Socket().writableHighWaterMark;
    for (let c = 0; c < 100; c++) {
      const socket = new Socket();
      await new Promise((resolve, reject) => socket.connect({ port: proc.port, host: '127.0.0.1' }, resolve).once('error', reject));
      socket.pause(); // never reads
      let pipeline = Buffer.alloc(0);
      for (let i = 0; i < 3; i++) pipeline = Buffer.concat([pipeline, httpRequest('PUT', '/update', `k${c * 3 + i}: changed`), httpRequest('GET', '/')]);
      socket.write(pipeline);
      sockets.push(socket);
    }
    await sleep(2000);
    const grown = (await measure(proc.pid, file)).rss - before;
    results.readers = { storeBytes: Buffer.byteLength(listing.body), grown, highWaterMark, bound: 100 * highWaterMark };
  } finally {
    for (const s of sockets) s.destroy();
    await stopAll([proc]);
  }
}

async function getWithWrites() {
  if (wrkVersion() === undefined) {
    log('get: wrk is not installed (apt-get install -y wrk): skipped');
    return;
  }
  const count = 100_000;
  const keyOf = (i) => `k${i}`;
  const valueOf = (i) => `v${i}`.padEnd(16, '.');
  const rows = {};
  for (const [name, start] of [
    ['tcpkv', startTcpkv],
    ['node:http', startNodeHttp],
  ]) {
    const proc = await start();
    procs.push(proc);
    try {
      await preload(proc.port, count, keyOf, valueOf);
      log(`get: ${name}, GET GET PUT for ${DURATION} s…`);
      await runWrk({ port: proc.port, connections: 8, threads: 1, durationS: 1, script: 'get-get-put.lua', args: [count] });
      rows[name] = await runWrk({ port: proc.port, connections: 8, threads: 1, durationS: DURATION, script: 'get-get-put.lua', args: [count], timeoutS: 30 });
    } finally {
      await stopAll([proc]);
    }
  }
  results.get = rows;
}

try {
  await heapPerByte();
  await neverReading();
  await getWithWrites();
} finally {
  await stopAll(procs);
  removeServerCwd();
  rmSync(memDir, { recursive: true, force: true });
}

const PER_KEY = 128; // the per-key cost the default limits assume (services/server/store/memory-store.ts)
console.log('\n1. Heap per stored byte (V8 heap after a full GC; payload = UTF-8 bytes of keys plus values)');
for (const r of results.heap) {
  const fixed = (r.tcpkv.heap - r.payload) / r.keys;
  const target = 1.5 * r.payload + PER_KEY * r.keys;
  console.log(
    `   ${r.set}: payload ${(r.payload / MIB).toFixed(1)} MiB; tcpkv heap +${(r.tcpkv.heap / MIB).toFixed(1)} MiB = ${(r.tcpkv.heap / r.payload).toFixed(2)}× payload ` +
      `(${fixed.toFixed(0)} B per key beyond the payload; target ≤ 1.5× + ${PER_KEY} B/key: ${r.tcpkv.heap <= target ? 'met' : 'NOT met'}), ` +
      `external +${(r.tcpkv.external / MIB).toFixed(1)} MiB; node:http heap +${(r.nodeHttp.heap / MIB).toFixed(1)} MiB + external +${(r.nodeHttp.external / MIB).toFixed(1)} MiB ` +
      `(tcpkv/node:http heap+external ${((r.tcpkv.heap + r.tcpkv.external) / (r.nodeHttp.heap + r.nodeHttp.external)).toFixed(2)})`,
  );
}
if (results.readers) {
  const r = results.readers;
  console.log(`\n2. 100 readers that never read, each PUT /update + GET / ×3, against a ${(r.storeBytes / MIB).toFixed(1)} MiB store`);
  console.log(`   RSS +${(r.grown / MIB).toFixed(1)} MiB; 100 × high-water mark (${r.highWaterMark} B) = ${(r.bound / MIB).toFixed(1)} MiB: ratio ${(r.grown / r.bound).toFixed(2)} (target < 1)`);
}
if (results.get) {
  const t = results.get.tcpkv;
  const n = results.get['node:http'];
  console.log('\n3. GET / of 100,000 keys with a PUT /update between every two GETs (8 connections, wrk)');
  console.log(`   tcpkv ${t.rps.toFixed(0)} req/s (p99 ${t.p99?.toFixed(1)} ms, errors ${t.errors}); node:http ${n.rps.toFixed(0)} req/s (p99 ${n.p99?.toFixed(1)} ms, errors ${n.errors}); ratio ${(t.rps / n.rps).toFixed(2)} (goal ≥ 3)`);
}
