#!/usr/bin/env node
// `node bench/tls.mjs`: tcpkv's TLS port against node:https serving the same semantics with the same
// certificate, and against a no-parse TLS ceiling (bench/servers/ceiling.mjs --tls-cert), with wrk over
// keep-alive connections: GET / and POST /create (unique keys). Rounds alternate the servers; the
// ratios are medians of one run. A certificate (ECDSA P-256) is made with openssl in a temp dir.
// Loopback only; every process it starts is stopped at the end.
//
//   BENCH_DURATION=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=64 BENCH_THREADS=1

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { json, start, stopAll, waitForLine } from './lib/procs.mjs';
import { median } from './lib/report.mjs';
import { startCeiling, startNodeHttp, TCPKV_MAIN } from './lib/servers.mjs';
import { runWrk } from './lib/wrk.mjs';

const env = process.env;
const DURATION = Number(env.BENCH_DURATION ?? 5);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(env.BENCH_CONNECTIONS ?? 64);
const THREADS = Number(env.BENCH_THREADS ?? 1);

const dir = mkdtempSync(join(tmpdir(), 'tcpkv-bench-tls-'));
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'server.key');
openssl('req', '-x509', '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-days', '2', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-out', 'server.pem');
const cert = join(dir, 'server.pem');
const key = join(dir, 'server.key');

const procs = [];
/** The process's CPU time so far, µs (utime + stime from /proc: 100 ticks a second on Linux). */
function cpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}
const cpuPerRequest = {};
async function startTcpkvTls() {
  const proc = start(process.execPath, [TCPKV_MAIN, '--port', 'off', '--tls-port', '0', '--tls-cert-file', cert, '--tls-key-file', key, '--log-level', 'info'], { env: { PATH: env.PATH } });
  proc.name = 'tcpkv-tls';
  const line = await waitForLine(proc, (l) => (json(l)?.msg === 'TLS listening' ? json(l) : undefined), 60_000, 'tcpkv to listen on TLS');
  proc.port = line.port;
  return proc;
}

const tlsArgs = { tls: ['--tls-cert', cert, '--tls-key', key] };
const WORKLOADS = [
  { id: 'get', title: 'GET / (empty store)', script: undefined },
  { id: 'post', title: 'POST /create, unique keys', script: 'post-unique.lua' },
];

let runId = 0;
const results = {};
try {
  for (const w of WORKLOADS) {
    results[w.id] = { tcpkv: [], 'node:https': [], ceiling: [] };
    for (let round = 0; round < ROUNDS; round++) {
      // a fresh server per round and workload: the POST rounds start from an empty store each time
      const subjects = {
        tcpkv: await startTcpkvTls(),
        'node:https': await startNodeHttpsWith(),
        ceiling: await startCeilingWith(w),
      };
      procs.push(...Object.values(subjects));
      for (const [name, proc] of Object.entries(subjects)) {
        const cpuBefore = cpuMicros(proc.pid);
        const r = await runWrk({ port: proc.port, scheme: 'https', connections: CONNECTIONS, threads: THREADS, durationS: DURATION, script: w.script, args: w.script ? [`r${++runId}`] : [] });
        if (r.non2xx > 0 || (r.socketErrors && Object.values(r.socketErrors).some((n) => n > 0))) console.error(`${name} ${w.id}: non-2xx ${r.non2xx}, socket errors ${JSON.stringify(r.socketErrors)}`);
        results[w.id][name].push(r.rps);
        ((cpuPerRequest[w.id] ??= {})[name] ??= []).push((cpuMicros(proc.pid) - cpuBefore) / r.requests);
      }
      await stopAll(Object.values(subjects));
    }
  }
} finally {
  await stopAll(procs);
  rmSync(dir, { recursive: true, force: true });
}

async function startNodeHttpsWith() {
  return startNodeHttp({ args: tlsArgs.tls });
}
async function startCeilingWith(w) {
  return startCeiling({ store: w.id === 'post', args: tlsArgs.tls });
}

console.log(`TLS, keep-alive, ${CONNECTIONS} connections, ${THREADS} wrk thread(s), ${DURATION} s × ${ROUNDS} rounds (medians, requests/s)`);
for (const w of WORKLOADS) {
  const m = Object.fromEntries(Object.entries(results[w.id]).map(([k, v]) => [k, median(v)]));
  const cpu = Object.fromEntries(Object.entries(cpuPerRequest[w.id]).map(([k, v]) => [k, median(v)]));
  console.log(`${w.title}: tcpkv ${Math.round(m.tcpkv)}, node:https ${Math.round(m['node:https'])}, TLS ceiling ${Math.round(m.ceiling)}; tcpkv/node:https ${(m.tcpkv / m['node:https']).toFixed(2)}×, tcpkv/ceiling ${(m.tcpkv / m.ceiling).toFixed(2)}×`);
  console.log(`  server CPU per request (µs, load-independent): tcpkv ${cpu.tcpkv.toFixed(1)}, node:https ${cpu['node:https'].toFixed(1)}, TLS ceiling ${cpu.ceiling.toFixed(1)}`);
}
