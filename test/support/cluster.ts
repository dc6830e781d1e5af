// Helpers for the cluster tests (issue 9): a 3-member etcd cluster and tcpkv replicas over it, as
// containers on one Docker network, driven from the host through ports published on 127.0.0.1.
//
//   const net = res.network(await new Network().start());
//   const members = await startEtcdCluster(net, res);          // etcd1..3 (network aliases)
//   const replicas = await startReplicas(net, res, 3, { token }); // tcpkv1..3, ports on 127.0.0.1
//   const client = clientFor(replicas);                          // the multi-address client library
//
// Everything started is registered with the DockerResources, which removes it in afterAll.

import { GenericContainer, Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { ClientError, TcpkvClient, type Answer } from '../../services/client/client.js';
import { DockerResources, SERVER_PORT, docker, inspectState, startServer } from './docker.js';
import { HttpConn, percentile } from './http-conn.js';
import { parseListing } from './write-load.js';

/** The etcd image: the official one where a registry is reachable, else infra/docker/offline-etcd.sh's. */
export const ETCD_IMAGE = process.env.ETCD_IMAGE?.trim() || 'tcpkv/etcd:local';
export const ETCD_NAMES = ['etcd1', 'etcd2', 'etcd3'] as const;
export const ETCD_ENDPOINTS = ETCD_NAMES.map((n) => `http://${n}:2379`).join(',');
/** tcpkv's default key prefix in etcd (TCPKV_ETCD_PREFIX). */
export const TCPKV_PREFIX = 'tcpkv/';
const ETCDCTL = '/usr/local/bin/etcdctl';
/** etcd logs this once it has joined a cluster with a leader (capnslog in 3.4, zap JSON in 3.5). */
const ETCD_READY = /ready to serve client requests/;

export interface EtcdMember {
  readonly name: string;
  readonly container: StartedTestContainer;
}

/** The flags of one member of a static 3-member cluster whose members are named by network alias. */
export function etcdCommand(name: string, names: readonly string[] = ETCD_NAMES, clusterToken = 'tcpkv-test'): string[] {
  return [
    '/usr/local/bin/etcd',
    `--name=${name}`,
    '--data-dir=/var/lib/etcd/data',
    '--listen-client-urls=http://0.0.0.0:2379',
    `--advertise-client-urls=http://${name}:2379`,
    '--listen-peer-urls=http://0.0.0.0:2380',
    `--initial-advertise-peer-urls=http://${name}:2380`,
    `--initial-cluster=${names.map((n) => `${n}=http://${n}:2380`).join(',')}`,
    `--initial-cluster-token=${clusterToken}`,
    '--initial-cluster-state=new',
    // as in the compose files
    '--auto-compaction-mode=revision',
    '--auto-compaction-retention=10000',
    '--quota-backend-bytes=1073741824',
  ];
}

/**
 * Starts the members at once (each waits for the others before it is ready), then waits until every
 * one of them reports healthy (a read committed through Raft).
 */
export async function startEtcdCluster(network: StartedNetwork, resources: DockerResources, names: readonly string[] = ETCD_NAMES): Promise<EtcdMember[]> {
  const members = await Promise.all(
    names.map(async (name) => {
      const container = await new GenericContainer(ETCD_IMAGE)
        .withCommand(etcdCommand(name, names))
        .withNetwork(network)
        .withNetworkAliases(name)
        .withWaitStrategy(Wait.forLogMessage(ETCD_READY))
        .withStartupTimeout(60_000)
        .start();
      return { name, container: resources.container(container) };
    }),
  );
  await waitForHealthy(members, 30_000);
  return members;
}

/** `etcdctl --endpoints=http://127.0.0.1:2379 <args>` inside a member's container. */
export async function etcdctl(member: EtcdMember, args: string[]): Promise<{ exitCode: number; output: string }> {
  const r = await member.container.exec([ETCDCTL, '--endpoints=http://127.0.0.1:2379', '--command-timeout=3s', ...args]);
  return { exitCode: r.exitCode, output: r.output };
}

/** True when this member answers and the cluster has a quorum (etcdctl endpoint health). */
export async function memberHealthy(member: EtcdMember): Promise<boolean> {
  try {
    return (await etcdctl(member, ['endpoint', 'health'])).exitCode === 0;
  } catch {
    return false; // the container is not running
  }
}

export async function waitForHealthy(members: readonly EtcdMember[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const health = await Promise.all(members.map(memberHealthy));
    if (health.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error(`etcd members not healthy within ${timeoutMs} ms: ${members.filter((_, i) => !health[i]).map((m) => m.name).join(', ')}`);
    await sleep(250);
  }
}

export interface MemberStatus {
  readonly memberId: string;
  readonly leaderId: string;
  readonly raftTerm: string;
}

/** `etcdctl endpoint status -w json` of one member (ids as strings: they are uint64). */
export async function memberStatus(member: EtcdMember): Promise<MemberStatus> {
  const r = await etcdctl(member, ['endpoint', 'status', '-w', 'json']);
  if (r.exitCode !== 0) throw new Error(`etcdctl endpoint status on ${member.name}: ${r.output}`);
  const json = r.output.slice(r.output.indexOf('['));
  // Quote the big integers before JSON.parse so that no precision is lost.
  const parsed = JSON.parse(json.replace(/:\s*(\d{10,})/g, ':"$1"')) as Array<{ Status: { header: { member_id: string; raft_term: string }; leader: string } }>;
  const status = parsed[0]!.Status;
  return { memberId: String(status.header.member_id), leaderId: String(status.leader), raftTerm: String(status.header.raft_term) };
}

/** The member that is the Raft leader, as every running member sees it (they must agree). */
export async function findLeader(members: readonly EtcdMember[]): Promise<EtcdMember> {
  const statuses = await Promise.all(members.map(memberStatus));
  const leaderIds = new Set(statuses.map((s) => s.leaderId));
  if (leaderIds.size !== 1) throw new Error(`members disagree on the leader: ${JSON.stringify(statuses)}`);
  const index = statuses.findIndex((s) => s.memberId === s.leaderId);
  if (index < 0) throw new Error(`no member is the leader: ${JSON.stringify(statuses)}`);
  return members[index]!;
}

/** Deletes everything tcpkv stored (etcdctl del --prefix tcpkv/): an empty store for the next run. */
export async function wipeStore(member: EtcdMember, prefix = TCPKV_PREFIX): Promise<void> {
  const r = await etcdctl(member, ['del', '--prefix', prefix]);
  if (r.exitCode !== 0) throw new Error(`etcdctl del --prefix ${prefix}: ${r.output}`);
}

// ---- tcpkv replicas --------------------------------------------------------------------------------

export interface Replica {
  readonly name: string;
  readonly container: StartedTestContainer;
  /** the host port published on 127.0.0.1 (changes when the container is restarted) */
  port(): number;
}

/** What the client helpers need of a replica: a name and its port on 127.0.0.1. */
export type Reachable = Pick<Replica, 'name' | 'port'>;

export interface ReplicaOptions {
  readonly token: string;
  readonly env?: Record<string, string>;
  /** network aliases (default tcpkv1..n); another set lets two groups of replicas share a network */
  readonly names?: readonly string[];
  /** per-replica environment on top of `env` (e.g. one replica given only one etcd member) */
  readonly envOf?: (index: number) => Record<string, string>;
}

/** Starts tcpkv1..n over the etcd cluster, each publishing port 10000 on 127.0.0.1. */
export async function startReplicas(network: StartedNetwork, resources: DockerResources, count: number, options: ReplicaOptions): Promise<Replica[]> {
  const names = options.names ?? Array.from({ length: count }, (_, i) => `tcpkv${i + 1}`);
  return Promise.all(
    names.map(async (name, index) => {
      const container = await startServer({
        network,
        aliases: [name],
        publish: true,
        resources,
        env: {
          TCPKV_ETCD_ENDPOINTS: ETCD_ENDPOINTS,
          // The image sets TCPKV_DATA_DIR=/data for the single server; empty = unset (etcd keeps the data).
          TCPKV_DATA_DIR: '',
          TCPKV_ALLOWED_HOSTS: [...names, '127.0.0.1', 'localhost'].join(','),
          TCPKV_SHUTDOWN_TOKEN: options.token,
          ...options.env,
          ...options.envOf?.(index),
        },
      });
      return { name, container, port: () => container.getMappedPort(SERVER_PORT) };
    }),
  );
}

export async function isRunning(container: StartedTestContainer): Promise<boolean> {
  return (await inspectState(container.getId())).Running;
}

/** The client library against these replicas, in this order (the next is tried only when connecting fails). */
export function clientFor(replicas: readonly Reachable[], options: { timeoutMs?: number; token?: string } = {}): TcpkvClient {
  return new TcpkvClient({
    servers: replicas.map((r) => ({ host: '127.0.0.1', port: r.port() })),
    dialect: 'standard',
    targetHost: '127.0.0.1',
    timeoutMs: options.timeoutMs ?? 10_000,
    token: options.token,
  });
}

export interface Outcome {
  /** HTTP status, or the client's error code when no answer came */
  readonly status: number | 'CONNECT_FAILED' | 'TIMEOUT' | 'CONNECTION_LOST' | 'BAD_RESPONSE' | 'CLOSED';
  readonly body: string;
  /** the port of the replica that answered */
  readonly port?: number;
  /** false only when the request certainly never reached a server */
  readonly maybeApplied: boolean;
  /** the answer's ETag, when it had one */
  readonly etag?: string;
}

/** One request; a client error becomes an outcome instead of a throw. */
export async function request(client: TcpkvClient, method: string, path: string, body = '', headers?: [string, string][]): Promise<Outcome> {
  let answer: Answer;
  try {
    answer = await client.send({ method, path, body, ...(headers ? { headers } : {}) });
  } catch (error) {
    if (error instanceof ClientError) return { status: error.code, body: error.message, maybeApplied: error.maybeApplied };
    throw error;
  }
  if (answer.kind === 'closed') return { status: 'CLOSED', body: '', port: answer.server.port, maybeApplied: true };
  const etag = answer.response.headers.find(([n]) => n.toLowerCase() === 'etag')?.[1];
  return { status: answer.response.status, body: answer.response.body, port: answer.server.port, maybeApplied: true, ...(etag !== undefined ? { etag } : {}) };
}

/**
 * GET through the client: the data as a Map. A GET is safe to repeat, so a 503 is retried (up to
 * `attempts` times, 100 ms apart): while an etcd member is down, each etcd call of a replica goes to
 * a member picked at random, and the calls that pick the dead one answer 503. Throws on anything else.
 */
export async function listData(client: TcpkvClient, attempts = 30): Promise<Map<string, string>> {
  for (let attempt = 1; ; attempt++) {
    const r = await request(client, 'GET', '');
    if (r.status === 200) return parseListing(r.body);
    if (r.status !== 503 || attempt >= attempts) throw new Error(`GET: ${r.status} ${r.body} (attempt ${attempt})`);
    await sleep(100);
  }
}

/** Starts again every member that is not running and waits until all are healthy. */
export async function restartStopped(members: readonly EtcdMember[]): Promise<void> {
  await Promise.all(members.map(async (m) => ((await isRunning(m.container)) ? undefined : m.container.restart())));
  await waitForHealthy(members, 60_000);
}

export { sleep } from './sleep.js';

// ---- a store of real size ---------------------------------------------------------------------------

/**
 * Writes `count` keys (`<keyPrefix>000000`…, values of 8 bytes) through the replicas: PUT /update of
 * `pairsPerWrite` pairs each (a write of n pairs is 2n+1 etcd operations: etcd's --max-txn-ops and the
 * replicas' TCPKV_ETCD_MAX_TXN_OPS must admit it), `inFlight` at once per replica, each retried until
 * it answers 200 (an upsert of the same pairs again is harmless). Resolves with the milliseconds it took.
 */
export async function preloadKeys(replicas: readonly Reachable[], count: number, { keyPrefix = 'pre', pairsPerWrite = 63, inFlight = 4 } = {}): Promise<number> {
  const started = performance.now();
  let next = 0;
  const worker = async (replica: Reachable) => {
    let conn = await HttpConn.open(replica.port());
    try {
      for (;;) {
        const from = next;
        if (from >= count) return;
        next = Math.min(count, from + pairsPerWrite);
        const body: string[] = [];
        for (let i = from; i < next; i++) body.push(`${keyPrefix}${String(i).padStart(6, '0')}: v${String(i).padStart(7, '0')}`);
        for (let attempt = 1; ; attempt++) {
          const answer = await conn.request('PUT', '/update', body.join('&')).catch((error: Error) => ({ status: error.message, body: Buffer.alloc(0) }));
          if (answer.status === 200) break;
          if (attempt >= 20) throw new Error(`preload: PUT /update of ${next - from} pairs → ${answer.status} ${answer.body.toString().slice(0, 200)}`);
          if (typeof answer.status === 'string') {
            conn.close();
            conn = await HttpConn.open(replica.port());
          }
          await sleep(200);
        }
      }
    } finally {
      conn.close();
    }
  };
  await Promise.all(replicas.flatMap((replica) => Array.from({ length: inFlight }, () => worker(replica))));
  return performance.now() - started;
}

/** A replica's log lines (pino JSON) whose message matches. */
export async function replicaLogLines(replica: Replica, pattern: RegExp): Promise<{ level: number; msg: string }[]> {
  const r = await docker(['logs', replica.container.getId()]);
  return (r.stdout + r.stderr)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string })
    .filter((l) => pattern.test(l.msg));
}

/** The lists of the prefix a replica made (its first, at start, and every reload since): its log says each. */
export async function replicaLists(replica: Replica): Promise<number> {
  return (await replicaLogLines(replica, /^etcd cache listed the prefix$/)).length;
}

/**
 * `ms` of one client PUTting `key` in a loop through `writer` while another GETs it in a loop through
 * `reader`, each on one keep-alive connection. The reader must never see an older value than it saw
 * before. Resolves with the GET latencies, the PUT count and the answers that were not 200.
 */
export async function putGetLoop(writer: Reachable, reader: Reachable, key: string, ms: number): Promise<{ getMs: number[]; puts: number; failures: string[]; p99: number }> {
  const [w, r] = [await HttpConn.open(writer.port()), await HttpConn.open(reader.port())];
  const until = performance.now() + ms;
  const getMs: number[] = [];
  const failures: string[] = [];
  let puts = 0;
  try {
    await Promise.all([
      (async () => {
        while (performance.now() < until) {
          const a = await w.request('PUT', `/kv/${key}`, String(puts + 1));
          if (a.status === 200) puts++;
          else failures.push(`PUT ${a.status}`);
        }
      })(),
      (async () => {
        let last = 0;
        while (performance.now() < until) {
          const started = performance.now();
          const a = await r.request('GET', `/kv/${key}`);
          getMs.push(performance.now() - started);
          if (a.status !== 200 && a.status !== 404) failures.push(`GET ${a.status}`);
          else if (a.status === 200) {
            const seen = Number(a.body.toString());
            if (seen < last) failures.push(`GET went back from ${last} to ${seen}`);
            last = seen;
          }
        }
      })(),
    ]);
  } finally {
    w.close();
    r.close();
  }
  return { getMs, puts, failures, p99: percentile(getMs, 99) };
}
