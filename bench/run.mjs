#!/usr/bin/env node
// `npm run bench`: tcpkv against node:http and Node's ceiling, the durability costs, the log replay
// time and the scale figures, on this machine, in one run. Loopback only; every server and every wrk
// this starts is killed at the end, also on error or Ctrl-C. See bench/README.md.
//
//   node bench/run.mjs [--quick]
//   BENCH_DURATION=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=64 BENCH_THREADS=1 BENCH_WARMUP=1
//   BENCH_QUICK=1 (= --quick: 1 round, 2 s runs)   BENCH_ONLY=compare,redis,durability,replay,scale
//   BENCH_IDLE_CONNECTIONS=5000 BENCH_SCALE_KEYS=100000 BENCH_REPLAY_RECORDS=1000000

import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { exchange, httpRequest, sendMany } from './lib/client.mjs';
import { measure, probeArgs } from './lib/mem.mjs';
import { json, start, stop, stopAll, waitForLine } from './lib/procs.mjs';
import { fmt, median, ratio, summarise, table } from './lib/report.mjs';
import { redisVersion, runRedisBenchmark, startRedis } from './lib/redis.mjs';
import { removeServerCwd, ROOT, startCeiling, startNodeHttp, startTcpkv, TCPKV_MAIN } from './lib/servers.mjs';
import { runWrk, wrkVersion } from './lib/wrk.mjs';

// ---- configuration ---------------------------------------------------------------------------------

const env = process.env;
const QUICK = process.argv.includes('--quick') || env.BENCH_QUICK === '1';

function setting(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(String(raw).replace(/s$/, ''));
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`bench: ${name}=${raw} is not a positive number\n`);
    process.exit(2);
  }
  return n;
}

const cfg = {
  quick: QUICK,
  durationS: QUICK ? 2 : setting('BENCH_DURATION', 5),
  rounds: QUICK ? 1 : setting('BENCH_ROUNDS', 3),
  connections: setting('BENCH_CONNECTIONS', 64),
  threads: setting('BENCH_THREADS', 1),
  warmupS: QUICK ? 1 : setting('BENCH_WARMUP', 1),
  preloadKeys: 10_000,
  pipelineDepth: 16,
  idleConnections: setting('BENCH_IDLE_CONNECTIONS', 5000),
  scaleKeys: setting('BENCH_SCALE_KEYS', 100_000),
  scaleLatencyConnections: 8,
  scaleConnectionCounts: [1, 4, 16, 64, 256],
  replayRecords: setting('BENCH_REPLAY_RECORDS', 1_000_000),
  sections: (env.BENCH_ONLY || 'compare,redis,durability,replay,scale').split(',').map((s) => s.trim()),
};

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const t0 = performance.now();
const out = []; // every line printed, for the summary at the end
function say(text = '') {
  process.stdout.write(text + '\n');
  out.push(text);
}
function progress(text) {
  process.stderr.write(`  · ${text}\n`);
}

const tempDirs = [];
function removeTempDirs() {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  removeServerCwd();
}
// also when a signal ends the run (bench/lib/procs.mjs kills the children, then exits)
process.on('exit', removeTempDirs);
function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

function machine() {
  let cpu = 'unknown';
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpu;
  } catch {
    // not Linux
  }
  let nproc;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {
    nproc = cpus().length;
  }
  let fs;
  try {
    fs = execFileSync('stat', ['-f', '-c', '%T', tmpdir()], { encoding: 'utf8' }).trim();
  } catch {
    fs = 'unknown';
  }
  return {
    date: new Date().toISOString(),
    node: process.version,
    nproc,
    cpu,
    memoryBytes: totalmem(),
    kernel: release(),
    wrk: wrkVersion(),
    tmpdir: tmpdir(),
    tmpdirFs: fs,
    loadavgAtStart: loadavg(),
  };
}

// ---- helpers ---------------------------------------------------------------------------------------

let runId = 0;
/** Unique key prefix for each POST run (warm-ups included), so no key is ever reused. */
const nextRunId = () => `r${++runId}`;

function rotate(list, n) {
  const k = n % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

async function expectOk(port, raw, what) {
  const a = await exchange(port, raw);
  if (a.status !== 200) throw new Error(`${what}: expected 200, got ${a.status} ${a.body.slice(0, 200)}`);
  return a.body;
}

/** n single-key POSTs on one connection: the insertion order is the same on every server. */
async function preload(port, n, what) {
  const statuses = await sendMany(port, n, (i) => httpRequest('POST', '/create', `key${i}: value${i}`), { connections: 1, depth: 16 });
  if (statuses[200] !== n) throw new Error(`preloading ${what}: ${JSON.stringify(statuses)}`);
}

/** A process's CPU time so far, µs (utime + stime from /proc/PID/stat, in clock ticks of 10 ms). */
function cpuMicros(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined; // not Linux
  }
}

/**
 * Runs `subjects` (name → { port, wrk options } or { run(durationS) }) round-robin: in round r the
 * order is rotated by r, so no subject always goes first. A warm-up run of each comes first and is
 * not counted. A subject with a `pid` also gets its server's CPU time per request (from /proc): a
 * figure that other work on the machine disturbs far less than req/s.
 */
async function rounds(subjects, { connections = cfg.connections, label }) {
  const names = Object.keys(subjects);
  const runs = Object.fromEntries(names.map((n) => [n, []]));
  const runFor = async (name, durationS) => {
    const s = subjects[name];
    const before = s.pid !== undefined ? cpuMicros(s.pid) : undefined;
    let result;
    if (s.run) result = await s.run(durationS);
    else {
      const args = typeof s.args === 'function' ? s.args() : (s.args ?? []);
      result = await runWrk({ port: s.port, connections: s.connections ?? connections, threads: cfg.threads, durationS, script: s.script, args, path: s.path });
    }
    const after = before !== undefined ? cpuMicros(s.pid) : undefined;
    if (after !== undefined && result.requests) result.cpuUsPerRequest = (after - before) / result.requests;
    return result;
  };
  for (const name of names) await runFor(name, cfg.warmupS);
  for (let r = 0; r < cfg.rounds; r++) {
    for (const name of rotate(names, r)) {
      const result = await runFor(name, cfg.durationS);
      runs[name].push(result);
      const cpu = result.cpuUsPerRequest !== undefined ? `, ${result.cpuUsPerRequest.toFixed(1)} µs CPU/req` : '';
      progress(`${label}: round ${r + 1}/${cfg.rounds} ${name}: ${fmt.int(result.rps)} req/s, p50 ${fmt.ms(result.p50)} ms, p99 ${fmt.ms(result.p99)} ms${cpu}${result.errors ? `, ${result.errors} errors` : ''}`);
    }
  }
  return Object.fromEntries(names.map((n) => [n, { median: { ...summarise(runs[n]), cpuUs: median(runs[n].map((r) => r.cpuUsPerRequest).filter((x) => x !== undefined)) }, runs: runs[n] }]));
}

/** How many requests `a` serves in the CPU time `b` takes for one: b's CPU per request / a's. */
function cpuRatio(a, b) {
  return a.median.cpuUs && b.median.cpuUs ? b.median.cpuUs / a.median.cpuUs : undefined;
}

// ---- 1. tcpkv vs node:http vs the ceiling ------------------------------------------------------------

const WORKLOADS = [
  { id: 'get-empty', title: 'GET, empty DB' },
  { id: 'get-10k', title: `GET, ${fmt.int(cfg.preloadKeys)} keys`, preload: cfg.preloadKeys },
  { id: 'post-unique', title: 'POST /create, unique keys', script: 'post-unique.lua', post: true },
  { id: 'pipeline-16', title: `GET, pipelined ×${cfg.pipelineDepth}`, script: 'pipeline.lua', args: [cfg.pipelineDepth], pipelined: true },
  { id: 'seed-get', title: 'GET, seed dialect †', script: 'seed.lua', standardScript: 'seed-standard.lua', seed: true },
];

const SEED_GET = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1/\r\nContent-Type: text/html\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\n', 'latin1');

async function compareWorkload(w) {
  const procs = [];
  try {
    const tcpkv = await startTcpkv();
    procs.push(tcpkv);
    const nodeHttp = await startNodeHttp();
    procs.push(nodeHttp);
    if (w.preload) {
      await preload(tcpkv.port, w.preload, 'tcpkv');
      await preload(nodeHttp.port, w.preload, 'node:http');
    }
    // the same answers from both, and the size of the ceiling's answer body
    let bodyBytes;
    if (w.post) {
      const a = await expectOk(tcpkv.port, httpRequest('POST', '/create', 'r0-1-1: v1'), 'tcpkv POST');
      const b = await expectOk(nodeHttp.port, httpRequest('POST', '/create', 'r0-1-1: v1'), 'node:http POST');
      if (a !== b) throw new Error(`POST answers differ: tcpkv ${JSON.stringify(a)} / node:http ${JSON.stringify(b)}`);
      bodyBytes = Buffer.byteLength(a);
    } else {
      const a = await expectOk(tcpkv.port, w.seed ? SEED_GET : httpRequest('GET', '/'), 'tcpkv GET');
      const b = await expectOk(nodeHttp.port, httpRequest('GET', '/'), 'node:http GET');
      if (a !== b) throw new Error(`GET answers differ (${a.length} / ${b.length} characters)`);
      bodyBytes = Buffer.byteLength(a);
    }
    const ceiling = await startCeiling({ bodyBytes });
    procs.push(ceiling);
    // POST only: the ceiling that also stores, to tell what storing costs from what HTTP costs
    const storing = w.post ? await startCeiling({ bodyBytes, store: true }) : undefined;
    if (storing) procs.push(storing);
    const subject = (p, script = w.script) => ({
      port: p.port,
      pid: p.pid,
      script,
      args: w.post ? () => [nextRunId()] : w.args,
    });
    const res = await rounds(
      {
        tcpkv: subject(tcpkv),
        'node:http': subject(nodeHttp, w.standardScript ?? w.script),
        ceiling: subject(ceiling, w.standardScript ?? w.script),
        ...(storing ? { 'ceiling+Map': subject(storing) } : {}),
      },
      { label: w.id },
    );
    if (w.pipelined) for (const r of Object.values(res)) r.median.p99 = undefined; // see printCompare's ‡
    return {
      id: w.id,
      title: w.title,
      pipelineDepth: w.pipelined ? cfg.pipelineDepth : undefined,
      answerBodyBytes: bodyBytes,
      servers: res,
      ratios: {
        tcpkvToNodeHttp: ratio(res.tcpkv.median.rps, res['node:http'].median.rps),
        tcpkvToCeiling: ratio(res.tcpkv.median.rps, res.ceiling.median.rps),
        p99TcpkvToNodeHttp: ratio(res.tcpkv.median.p99, res['node:http'].median.p99),
        tcpkvToStoringCeiling: storing ? ratio(res.tcpkv.median.rps, res['ceiling+Map'].median.rps) : undefined,
        cpuTcpkvToNodeHttp: cpuRatio(res.tcpkv, res['node:http']),
        cpuTcpkvToCeiling: cpuRatio(res.tcpkv, res.ceiling),
        cpuTcpkvToStoringCeiling: storing ? cpuRatio(res.tcpkv, res['ceiling+Map']) : undefined,
      },
    };
  } finally {
    await stopAll(procs);
  }
}

function printCompare(list) {
  const rows = [];
  for (const w of list) {
    const names = Object.keys(w.servers);
    names.forEach((name, i) => {
      const m = w.servers[name].median;
      const pipelined = w.id.startsWith('pipeline');
      rows.push([
        i === 0 ? w.title : '',
        name,
        fmt.int(m.rps),
        fmt.pct(m.spread),
        fmt.ms(m.p50),
        pipelined ? 'n/a ‡' : fmt.ms(m.p99),
        m.errors ? String(m.errors) : '0',
        m.cpuUs === undefined ? 'n/a' : m.cpuUs.toFixed(1),
        name === 'tcpkv' ? `${fmt.x(w.ratios.tcpkvToNodeHttp)} (${fmt.x(w.ratios.cpuTcpkvToNodeHttp)})` : '',
        name === 'tcpkv'
          ? `${fmt.x(w.ratios.tcpkvToCeiling)} (${fmt.x(w.ratios.cpuTcpkvToCeiling)})`
          : name === 'ceiling+Map'
            ? `[${fmt.x(w.ratios.tcpkvToStoringCeiling)} (${fmt.x(w.ratios.cpuTcpkvToStoringCeiling)})] §`
            : '',
      ]);
    });
  }
  say(
    table(['workload', 'server', 'req/s', 'spread', 'p50 ms', 'p99 ms', 'errors', 'µs CPU/req', 'tcpkv/node:http', 'tcpkv/ceiling'], rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r']),
  );
  say(`medians of ${cfg.rounds} round(s) of ${cfg.durationS} s per server, servers alternating; wrk -t${cfg.threads} -c${cfg.connections} --latency`);
  say('† tcpkv gets the seed client\'s bytes (target `/`, `Host: 127.0.0.1/`, header block ended by `\\r\\n\\n`);');
  say('  node:http and the ceiling get the equivalent standard request (`Host: 127.0.0.1`, CRLF).');
  say(`‡ pipelined: wrk records one latency per batch of ${cfg.pipelineDepth} (p50 is per batch) and its coordinated-omission`);
  say('  correction is meaningless there, so no p99. req/s counts answers.');
  say('§ ceiling+Map: the ceiling that also inserts each POST body\'s key into a Map (the least a storing server');
  say('  does); in square brackets, tcpkv / ceiling+Map.');
  say('spread = (max − min) / median of req/s over the rounds. errors = non-2xx answers + socket errors');
  say('(connect, read, write, timeout), summed over the rounds. µs CPU/req = the server process\'s CPU time');
  say('(/proc) over the requests of a run, median over the rounds; the ratios in round brackets are by it');
  say('(the other\'s CPU per request / tcpkv\'s): what the ratio of req/s would be on an otherwise idle core.');
}

// ---- 1b. the far anchor: one key, tcpkv's /kv/<key> against redis-server's GET and SET ---------------

// redis-benchmark without -r uses one fixed key; tcpkv gets one fixed key too (its keys hold no `:`)
const TCPKV_KEY = 'key';

async function redisAnchor() {
  const version = redisVersion();
  if (version === undefined) return { skipped: 'not installed' };
  const procs = [];
  try {
    const redis = await startRedis(tempDir('tcpkv-bench-redis-'));
    procs.push(redis);
    const tcpkv = await startTcpkv();
    procs.push(tcpkv);
    const kvPath = `/kv/${TCPKV_KEY}`;
    await expectOk(tcpkv.port, httpRequest('PUT', kvPath, 'xxx'), 'tcpkv PUT /kv/<key>');
    // redis-benchmark runs a number of requests, not a time: sized from its last run's rate
    const redisSubject = (test) => {
      let rate = 20_000;
      return {
        pid: redis.pid,
        run: async (durationS) => {
          const r = await runRedisBenchmark({ port: redis.port, test, connections: cfg.connections, requests: Math.max(10_000, Math.round(rate * durationS)) });
          rate = r.rps;
          return r;
        },
      };
    };
    const workloads = {};
    // SET first, so that GET finds the key
    workloads.set = await rounds(
      { tcpkv: { port: tcpkv.port, pid: tcpkv.pid, script: 'put-kv.lua', args: [TCPKV_KEY] }, redis: redisSubject('set') },
      { label: 'PUT /kv/<key> vs SET' },
    );
    workloads.get = await rounds({ tcpkv: { port: tcpkv.port, pid: tcpkv.pid, path: kvPath }, redis: redisSubject('get') }, { label: 'GET /kv/<key> vs GET' });
    return {
      version,
      workloads: Object.fromEntries(
        Object.entries(workloads).map(([id, res]) => [id, { servers: res, tcpkvToRedis: ratio(res.tcpkv.median.rps, res.redis.median.rps), cpuTcpkvToRedis: cpuRatio(res.tcpkv, res.redis) }]),
      ),
    };
  } finally {
    await stopAll(procs);
  }
}

function printRedis(r) {
  if (r.skipped !== undefined) {
    say(`redis: ${r.skipped}, skipped`);
    return;
  }
  const titles = { set: 'PUT /kv/<key> | SET', get: 'GET /kv/<key> | GET' };
  const rows = [];
  for (const [id, w] of Object.entries(r.workloads)) {
    for (const [name, s] of Object.entries(w.servers)) {
      const m = s.median;
      rows.push([name === 'tcpkv' ? titles[id] : '', name, fmt.int(m.rps), fmt.pct(m.spread), fmt.ms(m.p50), fmt.ms(m.p99), m.cpuUs === undefined ? 'n/a' : m.cpuUs.toFixed(1), name === 'tcpkv' ? `${fmt.x(w.tcpkvToRedis)} (${fmt.x(w.cpuTcpkvToRedis)})` : '']);
    }
  }
  say(table(['one key, 3-byte value', 'server', 'req/s', 'spread', 'p50 ms', 'p99 ms', 'µs CPU/req', 'tcpkv/redis'], rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r']));
  say(`${r.version.split(' ').slice(0, 3).join(' ')} on 127.0.0.1, no persistence; redis-benchmark -c ${cfg.connections} -P 1 -d 3 -t set|get (one fixed key)`);
  say('against wrk with the same connections; ratios as above (in round brackets: by CPU per request).');
}

// ---- 2. durability: POST with unique keys, memory vs the log's fsync policies ------------------------

async function durability() {
  const variants = [
    { name: 'memory', env: {} },
    { name: 'log, fsync=no', env: { TCPKV_FSYNC: 'no' }, dir: true },
    { name: 'log, fsync=everysec', env: { TCPKV_FSYNC: 'everysec' }, dir: true },
    { name: 'log, fsync=always', env: { TCPKV_FSYNC: 'always' }, dir: true },
  ];
  const procs = [];
  try {
    const subjects = {};
    for (const v of variants) {
      if (v.dir) v.env.TCPKV_DATA_DIR = v.dataDir = tempDir('tcpkv-bench-data-');
      const p = await startTcpkv({ env: v.env });
      procs.push(p);
      if (p.exitCode !== undefined) throw new Error(`${v.name} exited`);
      subjects[v.name] = { port: p.port, script: 'post-unique.lua', args: () => [nextRunId()] };
    }
    const res = await rounds(subjects, { label: 'durability' });
    const memory = res.memory.median.rps;
    const logBytes = {};
    for (const v of variants) if (v.dataDir) logBytes[v.name] = fileSize(join(v.dataDir, 'tcpkv.log'));
    return {
      variants: Object.fromEntries(
        variants.map((v) => [v.name, { ...res[v.name], ratioToMemory: ratio(res[v.name].median.rps, memory), logBytes: logBytes[v.name] }]),
      ),
    };
  } finally {
    await stopAll(procs);
  }
}

function fileSize(path) {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

function printDurability(d) {
  const rows = Object.entries(d.variants).map(([name, v]) => [
    name,
    fmt.int(v.median.rps),
    fmt.pct(v.median.spread),
    fmt.ms(v.median.p50),
    fmt.ms(v.median.p99),
    String(v.median.errors),
    fmt.x(v.ratioToMemory),
  ]);
  say(table(['POST /create, unique keys', 'req/s', 'spread', 'p50 ms', 'p99 ms', 'errors', 'vs memory'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r']));
  say(`same wrk settings; each log in a fresh directory under ${tmpdir()} (${meta.tmpdirFs}); one record per POST`);
}

// ---- 3. replaying a log of N records ---------------------------------------------------------------

async function writeLog(path, n) {
  const { encodeRecord, MAGIC } = await import(pathToFileURL(join(ROOT, 'dist/services/server/store/log-format.js')).href);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, MAGIC);
    let parts = [];
    let size = 0;
    for (let i = 0; i < n; i++) {
      const record = encodeRecord([[`key${i}`, `value${i}`]]);
      parts.push(record);
      size += record.length;
      if (size >= 4 << 20) {
        writeSync(fd, Buffer.concat(parts, size));
        parts = [];
        size = 0;
      }
    }
    if (size > 0) writeSync(fd, Buffer.concat(parts, size));
  } finally {
    closeSync(fd);
  }
}

async function replay() {
  const n = cfg.replayRecords;
  const dir = tempDir('tcpkv-bench-replay-');
  const t = performance.now();
  await writeLog(join(dir, 'tcpkv.log'), n);
  progress(`replay: wrote ${fmt.int(n)} records (${fmt.bytes(fileSize(join(dir, 'tcpkv.log')))}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const runs = [];
  const baseline = [];
  for (let r = 0; r < cfg.rounds; r++) {
    // start-up without a log, for comparison: Node, the modules, listen
    const empty = await startTcpkv();
    baseline.push(empty.startMs);
    await stop(empty);
    let replayed;
    const p = await startTcpkv({ env: { TCPKV_DATA_DIR: dir }, timeoutMs: 300_000 });
    try {
      replayed = await waitForLine(p, (l) => (json(l)?.msg === 'log replayed' ? json(l) : undefined), 5000, 'the `log replayed` line');
      await expectOk(p.port, httpRequest('HEAD', '/'), 'tcpkv after replay');
    } finally {
      await stop(p, 60_000);
    }
    if (replayed.records !== n) throw new Error(`replayed ${replayed.records} records, wrote ${n}`);
    runs.push({ spawnToListeningMs: p.startMs, logReplayedMs: replayed.ms, records: replayed.records, keys: replayed.keys, bytes: replayed.bytes });
    progress(`replay: round ${r + 1}/${cfg.rounds}: listening after ${p.startMs.toFixed(0)} ms (log replayed in ${replayed.ms} ms); no log: ${empty.startMs.toFixed(0)} ms`);
  }
  return {
    records: n,
    logBytes: runs[0]?.bytes,
    spawnToListeningMs: median(runs.map((r) => r.spawnToListeningMs)),
    logReplayedMs: median(runs.map((r) => r.logReplayedMs)),
    startupWithoutLogMs: median(baseline),
    runs,
  };
}

function printReplay(r) {
  say(
    `replaying a ${fmt.int(r.records)}-record log (${fmt.bytes(r.logBytes)}, one single-key SET per record): ` +
      `spawn → listening ${fmt.int(r.spawnToListeningMs)} ms, of which \`log replayed\` ${fmt.int(r.logReplayedMs)} ms; ` +
      `start-up without a log ${fmt.int(r.startupWithoutLogMs)} ms (medians of ${r.runs.length})`,
  );
}

// ---- 4. scale figures --------------------------------------------------------------------------------

const HOLD = fileURLToPath(new URL('./lib/hold-connections.mjs', import.meta.url));

async function idleConnections(name) {
  const n = cfg.idleConnections;
  const memFile = join(tempDir('tcpkv-bench-mem-'), 'mem.json');
  const nofile = n + 1024;
  const opts = { nodeArgs: probeArgs(), env: { BENCH_MEM_FILE: memFile }, nofile };
  const procs = [];
  try {
    const server = name === 'tcpkv' ? await startTcpkv(opts) : await startNodeHttp(opts);
    procs.push(server);
    // one connection's worth of warm-up, so the code paths are compiled before "before"
    await expectOk(server.port, httpRequest('GET', '/'), name);
    const before = await measure(server.pid, memFile);
    const holder = start(process.execPath, [HOLD, String(server.port), String(n)], { nofile });
    procs.push(holder);
    await waitForLine(holder, (l) => l.startsWith('ready'), 120_000, `${n} connections to ${name}`);
    const after = await measure(server.pid, memFile);
    if (holder.exitCode !== undefined) throw new Error(`the connection holder exited: ${holder.stderr}`);
    return {
      connections: n,
      before,
      after,
      rssPerConnection: (after.rss - before.rss) / n,
      heapPerConnection: after.heapUsed !== undefined ? (after.heapUsed - before.heapUsed) / n : undefined,
    };
  } finally {
    await stopAll(procs);
  }
}

async function storedKeys() {
  const n = cfg.scaleKeys;
  const memDir = tempDir('tcpkv-bench-mem-');
  const procs = [];
  try {
    const servers = {};
    const mem = {};
    for (const name of ['tcpkv', 'node:http']) {
      const memFile = join(memDir, `${name.replace(':', '-')}.json`);
      const opts = { nodeArgs: probeArgs(), env: { BENCH_MEM_FILE: memFile } };
      const server = name === 'tcpkv' ? await startTcpkv(opts) : await startNodeHttp(opts);
      procs.push(server);
      servers[name] = server;
      // warm the POST path with a few keys of another shape, then measure
      await sendMany(server.port, 1000, (i) => httpRequest('POST', '/create', `warm${i}: w`), { connections: 1, depth: 16 });
      const before = await measure(server.pid, memFile);
      const t = performance.now();
      const statuses = await sendMany(
        server.port,
        n,
        (i) => httpRequest('POST', '/create', `key-${String(i).padStart(7, '0')}: value-${String(i).padStart(7, '0')}`),
        { connections: 4, depth: 32, timeoutMs: 600_000 },
      );
      if (statuses[200] !== n) throw new Error(`POSTing ${n} keys to ${name}: ${JSON.stringify(statuses)}`);
      const postMs = performance.now() - t;
      // measured before any GET: the rendered listing both servers cache is not counted
      const after = await measure(server.pid, memFile);
      mem[name] = {
        keys: n,
        before,
        after,
        rssPerKey: (after.rss - before.rss) / n,
        heapPerKey: after.heapUsed !== undefined ? (after.heapUsed - before.heapUsed) / n : undefined,
        postMs,
      };
      progress(`scale: ${fmt.int(n)} keys into ${name}: RSS +${fmt.bytes(after.rss - before.rss)}, heap +${fmt.bytes(after.heapUsed - before.heapUsed)}`);
    }
    const latency = await rounds(
      { tcpkv: { port: servers.tcpkv.port }, 'node:http': { port: servers['node:http'].port } },
      { connections: cfg.scaleLatencyConnections, label: `GET with ${fmt.int(n)} keys` },
    );
    const size = Buffer.byteLength(await expectOk(servers.tcpkv.port, httpRequest('GET', '/'), 'tcpkv'));
    return { memory: mem, latency, answerBodyBytes: size };
  } finally {
    await stopAll(procs);
  }
}

async function connectionScaling() {
  const p = await startTcpkv();
  try {
    const subjects = {};
    for (const c of cfg.scaleConnectionCounts) subjects[`c${c}`] = { port: p.port, connections: c };
    const res = await rounds(subjects, { label: 'tcpkv GET by connections' });
    return Object.fromEntries(cfg.scaleConnectionCounts.map((c) => [c, res[`c${c}`]]));
  } finally {
    await stop(p);
  }
}

async function scale() {
  const idle = {};
  for (const name of ['tcpkv', 'node:http']) {
    idle[name] = await idleConnections(name);
    progress(`scale: ${cfg.idleConnections} idle connections to ${name}: RSS +${fmt.bytes(idle[name].after.rss - idle[name].before.rss)}`);
  }
  const keys = await storedKeys();
  const connections = await connectionScaling();
  return { idle, keys, connections };
}

function printScale(s) {
  const n = cfg.idleConnections;
  const k = cfg.scaleKeys;
  const rows = [];
  for (const name of ['tcpkv', 'node:http']) {
    const i = s.idle[name];
    rows.push([`per idle keep-alive connection (${fmt.int(n)} open)`, name, fmt.bytes(i.rssPerConnection), fmt.bytes(i.heapPerConnection)]);
  }
  for (const name of ['tcpkv', 'node:http']) {
    const m = s.keys.memory[name];
    rows.push([`per stored key (${fmt.int(k)} single-key POSTs)`, name, fmt.bytes(m.rssPerKey), fmt.bytes(m.heapPerKey)]);
  }
  say(table(['memory', 'server', 'RSS Δ / n', 'heap Δ / n'], rows, ['l', 'l', 'r', 'r']));
  say('RSS from /proc/PID/status; heap = V8 heapUsed after a full GC (node --expose-gc, bench/lib/mem-probe.mjs).');
  say('keys are `key-0000001: value-0000001`, measured before any GET (no rendered listing counted).');
  say('');
  const lat = s.keys.latency;
  say(
    table(
      [`GET with ${fmt.int(k)} keys (${fmt.bytes(s.keys.answerBodyBytes)} answers), ${cfg.scaleLatencyConnections} connections`, 'req/s', 'spread', 'p50 ms', 'p99 ms', 'errors'],
      Object.entries(lat).map(([name, r]) => [name, fmt.int(r.median.rps), fmt.pct(r.median.spread), fmt.ms(r.median.p50), fmt.ms(r.median.p99), String(r.median.errors)]),
      ['l', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  say('');
  say(
    table(
      ['tcpkv GET (empty DB), connections', 'req/s', 'spread', 'p50 ms', 'p99 ms', 'errors'],
      Object.entries(s.connections).map(([c, r]) => [c, fmt.int(r.median.rps), fmt.pct(r.median.spread), fmt.ms(r.median.p50), fmt.ms(r.median.p99), String(r.median.errors)]),
      ['r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
}

// ---- main ------------------------------------------------------------------------------------------

const meta = machine();

async function main() {
  if (!meta.wrk) throw new Error('wrk is not installed: apt-get install -y wrk');
  if (!existsSync(TCPKV_MAIN)) throw new Error(`${TCPKV_MAIN} is missing: run \`npm run build\` (npm run bench does)`);
  const results = { meta, config: cfg, elapsedS: undefined };
  say(`tcpkv bench — ${meta.date}`);
  say(`${meta.cpu}, ${meta.nproc} CPUs, ${fmt.bytes(meta.memoryBytes)}; Linux ${meta.kernel}; Node ${meta.node}; ${meta.wrk}`);
  say(`load average at start ${meta.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')} (other work on this machine adds noise)`);
  say(`${cfg.quick ? 'QUICK run: ' : ''}${cfg.rounds} round(s) × ${cfg.durationS} s per server and workload (+${cfg.warmupS} s warm-up), ${cfg.connections} connections, ${cfg.threads} wrk thread(s)`);
  say('');
  try {
    if (cfg.sections.includes('compare')) {
      results.compare = [];
      for (const w of WORKLOADS) {
        progress(`workload ${w.id}`);
        results.compare.push(await compareWorkload(w));
      }
      printCompare(results.compare);
      say('');
    }
    if (cfg.sections.includes('redis')) {
      progress('redis');
      results.redis = await redisAnchor();
      printRedis(results.redis);
      say('');
    }
    if (cfg.sections.includes('durability')) {
      progress('durability');
      results.durability = await durability();
      printDurability(results.durability);
      say('');
    }
    if (cfg.sections.includes('replay')) {
      progress('replay');
      results.replay = await replay();
      printReplay(results.replay);
      say('');
    }
    if (cfg.sections.includes('scale')) {
      progress('scale');
      results.scale = await scale();
      printScale(results.scale);
      say('');
    }
  } catch (error) {
    results.error = error?.stack ?? String(error);
    throw error;
  } finally {
    results.elapsedS = (performance.now() - t0) / 1000;
    meta.loadavgAtEnd = loadavg();
    results.printed = out.join('\n');
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(join(RESULTS_DIR, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
    removeTempDirs();
  }
  say(`total ${(results.elapsedS / 60).toFixed(1)} min; load average at end ${meta.loadavgAtEnd.map((x) => x.toFixed(2)).join(' ')}; results in bench/results/latest.json`);
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench failed: ${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
