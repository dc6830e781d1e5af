// A replica's etcd client when the etcd leader stops answering without closing its connections (a
// machine that died or was cut off; here a member process stopped with SIGSTOP, on loopback). Calls to
// it run out of their deadline, and so do the writes a live follower holds until a new leader is
// elected. The replica must skip the silent member and only it: writes carry on through the other two
// once they have a leader, none waits out the deadline on the silent member again, and the member is
// called again once it answers.

import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_STORE_EVENTS, type StoreEvents } from '../../services/server/events.js';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { StoreUnavailableError } from '../../services/server/store/store.js';
import { startEtcdCluster, type EtcdMember } from '../support/etcd.js';
import { sleep } from '../support/sleep.js';

const TIMEOUT_MS = 1000;

interface Write {
  readonly sent: number;
  readonly answered: number;
  readonly ok: boolean;
  readonly key: string;
  /** a failure that says nothing was applied (a 503 "nothing was changed") */
  readonly certainlyNotApplied: boolean;
  /** a failure's message */
  readonly error?: string;
}

/** `writers` loops of one-key POSTs until stop() (a failed one waits 20 ms before the next). */
function writeLoad(store: EtcdStore, prefix: string, writers = 4): { writes: Write[]; stop(): Promise<void> } {
  const writes: Write[] = [];
  let stopping = false;
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let n = 0; !stopping; n++) {
      const key = `${prefix}${w}-${n}`;
      const sent = Date.now();
      const [ok, certainlyNotApplied, error] = await store.createAll([[key, 'v']]).then(
        (r): [boolean, boolean, string?] => [r.ok, false],
        (e: unknown): [boolean, boolean, string?] => [false, e instanceof StoreUnavailableError && !e.indeterminate, (e as Error).message],
      );
      writes.push({ sent, answered: Date.now(), ok, key, certainlyNotApplied, ...(error === undefined ? {} : { error }) });
      if (!ok) await sleep(20);
    }
  });
  return {
    writes,
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

/** Every acknowledged write is in the store. */
async function expectAckedPresent(store: EtcdStore, writes: readonly Write[]): Promise<void> {
  const present = new Set((await store.list()).map(([k]) => k));
  expect(writes.filter((x) => x.ok && !present.has(x.key)).map((x) => x.key)).toEqual([]);
}

/** A store over these endpoints whose members' breaker states are logged with the time. */
function storeOver(endpoints: readonly string[], prefix: string): { store: EtcdStore; breakerLog: Array<{ at: number; member: string; state: string }> } {
  const breakerLog: Array<{ at: number; member: string; state: string }> = [];
  const events: StoreEvents = { ...NO_STORE_EVENTS, etcdBreaker: (member, state) => void breakerLog.push({ at: Date.now(), member, state }) };
  return { store: new EtcdStore({ endpoints, prefix, timeoutMs: TIMEOUT_MS, logger: pino({ level: 'silent' }), events }), breakerLog };
}

type BreakerLog = ReturnType<typeof storeOver>['breakerLog'];

/** Whether the member is skipped at `at`: its last breaker state before then is not closed. */
function skippedAt(log: BreakerLog, member: string, at: number): boolean {
  const last = log.filter((e) => e.member === member && e.at <= at).at(-1);
  return last !== undefined && last.state !== 'closed';
}

/** Runs `body` with a started store over the cluster (its breaker states logged) and the member that leads; closes the store after. */
async function withStore(
  cluster: { members: EtcdMember[]; endpoints: string },
  prefix: string,
  body: (context: { store: EtcdStore; breakerLog: BreakerLog; endpoints: string[]; leader: EtcdMember }) => Promise<void>,
): Promise<void> {
  const endpoints = cluster.endpoints.split(',');
  const { store, breakerLog } = storeOver(endpoints, prefix);
  try {
    expect(await store.start()).toBe(true);
    await body({ store, breakerLog, endpoints, leader: await leaderOf(cluster.members) });
  } finally {
    await store.close();
  }
}

/** The member the others follow, asked of each member directly. */
async function leaderOf(members: readonly EtcdMember[]): Promise<EtcdMember> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const statuses = await Promise.all(
      members.map(async (m) => {
        const client = new Etcd3({ hosts: m.clientUrl });
        try {
          return await client.maintenance.status();
        } finally {
          client.close();
        }
      }),
    );
    const leader = statuses.findIndex((s) => s.leader !== '0' && s.header.member_id === s.leader);
    if (leader >= 0) return members[leader]!;
    await sleep(100);
  }
  throw new Error('no etcd leader within 5 s');
}

describe('etcd store: a leader that stops answering (SIGSTOP, 3 members on loopback)', () => {
  let cluster: Awaited<ReturnType<typeof startEtcdCluster>>;
  beforeAll(async () => {
    cluster = await startEtcdCluster(3);
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('writes resume through the live members, none waits on the silent one again, and it is called again once it answers', async () => {
    await withStore(cluster, `failover${process.pid}/`, async ({ store, breakerLog, endpoints, leader }) => {
      const silent = leader;

      const load = writeLoad(store, 'w');
      const writes = load.writes;

      await sleep(1000);
      const pausedAt = Date.now();
      silent.pause();
      // until a write sent after the pause is acknowledged (a leader is elected: one election round
      // or a few), then long enough for the steady window below to span 4 s
      const firstAckAfterPause = () => writes.find((x) => x.ok && x.sent >= pausedAt);
      while (!firstAckAfterPause() && Date.now() - pausedAt < 10_000) await sleep(50);
      await sleep(TIMEOUT_MS + 500 + 4000);
      const resumedAt = Date.now();
      silent.resume();
      await sleep(4000);
      await load.stop();

      const after = (from: number, to: number) => writes.filter((x) => x.sent >= from && x.sent < to);
      const firstAck = writes.filter((x) => x.ok && x.sent >= pausedAt).sort((a, b) => a.answered - b.answered)[0];
      // Once a write went through (a leader is elected) and one more deadline passed (a call made to
      // the silent member before it was known to be silent ran out), every write goes through a live
      // member: none fails, none waits out the deadline. A member is asked again every 2 s, and calls
      // that tried it again (as a half-open breaker lets one do) would fail here.
      const steadyFrom = (firstAck?.answered ?? resumedAt) + TIMEOUT_MS + 500;
      const steady = after(steadyFrom, resumedAt);
      const slowest = Math.max(...steady.map((x) => x.answered - x.sent));
      const silentLog = breakerLog.filter((e) => e.member === silent.clientUrl && e.at >= pausedAt);
      const closedAgain = silentLog.find((e) => e.state === 'closed' && e.at >= resumedAt);
      // a live member whose write ran out during the election is skipped until it names the new
      // leader: by then writes go through again (a breaker held it 2 s more)
      const live = endpoints.filter((m) => m !== silent.clientUrl);
      const liveSkippedAfterFirstAck = firstAck ? live.filter((m) => skippedAt(breakerLog, m, firstAck.answered + 1000)) : live;
      const liveSkippedInSteadyWindow = live.filter((m) => breakerLog.some((e) => e.member === m && e.at >= steadyFrom && e.at < resumedAt && e.state !== 'closed'));
      console.log(
        JSON.stringify({
          test: 'silent etcd leader',
          writes: writes.length,
          firstAckAfterPauseMs: firstAck ? firstAck.answered - pausedAt : null,
          steadyFromMs: steadyFrom - pausedAt,
          steadyWrites: steady.length,
          steadyFailed: steady.filter((x) => !x.ok).length,
          steadySlowestMs: slowest,
          liveSkippedAfterFirstAck,
          liveSkippedInSteadyWindow,
          silentMemberCalledAgainMs: closedAgain ? closedAgain.at - resumedAt : null,
          failedAfterResume: after(resumedAt, Infinity).filter((x) => !x.ok).length,
        }),
      );

      expect(firstAck, 'a write sent after the pause was acknowledged').toBeDefined();
      // the writes stuck at the pause run out (one deadline), then one election round or a few
      expect(firstAck!.answered - pausedAt).toBeLessThan(8 * TIMEOUT_MS);
      expect(resumedAt - steadyFrom).toBeGreaterThan(3500);
      expect(steady.length).toBeGreaterThan(50);
      expect(steady.filter((x) => !x.ok).map((x) => x.key)).toEqual([]);
      expect(slowest).toBeLessThan(TIMEOUT_MS);
      expect(liveSkippedAfterFirstAck).toEqual([]);
      expect(liveSkippedInSteadyWindow).toEqual([]);
      expect(silentLog.some((e) => e.state === 'open' && e.at < resumedAt), 'the silent member was skipped').toBe(true);
      // asked again every 2 s; its status answers within 1 s once it runs
      expect(closedAgain, 'the silent member was called again after it resumed').toBeDefined();
      expect(closedAgain!.at - resumedAt).toBeLessThan(3000 + 500);
      await expectAckedPresent(store, writes);
    });
  });

  it('a member that refuses connections (killed) costs no write while it stays down, and is called again once it is back', async () => {
    await withStore(cluster, `refused${process.pid}/`, async ({ store, breakerLog, leader }) => {
      const down = cluster.members.find((m) => m !== leader)!; // a follower: no election, only the member is gone
      const load = writeLoad(store, 'r');
      await sleep(1000);
      const killedAt = Date.now();
      await down.kill();
      await sleep(6000);
      const startedAt = Date.now();
      await down.start();
      await sleep(4000);
      await load.stop();

      const writes = load.writes;
      // the writes in flight when it died may fail; after that, a status request every 2 s is all
      // that goes to it: no write fails on its refused connection (as one trying it again, the way a
      // half-open breaker lets one, does) nor finds every member skipped. (A write can still fail
      // for the cluster's own reasons: on a loaded machine the two members left may hold an election.)
      const whileDown = writes.filter((x) => x.sent >= killedAt + 500 && x.sent < startedAt);
      const spentOnTheDownMember = whileDown.filter((x) => !x.ok && /ECONNREFUSED|No connection established|Connection dropped|ECONNRESET|circuit/i.test(x.error ?? ''));
      const downLog = breakerLog.filter((e) => e.member === down.clientUrl && e.at >= killedAt);
      const calledAgain = downLog.find((e) => e.state === 'closed' && e.at >= startedAt);
      console.log(
        JSON.stringify({
          test: 'refused etcd member',
          writes: writes.length,
          failedAtKill: writes.filter((x) => !x.ok && x.sent < killedAt + 500).length,
          whileDown: whileDown.length,
          failedWhileDown: whileDown.filter((x) => !x.ok).length,
          failuresWhileDown: [...new Set(whileDown.filter((x) => !x.ok).map((x) => x.error))],
          spentOnTheDownMember: spentOnTheDownMember.length,
          halfOpenTrials: downLog.filter((e) => e.state === 'half-open').length,
          calledAgainMs: calledAgain ? calledAgain.at - startedAt : null,
        }),
      );
      expect(whileDown.length).toBeGreaterThan(100);
      expect(spentOnTheDownMember.map((x) => `${x.key}: ${x.error}`)).toEqual([]);
      expect(whileDown.filter((x) => !x.ok).length).toBeLessThan(whileDown.length / 100);
      expect(downLog.some((e) => e.state === 'open'), 'the member was skipped').toBe(true);
      // asked every 2 s; a started etcd answers within a second or two
      expect(calledAgain, 'the member was called again once back').toBeDefined();
      expect(calledAgain!.at - startedAt).toBeLessThan(4000);
      await expectAckedPresent(store, writes);
    });
  });

  it('quorum lost (two members stopped): once each member failed a call, writes answer "nothing was changed" at once; they resume when the members do', async () => {
    await withStore(cluster, `quorum${process.pid}/`, async ({ store, breakerLog, endpoints, leader }) => {
      const stopped = [leader, cluster.members.find((m) => m !== leader)!];
      const load = writeLoad(store, 'q');
      await sleep(1000);
      const stoppedAt = Date.now();
      for (const m of stopped) m.pause();
      // every member is skipped once a call to it failed: the stopped ones do not answer their
      // status, the one left answers without a leader
      const allSkipped = () => endpoints.every((m) => skippedAt(breakerLog, m, Date.now()));
      while (!allSkipped() && Date.now() - stoppedAt < 10_000) await sleep(50);
      const allSkippedAt = Date.now();
      await sleep(4000);
      const resumedAt = Date.now();
      for (const m of stopped) m.resume();
      while (!load.writes.some((x) => x.ok && x.sent >= resumedAt) && Date.now() - resumedAt < 15_000) await sleep(50);
      await sleep(500);
      await load.stop();

      const writes = load.writes;
      const duringOutage = writes.filter((x) => x.sent >= allSkippedAt && x.sent < resumedAt);
      const slowest = Math.max(...duringOutage.map((x) => x.answered - x.sent));
      const firstAckAfterResume = writes.filter((x) => x.ok && x.sent >= resumedAt).sort((a, b) => a.answered - b.answered)[0];
      console.log(
        JSON.stringify({
          test: 'quorum lost',
          allSkippedAfterMs: allSkippedAt - stoppedAt,
          duringOutage: duringOutage.length,
          acknowledgedDuringOutage: duringOutage.filter((x) => x.ok).length,
          notAppliedDuringOutage: duringOutage.filter((x) => x.certainlyNotApplied).length,
          slowestDuringOutageMs: slowest,
          resumedAfterMs: firstAckAfterResume ? firstAckAfterResume.answered - resumedAt : null,
        }),
      );
      // within a few deadlines every member failed a call (the ones in flight at the stop, then the
      // next ones, which went to the members not yet skipped)
      expect(allSkippedAt - stoppedAt).toBeLessThan(6 * TIMEOUT_MS);
      // then no write waits out the deadline: each is answered at once, sure that nothing was applied
      expect(duringOutage.length).toBeGreaterThan(20);
      expect(duringOutage.filter((x) => !x.certainlyNotApplied).map((x) => x.key)).toEqual([]);
      expect(slowest).toBeLessThan(TIMEOUT_MS / 2);
      // the members are asked again every 250 ms (leaderless) or 2 s (no answer): writes resume soon
      // after the cluster has a leader again (the resumed leader may have to be elected again)
      expect(firstAckAfterResume, 'writes resumed').toBeDefined();
      expect(firstAckAfterResume!.answered - resumedAt).toBeLessThan(8000);
      await expectAckedPresent(store, writes);
    });
  });
});
