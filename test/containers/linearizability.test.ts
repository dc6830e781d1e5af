// Linearizability of tcpkv over etcd, under faults, on a store of real size: 100,000 keys are written
// first (the replicas' copies, every listing and every relist hold them). Then, without a fault, a
// PUT loop through one replica and a GET loop through another: no reload of either copy, GET p99
// under the memory store's big-data bound. Then 6 concurrent clients through 3 replicas (two per
// replica) send POST /create, PUT /update, GET /, GET /kv/<key>, DELETE /kv/<key> and compare-and-set
// (a GET of the key's version, then PUT or DELETE with If-Match at it, or PUT with If-None-Match: *
// when it was absent; a 412 is an observation of the version then) on 4 keys for 22 s each run, recording each operation's invocation and completion on the host's clock, while one
// fault is injected: the etcd leader killed, one member cut off its network and reconnected, a
// replica killed, a replica paused for longer than the etcd deadline. The checker
// (test/support/linearizability.ts) must find every history linearizable — and must reject the
// history of replicas that answer reads from their cache without the read barrier (a test-only
// mode), under a member cut off from the network.
// Figures (operations, unknown outcomes, check time) are printed as one JSON line per run.

import { performance } from 'node:perf_hooks';
import { Network, type StartedNetwork } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import {
  clientFor,
  findLeader,
  preloadKeys,
  putGetLoop,
  replicaLists,
  replicaLogLines,
  request,
  restartStopped,
  sleep,
  startEtcdCluster,
  startReplicas,
  type EtcdMember,
  type Outcome,
  type Replica,
} from '../support/cluster.js';
import { DockerResources, dockerOk } from '../support/docker.js';
import { percentile, startThreadProbe } from '../support/http-conn.js';
import { checkHistory, describeHistory, type HistoryOp, type KvPair, type Operation } from '../support/linearizability.js';
import { parseListing } from '../support/write-load.js';

const TOKEN = 'linearizability-token';
const CLIENTS = 6;
const KEYS = 4;
const RUN_MS = 22_000;
const FAULT_AT_MS = 6_000;
const HEAL_AT_MS = 14_000;
const ETCD_TIMEOUT_MS = 3_000;
/** Keys in the store before the runs (their keys never collide with the runs' own). */
const PRELOAD_KEYS = 100_000;

/** The no-fault loop's length, and the GET p99 it must stay under (big-data.test.ts's bound for the memory store). */
const LOOP_MS = 8_000;
const GET_P99_MS = 50;

interface Recorded {
  readonly history: HistoryOp[];
  dropped: number;
  /** conditional writes as answered; made into history operations once every version's value is known */
  readonly conditional: RawConditional[];
  /** key → version → the value that version holds, from every answer that showed both */
  readonly versions: Map<string, Map<number, string>>;
}

/** A PUT or DELETE with If-Match (the version a GET just read) or If-None-Match: * (the GET found nothing). */
interface RawConditional {
  readonly client: number;
  readonly call: number;
  /** Infinity: the outcome is unknown */
  readonly ret: number;
  readonly kind: 'put' | 'delete';
  readonly key: string;
  readonly value: string;
  /** what the condition expects: the value at the version read, or the key absent */
  readonly expected: { readonly value: string } | 'absent';
  /** 412: the version the answer named (undefined: no key); 200: undefined */
  readonly failed?: { readonly current: number | undefined };
}

const versionOf = (etag: string | undefined): number | undefined => (etag === undefined ? undefined : Number(/^"([0-9]+)"$/.exec(etag)?.[1]));

function learnVersion(out: Recorded, key: string, etag: string | undefined, value: string): void {
  const version = versionOf(etag);
  if (version === undefined || Number.isNaN(version)) return;
  let known = out.versions.get(key);
  if (known === undefined) out.versions.set(key, (known = new Map()));
  known.set(version, value);
}

/**
 * The conditional writes as checker operations. Every write writes a value no other write writes, so
 * per key a version stands for exactly one value and "the key is at version v" is "the key holds the
 * value written at v". A 412 naming a version whose value no answer showed is left out: it applied
 * nothing, so leaving it out loses an observation, never hides a violation.
 */
function conditionalOps(out: Recorded): { ops: HistoryOp[]; unexplained: number } {
  const ops: HistoryOp[] = [];
  let unexplained = 0;
  for (const c of out.conditional) {
    const expected = c.expected === 'absent' ? undefined : c.expected.value;
    let result: { ok: true } | { ok: false; current: string | undefined } | undefined;
    if (!Number.isFinite(c.ret)) result = undefined;
    else if (c.failed === undefined) result = { ok: true };
    else if (c.failed.current === undefined) result = { ok: false, current: undefined };
    else {
      const current = out.versions.get(c.key)?.get(c.failed.current);
      if (current === undefined) {
        unexplained++;
        continue;
      }
      result = { ok: false, current };
    }
    const op: Operation =
      c.kind === 'put'
        ? { kind: 'cas-put', key: c.key, expected, value: c.value, ...(result !== undefined ? { result } : {}) }
        : { kind: 'cas-delete', key: c.key, expected, ...(result !== undefined ? { result } : {}) };
    ops.push({ client: c.client, call: c.call, ret: c.ret, op });
  }
  return { ops, unexplained };
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

/**
 * The pairs of a listing whose keys start with `tag`, in order, found by searching the text: the
 * listing holds the 100,000 preloaded keys too, and the six clients share this process's one thread.
 */
function listingPairs(body: string, tag: string): KvPair[] {
  if (body === Texts.emptyDb) return [];
  if (!body.startsWith(`${Texts.listingHeader}\n`)) throw new Error(`not a listing: ${body.slice(0, 80)}`);
  const pairs: KvPair[] = [];
  for (let at = body.indexOf(`\n${tag}`); at >= 0; at = body.indexOf(`\n${tag}`, at + 1)) {
    const end = body.indexOf('\n', at + 1);
    const line = body.slice(at + 1, end < 0 ? body.length : end);
    const colon = line.indexOf(':');
    pairs.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  return pairs;
}

/** What a write's answer says about whether it was applied. */
function writeFate(o: Outcome): 'known' | 'unknown' | 'not-applied' {
  if (o.status === 200 || o.status === 400 || o.status === 404) return 'known';
  if (o.status === 503) return o.body === Texts.storeIndeterminate ? 'unknown' : 'not-applied';
  if (typeof o.status === 'string') return o.maybeApplied ? 'unknown' : 'not-applied';
  throw new Error(`unexpected answer to a write: ${o.status} ${o.body}`);
}

/** One client's loop: random operations on the run's keys through `replica()`, until `stopAt`. */
async function clientLoop(client: number, replica: () => Replica, tag: string, stopAt: number, out: Recorded): Promise<void> {
  const keys = Array.from({ length: KEYS }, (_, i) => `${tag}k${i}`);
  for (let n = 0; performance.now() < stopAt; n++) {
    const value = `${tag}c${client}n${n}`;
    const r = Math.random();
    const before = out.history.length;
    const target = replica();
    const api = clientFor([target], { timeoutMs: 10_000 });
    const call = performance.now();
    if (r < 0.22) {
      const key = pick(keys);
      const o = await request(api, 'GET', `kv/${key}`);
      const ret = performance.now();
      if (o.status === 200 || o.status === 404) out.history.push({ client, call, ret, op: { kind: 'get', key, result: { value: o.status === 200 ? o.body : undefined } } });
      else out.dropped++;
      if (o.status === 200) learnVersion(out, key, o.etag, o.body);
    } else if (r < 0.36) {
      // compare-and-set: read the key's version, then write (or delete) only at that version — or,
      // when it was not there, create it only if it still is not
      const key = pick(keys);
      const read = await request(api, 'GET', `kv/${key}`);
      const readRet = performance.now();
      if (read.status !== 200 && read.status !== 404) {
        out.dropped++;
      } else {
        out.history.push({ client, call, ret: readRet, op: { kind: 'get', key, result: { value: read.status === 200 ? read.body : undefined } } });
        if (read.status === 200) learnVersion(out, key, read.etag, read.body);
        const expected = read.status === 200 ? { value: read.body } : ('absent' as const);
        const remove = read.status === 200 && Math.random() < 0.3;
        const headers: [string, string][] = read.status === 200 ? [['If-Match', read.etag!]] : [['If-None-Match', '*']];
        const writeCall = performance.now();
        const o = await request(api, remove ? 'DELETE' : 'PUT', `kv/${key}`, remove ? '' : value, headers);
        const ret = performance.now();
        const base = { client, call: writeCall, kind: remove ? ('delete' as const) : ('put' as const), key, value, expected };
        if (o.status === 200) {
          if (!remove) learnVersion(out, key, o.etag, value);
          out.conditional.push({ ...base, ret });
        } else if (o.status === 412) {
          out.conditional.push({ ...base, ret, failed: { current: versionOf(o.etag) } });
        } else {
          const fate = writeFate(o);
          if (fate === 'not-applied') out.dropped++;
          else if (fate === 'unknown') out.conditional.push({ ...base, ret: Infinity });
          else throw new Error(`unexpected answer to a conditional ${remove ? 'DELETE' : 'PUT'}: ${o.status} ${o.body}`);
        }
      }
    } else if (r < 0.42) {
      const o = await request(api, 'GET', '');
      const ret = performance.now();
      if (o.status === 200) {
        const pairs = listingPairs(o.body, tag);
        out.history.push({ client, call, ret, op: { kind: 'list', result: { pairs } } });
      } else out.dropped++;
    } else if (r < 0.62) {
      const chosen = [...new Set([pick(keys), pick(keys)])];
      const pairs: KvPair[] = chosen.map((k) => [k, value]);
      const o = await request(api, 'PUT', 'update', pairs.map(([k, v]) => `${k}: ${v}`).join('&'));
      const ret = performance.now();
      const fate = writeFate(o);
      if (fate === 'not-applied') out.dropped++;
      else if (fate === 'unknown') out.history.push({ client, call, ret: Infinity, op: { kind: 'upsert', pairs } });
      else {
        expect(o.status, o.body).toBe(200);
        // "key: old => new" lines name the replaced values; keys not named there were new
        const previous = pairs.map(([k]) => {
          const line = o.body.split('\n').find((l) => l.startsWith(`${k}: `) && l.includes(' => '));
          return line === undefined ? undefined : line.slice(k.length + 2, line.lastIndexOf(' => '));
        });
        out.history.push({ client, call, ret, op: { kind: 'upsert', pairs, result: { previous } } });
      }
    } else if (r < 0.85) {
      const chosen = [...new Set([pick(keys), pick(keys)])];
      const pairs: KvPair[] = chosen.map((k) => [k, value]);
      const o = await request(api, 'POST', 'create', pairs.map(([k, v]) => `${k}: ${v}`).join('&'));
      const ret = performance.now();
      const fate = writeFate(o);
      if (fate === 'not-applied') out.dropped++;
      else if (fate === 'unknown') out.history.push({ client, call, ret: Infinity, op: { kind: 'create', pairs } });
      else {
        expect([200, 400], o.body).toContain(o.status);
        if (o.status === 400) expect(o.body).toBe(Texts.keyExists);
        out.history.push({ client, call, ret, op: { kind: 'create', pairs, result: o.status === 200 ? { ok: true } : { ok: false } } });
      }
    } else {
      const key = pick(keys);
      const o = await request(api, 'DELETE', `kv/${key}`);
      const ret = performance.now();
      const fate = writeFate(o);
      if (fate === 'not-applied') out.dropped++;
      else if (fate === 'unknown') out.history.push({ client, call, ret: Infinity, op: { kind: 'delete', key } });
      else out.history.push({ client, call, ret, op: { kind: 'delete', key, result: { deleted: o.status === 200 } } });
    }
    // a client that got no answer (replica dead or paused) backs off instead of spinning: each such
    // write is an unknown outcome, and the checker's work grows with them
    const unanswered = out.history.length > before && out.history[out.history.length - 1]!.ret === Infinity;
    await sleep(unanswered ? 300 : Math.random() * 8);
  }
}

/** Runs the workload for RUN_MS with `fault` at FAULT_AT_MS and `heal` at HEAL_AT_MS; returns the history. */
async function record(tag: string, replicas: readonly Replica[], fault: () => Promise<void>, heal: () => Promise<void>): Promise<Recorded> {
  const out: Recorded = { history: [], dropped: 0, conditional: [], versions: new Map() };
  const started = performance.now();
  const stopAt = started + RUN_MS;
  const clients = Array.from({ length: CLIENTS }, (_, c) => clientLoop(c, () => replicas[c % replicas.length]!, tag, stopAt, out));
  const faults = (async () => {
    await sleep(FAULT_AT_MS);
    await fault();
    await sleep(Math.max(0, started + HEAL_AT_MS - performance.now()));
    await heal();
  })();
  await Promise.all([...clients, faults]);
  const { ops, unexplained } = conditionalOps(out);
  out.history.push(...ops);
  out.dropped += unexplained;
  return out;
}

function summary(fault: string, recorded: Recorded, checkMs: number, verdict: boolean): string {
  const ops = recorded.history;
  return JSON.stringify({
    fault,
    operations: ops.length,
    reads: ops.filter((h) => h.op.kind === 'get' || h.op.kind === 'list').length,
    conditionalWrites: ops.filter((h) => h.op.kind === 'cas-put' || h.op.kind === 'cas-delete').length,
    conditionalFailed: ops.filter((h) => (h.op.kind === 'cas-put' || h.op.kind === 'cas-delete') && h.op.result?.ok === false).length,
    writesAcknowledged: ops.filter((h) => h.op.kind !== 'get' && h.op.kind !== 'list' && Number.isFinite(h.ret)).length,
    writesUnknown: ops.filter((h) => !Number.isFinite(h.ret)).length,
    answeredNotApplied: recorded.dropped,
    checkMs: Math.round(checkMs),
    linearizable: verdict,
  });
}

function check(fault: string, recorded: Recorded): ReturnType<typeof checkHistory> {
  const started = performance.now();
  try {
    const result = checkHistory(recorded.history, { budget: 20_000_000 });
    console.log(summary(fault, recorded, performance.now() - started, result.linearizable));
    return result;
  } catch (error) {
    console.log(summary(fault, recorded, performance.now() - started, false), String(error));
    throw error;
  }
}

describe('linearizability of tcpkv over etcd under faults', () => {
  const res = new DockerResources();
  let network: StartedNetwork;
  let members: EtcdMember[];
  let replicas: Replica[];
  let unsafe: Replica[];

  beforeAll(async () => {
    network = res.network(await new Network().start());
    members = await startEtcdCluster(network, res);
    const env = { TCPKV_ETCD_TIMEOUT_MS: String(ETCD_TIMEOUT_MS) };
    [replicas, unsafe] = await Promise.all([
      startReplicas(network, res, 3, { token: TOKEN, env }),
      // the checker's negative case: no read barrier, and the first one follows etcd3 only
      startReplicas(network, res, 3, {
        token: TOKEN,
        names: ['unsafe1', 'unsafe2', 'unsafe3'],
        env: { ...env, TCPKV_ETCD_PREFIX: 'unsafe/', TCPKV_TEST_ONLY_UNSAFE_READS: 'no-barrier' },
        envOf: (i) => (i === 0 ? { TCPKV_ETCD_ENDPOINTS: 'http://etcd3:2379' } : {}),
      }),
    ]);
    // etcd applies every put on each of its three members: this takes tens of seconds on a shared
    // two-core machine, whatever the size of the writes
    const preloadMs = await preloadKeys(replicas, PRELOAD_KEYS);
    console.log(JSON.stringify({ preloadedKeys: PRELOAD_KEYS, preloadMs: Math.round(preloadMs) }));
  });
  afterAll(async () => {
    await res.cleanup();
  });

  const disconnect = (m: EtcdMember) => dockerOk(['network', 'disconnect', network.getName(), m.container.getId()]);
  const reconnect = (m: EtcdMember) => dockerOk(['network', 'connect', '--alias', m.name, network.getName(), m.container.getId()]);

  it(`no fault, ${PRELOAD_KEYS} keys: a PUT loop through one replica and a GET loop through another — no reload, GET p99 under ${GET_P99_MS} ms`, async () => {
    const listing = await request(clientFor([replicas[0]!]), 'GET', '');
    expect(listing.status).toBe(200);
    expect(parseListing(listing.body).size).toBeGreaterThanOrEqual(PRELOAD_KEYS);
    const listsBefore = await Promise.all(replicas.map(replicaLists));
    // HEADs every 10 ms to the third replica, which has nothing else to do (each one a listing behind
    // its read barrier, through the same etcd): what the machine and etcd do to a read at the same moments
    const idleProbe = startThreadProbe(replicas[2]!.port(), 10);
    const loop = await putGetLoop(replicas[0]!, replicas[1]!, 'loop', LOOP_MS);
    const idleP99 = percentile(await idleProbe.stop(), 99);
    const listsAfter = await Promise.all(replicas.map(replicaLists));
    const relists = (await Promise.all(replicas.map((r) => replicaLogLines(r, /listing the prefix again|another history|went back in revisions/)))).flat();
    const sorted = [...loop.getMs].sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        run: 'no fault, PUT/GET loop',
        keys: PRELOAD_KEYS,
        puts: loop.puts,
        gets: loop.getMs.length,
        getP50Ms: Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10,
        getP99Ms: Math.round(loop.p99 * 10) / 10,
        getMaxMs: Math.round(sorted[sorted.length - 1]! * 10) / 10,
        thirdReplicaHeadP99Ms: Math.round(idleP99 * 10) / 10,
        listsBefore,
        listsAfter,
        failures: loop.failures.slice(0, 5),
      }),
    );
    expect(loop.failures).toEqual([]);
    expect(loop.puts).toBeGreaterThan(20);
    // the first list at start, and none since: no reload through the preload or the loop
    expect(listsAfter).toEqual([1, 1, 1]);
    expect(relists.map((l) => l.msg)).toEqual([]);
    // as big-data.test.ts bounds the memory store: on a busy machine, what the third replica's reads
    // waited at the same moments is allowed on top
    expect(loop.p99).toBeLessThan(GET_P99_MS + idleP99);
  });

  it('the etcd leader killed (docker kill) and started again: linearizable', async () => {
    const leader = await findLeader(members);
    const recorded = await record('L', replicas, () => dockerOk(['kill', leader.container.getId()]).then(() => {}), () => restartStopped(members));
    const result = check('etcd leader killed', recorded);
    expect(result.linearizable, result.counterexample && describeHistory(result.counterexample)).toBe(true);
    expect(recorded.history.length).toBeGreaterThan(500);
  });

  it('one etcd member cut off the network (docker network disconnect) and reconnected: linearizable', async () => {
    const cut = members[2]!;
    const recorded = await record('P', replicas, () => disconnect(cut).then(() => {}), () => reconnect(cut).then(() => {}));
    const result = check('etcd member partitioned', recorded);
    expect(result.linearizable, result.counterexample && describeHistory(result.counterexample)).toBe(true);
  });

  it('a replica killed (docker kill) and started again: linearizable', async () => {
    const victim = replicas[1]!;
    const recorded = await record(
      'K',
      replicas,
      () => dockerOk(['kill', victim.container.getId()]).then(() => {}),
      () => victim.container.restart(),
    );
    const result = check('replica killed', recorded);
    expect(result.linearizable, result.counterexample && describeHistory(result.counterexample)).toBe(true);
  });

  it('a replica paused (docker pause) for twice the etcd deadline: linearizable', async () => {
    const victim = replicas[2]!;
    const recorded = await record(
      'Z',
      replicas,
      () => dockerOk(['pause', victim.container.getId()]).then(() => {}),
      async () => {
        await sleep(Math.max(0, 2 * ETCD_TIMEOUT_MS - (HEAL_AT_MS - FAULT_AT_MS)));
        await dockerOk(['unpause', victim.container.getId()]);
      },
    );
    const result = check('replica paused', recorded);
    expect(result.linearizable, result.counterexample && describeHistory(result.counterexample)).toBe(true);
  });

  it('negative: replicas without the read barrier, the member one of them follows cut off — the checker rejects the history', async () => {
    await restartStopped(members);
    const followed = members[2]!;
    const recorded = await record('N', unsafe, () => disconnect(followed).then(() => {}), () => reconnect(followed).then(() => {}));
    const result = check('no read barrier, followed member partitioned', recorded);
    expect(result.linearizable).toBe(false);
    // its end is the read no order explains; the writes before it are the context
    console.log(`counterexample (${result.counterexample!.length} operations), its last 12:\n${describeHistory(result.counterexample!.slice(-12))}`);
    // the proof holds a read that no order of the writes explains
    expect(result.counterexample!.some((h) => h.op.kind === 'get' || h.op.kind === 'list')).toBe(true);
  });
});
