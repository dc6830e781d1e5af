// Replicas (real tcpkv-server processes) over a real etcd on loopback, through what an etcd in
// service goes through: steady writes and reads (no reload may follow from a read barrier whose
// answer lags the watch), a restore from an old backup or a wipe (same cluster token or a new one,
// with fewer or more writes afterwards than before), a burst of writes while a replica is paused
// and a value over gRPC's default 4 MiB. Each test failed on the store before its fix (figures in
// the commit messages).

import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startEtcd, type LocalEtcd } from '../support/etcd.js';
import { HttpConn, percentile } from '../support/http-conn.js';
import { freePort, sleep, spawnServer, type ChildServer } from '../support/net.js';

interface Replica {
  readonly server: ChildServer;
  readonly adminPort: number;
  /** one keep-alive connection for the test's requests */
  conn: HttpConn;
}

const running: Replica[] = [];
const etcds: LocalEtcd[] = [];

afterEach(async () => {
  for (const r of running.splice(0)) {
    r.conn.close();
    r.server.kill('SIGCONT');
    r.server.kill('SIGKILL');
    await r.server.exited;
  }
  for (const e of etcds.splice(0)) await e.destroy();
});

afterAll(async () => {
  for (const e of etcds.splice(0)) await e.destroy();
});

async function newEtcd(flags: string[] = []): Promise<LocalEtcd> {
  const etcd = await startEtcd({ flags });
  etcds.push(etcd);
  return etcd;
}

async function startReplica(etcd: LocalEtcd, env: Record<string, string> = {}): Promise<Replica> {
  const adminPort = await freePort();
  const server = await spawnServer({
    TCPKV_ETCD_ENDPOINTS: etcd.endpoint,
    TCPKV_ETCD_PREFIX: 'rev/',
    TCPKV_ADMIN_PORT: String(adminPort),
    TCPKV_LOG_LEVEL: process.env.DEBUG_REPLICA_LOG ? 'debug' : 'info',
    ...env,
  });
  const replica = { server, adminPort, conn: await HttpConn.open(server.port) };
  running.push(replica);
  return replica;
}

/** One request on a connection of its own, with a deadline: { status } or { status: 'timeout' }. */
async function ask(replica: Replica, method: string, target: string, body = '', timeoutMs = 5000): Promise<{ status: number | 'timeout' | 'error'; body: string; ms: number }> {
  const started = performance.now();
  let conn: HttpConn | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    conn = await HttpConn.open(replica.server.port);
    const answer = await Promise.race([
      conn.request(method, target, body),
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs))),
    ]);
    if (answer === undefined) return { status: 'timeout', body: '', ms: performance.now() - started };
    return { status: answer.status, body: answer.body.toString('utf8'), ms: performance.now() - started };
  } catch (error) {
    return { status: 'error', body: (error as Error).message, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
    conn?.close();
  }
}

async function ready(replica: Replica): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${replica.adminPort}/readyz`, { signal: AbortSignal.timeout(3000) });
    return r.status === 200;
  } catch {
    return false;
  }
}

async function waitReady(replica: Replica, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready(replica))) {
    if (Date.now() > deadline) throw new Error(`replica not ready within ${timeoutMs} ms:\n${replica.server.output().slice(-2000)}`);
    await sleep(100);
  }
}

/** PUT through a replica's keep-alive connection; throws unless 200. */
async function put(replica: Replica, key: string, value: string): Promise<void> {
  const answer = await replica.conn.request('PUT', `/kv/${key}`, value);
  if (answer.status !== 200) throw new Error(`PUT /kv/${key}: ${answer.status} ${answer.body.toString().slice(0, 200)}`);
}

/** The replica's log lines (pino JSON) that match. */
function logLines(replica: Replica, pattern: RegExp): { level: number; msg: string }[] {
  return replica.server
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((l) => pattern.test(l.msg));
}

/** Times the copy was listed (the first list at start included). */
const lists = (replica: Replica) => logLines(replica, /etcd cache listed the prefix/).length;

describe('no fault: a PUT loop through one replica and a GET loop through another', () => {
  it('cause no reload of the copy: a barrier answer behind the watch is normal', async () => {
    const etcd = await newEtcd();
    const [writer, reader] = [await startReplica(etcd), await startReplica(etcd)];
    await Promise.all([waitReady(writer), waitReady(reader)]);
    await put(writer, 'x', '0');
    const until = Date.now() + 6000;
    let writes = 0;
    const latencies: number[] = [];
    let failures = 0;
    await Promise.all([
      (async () => {
        while (Date.now() < until) await put(writer, 'x', String(++writes));
      })(),
      (async () => {
        let last = 0;
        while (Date.now() < until) {
          const started = performance.now();
          const answer = await reader.conn.request('GET', '/kv/x');
          latencies.push(performance.now() - started);
          if (answer.status !== 200) failures++;
          else {
            const seen = Number(answer.body.toString());
            expect(seen).toBeGreaterThanOrEqual(last); // never older than an earlier answer
            last = seen;
          }
        }
      })(),
    ]);
    const wentBack = logLines(reader, /went back in revisions|history/).length;
    console.log(`no fault, 6 s: ${writes} PUTs, ${latencies.length} GETs (p99 ${percentile(latencies, 99).toFixed(1)} ms, ${failures} failed); reader listed the prefix ${lists(reader)} times, ${wentBack} history errors`);
    expect(failures).toBe(0);
    expect(wentBack).toBe(0);
    expect(lists(reader)).toBe(1);
    expect(lists(writer)).toBe(1);
  }, 60_000);
});

/**
 * Polls GET of `key` on the replica until it answers `want` (a status), up to `timeoutMs`; every
 * answer is kept, so that a test can see that none came from the old history.
 */
async function pollUntil(replica: Replica, key: string, want: number, timeoutMs: number): Promise<{ statuses: (number | string)[]; reachedMs: number | undefined }> {
  const statuses: (number | string)[] = [];
  const started = Date.now();
  for (;;) {
    const answer = await ask(replica, 'GET', `/kv/${key}`, '', 4000);
    statuses.push(answer.status);
    if (answer.status === want) return { statuses, reachedMs: Date.now() - started };
    if (Date.now() - started > timeoutMs) return { statuses, reachedMs: undefined };
    await sleep(100);
  }
}

type Change = 'restore from an old backup' | 'wipe, same cluster token' | 'wipe, new cluster token';

describe.each<[Change, 'fewer' | 'more']>([
  ['restore from an old backup', 'fewer'],
  ['restore from an old backup', 'more'],
  ['wipe, same cluster token', 'fewer'],
  ['wipe, same cluster token', 'more'],
  ['wipe, new cluster token', 'fewer'],
  ['wipe, new cluster token', 'more'],
])('etcd gets another history (%s), then %s writes than the copy had seen', (change, writes) => {
  it('every replica notices, logs it once at error level, lists again and never answers from the old history', async () => {
    const etcd = await newEtcd();
    const replicas = [await startReplica(etcd), await startReplica(etcd), await startReplica(etcd)];
    await Promise.all(replicas.map((r) => waitReady(r)));
    const [one] = replicas as [Replica];
    for (let i = 0; i < 20; i++) await put(one, `kept-${i}`, `k${i}`);
    const backup = change === 'restore from an old backup' ? await etcd.backup() : undefined;
    if (backup) await Promise.all(replicas.map((r) => waitReady(r)));
    for (let i = 0; i < 30; i++) await put(one, `lost-${i}`, `l${i}`);
    for (const r of replicas) expect((await ask(r, 'GET', '/kv/lost-29')).status).toBe(200);
    const listsBefore = replicas.map(lists);

    if (backup) await etcd.restore(backup);
    else await etcd.wipe({ sameToken: change === 'wipe, same cluster token' });
    // fewer: etcd's revision stays below what the copies had applied; more: it passes it
    const newKeys = writes === 'fewer' ? 5 : 80;
    for (let i = 0; i < newKeys; i++) {
      for (let attempt = 0; ; attempt++) {
        const answer = await ask(one, 'PUT', `/kv/new-${i}`, `n${i}`);
        if (answer.status === 200) break;
        if (attempt > 100) throw new Error(`PUT /kv/new-${i}: ${answer.status} ${answer.body}`);
        await sleep(100);
      }
    }
    const lastNew = `new-${newKeys - 1}`;
    for (const [index, r] of replicas.entries()) {
      const seen = await pollUntil(r, lastNew, 200, 10_000);
      // the replica writes its log asynchronously: a line may arrive after answers given later
      for (let waited = 0; lists(r) === listsBefore[index] && waited < 2000; waited += 50) await sleep(50);
      const lost = await ask(r, 'GET', '/kv/lost-29');
      const kept = await ask(r, 'GET', '/kv/kept-0');
      const errors = logLines(r, /history|went back in revisions|cluster id changed/).filter((l) => l.level >= 50);
      console.log(`${change}, ${writes}: replica ${index + 1}: ${lastNew} ${JSON.stringify(seen.statuses.slice(0, 8))}${seen.statuses.length > 8 ? '…' : ''} in ${seen.reachedMs} ms; lost-29 ${lost.status}; kept-0 ${kept.status}; listed again ${lists(r) - listsBefore[index]!}×; error lines ${errors.length}`);
      if (process.env.DEBUG_REPLICA_LOG || errors.length !== 1 || lists(r) === listsBefore[index]) console.log(r.server.output().split('\n').slice(-40).join('\n'));
      expect(seen.reachedMs).toBeDefined();
      expect(seen.statuses.filter((s) => s === 404)).toEqual([]); // a 404 for a key etcd holds: the old history answered
      expect(lost.status).toBe(404);
      expect(kept.status).toBe(backup ? 200 : 404);
      expect(lists(r) - listsBefore[index]!).toBeGreaterThanOrEqual(1);
      expect(errors.length).toBe(1);
    }
  }, 90_000);
});

/**
 * After `resumedAt`: readiness and a GET of `key`, alternately, until the GET answers `want` (or
 * `timeoutMs`). Returns when it first served it, and every time /readyz said ready while the GET
 * right after it failed.
 */
async function watchRecovery(replica: Replica, key: string, want: string, timeoutMs: number): Promise<{ servedMs: number | undefined; readyButFailing: number; probes: number }> {
  const started = Date.now();
  let readyButFailing = 0;
  let probes = 0;
  let servedMs: number | undefined;
  while (Date.now() - started < timeoutMs) {
    const isReady = await ready(replica);
    const answer = await ask(replica, 'GET', `/kv/${key}`, '', 4000);
    probes++;
    const ok = answer.status === 200 && answer.body === want;
    if (isReady && !ok) readyButFailing++;
    if (ok && servedMs === undefined) servedMs = Date.now() - started;
    if (ok && Date.now() - started > (servedMs ?? 0) + 1000) break; // served, and still serving a second later
    await sleep(50);
  }
  return { servedMs, readyButFailing, probes };
}

describe('watch answers over gRPC’s default 4 MiB', () => {
  it('a 9 MB burst of 30 KB PUTs while a replica is paused: it serves again within 10 s of resuming; /readyz never says ready while its reads fail', async () => {
    const etcd = await newEtcd();
    const [one, paused] = [await startReplica(etcd), await startReplica(etcd)];
    await Promise.all([waitReady(one), waitReady(paused)]);
    await put(one, 'burst-0', 'start');
    expect((await ask(paused, 'GET', '/kv/burst-0')).status).toBe(200);
    paused.server.kill('SIGSTOP');
    const value = (i: number) => `${i}:`.padEnd(30_000, 'b');
    for (let i = 1; i <= 300; i++) await put(one, `burst-${i}`, value(i));
    paused.server.kill('SIGCONT');
    const recovery = await watchRecovery(paused, 'burst-300', value(300), 20_000);
    const failures = logLines(paused, /list or watch failed|watch failed|RESOURCE_EXHAUSTED/).length;
    console.log(`9 MB burst while paused: served again after ${recovery.servedMs} ms; ${recovery.probes} probes, ready while failing ${recovery.readyButFailing}×; watch failures logged ${failures}`);
    expect(recovery.servedMs).toBeDefined();
    expect(recovery.servedMs!).toBeLessThan(10_000);
    expect(recovery.readyButFailing).toBe(0);
  }, 90_000);

  it('a 5 MB value with etcd and tcpkv set to 8 MiB requests: every replica serves it within 10 s, and a replica started after it becomes ready', async () => {
    const MAX = String(8 * 1024 * 1024);
    const etcd = await newEtcd([`--max-request-bytes=${MAX}`]);
    const env = { TCPKV_ETCD_MAX_REQUEST_BYTES: MAX, TCPKV_MAX_BODY_BYTES: MAX };
    const replicas = [await startReplica(etcd, env), await startReplica(etcd, env)];
    await Promise.all(replicas.map((r) => waitReady(r)));
    const huge = 'h'.repeat(5_000_000);
    await put(replicas[0]!, 'huge', huge);
    replicas.push(await startReplica(etcd, env));
    for (const [index, r] of replicas.entries()) {
      const recovery = await watchRecovery(r, 'huge', huge, 15_000);
      console.log(`5 MB value: replica ${index + 1} served it after ${recovery.servedMs} ms; ready while failing ${recovery.readyButFailing}×`);
      expect(recovery.servedMs).toBeDefined();
      expect(recovery.servedMs!).toBeLessThan(10_000);
      expect(recovery.readyButFailing).toBe(0);
      expect(await ready(r)).toBe(true);
    }
  }, 90_000);
});

describe('a watch answer over what the replica takes (its TCPKV_ETCD_MAX_REQUEST_BYTES below etcd\'s --max-request-bytes)', () => {
  it('the watch backs off instead of reconnecting at once, says which setting, and the replica is not ready while its reads fail', async () => {
    const etcd = await newEtcd([`--max-request-bytes=${8 * 1024 * 1024}`]);
    const replica = await startReplica(etcd, { TCPKV_ETCD_TIMEOUT_MS: '1000' });
    await waitReady(replica);
    const watchStreams = async () => {
      const text = await (await fetch(`${etcd.endpoint}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('grpc_server_started_total{') && l.includes('grpc_method="Watch"') && l.includes('etcdserverpb.Watch'));
      return Number(line?.split(' ').at(-1) ?? NaN);
    };
    const writer = new Etcd3({ hosts: etcd.endpoint });
    try {
      await writer.kv.txn({ compare: [], success: [{ request_put: { key: Buffer.from('rev/kv/huge'), value: Buffer.alloc(5_000_000, 'h') } }, { request_put: { key: Buffer.from('rev/kv/'), value: Buffer.from('outside') } }], failure: [] });
    } finally {
      writer.close();
    }
    await sleep(500);
    const before = await watchStreams();
    const started = Date.now();
    let readyWhileFailing = 0;
    let served = 0;
    while (Date.now() - started < 6000) {
      const isReady = await ready(replica);
      const answer = await ask(replica, 'GET', '/kv/huge', '', 3000);
      if (answer.status === 200) served++;
      else if (isReady) readyWhileFailing++;
      await sleep(100);
    }
    const streams = (await watchStreams()) - before;
    const warned = logLines(replica, /larger than this replica takes/).filter((l) => l.level === 40).length;
    console.log(`watch answer over the limit, 6 s: ${streams} watch streams opened, ${served} GETs served, ready while failing ${readyWhileFailing}×, warnings ${warned}`);
    expect(served).toBe(0); // the copy cannot reach the revision, so never an old answer
    expect(readyWhileFailing).toBe(0);
    expect(streams).toBeLessThanOrEqual(9); // 100 ms doubling to 2 s: at most 7 in 6 s
    expect(warned).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

describe('at real size: 100,000 keys', () => {
  it('a PUT/GET loop across two replicas for 10 s: no reload, GET p99 under 50 ms (plus what an idle memory-store server waits at the same moments)', async () => {
    const KEYS = 100_000;
    const etcd = await newEtcd(['--max-txn-ops=10000']);
    const loader = new Etcd3({ hosts: etcd.endpoint });
    const loadStarted = performance.now();
    try {
      // the store's layout (see docs/scale-out.md): rev/kv/<key> and the write stamp rev/kv/
      for (let from = 0; from < KEYS; from += 5000) {
        const success = [];
        for (let i = from; i < Math.min(KEYS, from + 5000); i++) success.push({ request_put: { key: Buffer.from(`rev/kv/key${String(i).padStart(6, '0')}`), value: Buffer.from(`value-${i}-`.padEnd(90, 'v')) } });
        success.push({ request_put: { key: Buffer.from('rev/kv/'), value: Buffer.from(`load-${from}`) } });
        await loader.kv.txn({ compare: [], success, failure: [] });
      }
    } finally {
      loader.close();
    }
    const loadedMs = performance.now() - loadStarted;
    const [writer, reader] = [await startReplica(etcd), await startReplica(etcd)];
    const control = await spawnServer({ TCPKV_LOG_LEVEL: 'info' });
    const controlConn = await HttpConn.open(control.port);
    try {
      const syncStarted = performance.now();
      await Promise.all([waitReady(writer, 60_000), waitReady(reader, 60_000)]);
      const syncedMs = performance.now() - syncStarted;
      expect((await controlConn.request('PUT', '/kv/x', '0')).status).toBe(200);
      await put(writer, 'x', '0');
      const until = Date.now() + 10_000;
      let writes = 0;
      const latencies: number[] = [];
      const idle: number[] = [];
      let failures = 0;
      await Promise.all([
        (async () => {
          while (Date.now() < until) await put(writer, 'x', String(++writes));
        })(),
        (async () => {
          while (Date.now() < until) {
            let started = performance.now();
            const answer = await reader.conn.request('GET', '/kv/x');
            latencies.push(performance.now() - started);
            if (answer.status !== 200) failures++;
            started = performance.now();
            await controlConn.request('GET', '/kv/x');
            idle.push(performance.now() - started);
          }
        })(),
      ]);
      const p99 = percentile(latencies, 99);
      const idleP99 = percentile(idle, 99);
      console.log(
        `100,000 keys (loaded in ${(loadedMs / 1000).toFixed(1)} s, both replicas synced in ${(syncedMs / 1000).toFixed(1)} s); 10 s: ${writes} PUTs, ${latencies.length} GETs, ` +
          `p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(0)} ms, ${failures} failed (idle memory server p99 ${idleP99.toFixed(1)} ms); ` +
          `lists: writer ${lists(writer)}, reader ${lists(reader)}`,
      );
      expect(failures).toBe(0);
      expect(lists(writer)).toBe(1);
      expect(lists(reader)).toBe(1);
      expect(p99).toBeLessThan(50 + idleP99);
    } finally {
      controlConn.close();
      control.kill('SIGKILL');
    }
  }, 120_000);
});
