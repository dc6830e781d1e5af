#!/usr/bin/env node
// Throughput of tcpkv replicas over etcd: GET and POST requests per second through ONE replica and
// through THREE at once, measured with wrk (keep-alive connections, standard HTTP).
//
//   node infra/cluster/bench.mjs --up                         # its own cluster: infra/cluster/vm.compose.yml
//                                                              # on 127.0.0.1 ports, removed afterwards
//   node infra/cluster/bench.mjs --servers 127.0.0.1:10001,127.0.0.1:10002,127.0.0.1:10003
//
// With --up it also starts two single servers from the same image, published the same way (so the
// path through Docker's port proxy is the same): the memory store and the append-only log store
// (TCPKV_FSYNC=everysec), measured with the same settings in the same run; every row is printed as
// a ratio to the memory store's.
//
// Options: --duration S (10), --connections N (24, in total: one wrk with all of them against one
// replica, or one wrk per replica sharing them), --threads N (2, wrk threads against one replica;
// one per wrk against three), --json. With --servers, the replicas must accept Host 127.0.0.1 (or
// the host you name) and the store should hold few keys: GET lists all of them, so its speed
// depends on the data (the keys POSTed here accumulate — run GET first, as this script does).
// With --up the etcd and server images must exist or be buildable (NODE_IMAGE, ETCD_IMAGE as for
// the compose files). Needs wrk and Docker (for --up) on this machine.

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
  process.stdout.write(
    'Usage: node infra/cluster/bench.mjs (--up | --servers host:port,host:port,host:port) [--duration S] [--connections N] [--threads N] [--json]\n',
  );
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { up: false, servers: undefined, duration: 10, connections: 24, threads: 2, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(2);
      return argv[++i];
    };
    if (a === '--up') opts.up = true;
    else if (a === '--servers') opts.servers = value().split(',').filter(Boolean);
    else if (a === '--duration') opts.duration = Number(value());
    else if (a === '--connections') opts.connections = Number(value());
    else if (a === '--threads') opts.threads = Number(value());
    else if (a === '--json') opts.json = true;
    else if (a === '-h' || a === '--help') usage(0);
    else {
      process.stderr.write(`bench.mjs: unknown option ${a}\n`);
      usage(2);
    }
  }
  if (opts.up === (opts.servers !== undefined)) usage(2);
  if (opts.servers && opts.servers.length < 1) usage(2);
  for (const n of [opts.duration, opts.connections, opts.threads]) if (!(Number.isInteger(n) && n > 0)) usage(2);
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

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let servers = opts.servers;
  let teardown = async () => {};
  /** single servers measured beside the cluster (with --up) */
  const baselines = [];
  if (opts.up) {
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
    teardown = () => compose(['-p', project, '-f', COMPOSE_FILE, 'down', '-v', '--timeout', '0'], env);
    const stop = () => {
      teardown().finally(() => process.exit(130));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await compose(['-p', project, '-f', COMPOSE_FILE, 'up', '-d', '--build'], env);
    } catch (error) {
      await teardown().catch(() => undefined);
      throw error;
    }
    servers = ports.map((p) => `127.0.0.1:${p}`);
    // the baselines: one server each, memory store and log store, from the same image
    for (const [name, dataDir] of [['memory', ''], ['log', '/data']]) {
      const port = await freePort();
      const started = await run('docker', ['run', '-d', '--rm', '--name', `${project}-${name}`, '-p', `127.0.0.1:${port}:10000`,
        '-e', `TCPKV_DATA_DIR=${dataDir}`, '-e', 'TCPKV_ALLOWED_HOSTS=127.0.0.1', '-e', 'TCPKV_ALLOWED_CLIENTS=0.0.0.0/0',
        '-e', 'TCPKV_LOG_LEVEL=warn', process.env.TCPKV_SERVER_IMAGE ?? 'tcpkv/server:local']);
      if (started.code !== 0) throw new Error(`docker run (${name} store): ${started.stderr.trim()}`);
      baselines.push({ name, server: `127.0.0.1:${port}`, id: started.stdout.trim() });
    }
    const composeTeardown = teardown;
    teardown = async () => {
      for (const b of baselines) await run('docker', ['rm', '-f', '-v', b.id]).catch(() => undefined);
      await composeTeardown();
    };
  }
  try {
    await waitAnswering([...servers, ...baselines.map((b) => b.server)], 120_000);
    const runId = randomBytes(3).toString('hex');
    // a small data set for the GETs: 10 keys (POST refuses them if a previous run left them)
    for (const target of [servers[0], ...baselines.map((b) => b.server)]) {
      for (let i = 0; i < 10; i++) await send(target, 'POST', '/create', `bench-seed-${i}: value-${i}`);
    }
    const results = [];
    const one = servers.slice(0, 1);
    const sets = [
      ['etcd', one],
      ['etcd', servers],
      ...baselines.map((b) => [b.name, [b.server]]),
    ];
    for (const kind of ['GET', 'POST']) {
      for (const [store, set] of sets) {
        process.stderr.write(`bench: ${kind} through ${set.length} ${store} server(s), ${opts.duration} s, ${opts.connections} connections\n`);
        results.push({ store, ...(await measure(set, opts, kind, runId)) });
      }
    }
    const memoryRps = (kind) => results.find((r) => r.store === 'memory' && r.kind === kind)?.rps;
    for (const r of results) r.vsMemory = memoryRps(r.kind) ? Number((r.rps / memoryRps(r.kind)).toFixed(3)) : undefined;
    const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
    if (opts.json) {
      process.stdout.write(JSON.stringify({ machine, duration: opts.duration, connections: opts.connections, results }, null, 2) + '\n');
    } else {
      process.stdout.write(`machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, everything on it (3 etcd members, 3 replicas, wrk)\n`);
      process.stdout.write('kind  store   servers  req/s  vs memory  requests  non-2xx  socket errors  p50 ms  p99 ms\n');
      for (const r of results) {
        const ratio = r.vsMemory === undefined ? '' : `${r.vsMemory.toFixed(2)}×`;
        process.stdout.write(
          `${r.kind.padEnd(4)}  ${r.store.padEnd(6)}  ${String(r.replicas).padStart(7)}  ${String(r.rps).padStart(5)}  ${ratio.padStart(9)}  ${String(r.requests).padStart(8)}  ${String(r.non2xx).padStart(7)}  ${String(r.socketErrors).padStart(13)}  ${(r.p50ms ?? 0).toFixed(1).padStart(6)}  ${(r.p99ms ?? 0).toFixed(1).padStart(6)}\n`,
        );
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
