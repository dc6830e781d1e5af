// Issue 9, acceptance 1-5: three stateless tcpkv replicas over one 3-member etcd cluster, as
// containers on one network (etcd1..3, tcpkv1..3), driven from the host through ports published on
// 127.0.0.1 with the client library and the CLI.
//   1. the seed scenario passes through each replica (three --spread runs, each starting at another
//      replica; END stops only the replica it reaches); a POST through replica 1 is seen by a GET
//      through replica 3 at once
//   2. concurrent POSTs of overlapping key sets through different replicas: exactly one wins each
//      conflict, never a partial write (property)
//   3. docker kill of the etcd leader under multi-key write load through all replicas: every
//      acknowledged write is there afterwards, failed writes got 503 or a failed connection and are
//      all-or-nothing, writes resume within 5 s
//   4. a replica killed: the multi-address client carries on against the others
//   5. quorum lost (2 of 3 members down): clear 503s, no crash; service resumes when they return
// The figures (resume time, acknowledged/failed counts) are printed as one JSON line per test.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { Network } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import {
  clientFor,
  findLeader,
  isRunning,
  listData,
  memberStatus,
  request,
  restartStopped,
  sleep,
  startEtcdCluster,
  startReplicas,
  waitForHealthy,
  wipeStore,
  type EtcdMember,
  type Outcome,
  type Replica,
} from '../support/cluster.js';
import { DockerResources, REPO_ROOT, containerLogs, dockerOk, waitForExit } from '../support/docker.js';

const TOKEN = 'cluster-test-token';
const CLI = join(REPO_ROOT, 'dist/services/client/cli.js');

function runCli(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, env: { ...process.env, TCPKV_SHUTDOWN_TOKEN: '' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

function rotate<T>(items: readonly T[], first: number): T[] {
  return [...items.slice(first), ...items.slice(0, first)];
}

const body = (pairs: ReadonlyArray<readonly [string, string]>) => pairs.map(([k, v]) => `${k}: ${v}`).join('&');
const only = (data: Map<string, string>, prefix: string) => new Map([...data].filter(([k]) => k.startsWith(prefix)));
const is503 = (o: Outcome) => o.status === 503 && (o.body === Texts.storeUnavailable || o.body === Texts.storeIndeterminate);
const noAnswer = (o: Outcome) => typeof o.status === 'string';

describe('tcpkv replicas over a 3-member etcd cluster (issue 9)', () => {
  const res = new DockerResources();
  let members: EtcdMember[];
  let replicas: Replica[];

  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} is missing: run npm run build first`).toBe(true);
    const network = res.network(await new Network().start());
    members = await startEtcdCluster(network, res);
    replicas = await startReplicas(network, res, 3, { token: TOKEN });
  });
  afterAll(async () => {
    await res.cleanup();
  });

  /** Every member up and healthy, every replica up (the state each test starts from, even after a failed one). */
  async function allUp(): Promise<void> {
    await restartStopped(members);
    for (const r of replicas) if (!(await isRunning(r.container))) await r.container.restart();
  }

  it('1. the seed scenario passes through each replica (END stops only the one it reaches), and a POST through replica 1 is read through replica 3 at once', async () => {
    for (const first of [0, 1, 2]) {
      await wipeStore(members[0]!);
      const order = rotate(replicas, first);
      const addresses = order.map((r) => `127.0.0.1:${r.port()}`);
      const run = await runCli(['--server', addresses.join(','), '--token', TOKEN, 'scenario', '--spread', '--json']);
      expect(run.code, `${run.stdout}${run.stderr}`).toBe(0);
      const report = JSON.parse(run.stdout) as { passed: number; failed: number; cases: Array<{ n: number; request: string; ok: boolean; got: string }> };
      expect(report).toMatchObject({ passed: 16, failed: 0 });
      // case n went to replica n mod 3 of this order: every replica answered a third of the scenario
      for (const [i, c] of report.cases.entries()) expect(c.request, `case ${c.n}`).toContain(`→ ${addresses[i % 3]}`);
      expect(report.cases[15]!.got).toMatch(/^200\b/);

      // END (case 16 → server 15 mod 3 = the first) stopped that replica, cleanly; the others serve on
      const stopped = order[0]!;
      expect(await waitForExit(stopped.container.getId(), 20_000)).toBe(0);
      for (const other of order.slice(1)) expect(await isRunning(other.container), other.name).toBe(true);
      const data = await listData(clientFor([order[1]!]));
      expect([...data.keys()]).toEqual(['ID', 'Subject', 'Grade', 'final_exam']);

      // a replica is stateless: started again, it serves the same data at once
      await stopped.container.restart();
      expect(await listData(clientFor([stopped]))).toEqual(data);
    }

    await wipeStore(members[0]!);
    const [one, two, three] = [clientFor([replicas[0]!]), clientFor([replicas[1]!]), clientFor([replicas[2]!])];
    for (let i = 0; i < 25; i++) {
      const post = await request(i % 2 ? two : one, 'POST', 'create', body([[`ryw${i}`, `v${i}`], [`ryw${i}.b`, `w${i}`]]));
      expect(post.status, post.body).toBe(200);
      const seen = await listData(three);
      expect([seen.get(`ryw${i}`), seen.get(`ryw${i}.b`)]).toEqual([`v${i}`, `w${i}`]);
      expect(seen.size).toBe(2 * (i + 1));
    }
  });

  it('2. concurrent POSTs of overlapping key sets through different replicas: exactly one wins each conflict, never a partial write (property)', async () => {
    await allUp();
    const clients = replicas.map((r) => clientFor([r]));
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), { minLength: 1, maxLength: 4 }), { minLength: 2, maxLength: 6 }),
        async (keySets) => {
          const tag = `race${++runs}-`;
          const outcomes = await Promise.all(keySets.map((keys, w) => request(clients[w % 3]!, 'POST', 'create', body(keys.map((k) => [`${tag}${k}`, `w${w}`] as const)))));
          for (const o of outcomes) expect([o.status, o.status === 200 ? '' : o.body]).toEqual(o.status === 200 ? [200, ''] : [400, Texts.keyExists]);
          const data = only(await listData(clients[runs % 3]!), tag);
          const winners = outcomes.flatMap((o, w) => (o.status === 200 ? [w] : []));
          // each winner's keys are all there with its value; no loser's value appears anywhere
          for (const w of winners) for (const k of keySets[w]!) expect(data.get(`${tag}${k}`)).toBe(`w${w}`);
          for (const [, v] of data) expect(winners.map((w) => `w${w}`)).toContain(v);
          expect(data.size).toBe(winners.reduce((n, w) => n + keySets[w]!.length, 0));
          // winners are pairwise disjoint, every loser overlaps some winner, and some POST always wins
          expect(winners.length).toBeGreaterThan(0);
          for (const [i, w] of winners.entries()) for (const q of winners.slice(i + 1)) expect(keySets[w]!.some((k) => keySets[q]!.includes(k))).toBe(false);
          outcomes.forEach((o, w) => {
            if (o.status !== 200) expect(winners.some((x) => keySets[x]!.some((k) => keySets[w]!.includes(k)))).toBe(true);
          });
        },
      ),
      { numRuns: 20 },
    );
  });

  it('3. docker kill of the etcd leader under write load through all replicas: acknowledged writes kept, failures clean and all-or-nothing, writes resume within 5 s', async () => {
    await allUp();
    await wipeStore(members[0]!);
    const leader = await findLeader(members);

    interface Write {
      readonly keys: string[];
      readonly value: string;
      /** Date.now() when sent and when answered */
      readonly sent: number;
      readonly answered: number;
      readonly outcome: Outcome;
    }
    const writes: Write[] = [];
    let stopping = false;
    /** One three-key POST; after the test its keys must be all there with its value, or all absent. */
    const write = async (client: ReturnType<typeof clientFor>, name: string): Promise<Outcome> => {
      const value = name.replace(/-/g, '');
      const keys = ['a', 'b', 'c'].map((s) => `L${name}-${s}`);
      const sent = Date.now();
      const outcome = await request(client, 'POST', 'create', body(keys.map((k) => [k, value] as const)));
      writes.push({ keys, value, sent, answered: Date.now(), outcome });
      return outcome;
    };
    // The load: two writers per replica, one request at a time each, every request on a new
    // connection (as the seed's client does).
    const WORKERS = 6;
    const loops = Array.from({ length: WORKERS }, async (_, w) => {
      const client = clientFor([replicas[w % 3]!], { timeoutMs: 15_000 });
      for (let n = 0; !stopping; n++) {
        const outcome = await write(client, `w${w}-${n}`);
        if (outcome.status !== 200) await sleep(20); // do not spin on fast failures
      }
    });
    // The probe: a new POST every 100 ms, whatever became of the previous ones, in turn through the
    // replicas — so the first write acknowledged after the kill is not hidden behind writers that
    // wait out the etcd deadline.
    const probes: Array<Promise<Outcome>> = [];
    const probing = (async () => {
      const clients = replicas.map((r) => clientFor([r], { timeoutMs: 15_000 }));
      for (let n = 0; !stopping; n++) {
        probes.push(write(clients[n % 3]!, `p-${n}`));
        await sleep(100);
      }
    })();

    await sleep(2_000);
    const termBefore = (await memberStatus(leader)).raftTerm;
    const killCommandAt = Date.now();
    await dockerOk(['kill', leader.container.getId()]);
    const killReturnedAt = Date.now();
    // when the member died, by Docker's clock (this machine's), which `docker kill` returns well after
    const finishedAt = Date.parse(await dockerOk(['inspect', '--format', '{{.State.FinishedAt}}', leader.container.getId()]));
    const killedAt = Number.isFinite(finishedAt) && finishedAt >= killCommandAt - 1_000 && finishedAt <= killReturnedAt ? finishedAt : killCommandAt;
    await sleep(8_000);
    stopping = true;
    await Promise.all([...loops, probing]);
    await Promise.all(probes);

    const survivors = members.filter((m) => m !== leader);
    const newLeader = await findLeader(survivors);
    const termAfter = (await memberStatus(newLeader)).raftTerm;
    expect(BigInt(termAfter), 'a new election happened').toBeGreaterThan(BigInt(termBefore));
    const data = only(await listData(clientFor(replicas)), 'L');

    const acked = writes.filter((x) => x.outcome.status === 200);
    const failed = writes.filter((x) => x.outcome.status !== 200);
    const unexpected = failed.filter((x) => !is503(x.outcome) && !noAnswer(x.outcome));
    expect(unexpected.map((x) => `${x.outcome.status} ${x.outcome.body}`)).toEqual([]);
    // every acknowledged write is there, whole
    const lost = acked.filter((x) => x.keys.some((k) => data.get(k) !== x.value));
    expect(lost.map((x) => x.keys[0])).toEqual([]);
    // a failed write is all there or all absent; "nothing was changed" and refused connections: absent
    const halfApplied = failed.filter((x) => {
      const present = x.keys.filter((k) => data.get(k) === x.value).length;
      return present !== 0 && present !== x.keys.length;
    });
    expect(halfApplied.map((x) => x.keys[0])).toEqual([]);
    const certainlyNot = failed.filter((x) => x.outcome.body === Texts.storeUnavailable || !x.outcome.maybeApplied);
    expect(certainlyNot.filter((x) => x.keys.some((k) => data.has(k))).map((x) => x.keys[0])).toEqual([]);
    // nothing appears that was never written
    const written = new Map(writes.flatMap((x) => x.keys.map((k) => [k, x.value] as const)));
    expect([...data].filter(([k, v]) => written.get(k) !== v)).toEqual([]);

    // writes resume: the first write sent after the kill and acknowledged
    const resumed = acked.filter((x) => x.sent >= killedAt).sort((a, b) => a.answered - b.answered)[0];
    expect(resumed, 'no write was acknowledged after the kill').toBeDefined();
    const resumeMs = resumed!.answered - killedAt;
    expect(resumeMs).toBeLessThan(5_000);
    // every write is answered within the etcd deadline (TCPKV_ETCD_TIMEOUT_MS, 3 s) plus a margin, also
    // one that waited for a transaction slot behind writes stuck on the dead leader
    const worstLatencyMs = Math.max(...writes.map((x) => x.answered - x.sent));
    expect(worstLatencyMs).toBeLessThan(3_000 + 1_500);
    const after = (from: number, to: number) => writes.filter((x) => x.sent >= killedAt + from && x.sent < killedAt + to);
    const share = (xs: Write[]) => `${xs.filter((x) => x.outcome.status === 200).length}/${xs.length}`;
    console.log(
      JSON.stringify({
        test: 'leader kill',
        killed: leader.name,
        newLeader: newLeader.name,
        writes: writes.length,
        acknowledged: acked.length,
        failed: failed.length,
        failed503: failed.filter((x) => x.outcome.status === 503).length,
        failed503Indeterminate: failed.filter((x) => x.outcome.body === Texts.storeIndeterminate).length,
        failedNoAnswer: failed.filter((x) => noAnswer(x.outcome)).length,
        failedAfterDeadline: failed.filter((x) => x.answered - x.sent >= 2_500).length,
        killCommandMs: killReturnedAt - killCommandAt,
        diedAfterCommandMs: killedAt - killCommandAt,
        terms: `${termBefore}->${termAfter}`,
        indeterminateApplied: failed.filter((x) => x.keys.every((k) => data.get(k) === x.value)).length,
        resumeMs,
        probes: probes.length,
        worstLatencyMs: Math.round(worstLatencyMs),
        ackedShareBeforeKill: share(writes.filter((x) => x.sent < killedAt)),
        ackedShare0to2s: share(after(0, 2_000)),
        ackedShare2to8s: share(after(2_000, 8_000)),
        // the killed member still down, the new leader in place: calls skip the dead member
        ackedShare5to8s: share(after(5_000, 8_000)),
      }),
    );

    // what the replicas said about etcd (the first failure of each outage is logged at error level)
    for (const r of replicas) {
      const errors = (await containerLogs(r.container.getId())).split('\n').filter((l) => l.includes('etcd call failed'));
      console.log(`${r.name}: ${errors.length} etcd outage(s) logged${errors[0] ? `, first: ${errors[0]}` : ''}`);
    }

    // the member comes back, catches up, and every replica reads the same data
    await leader.container.restart();
    await waitForHealthy(members, 60_000);
    for (const r of replicas) expect(only(await listData(clientFor([r])), 'L'), r.name).toEqual(data);
  });

  it('4. a replica killed: the multi-address client carries on against the others', async () => {
    await allUp();
    const [r1, r2, r3] = replicas as [Replica, Replica, Replica];
    const client = clientFor([r1, r2, r3]);
    expect((await request(client, 'POST', 'create', 'rk-before: 1')).port).toBe(r1.port());

    await dockerOk(['kill', r1.container.getId()]);
    for (let i = 0; i < 10; i++) {
      const post = await request(client, 'POST', 'create', body([[`rk${i}`, `v${i}`]]));
      expect([post.status, post.port]).toEqual([200, r2.port()]);
      expect((await listData(client)).get(`rk${i}`)).toBe(`v${i}`);
    }
    // the CLI does the same with a comma list
    const cli = await runCli(['--server', [r1, r2, r3].map((r) => `127.0.0.1:${r.port()}`).join(','), 'create', 'rk-cli: yes']);
    expect(cli.code, cli.stderr).toBe(0);
    // two replicas down: the third carries on
    await dockerOk(['kill', r2.container.getId()]);
    const post = await request(client, 'POST', 'create', 'rk-third: 3');
    expect([post.status, post.port]).toEqual([200, r3.port()]);
    const data = await listData(client);
    expect([data.get('rk-before'), data.get('rk9'), data.get('rk-cli'), data.get('rk-third')]).toEqual(['1', 'v9', 'yes', '3']);

    await Promise.all([r1.container.restart(), r2.container.restart()]);
    expect(await listData(clientFor([r1]))).toEqual(data);
    expect(await listData(clientFor([r2]))).toEqual(data);
  });

  it('5. quorum lost (2 of 3 members down): clear 503s, no crash; service resumes when they return', async () => {
    await allUp();
    await wipeStore(members[0]!);
    const clients = replicas.map((r) => clientFor([r]));
    expect((await request(clients[0]!, 'POST', 'create', 'q-before: 1&q-before.b: 1')).status).toBe(200);

    const down = [members[0]!, members[1]!];
    await Promise.all(down.map((m) => dockerOk(['kill', m.container.getId()])));
    const during: Array<{ keys: string[]; outcome: Outcome }> = [];
    const answerMs: number[] = [];
    const outageStart = performance.now();
    // the three replicas at once: a GET, a two-key POST and a HEAD each
    await Promise.all(
      clients.map(async (client, i) => {
        let t = performance.now();
        const get = await request(client, 'GET', '');
        answerMs.push(performance.now() - t);
        expect([get.status, get.body]).toEqual([503, Texts.storeUnavailable]);
        const keys = [`q-during-${i}`, `q-during-${i}.b`];
        t = performance.now();
        const post = await request(client, 'POST', 'create', body(keys.map((k) => [k, 'x'] as const)));
        answerMs.push(performance.now() - t);
        expect(post.status).toBe(503);
        expect([Texts.storeUnavailable, Texts.storeIndeterminate]).toContain(post.body);
        during.push({ keys, outcome: post });
        expect((await request(client, 'HEAD', '')).status).toBe(503);
      }),
    );
    // no crash: every replica is still running and answering (with 503)
    for (const r of replicas) expect(await isRunning(r.container), r.name).toBe(true);
    // each answer comes within the etcd deadline (TCPKV_ETCD_TIMEOUT_MS, 3 s) plus a margin
    expect(Math.max(...answerMs)).toBeLessThan(3_000 + 1_500);

    const restartAt = performance.now();
    await Promise.all(down.map((m) => m.container.restart()));
    const resumedMs: number[] = [];
    for (const [i, client] of clients.entries()) {
      for (let attempt = 0; ; attempt++) {
        // a new key each time: an attempt answered 503 may still have been applied
        const o = await request(client, 'POST', 'create', `q-after-${i}-${attempt}: 1`);
        if (o.status === 200) break;
        expect(is503(o), `${o.status} ${o.body}`).toBe(true);
        expect(performance.now() - restartAt, 'service did not resume within 60 s').toBeLessThan(60_000);
        await sleep(200);
      }
      resumedMs.push(performance.now() - restartAt);
    }
    await waitForHealthy(members, 60_000);
    const data = await listData(clients[2]!);
    expect([data.get('q-before'), data.get('q-before.b')]).toEqual(['1', '1']);
    for (const d of during) {
      const present = d.keys.filter((k) => data.get(k) === 'x').length;
      expect(present === 0 || present === d.keys.length, d.keys[0]).toBe(true);
      if (d.outcome.body === Texts.storeUnavailable) expect(present).toBe(0);
    }
    console.log(
      JSON.stringify({
        test: 'quorum loss',
        outageMs: Math.round(restartAt - outageStart),
        slowest503Ms: Math.round(Math.max(...answerMs)),
        fastest503Ms: Math.round(Math.min(...answerMs)),
        resumedAfterRestartMs: resumedMs.map(Math.round),
        duringWritesApplied: during.filter((d) => d.keys.every((k) => data.has(k))).length,
      }),
    );
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
