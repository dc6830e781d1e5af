#!/usr/bin/env node
// What counting for /metrics costs on the hot path: the bench's GET row (GET /, empty store, wrk with
// 64 connections) against two tcpkv servers from the same build, one with the admin port on (every
// request counted) and one without (the data path reports to nothing), measured in alternating
// rounds in one run so both see the same machine. Prints each round and the ratio of the medians.
// Loopback only; both servers are stopped at the end, also on error or Ctrl-C.
//
//   npm run build && node bench/metrics-overhead.mjs
//   BENCH_DURATION=5 BENCH_ROUNDS=5 BENCH_CONNECTIONS=64 BENCH_THREADS=1

import { json, stopAll, waitForLine } from './lib/procs.mjs';
import { fmt, median } from './lib/report.mjs';
import { removeServerCwd, startTcpkv } from './lib/servers.mjs';
import { runWrk, wrkVersion } from './lib/wrk.mjs';
import { readFileSync } from 'node:fs';

const env = process.env;
const durationS = Number(env.BENCH_DURATION ?? 5);
const rounds = Number(env.BENCH_ROUNDS ?? 5);
const connections = Number(env.BENCH_CONNECTIONS ?? 64);
const threads = Number(env.BENCH_THREADS ?? 1);

/** CPU seconds (user + system) a process has used, from /proc (Linux). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // fields[11], fields[12]: utime, stime in clock ticks (100 per second on Linux)
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function scrapeRequests(adminPort) {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('tcpkv_requests_total{')) total += Number(line.split(' ').pop());
  return total;
}

/** The hot-path cost by itself: ns per ServerEvents.requestDone() on the compiled metrics module. */
async function counterCost() {
  const { TcpkvMetrics } = await import('../dist/services/server/metrics.js');
  const metrics = new TcpkvMetrics({ defaultMetrics: false });
  const routes = ['listing', 'kv-key', 'head', 'create'];
  const methods = ['GET', 'PUT', 'HEAD', 'POST'];
  const calls = 5_000_000;
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) metrics.requestDone(methods[i & 3], routes[i & 3], i & 8 ? 200 : 404, 0.00004, 0, 120);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / calls);
  }
  return best;
}

async function main() {
  if (!wrkVersion()) {
    process.stderr.write('bench: wrk is missing (Debian: apt-get install -y wrk)\n');
    process.exit(2);
  }
  const procs = [];
  const cleanup = () => stopAll(procs).finally(removeServerCwd);
  process.once('SIGINT', () => cleanup().finally(() => process.exit(130)));
  try {
    const off = await startTcpkv();
    procs.push(off);
    // admin port 0: the server picks a free one and logs it
    const on = await startTcpkv({ env: { TCPKV_ADMIN_PORT: '0' } });
    procs.push(on);
    const adminPort = await waitForLine(on, (l) => (json(l)?.msg?.startsWith('admin port listening') ? json(l).port : undefined), 10_000, 'the admin port');
    const subjects = [
      { name: 'metrics off', proc: off, rps: [], cpuPerRequest: [] },
      { name: 'metrics on', proc: on, rps: [], cpuPerRequest: [] },
    ];
    console.log(`${wrkVersion()}, GET / (empty store), ${connections} connections, ${threads} thread(s), ${durationS} s × ${rounds} rounds each, alternating`);
    // warm-up: JIT and connection set-up out of the measured rounds
    for (const s of subjects) await runWrk({ port: s.proc.port, connections, threads, durationS: 1 });
    for (let round = 0; round < rounds; round++) {
      // alternate which goes first, so drift in the machine's load falls on both
      const order = round % 2 === 0 ? subjects : [...subjects].reverse();
      for (const s of order) {
        const cpu0 = cpuSeconds(s.proc.pid);
        const r = await runWrk({ port: s.proc.port, connections, threads, durationS });
        const cpuUs = ((cpuSeconds(s.proc.pid) - cpu0) * 1e6) / r.requests;
        if (r.errors > 0) throw new Error(`${s.name}: ${r.errors} errors`);
        s.rps.push(r.rps);
        s.cpuPerRequest.push(cpuUs);
        console.log(`round ${round + 1}  ${s.name.padEnd(12)} ${fmt.int(r.rps).padStart(8)} req/s  p99 ${r.p99} ms  ${cpuUs.toFixed(2)} CPU-µs/request`);
      }
    }
    const counted = await scrapeRequests(adminPort);
    const [m0, m1] = subjects.map((s) => median(s.rps));
    // each round's pair ran back to back, so its ratio is the least exposed to the machine's drift
    const paired = subjects[0].rps.map((o, i) => subjects[1].rps[i] / o);
    console.log(`median: off ${fmt.int(m0)} req/s, on ${fmt.int(m1)} req/s; ratio of medians ${(m1 / m0).toFixed(3)}×`);
    console.log(`per-round on/off: ${paired.map((r) => r.toFixed(3)).join(' ')}; median ${median(paired).toFixed(3)}×`);
    // CPU per request is what counting adds; it is far less sensitive to other load than req/s
    const [c0, c1] = subjects.map((s) => median(s.cpuPerRequest));
    console.log(`server CPU per request: off ${c0.toFixed(2)} µs, on ${c1.toFixed(2)} µs; throughput ratio implied by CPU: ${(c0 / c1).toFixed(3)}×`);
    const ns = await counterCost();
    const perRequestNs = 1e9 / m0;
    console.log(`requestDone() alone: ${ns.toFixed(1)} ns per call = ${((100 * ns) / perRequestNs).toFixed(2)} % of a request's ${fmt.int(perRequestNs)} ns at the "off" rate`);
    console.log(`(the "on" server counted ${fmt.int(counted)} requests in tcpkv_requests_total)`);
    if (counted === 0) throw new Error('the server with the admin port on counted nothing: are the data path events wired?');
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  process.stderr.write(`bench: ${error?.stack ?? error}\n`);
  process.exit(1);
});
