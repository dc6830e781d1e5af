#!/usr/bin/env node
// Throughput of tcpkv replicas over etcd against the memory store and against etcd itself, measured
// with wrk (keep-alive connections, standard HTTP), every row printed as a ratio:
//
//   node infra/cluster/bench.mjs --up      # its own cluster from infra/cluster/vm.compose.yml on
//                                          # 127.0.0.1 ports, and memory-store servers from the same
//                                          # image published the same way; all removed afterwards
//
//   GET   one replica vs the memory store, on a nearly empty store and with 10,000 keys in both
//   GET   three replicas together vs one replica (this machine's cores are shared by everything), and
//         as a control three memory-store servers together vs one: what three processes behind
//         three port proxies cost here without etcd
//   GET   etcd round trips per GET served through one replica: etcd's own count of Range calls
//         (grpc_server_handled_total, summed over the members, read from inside the cluster's
//         network, health checks included) over the GETs wrk completed — counted, not estimated
//   POST  one replica vs a plain etcd3 transaction loop (one create-if-absent transaction per
//         request, from a container on the cluster's network) at the same concurrency
//
// Options: --duration S (10), --get-connections N (64: every GET row, the memory store's too),
// --saturation-connections N (256: the 10-key GET rows again at N connections, enough to saturate
// each server; 0 leaves them out),
// --connections N (24: the POST row and the etcd3 loop), --threads N (2), --json. Needs wrk and Docker on this machine and
// the images of the compose file (NODE_IMAGE, ETCD_IMAGE as for the compose files).

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '../..');
const COMPOSE_FILE = 'infra/cluster/vm.compose.yml';
const POST_SCRIPT = join(ROOT, 'bench/wrk/post-unique.lua'); // the same script npm run bench uses

function usage(code) {
  process.stdout.write('Usage: node infra/cluster/bench.mjs --up [--duration S] [--get-connections N] [--saturation-connections N] [--connections N] [--threads N] [--json]\n');
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { up: false, servers: undefined, duration: 10, connections: 24, getConnections: 64, saturationConnections: 256, threads: 2, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(2);
      return argv[++i];
    };
    if (a === '--up') opts.up = true;
    else if (a === '--duration') opts.duration = Number(value());
    else if (a === '--connections') opts.connections = Number(value());
    else if (a === '--get-connections') opts.getConnections = Number(value());
    else if (a === '--saturation-connections') opts.saturationConnections = Number(value());
    else if (a === '--threads') opts.threads = Number(value());
    else if (a === '--json') opts.json = true;
    else if (a === '-h' || a === '--help') usage(0);
    else {
      process.stderr.write(`bench.mjs: unknown option ${a}\n`);
      usage(2);
    }
  }
  if (!opts.up || opts.servers !== undefined) usage(2);
  for (const n of [opts.duration, opts.connections, opts.getConnections, opts.threads]) if (!(Number.isInteger(n) && n > 0)) usage(2);
  if (!(Number.isInteger(opts.saturationConnections) && opts.saturationConnections >= 0)) usage(2);
  return opts;
}

function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024, ...options }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? error.code : 0, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** One request on its own connection; resolves with the status code (0 when no answer). */
function send(address, method, path, body = '') {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let data = '';
    const done = (status) => {
      socket.destroy();
      resolve(status);
    };
    socket.setTimeout(5000, () => done(0));
    socket.on('error', () => done(0));
    // Docker's port proxy accepts and then closes while the replica is not listening yet
    socket.on('close', () => done(0));
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      if (m) done(Number(m[1]));
    });
    socket.on('connect', () => {
      const b = Buffer.from(body);
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${b.length}\r\nConnection: close\r\n\r\n${body}`);
    });
  });
}

async function waitAnswering(servers, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (const s of servers) {
    while ((await send(s, 'HEAD', '/')) !== 200) {
      if (Date.now() > deadline) throw new Error(`${s} does not answer HEAD with 200`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Runs one wrk and parses requests/s, latency and errors from its report. */
function wrk(server, { threads, connections, duration, script, scriptArgs = [] }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${duration}s`, '--latency'];
  if (script) args.push('-s', script);
  args.push(`http://${server}/`);
  if (scriptArgs.length) args.push('--', ...scriptArgs);
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`wrk ${args.join(' ')} exited ${code}: ${out}`));
      const num = (re) => Number((re.exec(out) ?? [])[1] ?? 0);
      const ms = (re) => {
        const m = re.exec(out);
        if (!m) return undefined;
        const v = Number(m[1]);
        return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
      };
      resolve({
        requests: num(/(\d+) requests in/),
        rps: num(/Requests\/sec:\s+([\d.]+)/),
        non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
        socketErrors: ['connect', 'read', 'write', 'timeout'].reduce((n, k) => n + num(new RegExp(`${k} (\\d+)`)), 0),
        p50ms: ms(/50%\s+([\d.]+)(us|ms|s)/),
        p99ms: ms(/99%\s+([\d.]+)(us|ms|s)/),
      });
    });
  });
}

/** The same load through one replica, or split over all of them at once; the totals. */
async function measure(servers, opts, kind, runId) {
  const script = kind === 'POST' ? POST_SCRIPT : undefined;
  const parts =
    servers.length === 1
      ? [await wrk(servers[0], { threads: opts.threads, connections: opts.connections, duration: opts.duration, script, scriptArgs: [`${runId}a`] })]
      : await Promise.all(
          servers.map((s, i) =>
            wrk(s, { threads: 1, connections: Math.max(1, Math.round(opts.connections / servers.length)), duration: opts.duration, script, scriptArgs: [`${runId}r${i}`] }),
          ),
        );
  const sum = (k) => parts.reduce((n, p) => n + p[k], 0);
  return {
    kind,
    replicas: servers.length,
    rps: Math.round(sum('rps')),
    requests: sum('requests'),
    non2xx: sum('non2xx'),
    socketErrors: sum('socketErrors'),
    p50ms: Math.max(...parts.map((p) => p.p50ms ?? 0)),
    p99ms: Math.max(...parts.map((p) => p.p99ms ?? 0)),
  };
}

async function compose(args, env) {
  const [cmd, pre] = (await run('docker-compose', ['version']).catch(() => ({ code: 1 }))).code === 0 ? ['docker-compose', []] : ['docker', ['compose']];
  const r = await run(cmd, [...pre, ...args], { cwd: ROOT, env });
  if (r.code !== 0) throw new Error(`${cmd} ${[...pre, ...args].join(' ')} failed: ${r.stderr || r.stdout}`);
}

/** The compose project's cluster network, where the etcd members answer as etcd1..3. */
const clusterNetwork = (project) => `${project}_cluster`;
const IMAGE = process.env.TCPKV_SERVER_IMAGE ?? 'tcpkv/server:local';

/** Runs a Node script in a container of the server image on the cluster network (it has etcd3). */
async function nodeInCluster(project, script, args = []) {
  const r = await run('docker', ['run', '--rm', '--network', clusterNetwork(project), '-w', '/app', '--entrypoint', 'node', IMAGE, '--input-type=module', '-e', script, ...args]);
  if (r.code !== 0) throw new Error(`node in the cluster network: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout.trim();
}

/** Range calls etcd has handled, summed over the three members (their /metrics, inside the network). */
const RANGE_CALLS = `
let total = 0;
for (const m of ['etcd1', 'etcd2', 'etcd3']) {
  const text = await (await fetch('http://' + m + ':2379/metrics')).text();
  for (const line of text.split('\\n')) {
    if (line.startsWith('grpc_server_handled_total{') && line.includes('grpc_method="Range"')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
}
console.log(total);`;

/** A plain etcd3 loop: `concurrency` workers, one create-if-absent transaction per request, for `seconds`. */
const PLAIN_TXN_LOOP = `
import { Etcd3 } from 'etcd3';
const [concurrency, seconds, run] = process.argv.slice(1).map((a, i) => (i < 2 ? Number(a) : a));
const client = new Etcd3({ hosts: ['http://etcd1:2379', 'http://etcd2:2379', 'http://etcd3:2379'] });
await client.put('bench-plain-warmup').value('x');
const end = Date.now() + seconds * 1000;
let done = 0;
let failed = 0;
await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
  for (let n = 0; Date.now() < end; n++) {
    const key = Buffer.from('bench-plain/' + run + '-' + w + '-' + n);
    try {
      const r = await client.kv.txn({ compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }], success: [{ request_put: { key, value: Buffer.from('v' + n) } }], failure: [] });
      if (r.succeeded) done++;
    } catch { failed++; }
  }
}));
client.close();
console.log(JSON.stringify({ rps: done / seconds, requests: done, failed }));`;

/** Fills a server with `count` keys, POSTs of 50 pairs each (one etcd transaction each). */
async function fill(server, count, tag) {
  for (let i = 0; i < count; i += 50) {
    const body = Array.from({ length: Math.min(50, count - i) }, (_, j) => `${tag}-${String(i + j).padStart(5, '0')}: value-${i + j}`).join('&');
    const status = await send(server, 'POST', '/create', body);
    if (status !== 200) throw new Error(`filling ${server}: POST answered ${status}`);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ports = [await freePort(), await freePort(), await freePort()];
  const project = `tcpkv-bench-${randomBytes(3).toString('hex')}`;
  const env = {
    ...process.env,
    TCPKV_ALLOWED_HOSTS: '127.0.0.1',
    TCPKV_ALLOWED_CLIENTS: '0.0.0.0/0',
    TCPKV_SHUTDOWN_TOKEN: randomBytes(12).toString('hex'),
    TCPKV_LOG_LEVEL: 'warn',
    TCPKV_PUBLISH_1: `127.0.0.1:${ports[0]}`,
    TCPKV_PUBLISH_2: `127.0.0.1:${ports[1]}`,
    TCPKV_PUBLISH_3: `127.0.0.1:${ports[2]}`,
  };
  process.stderr.write(`bench: starting ${COMPOSE_FILE} as project ${project}\n`);
  const memoryIds = [];
  const teardown = async () => {
    for (const id of memoryIds) await run('docker', ['rm', '-f', '-v', id]).catch(() => undefined);
    await compose(['-p', project, '-f', COMPOSE_FILE, 'down', '-v', '--timeout', '0'], env);
  };
  const stop = () => {
    teardown().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await compose(['-p', project, '-f', COMPOSE_FILE, 'up', '-d', '--build'], env);
    const servers = ports.map((p) => `127.0.0.1:${p}`);
    // the reference: memory-store servers from the same image, published the same way (the first is
    // the reference of every row; the three together are the control of the three-replica row)
    const memories = [];
    for (let n = 1; n <= 3; n++) {
      const memoryPort = await freePort();
      const started = await run('docker', ['run', '-d', '--rm', '--name', `${project}-memory${n}`, '-p', `127.0.0.1:${memoryPort}:10000`,
        '-e', 'TCPKV_DATA_DIR=', '-e', 'TCPKV_ALLOWED_HOSTS=127.0.0.1', '-e', 'TCPKV_ALLOWED_CLIENTS=0.0.0.0/0', '-e', 'TCPKV_LOG_LEVEL=warn', IMAGE]);
      if (started.code !== 0) throw new Error(`docker run (memory store): ${started.stderr.trim()}`);
      memoryIds.push(started.stdout.trim());
      memories.push(`127.0.0.1:${memoryPort}`);
    }
    const memory = memories[0];
    await waitAnswering([...servers, ...memories], 120_000);
    const runId = randomBytes(3).toString('hex');
    for (const target of [servers[0], ...memories]) for (let i = 0; i < 10; i++) await send(target, 'POST', '/create', `bench-seed-${i}: value-${i}`);

    const rows = [];
    const get = async (label, set, connections = opts.connections) => {
      process.stderr.write(`bench: GET ${label}, ${opts.duration} s, ${connections} connections\n`);
      const r = await measure(set, { ...opts, connections }, 'GET', runId);
      rows.push({ label, ...r });
      return r;
    };
    const ratio = (name, a, b, floor) => ({ name, value: Number((a / b).toFixed(3)), floor });
    const ratios = [];

    /**
     * The four 10-key GET rows at `conns` connections (memory store, one replica, three replicas, three
     * memory stores) and their ratios; `during` runs around the one-replica row (to count etcd's calls).
     */
    const tenKeyRows = async (conns, tag, ratioTag, during = async (row) => row()) => {
      const mem = await get(`memory store, 10 keys${tag}`, [memory], conns);
      const one = await during(() => get(`one replica, 10 keys${tag}`, servers.slice(0, 1), conns));
      const three = await get(`three replicas, 10 keys${tag}`, servers, conns);
      const threeMem = await get(`three memory stores, 10 keys${tag}`, memories, conns);
      ratios.push(ratio(`GET one replica / memory store (10 keys${ratioTag})`, one.rps, mem.rps, 0.5));
      ratios.push(ratio(`GET three replicas / one replica (10 keys${ratioTag})`, three.rps, one.rps, 1));
      ratios.push(ratio(`control: GET three memory stores / one (10 keys${ratioTag})`, threeMem.rps, mem.rps));
      // what adding replicas costs beyond what adding any server process costs on this machine
      ratios.push(ratio(`GET three replicas / one, over the control (10 keys${ratioTag})`, three.rps / one.rps, threeMem.rps / mem.rps, 1));
    };

    const g = opts.getConnections;
    let rangeCalls;
    await tenKeyRows(g, '', '', async (row) => {
      const before = Number(await nodeInCluster(project, RANGE_CALLS));
      const one = await row();
      rangeCalls = { calls: Number(await nodeInCluster(project, RANGE_CALLS)) - before, gets: one.requests };
      return one;
    });
    const perGet = rangeCalls.calls / Math.max(1, rangeCalls.gets);
    ratios.push({ name: `etcd Range calls per GET, ${g} connections (${rangeCalls.calls} / ${rangeCalls.gets})`, value: Number(perGet.toFixed(4)), ceiling: 0.1 });
    // The same GETs with enough connections to saturate each server. At 64 connections a replica's GETs are
    // bound by its read barrier's round trip (each connection waits for one), not by its capacity.
    const s = opts.saturationConnections;
    if (s > 0) await tenKeyRows(s, `, ${s} conns`, `, ${s} connections`);

    process.stderr.write('bench: filling both stores with 10,000 keys\n');
    await Promise.all([fill(servers[0], 10_000, `fill${runId}`), fill(memory, 10_000, `fill${runId}`)]);
    const memFull = await get('memory store, 10,000 keys', [memory], g);
    const oneFull = await get('one replica, 10,000 keys', servers.slice(0, 1), g);
    ratios.push(ratio('GET one replica / memory store (10,000 keys)', oneFull.rps, memFull.rps, 0.5));

    // POSTs last: they add keys to the replicas' store only, which would make its listing longer than
    // the memory store's in the GET rows
    process.stderr.write(`bench: POST through one replica, ${opts.duration} s, ${opts.connections} connections\n`);
    const post = await measure(servers.slice(0, 1), opts, 'POST', runId);
    rows.push({ label: 'POST one replica', ...post });
    process.stderr.write(`bench: plain etcd3 transaction loop, ${opts.duration} s, ${opts.connections} concurrent\n`);
    const plain = JSON.parse(await nodeInCluster(project, PLAIN_TXN_LOOP, [String(opts.connections), String(opts.duration), runId]));
    rows.push({ label: 'plain etcd3 txn loop', kind: 'TXN', replicas: 0, rps: Math.round(plain.rps), requests: plain.requests, non2xx: plain.failed, socketErrors: 0 });
    ratios.push(ratio('POST one replica / plain etcd3 transaction loop', post.rps, plain.rps, 0.9));

    const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
    if (opts.json) {
      process.stdout.write(JSON.stringify({ machine, duration: opts.duration, connections: opts.connections, rows, ratios }, null, 2) + '\n');
    } else {
      process.stdout.write(`machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, everything on it (3 etcd members, 3 replicas, 3 memory-store servers, wrk)\n`);
      process.stdout.write('kind  what                                            req/s  requests  non-2xx  socket errors  p50 ms  p99 ms\n');
      for (const r of rows) {
        process.stdout.write(
          `${r.kind.padEnd(4)}  ${r.label.padEnd(46)}  ${String(r.rps).padStart(5)}  ${String(r.requests).padStart(8)}  ${String(r.non2xx).padStart(7)}  ${String(r.socketErrors).padStart(13)}  ${(r.p50ms ?? 0).toFixed(1).padStart(6)}  ${(r.p99ms ?? 0).toFixed(1).padStart(6)}\n`,
        );
      }
      process.stdout.write('\nratio                                                             value  target\n');
      for (const q of ratios) {
        const target = q.floor !== undefined ? `≥ ${q.floor}` : q.ceiling !== undefined ? `≤ ${q.ceiling}` : '';
        const ok = q.floor !== undefined ? q.value >= q.floor : q.ceiling !== undefined ? q.value <= q.ceiling : undefined;
        process.stdout.write(`${q.name.padEnd(64)}  ${q.value.toFixed(3).padStart(6)}  ${target.padEnd(6)} ${ok === undefined ? '' : ok ? 'met' : 'NOT met'}\n`);
      }
    }
  } finally {
    await teardown();
  }
}

main().catch((error) => {
  process.stderr.write(`bench.mjs: ${error.stack ?? error}\n`);
  process.exit(1);
});
