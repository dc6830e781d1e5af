#!/usr/bin/env node
// Dump and restore at the sizes users reach, between every pair of store kinds:
//
//   data sets: 1,000,000 keys × 100 B, and 5,000 keys × 100 KB of Korean text
//   for each source kind (memory, log, etcd): load the set, `tcpkv-client dump`, then restore into an
//   empty server of each other kind; GET / of the target must be byte-identical (sha256) to the source's
//
// Prints, per step, the wall time and the client's peak RSS (from /usr/bin/time), and as the baseline
// measured in the same run, the time curl takes to read the same GET / (what any dump must at least
// cost). The etcd member is a local process (Debian's etcd), loopback only.
//
//   npm run build && node bench/backup.mjs
//   BACKUP_SETS=small node bench/backup.mjs     (sets: small | keys | values | all; default all)
//
// small = 100,000 × 100 B, for a quick look. Every process started is stopped at the end.

import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, createReadStream, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { stopAll } from './lib/procs.mjs';
import { ROOT, removeServerCwd, startTcpkv } from './lib/servers.mjs';
import { sendMany } from './lib/client.mjs';

const CLIENT = join(ROOT, 'dist/services/client/cli.js');
const log = (line) => process.stderr.write(`${line}\n`);
const procs = [];
const scratch = mkdtempSync(join(tmpdir(), 'tcpkv-bench-backup-'));

const SETS = {
  small: { name: '100,000 × 100 B', count: 100_000, value: (i) => `v${String(i).padStart(8, '0')}-${'x'.repeat(90)}` },
  keys: { name: '1,000,000 × 100 B', count: 1_000_000, value: (i) => `v${String(i).padStart(8, '0')}-${'x'.repeat(90)}` },
  values: { name: '5,000 × 100 KB Korean', count: 5_000, value: (i) => `${i}:` + '컴퓨터네트워크'.repeat(4_762).slice(0, 33_330) },
};
const chosen = (process.env.BACKUP_SETS ?? 'all') === 'all' ? ['keys', 'values'] : [process.env.BACKUP_SETS];

async function startEtcd() {
  const dir = mkdtempSync(join(scratch, 'etcd-'));
  const port = 23_000 + Math.floor(Math.random() * 2_000);
  const endpoint = `http://127.0.0.1:${port}`;
  const proc = spawn('etcd', ['--data-dir', dir, '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint, '--listen-peer-urls', `http://127.0.0.1:${port + 1}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${port + 1}`, '--initial-cluster', `b=http://127.0.0.1:${port + 1}`, '--name', 'b', '--quota-backend-bytes', String(8 * 2 ** 30), '--max-txn-ops', '1024', '--max-request-bytes', String(8 * 2 ** 20)], { stdio: 'ignore' });
  proc.name = 'etcd';
  procs.push(proc);
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('curl', ['-s', '-m', '1', `${endpoint}/health`]);
      return endpoint;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('etcd did not start');
}

let prefixes = 0;
async function serverOf(kind, etcd) {
  const env =
    kind === 'memory' ? {} : kind === 'log' ? { TCPKV_DATA_DIR: mkdtempSync(join(scratch, 'log-')) } : { TCPKV_ETCD_ENDPOINTS: etcd, TCPKV_ETCD_PREFIX: `b${++prefixes}/`, TCPKV_ETCD_MAX_TXN_OPS: '1024', TCPKV_ETCD_MAX_REQUEST_BYTES: String(8 * 2 ** 20) };
  const proc = await startTcpkv({ env: { ...env, TCPKV_MAX_KEYS: '2000000', TCPKV_MAX_DATA_BYTES: String(2 * 2 ** 30) }, nodeArgs: ['--max-old-space-size=4096'] });
  procs.push(proc);
  return proc;
}

/** Runs a client command under /usr/bin/time; stdin and stdout are files. Returns ms and peak RSS (MB). */
function timed(args, { input, output }) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sh = `exec /usr/bin/time -f '%M' ${[process.execPath, '--max-old-space-size=4096', CLIENT, ...args].map((a) => `'${a}'`).join(' ')} ${input ? `< '${input}'` : ''} ${output ? `> '${output}'` : '> /dev/null'}`;
    const child = spawn('sh', ['-c', sh], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('exit', (code) => {
      const ms = performance.now() - t0;
      const kb = Number(err.trim().split('\n').at(-1));
      if (code !== 0) reject(new Error(`tcpkv-client ${args.join(' ')} exited ${code}: ${err.slice(-500)}`));
      else resolve({ ms, rssMb: kb / 1024 });
    });
  });
}

function sha256File(file) {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    createReadStream(file).on('data', (c) => hash.update(c)).on('end', () => resolve(hash.digest('hex')));
  });
}

async function listingSha(port, name) {
  const file = join(scratch, `${name}.listing`);
  const t0 = performance.now();
  execFileSync('sh', ['-c', `curl -s -o '${file}' http://127.0.0.1:${port}/`]);
  const ms = performance.now() - t0;
  return { sha: await sha256File(file), ms, bytes: statSync(file).size };
}

async function load(port, set) {
  const pairBytes = Buffer.byteLength(`k0000000: ${set.value(0)}&`) + 8;
  const per = Math.max(1, Math.min(500, Math.floor(900_000 / pairBytes)));
  const batches = Math.ceil(set.count / per);
  const statuses = await sendMany(port, batches, (b) => {
    const pairs = [];
    for (let i = b * per; i < Math.min(set.count, (b + 1) * per); i++) pairs.push(`k${String(i).padStart(7, '0')}: ${set.value(i)}`);
    const body = Buffer.from(pairs.join('&'));
    return Buffer.concat([Buffer.from(`POST /create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
  }, { connections: 2, depth: 2, timeoutMs: 1_800_000 });
  const bad = Object.entries(statuses).filter(([status]) => status !== '200');
  if (bad.length > 0) throw new Error(`loading POSTs failed: ${JSON.stringify(statuses)}`);
}

const rows = [];
try {
  const etcd = await startEtcd();
  for (const setName of chosen) {
    const set = SETS[setName];
    for (const from of ['memory', 'log', 'etcd']) {
      const source = await serverOf(from, etcd);
      const t0 = performance.now();
      await load(source.port, set);
      log(`${set.name}: loaded the ${from} store in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const want = await listingSha(source.port, `${from}-source`);
      const file = join(scratch, `${setName}-${from}.dump`);
      const d = await timed(['--server', `127.0.0.1:${source.port}`, '--timeout', '600000', 'dump'], { output: file });
      rows.push({ set: set.name, step: `dump ${from}`, ms: d.ms, rssMb: d.rssMb, curlMs: want.ms, mb: want.bytes / 2 ** 20, same: '' });
      log(`  dump of ${from}: ${(d.ms / 1000).toFixed(1)} s, client peak ${d.rssMb.toFixed(0)} MB (curl GET /: ${(want.ms / 1000).toFixed(1)} s)`);
      await stopAll([source]);
      for (const to of ['memory', 'log', 'etcd'].filter((k) => k !== from)) {
        const target = await serverOf(to, etcd);
        const r = await timed(['--server', `127.0.0.1:${target.port}`, '--timeout', '600000', 'restore', '--batch', setName === 'values' ? '8' : '500'], { input: file });
        const got = await listingSha(target.port, `${to}-target`);
        rows.push({ set: set.name, step: `restore ${from} → ${to}`, ms: r.ms, rssMb: r.rssMb, curlMs: got.ms, mb: got.bytes / 2 ** 20, same: got.sha === want.sha ? 'yes' : 'NO' });
        log(`  restore ${from} → ${to}: ${(r.ms / 1000).toFixed(1)} s, client peak ${r.rssMb.toFixed(0)} MB, GET / identical: ${got.sha === want.sha}`);
        await stopAll([target]);
      }
    }
  }
} finally {
  await stopAll(procs);
  removeServerCwd();
  rmSync(scratch, { recursive: true, force: true });
}

console.log('| data | step | time | client peak RSS | GET / by curl (same run) | ratio | listing | GET / identical |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.set} | ${r.step} | ${(r.ms / 1000).toFixed(1)} s | ${r.rssMb.toFixed(0)} MB | ${(r.curlMs / 1000).toFixed(2)} s | ${(r.ms / r.curlMs).toFixed(1)}× | ${r.mb.toFixed(1)} MiB | ${r.same || '—'} |`);
}
if (rows.some((r) => r.same === 'NO')) process.exitCode = 1;
