#!/usr/bin/env node
// tcpkv-client reading big answers, against curl reading the same ones, in one run: `get KEY` of a
// 32 MiB value and `get` (GET /) of a 300,000-key listing, from tcpkv on loopback. Each command runs
// several times, curl and the client alternating; the medians and their ratio are printed, with the
// bound each ratio must stay under (2× for the value, 3× for the listing). Exit 1 when one is over.
// Both write to /dev/null, and both times include starting the process; the client's start alone
// (`--version`) is measured too and shown apart, with the ratio once it is taken off.
//
//   npm run build && node bench/client-reading.mjs
//   CLIENT_BENCH_RUNS=5 CLIENT_BENCH_VALUE_MIB=32 CLIENT_BENCH_KEYS=300000

import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { exchange, httpRequest } from './lib/client.mjs';
import { stop } from './lib/procs.mjs';
import { fmt, median, table } from './lib/report.mjs';
import { ROOT, removeServerCwd, startTcpkv } from './lib/servers.mjs';

const CLIENT = join(ROOT, 'dist/services/client/cli.js');

function positive(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`client-reading: ${name}=${raw} is not a positive whole number\n`);
    process.exit(2);
  }
  return n;
}

const RUNS = positive('CLIENT_BENCH_RUNS', 5);
const VALUE_BYTES = positive('CLIENT_BENCH_VALUE_MIB', 32) * 2 ** 20;
const KEYS = positive('CLIENT_BENCH_KEYS', 300_000);
const PAIRS_PER_CREATE = 10_000;

const progress = (text) => process.stderr.write(`client-reading: ${text}\n`);

/** Runs a command with stdout to `outFile` (default /dev/null); resolves with its wall time in ms. */
function timed(command, args, outFile = '/dev/null') {
  const fd = openSync(outFile, 'w');
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', fd, 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = performance.now() - t0;
      closeSync(fd);
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
      else resolve(ms);
    });
  });
}

async function send(port, method, path, body = '') {
  const answer = await exchange(port, httpRequest(method, path, body), 120_000);
  if (answer.status !== 200) throw new Error(`${method} ${path}: ${answer.status} ${answer.body.toString().slice(0, 200)}`);
}

/** The same bytes from curl and from `tcpkv-client -q` (which adds a line break to a body without one). */
async function checkSameBytes(port, target, clientArgs) {
  const dir = mkdtempSync(join(tmpdir(), 'tcpkv-client-reading-'));
  try {
    await timed('curl', ['-sS', '--fail', `http://127.0.0.1:${port}${target}`], join(dir, 'curl'));
    await timed(process.execPath, [CLIENT, '-q', '--server', `127.0.0.1:${port}`, ...clientArgs], join(dir, 'client'));
    const fromCurl = readFileSync(join(dir, 'curl'));
    let fromClient = readFileSync(join(dir, 'client'));
    if (fromCurl.at(-1) !== 0x0a && fromClient.at(-1) === 0x0a) fromClient = fromClient.subarray(0, -1);
    const hash = (b) => createHash('sha256').update(b).digest('hex');
    if (fromCurl.length === 0 || hash(fromCurl) !== hash(fromClient)) {
      throw new Error(`${target}: curl read ${fromCurl.length} B, tcpkv-client ${fromClient.length} B, not the same bytes`);
    }
    return fromCurl.length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** RUNS × (curl, client, the client's start alone), alternating; the medians in ms. */
async function compare(port, target, clientArgs) {
  const curl = [];
  const client = [];
  const start = [];
  for (let i = 0; i < RUNS; i++) {
    curl.push(await timed('curl', ['-sS', '--fail', '-o', '/dev/null', `http://127.0.0.1:${port}${target}`]));
    client.push(await timed(process.execPath, [CLIENT, '--server', `127.0.0.1:${port}`, '--timeout', '600000', ...clientArgs]));
    start.push(await timed(process.execPath, [CLIENT, '--version']));
  }
  return { curl: median(curl), client: median(client), start: median(start), curlRuns: curl, clientRuns: client };
}

/** A value of `bytes` UTF-8 bytes, text with some two- and three-byte characters. */
function bigValue(bytes) {
  const unit = Buffer.from('value 0123456789 가나다 é ', 'utf8');
  const out = Buffer.alloc(bytes, 0x61);
  for (let at = 0; at + unit.length <= bytes; at += unit.length) unit.copy(out, at);
  return out.toString('utf8');
}

const curlVersion = execFileSync('curl', ['--version']).toString().split('\n')[0];
progress(`${curlVersion.split(' ').slice(0, 2).join(' ')}, node ${process.version}, ${RUNS} runs each, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const server = await startTcpkv({
  env: { TCPKV_MAX_BODY_BYTES: String(VALUE_BYTES + 2 ** 20), TCPKV_MAX_DATA_BYTES: String(2 ** 30), TCPKV_MAX_KEYS: String(KEYS + 10) },
  nodeArgs: ['--max-old-space-size=2048'],
});
const rows = [];
let over = false;
try {
  progress(`PUT /kv/big (${fmt.bytes(VALUE_BYTES)})`);
  await send(server.port, 'PUT', '/kv/big', bigValue(VALUE_BYTES));
  const valueBytes = await checkSameBytes(server.port, '/kv/big', ['get', 'big']);
  progress('get big: same bytes as curl; timing');
  const value = await compare(server.port, '/kv/big', ['get', 'big']);
  await send(server.port, 'DELETE', '/kv/big');

  progress(`POST /create × ${Math.ceil(KEYS / PAIRS_PER_CREATE)} (${KEYS.toLocaleString('en-US')} keys)`);
  const filler = 'v'.repeat(80);
  for (let first = 0; first < KEYS; first += PAIRS_PER_CREATE) {
    const pairs = [];
    for (let k = first; k < Math.min(KEYS, first + PAIRS_PER_CREATE); k++) pairs.push(`key-${String(k).padStart(7, '0')}: ${filler}`);
    await send(server.port, 'POST', '/create', pairs.join('&'));
  }
  const listingBytes = await checkSameBytes(server.port, '/', ['get']);
  progress('get (the listing): same bytes as curl; timing');
  const listing = await compare(server.port, '/', ['get']);

  for (const [what, m, bound] of [
    [`get KEY, ${fmt.bytes(valueBytes)} value`, value, 2],
    [`get (GET /), ${KEYS.toLocaleString('en-US')} keys, ${fmt.bytes(listingBytes)}`, listing, 3],
  ]) {
    const r = m.client / m.curl;
    if (r > bound) over = true;
    rows.push([what, fmt.ms(m.curl), fmt.ms(m.client), fmt.x(r), `${bound}×`, r <= bound ? 'yes' : 'NO', fmt.ms(m.start), fmt.x((m.client - m.start) / m.curl)]);
    progress(`${what}: curl ${m.curlRuns.map((x) => x.toFixed(0)).join(', ')} ms; tcpkv-client ${m.clientRuns.map((x) => x.toFixed(0)).join(', ')} ms`);
  }
} finally {
  await stop(server);
  removeServerCwd();
}
console.log(
  table(['answer read', 'curl ms', 'tcpkv-client ms', 'ratio', 'bound', 'within', 'client start ms', 'ratio less start'], rows, ['l', 'r', 'r', 'r', 'r', 'l', 'r', 'r']),
);
console.log(
  `medians of ${RUNS} runs each; both write to /dev/null; times include starting the process (client start: \`tcpkv-client --version\`, ` +
    `shown apart since a curl start costs a few ms); load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`,
);
process.exitCode = over ? 1 : 0;
