// One lock client for the lock tests (test/containers/locks.test.ts), as a process of its own, using
// the BUILT library (dist/services/client/lock.js): for `durationMs` it loops acquire → hold a random
// 50–800 ms → release → pause a random 0–300 ms, and prints one JSON line per event on stdout with
// `at` = Date.now() (and validUntil as wall-clock ms): acquired, renewed, lost, releasing, released;
// last a summary with its counts. stdout to a pipe is written synchronously, so a SIGKILL loses no
// line printed before it.
//
//   node test/support/lock-client.mjs NAME SERVERS(host:port,…) KEY TTL_SECONDS DURATION_MS

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { TcpkvClient, parseServerList } from '../../dist/services/client/client.js';
import { acquireLock } from '../../dist/services/client/lock.js';

const [name, servers, key, ttlText, durationText] = process.argv.slice(2);
const ttlSeconds = Number(ttlText);
const until = performance.now() + Number(durationText);
const client = new TcpkvClient({ servers: parseServerList(servers), dialect: 'standard', targetHost: '127.0.0.1', timeoutMs: 2_000 });
const wall = (performanceMs) => Math.round(Date.now() + (performanceMs - performance.now()));
const print = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, client: name, at: Date.now(), ...fields }) + '\n');
const counts = { acquisitions: 0, contended: 0, adopted: 0, lost: 0, retries: 0 };

const onEvent = (e) => {
  if (e.kind === 'contended') counts.contended += 1;
  else if (e.kind === 'adopted') counts.adopted += 1;
  else if (e.kind === 'retry') counts.retries += 1;
  else if (e.kind === 'renewed') print('renewed', { version: e.version, validUntil: wall(e.validUntil) });
  else if (e.kind === 'lost') {
    counts.lost += 1;
    print('lost', { reason: e.reason });
  }
};

while (performance.now() < until) {
  let lock;
  try {
    lock = await acquireLock(client, { key, ttlSeconds, owner: name, timeoutMs: Math.max(1, until - performance.now()), onEvent });
  } catch (error) {
    if (error?.name === 'LockTimeoutError') break;
    throw error;
  }
  counts.acquisitions += 1;
  print('acquired', { version: lock.version, validUntil: wall(lock.validUntil) });
  // the hold ends early if the lock is lost meanwhile
  await Promise.race([sleep(50 + Math.random() * 750), lock.lost]);
  print('releasing');
  await lock.release();
  print('released');
  await sleep(Math.random() * 300);
}
print('summary', counts);
