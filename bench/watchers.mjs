#!/usr/bin/env node
// What watchers cost the other clients: GET /kv/<key> throughput (wrk) against one tcpkv server with
// no watchers, with N watch streams held open and idle, and with those N watching while a writer
// changes a watched key W times a second — each write fanned out to every watcher. Also the server's
// RSS per watcher, and how long a write takes to reach all N. Ratios against the no-watcher rounds,
// measured in the same run (absolute numbers on a shared machine mean little). Loopback only; every
// process it starts is stopped at the end, also on error or Ctrl-C.
//
//   npm run build && node bench/watchers.mjs
//   BENCH_WATCHERS=1000 BENCH_WRITES_PER_S=20 BENCH_DURATION=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=32

import { fileURLToPath } from 'node:url';
import { exchange, httpRequest } from './lib/client.mjs';
import { rssBytes } from './lib/mem.mjs';
import { start, stopAll, waitForLine } from './lib/procs.mjs';
import { fmt, median } from './lib/report.mjs';
import { removeServerCwd, startTcpkv } from './lib/servers.mjs';
import { runWrk, wrkVersion } from './lib/wrk.mjs';

const env = process.env;
const watchers = Number(env.BENCH_WATCHERS ?? 1000);
const writesPerS = Number(env.BENCH_WRITES_PER_S ?? 20);
const durationS = Number(env.BENCH_DURATION ?? 5);
const rounds = Number(env.BENCH_ROUNDS ?? 3);
const connections = Number(env.BENCH_CONNECTIONS ?? 32);
const HOLD = fileURLToPath(new URL('./lib/hold-watchers.mjs', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (!wrkVersion()) {
    process.stderr.write('bench: wrk is missing (Debian: apt-get install -y wrk)\n');
    process.exit(2);
  }
  const procs = [];
  const cleanup = () => stopAll(procs).finally(removeServerCwd);
  process.once('SIGINT', () => cleanup().finally(() => process.exit(130)));
  try {
    const server = await startTcpkv({ nofile: watchers + 1000 });
    procs.push(server);
    await exchange(server.port, httpRequest('PUT', '/kv/data', 'x'.repeat(100)));
    const get = () => runWrk({ port: server.port, path: '/kv/data', connections, threads: 1, durationS });
    // warm-up: JIT and connection set-up out of the measured rounds
    await runWrk({ port: server.port, path: '/kv/data', connections, threads: 1, durationS: 3 });

    const none = [];
    for (let r = 0; r < rounds; r++) none.push((await get()).rps);
    const rssBefore = rssBytes(server.pid);

    const hold = start(process.execPath, [HOLD, String(server.port), String(watchers), 'w/'], { nofile: watchers + 100 });
    procs.push(hold);
    let delivered = 0;
    await waitForLine(hold, (l) => (l.startsWith('ready') ? true : undefined), 60_000, 'the watchers');
    const lastChanges = () => {
      const m = /changes (\d+)/.exec(hold.stdoutLines[hold.stdoutLines.length - 1] ?? '');
      return m ? Number(m[1]) : 0;
    };
    await sleep(1000);
    const rssWatching = rssBytes(server.pid);

    const idle = [];
    for (let r = 0; r < rounds; r++) idle.push((await get()).rps);

    const busy = [];
    let writes = 0;
    for (let r = 0; r < rounds; r++) {
      let writing = true;
      const writer = (async () => {
        while (writing) {
          await exchange(server.port, httpRequest('PUT', `/kv/w/${writes % 10}`, `v${writes}`));
          writes++;
          await sleep(1000 / writesPerS);
        }
      })();
      busy.push((await get()).rps);
      writing = false;
      await writer;
    }
    // every write reaches every watcher: how long after the last write that takes
    const expected = writes * watchers;
    const t0 = performance.now();
    while (lastChanges() < expected && performance.now() - t0 < 60_000) await sleep(50);
    delivered = lastChanges();
    const catchUpMs = performance.now() - t0;
    // and without watchers again: the baseline is measured before and after, so drift falls on it too
    await stopAll([hold]);
    await sleep(500);
    for (let r = 0; r < rounds; r++) none.push((await get()).rps);

    console.log(`${wrkVersion()}; GET /kv/data, ${connections} connections, ${durationS} s × ${rounds} rounds each; ${watchers} watch streams (memory store)`);
    console.log(`no watchers:                      ${fmt.int(median(none))} req/s`);
    console.log(`${watchers} idle watchers:           ${fmt.int(median(idle))} req/s   ratio ${(median(idle) / median(none)).toFixed(2)}`);
    console.log(`${watchers} watchers, ${writesPerS} writes/s:   ${fmt.int(median(busy))} req/s   ratio ${(median(busy) / median(none)).toFixed(2)}   (${writes} writes, ${fmt.int(writes * watchers)} changes sent)`);
    console.log(`server RSS: ${(rssBefore / 2 ** 20).toFixed(1)} MiB → ${(rssWatching / 2 ** 20).toFixed(1)} MiB with ${watchers} watchers: ${fmt.int(Math.round((rssWatching - rssBefore) / watchers))} B per watcher`);
    console.log(`delivered ${fmt.int(delivered)} of ${fmt.int(expected)} changes; the last ${catchUpMs < 60 ? 'at once' : `${Math.round(catchUpMs)} ms after the last write`}`);
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
