// Three replicas (three stores in this process) over three etcd members on loopback, reading and
// writing all the time, while the etcd leader stops answering without closing its connections
// (SIGSTOP: a machine that died or was cut off). etcd usually elects a new leader within two seconds;
// each replica may spend one etcd deadline on the calls it had sent to the silent member, and no more:
// its read barriers go through the same member handling as its writes (a barrier that failed on the
// silent member makes writes skip it too), and a leader check never names the silent member again
// from answers given before the election. Three runs, each pausing the leader of the moment.

import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { startEtcdCluster, type EtcdMember } from '../support/etcd.js';
import { sleep } from '../support/sleep.js';

const TIMEOUT_MS = 3000;
const RUNS = 3;

interface Op {
  readonly kind: 'get' | 'put';
  readonly sent: number;
  readonly answered: number;
  readonly ok: boolean;
}

/** Two reading loops and one writing loop on one replica until stop(). */
function load(store: EtcdStore, tag: string): { ops: Op[]; stop(): Promise<void> } {
  const ops: Op[] = [];
  let stopping = false;
  const loop = async (kind: Op['kind']) => {
    for (let n = 0; !stopping; n++) {
      const sent = Date.now();
      const ok = await (kind === 'get' ? store.get('k') : store.upsertAll([[`${tag}-${n % 50}`, String(n)]])).then(
        () => true,
        () => false,
      );
      ops.push({ kind, sent, answered: Date.now(), ok });
      if (!ok) await sleep(20);
    }
  };
  const loops = [loop('get'), loop('get'), loop('put')];
  return {
    ops,
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

async function statusOf(m: EtcdMember, deadlineMs: number) {
  const client = new Etcd3({ hosts: m.clientUrl });
  try {
    return await client.maintenance.status({ deadline: Date.now() + deadlineMs });
  } catch {
    return undefined;
  } finally {
    client.close();
  }
}

/**
 * When the members other than `silent` first name a leader that is not `silent` (etcd's own answer,
 * polled every 50 ms): until then no replica can serve, whatever it does.
 */
async function electedAfter(members: readonly EtcdMember[], silent: EtcdMember, silentId: string, untilMs: number): Promise<number | undefined> {
  const others = members.filter((m) => m !== silent);
  while (Date.now() < untilMs) {
    const statuses = await Promise.all(others.map((m) => statusOf(m, 300)));
    if (statuses.some((s) => s !== undefined && s.leader !== '0' && s.leader !== silentId)) return Date.now();
    await sleep(50);
  }
  return undefined;
}

async function leaderOf(members: readonly EtcdMember[]): Promise<{ member: EtcdMember; id: string }> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const statuses = await Promise.all(members.map((m) => statusOf(m, 500)));
    const leader = statuses.findIndex((s) => s !== undefined && s.leader !== '0' && s.header.member_id === s.leader);
    if (leader >= 0 && statuses.every((s) => s !== undefined && s.leader === statuses[leader]!.leader)) {
      return { member: members[leader]!, id: statuses[leader]!.leader };
    }
    await sleep(100);
  }
  throw new Error('no etcd leader that all members follow within 10 s');
}

describe('etcd store: a silently dead leader (SIGSTOP) costs each replica at most one deadline of 503s', () => {
  let cluster: Awaited<ReturnType<typeof startEtcdCluster>>;
  const stores: EtcdStore[] = [];
  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
    const endpoints = cluster.endpoints.split(',');
    for (let r = 0; r < 3; r++) {
      const store = new EtcdStore({ endpoints, prefix: `silent${process.pid}/`, timeoutMs: TIMEOUT_MS, logger: pino({ level: 'silent' }) });
      expect(await store.start()).toBe(true);
      stores.push(store);
    }
    await stores[0]!.upsertAll([['k', 'v']]);
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    await cluster?.destroy();
  });

  it(`${RUNS} runs: GETs and PUTs answer 503 for at most one deadline after the pause on every replica`, async () => {
    const windows: { run: number; replica: number; electedMs: number; getFailMs: number; putFailMs: number; gets503: number; puts503: number }[] = [];
    for (let run = 0; run < RUNS; run++) {
      const { member: silent, id: silentId } = await leaderOf(cluster.members);
      // every replica serves before the pause
      for (const store of stores) {
        for (let i = 0; i < 100 && (await store.get('k').then(() => false, () => true)); i++) await sleep(100);
      }
      const loads = stores.map((store, r) => load(store, `r${r}`));
      await sleep(1500);
      const pausedAt = Date.now();
      silent.pause();
      const elected = await electedAfter(cluster.members, silent, silentId, pausedAt + 3 * TIMEOUT_MS);
      expect(elected, `the other members elect a leader in run ${run}`).toBeDefined();
      const electedMs = elected! - pausedAt;
      await sleep(Math.max(0, pausedAt + 3 * TIMEOUT_MS + 2000 - Date.now()));
      await Promise.all(loads.map((l) => l.stop()));
      silent.resume();
      loads.forEach(({ ops }, replica) => {
        // how long after the pause the replica still answered 503 (0: never)
        const failWindow = (kind: Op['kind']) => Math.max(0, ...ops.filter((o) => o.kind === kind && !o.ok && o.answered >= pausedAt).map((o) => o.answered - pausedAt));
        const failed = (kind: Op['kind']) => ops.filter((o) => o.kind === kind && !o.ok && o.answered >= pausedAt).length;
        windows.push({ run, replica, electedMs, getFailMs: failWindow('get'), putFailMs: failWindow('put'), gets503: failed('get'), puts503: failed('put') });
        // and it serves again: the last second of the run went through
        expect(ops.filter((o) => o.sent >= pausedAt + 3 * TIMEOUT_MS + 1000 && o.ok).length, `replica ${replica} serves again in run ${run}`).toBeGreaterThan(0);
      });
      await leaderOf(cluster.members);
    }
    console.log(JSON.stringify({ test: 'silent etcd leader, 503 window per replica', timeoutMs: TIMEOUT_MS, windows }));
    // One deadline after the silent member could last be chosen: until a call to it has failed, nothing
    // tells a replica to skip it, so a call sent as late as the election (the one before it waited
    // for a leader, then succeeded elsewhere) may still go to it and run out its deadline — 4.4 s
    // seen once under load, with the election at 1.4 s. A replica that went on choosing the silent
    // member after a failure on it would fail again a deadline later (≥ 2 deadlines after the
    // pause), past this bound. The election itself can take longer than a deadline on a loaded
    // machine (a second round of voting: 5.1 s seen once in CI; no replica serves without a leader).
    const slack = 750;
    const bound = (w: (typeof windows)[number]) => Math.max(TIMEOUT_MS, w.electedMs + TIMEOUT_MS) + slack;
    expect(windows.filter((w) => w.getFailMs > bound(w))).toEqual([]);
    expect(windows.filter((w) => w.putFailMs > bound(w))).toEqual([]);
  }, 120_000);
});
