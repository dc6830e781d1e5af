// The shared store: data kept in an etcd cluster, so any number of stateless tcpkv replicas serve the
// same data. etcd (Raft) orders every write; this file maps the seed's batch semantics onto its
// transactions (one transaction per write), and answers reads from a watch-fed copy of the prefix
// (etcd-cache.ts) without giving up linearizability.
//
//   <prefix>kv/<key>   the value, as it is
//   <prefix>kv/        (the empty key, which no client can use) the write stamp: every write but a
//                      DELETE puts it, so its mod revision is the revision of the latest such write;
//                      its value names the replica and the write (see appliedDespiteNoSpace)
//   <prefix>ord/<key>  n, written with the key when it is created with others: keys created in the
//                      same transaction share a create revision, so keys sort by (create revision, n)
//                      (a key created alone has no ord/ entry: n = 0).
//
//   POST   if no kv/ key exists (create revision 0), put them all with their ord/ keys and the stamp;
//          else count them, to name the one that exists. All or none. POSTs that arrive together
//          (from different connections) share one transaction — a group commit: each is still all
//          or none, and all of them take effect at the transaction's one instant, which lies within
//          each POST's request and answer. If a key of one of them exists, nothing was applied: that
//          POST is answered "exists" and the others are sent again. At most
//          MAX_CREATE_BATCHES_IN_FLIGHT such transactions are out at once; what arrives meanwhile
//          waits for the next, so the more POSTs come at once, the fewer etcd transactions each costs.
//   PUT    one flat transaction: compare each key's mod revision with what this replica's copy holds
//          (create revision 0 for a key it does not hold); if all match, put every key (asking for the
//          previous value), ord/ for the new ones, and the stamp; if not, the failure branch reads the
//          keys and the transaction runs again with what it read (nothing was applied, so that is
//          safe). A flat transaction, unlike nested ones, is counted by etcd's space quota.
//   DELETE if the key exists, delete kv/, ord/ and the stamp: a transaction that only deletes is one
//          etcd's space quota admits, so data can be freed under the NOSPACE alarm.
//   reads  the read barrier: one linearizable read of the stamp gives the revision W of the latest
//          write (the stamp is there: no DELETE since the last put of it, and W is its mod revision;
//          it is not: see revisionWithoutStamp); the answer comes from the copy once it has applied
//          W. Every write acknowledged
//          before the read began is ≤ W, and the copy's state at any revision ≥ W was the current
//          state at some instant after the read began: linearizable. Reads that arrive while no
//          barrier is waiting to be sent share the next one (one round trip for many reads); a read
//          never joins a barrier that was already sent before it arrived (that one may predate it).
//          One barrier is out at a time while they come back quickly, and the next one gathers
//          reads until as many have joined as the last one carried, for at most a round trip
//          (GATHER_MAX_MS); a second and third go out only when the one out has taken longer than
//          BARRIER_OVERLAP_AFTER_MS (a slow or dead member). Barriers go to
//          the member a majority of members name as leader, when there is one: a follower would
//          forward each to the leader, and the leader folds the barriers that reach it together
//          from all replicas into one confirmation round (three replicas served about 30 % more
//          GETs so). Any member's answer is linearizable; the choice only saves work.
//
// etcd3's own retries are switched off: a transaction retried after a lost answer could be applied
// twice, or report its own write as a conflict. A failure answers 503 instead, saying whether the
// write may have been applied. What stays on is a circuit breaker per member: after a failure, calls
// skip that member for BREAKER_HALF_OPEN_MS and go to the others — a call the breaker stops never
// reached etcd, so moving it on is safe. Refusals (too large, too many operations, the space quota,
// permissions) are answers from a healthy member about the request: never counted against a member.

import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { isBrokenCircuitError, NoopPolicy } from 'cockatiel';
import { Etcd3, type IOptions, type IResponseOp } from 'etcd3';
import type { Logger } from 'pino';
import { NO_STORE_EVENTS, type StoreEvents } from '../events.js';
import { OrderedEntries, prefixEnd, WatchCache } from './etcd-cache.js';
import { MemberHealth } from './etcd-member-health.js';
import {
  repeatedKey,
  CREATED,
  StoreFullError,
  StoreUnavailableError,
  ValueTooLargeError,
  type CreateResult,
  type ListingSnapshot,
  type Page,
  type PageRequest,
  type Pair,
  type Store,
  type StoreLimits,
  type StoreUsage,
  type UpsertResult,
} from './store.js';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../../common/setting-names.js';

export interface EtcdStoreOptions {
  readonly endpoints: readonly string[];
  /** every key tcpkv writes starts with this (see checkEtcdPrefix) */
  readonly prefix: string;
  /** deadline for each call to etcd, and for a read waiting for the copy */
  readonly timeoutMs: number;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** etcd's --max-txn-ops (default 128): a write of n pairs takes 2n+1 operations */
  readonly maxTxnOps?: number | undefined;
  /** etcd's --max-request-bytes (default 1.5 MiB): larger writes are refused before the call */
  readonly maxRequestBytes?: number | undefined;
  readonly limits?: StoreLimits | undefined;
  readonly logger: Logger;
  readonly events?: StoreEvents | undefined;
  /**
   * TEST ONLY, never a user setting: 'none' answers reads from the copy without the barrier, which is
   * NOT linearizable (a replica whose watch lags serves old data). It exists so that the
   * linearizability checker can be shown to catch exactly that.
   */
  readonly unsafeReadBarrier?: 'quorum' | 'none' | undefined;
}

export const ETCD_DEFAULT_MAX_TXN_OPS = numericDefault(S.etcdMaxTxnOps);
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = numericDefault(S.etcdMaxRequestBytes);
/** How long a failed member is skipped before it is asked again (a single endpoint: one call tries it). */
const BREAKER_HALF_OPEN_MS = 2000;
/** Deadline of the status request that decides whether a member whose call failed is alive. */
const STATUS_TIMEOUT_MS = 1000;
/** How soon a member that answered its status without a leader is asked again. */
const LEADERLESS_RETRY_MS = 250;
/** An outage is logged at error level at most this often (each failure is at debug level). */
const ERROR_LOG_EVERY_MS = 10_000;
/** Read barriers sent and not answered yet, at most (more reads wait for the next one). */
const MAX_BARRIERS_IN_FLIGHT = 3;
/**
 * A second barrier goes out only once the one out has taken this long: until then reads gather for
 * the next one, so a quick etcd is asked once per round trip rather than up to three times (under
 * load that left more CPU to everything else: about 30 % fewer barriers per GET, more GETs served).
 */
const BARRIER_OVERLAP_AFTER_MS = 20;
/**
 * Gathering for the next barrier, at most (ms). After a barrier is answered, the next one waits until
 * as many reads have joined it as the answered one carried (clients that keep a connection busy come
 * back with their next request), or for the barriers' average round trip, capped here. Sending at
 * once split busy connections into two groups whose barriers took turns, each carrying about 40 %
 * of them; gathered, one barrier carries most of them (half the barriers per GET, measured). A read
 * waits at most one more round trip; a lone reader's barrier goes at once (it is as many as last
 * time); and a barrier is still sent after every read that joined it arrived.
 */
const GATHER_MAX_MS = 5;
/** How often a replica asks the members which one leads, for its barriers. */
const LEADER_CHECK_EVERY_MS = 5000;
/**
 * A call a member has not answered for this long (ms; at most a quarter of the etcd deadline), while
 * it answered nothing else meanwhile, makes the member skipped and asked for its status (see
 * etcd-member-health.ts); a barrier out this long at the leader makes the next ones go to another member.
 */
const SUSPECT_AFTER_MS = 250;
/** Group-commit transactions of POSTs sent and not answered yet, at most. */
const MAX_CREATE_BATCHES_IN_FLIGHT = 2;
/** A queued POST with less of its etcd deadline left than this (or a tenth of it) is not sent. */
const MIN_CREATE_TIME_LEFT_MS = 250;
/** Below 90 % of a store limit by more than this, the limit check uses the copy without a barrier. */
const LIMIT_MARGIN_KEYS = 1000;
const LIMIT_MARGIN_BYTES = 4 * 1024 * 1024;
/** Protobuf framing per operation, over-estimated, for the request size check. */
const OP_OVERHEAD_BYTES = 32;
/** The write stamp's value, at most (see nextStamp: 13 characters and a count). */
const STAMP_VALUE_MAX_BYTES = 32;
/** gRPC's default limit on one answer: the client takes at least this much. */
const GRPC_DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024;
/** Room in one answer for what is not the events or values etcd's request limit bounds (headers, framing). */
const ANSWER_OVERHEAD_BYTES = 1024 * 1024;

/**
 * The largest answer this replica takes from etcd. A watch answer asks for fragments: etcd splits one
 * that is over its --max-request-bytes, and a fragment holds at least one event, which came in one
 * request of at most that size. Range pages shrink until they fit (see etcd-cache.ts), and a PUT's
 * failure branch reads no values. So etcd's request limit plus framing bounds every answer.
 */
export function maxEtcdAnswerBytes(maxRequestBytes: number): number {
  return Math.min(2 ** 31 - 1, Math.max(GRPC_DEFAULT_RECEIVE_BYTES, maxRequestBytes + ANSWER_OVERHEAD_BYTES));
}

/** This replica's write stamps the watch brought, at most (the NOSPACE check looks one up). */
const STAMPS_KEPT = 4096;

/**
 * etcd answered a write NOSPACE. Whether it applied it is not in the answer (etcd applies the write
 * that crosses its quota and answers NOSPACE all the same): the write paths find out (see call).
 */
class NoSpaceAnswer extends StoreFullError {}

/** A start-up check failed in a way no retry fixes (bad credentials, no rights): one line, exit 2. */
export class EtcdStartError extends Error {
  override readonly name = 'EtcdStartError';
}

/**
 * Prefixes must not nest into each other's key space: a prefix is empty or ends with `/`, and none
 * of its segments is `kv` or `ord`. Then the ranges <P>kv/ and <P>ord/ of two deployments with
 * different prefixes never overlap (one would have to start with the other's <P>kv/ or <P>ord/).
 * Returns the problem, or undefined.
 */
export function checkEtcdPrefix(prefix: string): string | undefined {
  if (prefix !== '' && !prefix.endsWith('/')) return `must end with "/" (e.g. ${prefix}/)`;
  const segments = prefix.split('/').slice(0, -1);
  if (segments.some((s) => s === 'kv' || s === 'ord')) return 'must not contain a "kv" or "ord" segment: it would lie inside the key space of the deployment using the part before it';
  return undefined;
}

/** Checks of the TLS settings that need no etcd: one clear line each instead of a failure later. */
export function checkEtcdTls(endpoints: readonly string[], caFile: string | undefined): string | undefined {
  if (caFile === undefined) return undefined;
  try {
    if (statSync(caFile).isDirectory()) return `TCPKV_ETCD_CA_FILE=${caFile} is a directory, not a CA certificate file`;
  } catch (error) {
    return `TCPKV_ETCD_CA_FILE=${caFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  const plain = endpoints.filter((e) => e.startsWith('http://'));
  if (plain.length > 0) return `TCPKV_ETCD_CA_FILE is set but ${plain.join(',')} use${plain.length === 1 ? 's' : ''} http://: TLS endpoints are https://`;
  return undefined;
}

/** A POST waiting for its group-commit transaction. */
interface PendingCreate {
  readonly pairs: readonly Pair[];
  /** its share of the transaction's size (pairsBytes) */
  readonly bytes: number;
  /** Date.now() by which it must be answered: its arrival plus the etcd deadline */
  readonly deadline: number;
  resolve(result: CreateResult): void;
  reject(error: unknown): void;
}

/** The read barrier not yet sent, and how many reads have joined it. */
interface PendingBarrier {
  readonly promise: Promise<number>;
  resolve(revision: number): void;
  reject(error: unknown): void;
  reads: number;
}

type Refusal = 'too-many-ops' | 'too-large' | 'no-space' | 'denied' | undefined;

/** An answer from a healthy member refusing this request (retrying it never helps). */
function refusal(message: string): Refusal {
  if (/too many operations in txn/.test(message)) return 'too-many-ops';
  if (/request is too large|larger than max/.test(message)) return 'too-large';
  if (/database space exceeded|NOSPACE/.test(message)) return 'no-space';
  if (/permission denied|authentication failed|invalid auth token|user name not found|invalid user ID or password|authentication is not enabled/i.test(message)) return 'denied';
  return undefined;
}

export class EtcdStore implements Store {
  readonly kind = 'etcd';
  /** a shared store cannot tell without a round trip whether another replica wrote */
  readonly revision = undefined;
  private readonly client: Etcd3;
  /** one client per endpoint, to send barriers to the leader and ask a member for its status (none with a single endpoint) */
  private readonly memberClients: Etcd3[] = [];
  private readonly memberHealth: MemberHealth;
  /** the members' endpoints, in the order of memberClients */
  private readonly endpoints: readonly string[];
  /** the member the majority names as leader (an index into memberClients) */
  private leader: number | undefined;
  private leaderCheck: Promise<void> | undefined;
  private leaderCheckedAt = -Infinity;
  /** bumped when a barrier fails at the leader: a leader check started before must not name it again */
  private leaderEpoch = 0;
  /** per member, when each barrier out there was sent */
  private readonly barriersOutAt: number[][] = [];
  private closed = false;
  private readonly kvPrefix: Buffer;
  private readonly ordPrefix: Buffer;
  private readonly stampKey: Buffer;
  private readonly logger: Logger;
  private readonly events: StoreEvents;
  private readonly timeoutMs: number;
  private readonly maxTxnOps: number;
  private readonly maxRequestBytes: number;
  readonly limits: StoreLimits | undefined;
  private readonly barrierMode: 'quorum' | 'none';
  private readonly cache: WatchCache;
  private unavailableSince: number | undefined;
  /** the start of every write stamp this replica puts: the rest counts its writes */
  private readonly stampPrefix = `${randomBytes(6).toString('hex')}:`;
  private stampsPut = 0;
  /** this replica's stamps that the watch brought, oldest first */
  private readonly stampsSeen = new Set<string>();
  private lastErrorLog = -Infinity;
  private lastLimitLog = -Infinity;
  private clusterId: string | undefined;
  /** the barrier not yet sent, which arriving reads join */
  private nextBarrier: PendingBarrier | undefined;
  private barriersInFlight = 0;
  private lastBarrierSentAt = 0;
  private barrierTimer: NodeJS.Timeout | undefined;
  /** the reads the last answered barrier carried; the next one gathers until as many have come (see GATHER_MAX_MS) */
  private readsOfLastBarrier = 0;
  /** reads that joined the next barrier since the last one was answered */
  private readsSinceLastAnswer = 0;
  private lastBarrierAnsweredAt = -Infinity;
  /** barrier round trips, averaged (ms) */
  private barrierRoundTripMs = 1;
  /** POSTs waiting for a group-commit transaction, in arrival order */
  private createQueue: PendingCreate[] = [];
  private createBatchesInFlight = 0;
  private createPumpScheduled = false;
  /** etcd round trips made for read barriers (the bench counts them per GET) */
  barrierCalls = 0;

  constructor(options: EtcdStoreOptions) {
    this.kvPrefix = Buffer.from(`${options.prefix}kv/`, 'utf8');
    this.ordPrefix = Buffer.from(`${options.prefix}ord/`, 'utf8');
    this.stampKey = this.kvPrefix;
    this.logger = options.logger;
    this.events = options.events ?? NO_STORE_EVENTS;
    this.timeoutMs = options.timeoutMs;
    this.maxTxnOps = options.maxTxnOps ?? ETCD_DEFAULT_MAX_TXN_OPS;
    this.maxRequestBytes = options.maxRequestBytes ?? ETCD_DEFAULT_MAX_REQUEST_BYTES;
    this.limits = options.limits;
    this.barrierMode = options.unsafeReadBarrier ?? 'quorum';
    this.memberHealth = new MemberHealth({
      statusClient: (member) => this.memberClients[options.endpoints.indexOf(member)],
      statusTimeoutMs: Math.min(STATUS_TIMEOUT_MS, options.timeoutMs),
      retryMs: BREAKER_HALF_OPEN_MS,
      leaderlessRetryMs: LEADERLESS_RETRY_MS,
      suspectAfterMs: Math.min(SUSPECT_AFTER_MS, options.timeoutMs / 4),
      events: this.events,
      logger: this.logger,
    });
    const config: IOptions = {
      hosts: [...options.endpoints],
      dialTimeout: options.timeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.timeoutMs }),
      grpcOptions: { 'grpc.max_receive_message_length': maxEtcdAnswerBytes(this.maxRequestBytes) },
      faultHandling: {
        host: (member) => this.memberHealth.policy(member),
        global: new NoopPolicy(),
      },
    };
    if (options.username !== undefined) config.auth = { username: options.username, password: options.password ?? '' };
    if (options.caFile !== undefined) {
      config.credentials = {
        rootCertificate: readFileSync(options.caFile),
        ...(options.certFile ? { certChain: readFileSync(options.certFile) } : {}),
        ...(options.keyFile ? { privateKey: readFileSync(options.keyFile) } : {}),
      };
    }
    this.client = new Etcd3(config);
    this.endpoints = [...options.endpoints];
    if (options.endpoints.length > 1) {
      for (const endpoint of options.endpoints) {
        this.memberClients.push(new Etcd3({ ...config, hosts: [endpoint], faultHandling: { host: () => new NoopPolicy(), global: new NoopPolicy() } }));
        this.barriersOutAt.push([]);
      }
    }
    this.cache = new WatchCache({
      client: this.client,
      kvPrefix: this.kvPrefix,
      ordPrefix: this.ordPrefix,
      timeoutMs: options.timeoutMs,
      logger: options.logger,
      maxResponseBytes: maxEtcdAnswerBytes(this.maxRequestBytes),
      onHeader: (clusterId) => this.checkClusterId(clusterId),
      onStamp: (value) => this.noteStamp(value),
      onCall: (operation, seconds, ok) => this.events.etcdCall(operation, seconds, ok),
    });
  }

  /**
   * The start-up check: one authenticated read of the prefix. Credentials etcd refuses and a user
   * without rights on the prefix throw EtcdStartError (no retry fixes them); an etcd that does not
   * answer yet is only logged — the replica starts, not ready, and serves once etcd answers. Then the
   * copy starts syncing.
   */
  async start(): Promise<boolean> {
    let reachable = true;
    try {
      const response = await this.client.kv.range({ key: this.kvPrefix, range_end: prefixEnd(this.kvPrefix), limit: 1, keys_only: true });
      this.checkClusterId(response.header.cluster_id);
    } catch (error) {
      const message = (error as Error).message;
      if (refusal(message) === 'denied') {
        throw new EtcdStartError(`etcd refused to let this user read the prefix ${this.kvPrefix.toString('utf8')}: ${message} (check TCPKV_ETCD_USERNAME, TCPKV_ETCD_PASSWORD and the user's role)`);
      }
      this.logger.warn({ err: message }, 'etcd is not reachable yet: the replica is not ready, and answers 503, until it is');
      reachable = false;
    }
    this.cache.start();
    return reachable;
  }

  /** Kept for callers of the earlier API: the start-up check without the refusal. */
  async probe(): Promise<boolean> {
    return this.start();
  }

  private kvKey(key: string): Buffer {
    return Buffer.concat([this.kvPrefix, Buffer.from(key, 'utf8')]);
  }

  private ordKey(key: string): Buffer {
    return Buffer.concat([this.ordPrefix, Buffer.from(key, 'utf8')]);
  }

  // ---- reads ---------------------------------------------------------------------------------------

  async listing(): Promise<ListingSnapshot> {
    return (await this.fresh()).listing();
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.fresh()).get(key)?.value;
  }

  async page(request: PageRequest): Promise<Page> {
    return (await this.fresh()).page(request);
  }

  /** Every entry in insertion order (tests and tools). */
  async list(): Promise<readonly Pair[]> {
    return (await this.fresh()).pairs();
  }

  /** What the copy holds: the last applied revision's view, without a barrier. */
  usage(): StoreUsage | undefined {
    return this.cache.applied < 0 ? undefined : this.cache.entries.usage();
  }

  /** Ready when a read is answered now: the barrier and the copy reaching it, as for a GET. */
  async readiness(): Promise<string | undefined> {
    this.cache.start();
    if (this.cache.problem !== undefined) return this.cache.problem;
    try {
      await this.fresh();
      return undefined;
    } catch (error) {
      return `reads fail (etcd has no quorum, cannot be reached, or the copy is behind): ${(error as Error).message}`;
    }
  }

  /** The copy, once it is at least as new as the latest write acknowledged before this call. */
  private async fresh(): Promise<OrderedEntries> {
    const started = Date.now();
    this.cache.start();
    if (this.barrierMode === 'none') {
      if (this.cache.applied < 0) throw new StoreUnavailableError('the etcd cache has not synced yet');
      return this.cache.entries;
    }
    return this.reach(await this.barrier(), started);
  }

  /** The copy once it has applied `target`, waiting up to the etcd deadline counted from `started`. */
  private async reach(target: number, started: number): Promise<OrderedEntries> {
    this.cache.start();
    if (this.cache.serves(target)) return this.cache.entries;
    this.cache.wake();
    const remaining = Math.max(1, started + this.timeoutMs - Date.now());
    let timer: NodeJS.Timeout | undefined;
    let nudger: NodeJS.Timeout | undefined;
    const reached = await Promise.race([
      this.cache.reach(target).then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), remaining);
        nudger = setTimeout(() => this.cache.nudge(), Math.min(500, remaining / 2));
      }),
    ]);
    clearTimeout(timer);
    clearTimeout(nudger);
    if (!reached) {
      this.cache.nudge();
      this.noteFailure('read', 'the etcd cache did not reach the read barrier in time');
      throw new StoreUnavailableError(`the etcd cache is behind: at revision ${this.cache.applied}, the read needs ${target}`);
    }
    return this.cache.entries;
  }

  /**
   * The revision of the latest write, from one linearizable read shared by the reads that join it.
   * A barrier is sent once the reads that arrived in the same turn of the event loop have joined it
   * (setImmediate: after this poll's I/O callbacks), and at most MAX_BARRIERS_IN_FLIGHT at once; a
   * read never joins one already sent.
   */
  private barrier(): Promise<number> {
    const joined = this.nextBarrier;
    if (joined) {
      joined.reads++;
      if (this.barriersInFlight === 0 && ++this.readsSinceLastAnswer >= this.readsOfLastBarrier) this.maybeSendBarrier(joined);
      return joined.promise;
    }
    let resolve!: (r: number) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<number>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const next: PendingBarrier = { promise, resolve, reject, reads: 1 };
    this.nextBarrier = next;
    if (this.barriersInFlight === 0) this.readsSinceLastAnswer++;
    setImmediate(() => this.maybeSendBarrier(next));
    return promise;
  }

  /**
   * Sends `next` now if none is out and it has gathered enough (GATHER_MAX_MS), or if the one out is
   * slow; otherwise sets a timer to look again.
   */
  private maybeSendBarrier(next: PendingBarrier): void {
    if (this.nextBarrier !== next || this.barriersInFlight >= MAX_BARRIERS_IN_FLIGHT) return;
    const now = performance.now();
    let waitMs: number;
    if (this.barriersInFlight === 0) {
      const gatherMs = Math.min(GATHER_MAX_MS, this.barrierRoundTripMs) - (now - this.lastBarrierAnsweredAt);
      if (this.readsSinceLastAnswer >= this.readsOfLastBarrier || gatherMs <= 0) {
        this.sendBarrier();
        return;
      }
      waitMs = gatherMs;
    } else {
      const outFor = now - this.lastBarrierSentAt;
      if (outFor >= BARRIER_OVERLAP_AFTER_MS) {
        this.sendBarrier();
        return;
      }
      waitMs = BARRIER_OVERLAP_AFTER_MS - outFor;
    }
    clearTimeout(this.barrierTimer);
    this.barrierTimer = setTimeout(() => {
      this.barrierTimer = undefined;
      if (this.nextBarrier !== undefined) this.maybeSendBarrier(this.nextBarrier);
    }, Math.ceil(waitMs));
  }

  private sendBarrier(): void {
    const waiting = this.nextBarrier!;
    this.nextBarrier = undefined;
    clearTimeout(this.barrierTimer);
    this.barrierTimer = undefined;
    this.barriersInFlight++;
    this.barrierCalls++;
    const sentAt = performance.now();
    this.lastBarrierSentAt = sentAt;
    const appliedAtSend = this.cache.applied;
    const copyAtSend = this.cache.generation;
    if (this.memberClients.length > 0 && Date.now() - this.leaderCheckedAt >= LEADER_CHECK_EVERY_MS) this.findLeader();
    const via = this.barrierMember(sentAt);
    if (via !== undefined) this.barriersOutAt[via]!.push(sentAt);
    const epoch = this.leaderEpoch;
    this.call('barrier', false, () => this.sendBarrierVia(via))
      .finally(() => {
        if (via !== undefined) this.barriersOutAt[via]!.splice(this.barriersOutAt[via]!.indexOf(sentAt), 1);
      })
      .catch((error: unknown) => {
        if (via !== undefined && via === this.leader && epoch === this.leaderEpoch) {
          // the leader failed it: back to any member until the members name a leader again
          this.leader = undefined;
          this.leaderEpoch++;
          this.findLeader();
        }
        throw error;
      })
      .then((response) => {
        this.checkClusterId(response.header.cluster_id);
        const current = Number(response.header.revision);
        const stamp = response.kvs[0];
        if (copyAtSend === this.cache.generation) {
          // A linearizable read answers at a revision no older than every write committed before it
          // was sent, and the copy had applied only committed writes then. The copy being ahead of the
          // answer now is normal: writes committed meanwhile reach it by the watch, another stream.
          if (current < appliedAtSend) {
            this.cache.historyChanged(`etcd went back in revisions: a read barrier answered at revision ${current}, below the ${appliedAtSend} the copy had applied when it was sent`, { applied: appliedAtSend, etcdRevision: current });
          } else if (stamp && !this.cache.stampMatches(Number(stamp.mod_revision), stamp.value)) {
            this.cache.historyChanged(`the write stamp at revision ${stamp.mod_revision} is not the one the copy applied`, { etcdRevision: current });
          }
        }
        if (stamp) return Number(stamp.mod_revision);
        return this.revisionWithoutStamp(current);
      })
      .then(
        (revision) => {
          const answeredAt = performance.now();
          this.barrierRoundTripMs += (answeredAt - sentAt - this.barrierRoundTripMs) / 8;
          this.lastBarrierAnsweredAt = answeredAt;
          this.readsOfLastBarrier = waiting.reads;
          waiting.resolve(revision);
        },
        (error: unknown) => {
          this.readsOfLastBarrier = 0; // no gathering after a failure: the next barrier goes at once
          waiting.reject(error);
        },
      )
      .finally(() => {
        this.barriersInFlight--;
        this.readsSinceLastAnswer = 0;
        if (this.nextBarrier) this.maybeSendBarrier(this.nextBarrier);
      });
  }

  /**
   * Where a barrier goes (an index into memberClients; undefined: the pooled client, which skips the
   * members it skips): the leader, unless a barrier has been out there for SUSPECT_AFTER_MS (then the
   * member with the fewest barriers out), and never a member that calls skip.
   */
  private barrierMember(now: number): number | undefined {
    if (this.memberClients.length === 0) return undefined;
    const usable = (i: number) => !this.memberHealth.skipped(this.endpoints[i]!);
    const leader = this.leader;
    if (leader !== undefined && usable(leader) && !this.barriersOutAt[leader]!.some((at) => now - at >= SUSPECT_AFTER_MS)) return leader;
    let best: number | undefined;
    for (let i = 0; i < this.memberClients.length; i++) {
      if (i === leader || !usable(i)) continue;
      if (best === undefined || this.barriersOutAt[i]!.length < this.barriersOutAt[best]!.length) best = i;
    }
    return best;
  }

  /** One barrier read: to that member through its member policy (as pooled calls are), else pooled. */
  private async sendBarrierVia(via: number | undefined) {
    if (via === undefined) return this.client.kv.range({ key: this.stampKey });
    try {
      return await this.memberHealth.policy(this.endpoints[via]!).execute(() => this.memberClients[via]!.kv.range({ key: this.stampKey }));
    } catch (error) {
      // skipped since it was chosen: the call never left, so another member may take it
      if (isBrokenCircuitError(error)) return this.client.kv.range({ key: this.stampKey });
      throw error;
    }
  }

  /**
   * Asks every member which member leads, and sends barriers to the one a majority names (a member cut
   * off from the others may still believe it leads); none while there is no such majority. A check
   * that a barrier failure at the leader overtook is dropped (its answers may predate the election)
   * and asked again; a member that calls skip is never named.
   */
  private findLeader(): void {
    if (this.leaderCheck !== undefined || this.closed) return;
    this.leaderCheckedAt = Date.now();
    const epoch = this.leaderEpoch;
    this.leaderCheck = Promise.allSettled(this.memberClients.map((client) => client.maintenance.status({ deadline: Date.now() + Math.min(STATUS_TIMEOUT_MS, this.timeoutMs) })))
      .then((results) => {
        if (epoch !== this.leaderEpoch) return;
        const named = new Map<string, number>();
        const byMember = new Map<string, number>();
        results.forEach((result, i) => {
          if (result.status !== 'fulfilled') return;
          byMember.set(result.value.header.member_id, i);
          this.memberHealth.learnMember(this.endpoints[i]!, result.value.header.member_id);
          if (result.value.leader !== '0') named.set(result.value.leader, (named.get(result.value.leader) ?? 0) + 1);
        });
        const majority = Math.floor(this.memberClients.length / 2) + 1;
        const leader = [...named].find(([, votes]) => votes >= majority)?.[0];
        const index = leader === undefined ? undefined : byMember.get(leader);
        this.leader = index !== undefined && !this.memberHealth.skipped(this.endpoints[index]!) ? index : undefined;
      })
      .finally(() => {
        this.leaderCheck = undefined;
        if (epoch !== this.leaderEpoch) this.findLeader();
      });
  }

  /**
   * The barrier's revision when the stamp is gone: the latest write was a DELETE (which deletes it),
   * or the prefix is new, or someone deleted it outside tcpkv (etcdctl del --prefix). Every write is
   * at or below `current`, the barrier's revision: a copy that has applied it is fresh. Else (later
   * revisions may be other keys', which the watch never brings) the stamp is put back, and the copy
   * is fresh once it has seen that put. Under the NOSPACE alarm that put is refused; then one read
   * of etcd compares the copy with etcd's state at one revision: the same number of keys and the
   * most recently written key at the same revision mean the same state (only DELETEs, or writes
   * whose keys are all gone again, lie between them), and the copy is fresh as it is.
   */
  private async revisionWithoutStamp(current: number): Promise<number> {
    if (this.cache.applied >= current) return current;
    try {
      const put = await this.call('barrier', false, () => this.client.kv.put({ key: this.stampKey, value: Buffer.from(this.nextStamp()) }));
      return Number(put.header.revision);
    } catch (error) {
      if (!(error instanceof NoSpaceAnswer)) throw error;
    }
    const range = { key: this.kvPrefix, range_end: prefixEnd(this.kvPrefix) };
    const read = await this.call('barrier', false, () =>
      this.client.kv.txn({
        compare: [],
        success: [
          { request_range: { key: this.stampKey } },
          { request_range: { ...range, count_only: true } },
          { request_range: { ...range, sort_target: 'Mod' as const, sort_order: 'Descend' as const, limit: 1, keys_only: true } },
        ],
        failure: [],
      }),
    );
    const [stamp, count, newest] = read.responses.map((r) => r.response_range);
    if (stamp!.kvs[0]) return Number(stamp!.kvs[0].mod_revision);
    const latest = newest!.kvs[0];
    const same =
      this.cache.entries.size === Number(count!.count) &&
      (latest === undefined || this.cache.entries.get(latest.key.subarray(this.kvPrefix.length).toString('utf8'))?.modRevision === Number(latest.mod_revision));
    return same ? Math.min(this.cache.applied, Number(read.header.revision)) : Number(read.header.revision);
  }

  /**
   * A new write stamp: this replica's random prefix and a count, unique per write. It tells the NOSPACE
   * check whether the watch saw this write, and the stamp at a revision tells one etcd history from
   * another (etcd-cache.ts).
   */
  private nextStamp(): string {
    return `${this.stampPrefix}${++this.stampsPut}`;
  }

  private noteStamp(value: Buffer): void {
    const stamp = value.toString('latin1');
    if (!stamp.startsWith(this.stampPrefix)) return;
    this.stampsSeen.add(stamp);
    if (this.stampsSeen.size > STAMPS_KEPT) this.stampsSeen.delete(this.stampsSeen.values().next().value!);
  }

  /**
   * Whether etcd applied a write it answered NOSPACE (the one that crossed the quota is applied; one
   * sent once etcd is over it, or once the alarm is raised, is not): a read barrier, then whether the
   * copy saw the write's stamp — decided by what etcd holds, the same on every replica. Undecidable
   * (etcd does not answer the barrier, or the copy was listed again meanwhile): 503 "may or may not".
   */
  private async appliedDespiteNoSpace(stamp: string, copy: OrderedEntries): Promise<boolean> {
    const unknown = new StoreUnavailableError('etcd ran out of space (NOSPACE) with this write and could not be asked whether it applied it: it may or may not have been applied', { indeterminate: true });
    try {
      await this.fresh();
    } catch {
      throw unknown;
    }
    if (this.stampsSeen.has(stamp)) return true;
    if (this.cache.entries !== copy) throw unknown;
    return false;
  }

  private checkClusterId(clusterId: string): void {
    if (this.clusterId === undefined) {
      this.clusterId = clusterId;
      return;
    }
    if (clusterId === this.clusterId) return;
    const was = this.clusterId;
    this.clusterId = clusterId;
    this.cache.historyChanged('etcd cluster id changed: these endpoints now lead to another etcd cluster (wiped and recreated, or replaced)', { was, now: clusterId });
  }

  // ---- writes --------------------------------------------------------------------------------------

  /** Refuses up front what etcd would refuse for its size (413); returns the pairs' share of the request (pairsBytes). */
  private checkSize(pairs: readonly Pair[]): number {
    const maxPairs = Math.floor((this.maxTxnOps - 1) / 2);
    if (pairs.length > maxPairs) {
      this.logger.warn({ pairs: pairs.length, maxPairs }, 'write refused: more pairs than one etcd transaction takes');
      throw new ValueTooLargeError(`A write holds at most ${maxPairs} pairs with this etcd (TCPKV_ETCD_MAX_TXN_OPS=${this.maxTxnOps}); this one has ${pairs.length}`);
    }
    const pairsBytes = this.pairsBytes(pairs);
    const bytes = OP_OVERHEAD_BYTES + this.stampKey.length + STAMP_VALUE_MAX_BYTES + pairsBytes;
    if (bytes > this.maxRequestBytes) {
      this.logger.warn({ bytes, maxRequestBytes: this.maxRequestBytes }, 'write refused: larger than one etcd request');
      throw new ValueTooLargeError(`The write needs an etcd request of about ${bytes} bytes; etcd takes at most ${this.maxRequestBytes} (TCPKV_ETCD_MAX_REQUEST_BYTES)`);
    }
    return pairsBytes;
  }

  /** What `pairs` add to a write transaction, over-estimated: kv/ in compare, put and failure, ord/, the value. */
  private pairsBytes(pairs: readonly Pair[]): number {
    let bytes = 0;
    for (const [key, value] of pairs) {
      const k = Buffer.byteLength(key);
      bytes += 3 * (this.kvPrefix.length + k) + this.ordPrefix.length + k + Buffer.byteLength(value) + 5 * OP_OVERHEAD_BYTES;
    }
    return bytes;
  }

  /**
   * The store limits (507), against the copy: its view as of the last applied revision, which is
   * milliseconds behind. Near a limit (within 10 % plus LIMIT_MARGIN_*, far more than the writes of a
   * few milliseconds) or before the copy has synced, the check waits for a read barrier first, so
   * that every write acknowledged before it — this replica's own included — is counted.
   */
  private async checkLimits(growth: () => { newKeys: number; addedBytes: number }): Promise<void> {
    const limits = this.limits;
    if (limits === undefined) return;
    const over = (): string | undefined => {
      const usage = this.cache.entries.usage();
      const { newKeys, addedBytes } = growth();
      if (newKeys > 0 && usage.keys + newKeys > limits.maxKeys) return `TCPKV_MAX_KEYS=${limits.maxKeys}`;
      if (addedBytes > 0 && usage.dataBytes + addedBytes > limits.maxDataBytes) return `TCPKV_MAX_DATA_BYTES=${limits.maxDataBytes}`;
      return undefined;
    };
    const near = (): boolean => {
      const usage = this.cache.entries.usage();
      const { newKeys, addedBytes } = growth();
      return usage.keys + newKeys > 0.9 * limits.maxKeys - LIMIT_MARGIN_KEYS || usage.dataBytes + addedBytes > 0.9 * limits.maxDataBytes - LIMIT_MARGIN_BYTES;
    };
    if (this.cache.applied < 0 || near()) await this.fresh();
    const which = over();
    if (which === undefined) return;
    const now = Date.now();
    if (now - this.lastLimitLog >= 60_000) {
      this.lastLimitLog = now;
      const usage = this.cache.entries.usage();
      this.logger.warn({ limit: which, keys: usage.keys, dataBytes: usage.dataBytes }, 'store limit reached: writes answer 507');
    }
    throw new StoreFullError(which);
  }

  async createAll(pairs: readonly Pair[]): Promise<CreateResult> {
    // a key given twice counts as existing (store.ts); etcd would refuse the transaction
    const repeated = repeatedKey(pairs);
    if (repeated !== undefined) return { ok: false, existingKey: repeated };
    const deadline = Date.now() + this.timeoutMs;
    const bytes = this.checkSize(pairs);
    await this.checkLimits(() => {
      let addedBytes = 0;
      for (const [key, value] of pairs) addedBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
      return { newKeys: pairs.length, addedBytes };
    });
    return new Promise<CreateResult>((resolve, reject) => {
      this.createQueue.push({ pairs, bytes, deadline, resolve, reject });
      this.scheduleCreates();
    });
  }

  /** Sends the queued POSTs once the ones that arrived in this turn of the event loop have joined. */
  private scheduleCreates(): void {
    if (this.createPumpScheduled || this.createQueue.length === 0 || this.createBatchesInFlight >= MAX_CREATE_BATCHES_IN_FLIGHT) return;
    this.createPumpScheduled = true;
    setImmediate(() => {
      this.createPumpScheduled = false;
      this.expireQueuedCreates();
      while (this.createQueue.length > 0 && this.createBatchesInFlight < MAX_CREATE_BATCHES_IN_FLIGHT) this.sendCreates(this.takeCreateBatch());
    });
  }

  /**
   * A POST answers within the etcd deadline counted from its arrival, also when it had to wait for a
   * transaction slot (the ones out were slow): one with too little of it left is not sent at all and
   * answers 503 "nothing was changed" (it never left). The ones sent share the earliest deadline of
   * their transaction.
   */
  private expireQueuedCreates(): void {
    const now = Date.now();
    const minimum = Math.min(MIN_CREATE_TIME_LEFT_MS, this.timeoutMs / 10);
    if (!this.createQueue.some((create) => create.deadline - now < minimum)) return;
    const error = new StoreUnavailableError('etcd did not take the write in time (the writes before it were still waiting for etcd); nothing was applied');
    this.createQueue = this.createQueue.filter((create) => {
      if (create.deadline - now >= minimum) return true;
      create.reject(error);
      return false;
    });
  }

  /**
   * The longest run from the head of the queue that fits one transaction (etcd's operation and size
   * limits) with no key twice: a key in two POSTs of one transaction could not be all-or-nothing for
   * each, so the second POST waits for the next transaction.
   */
  private takeCreateBatch(): PendingCreate[] {
    const maxPairs = Math.floor((this.maxTxnOps - 1) / 2);
    const keys = new Set<string>();
    let pairs = 0;
    let bytes = OP_OVERHEAD_BYTES + this.stampKey.length + STAMP_VALUE_MAX_BYTES;
    let taken = 0;
    for (const create of this.createQueue) {
      if (taken > 0 && (pairs + create.pairs.length > maxPairs || bytes + create.bytes > this.maxRequestBytes || create.pairs.some(([key]) => keys.has(key)))) break;
      for (const [key] of create.pairs) keys.add(key);
      pairs += create.pairs.length;
      bytes += create.bytes;
      taken++;
    }
    return this.createQueue.splice(0, taken);
  }

  private sendCreates(batch: PendingCreate[]): void {
    this.createBatchesInFlight++;
    // ord/ orders keys created together (in one POST or in POSTs sharing the transaction, in arrival
    // order); a key created alone has a create revision of its own
    const all = batch.flatMap((create) => create.pairs);
    const kvKeys = all.map(([key]) => this.kvKey(key));
    const ordered = all.length > 1;
    const success: { request_put: { key: Buffer; value: Buffer } }[] = [];
    all.forEach(([key, value], n) => {
      success.push({ request_put: { key: kvKeys[n]!, value: Buffer.from(value, 'utf8') } });
      if (ordered) success.push({ request_put: { key: this.ordKey(key), value: Buffer.from(String(n)) } });
    });
    const stamp = this.nextStamp();
    const copy = this.cache.entries;
    success.push({ request_put: { key: this.stampKey, value: Buffer.from(stamp) } });
    const deadline = Math.min(...batch.map((create) => create.deadline));
    this.call('create', true, () =>
      this.client.kv.txn(
        {
          compare: kvKeys.map((key) => ({ key, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 })),
          success,
          failure: kvKeys.map((key) => ({ request_range: { key, count_only: true } })),
        },
        { deadline },
      ),
    )
      .then(
        (response) => {
          if (response.succeeded) {
            for (const create of batch) create.resolve(CREATED);
            return;
          }
          // Nothing was applied. A POST with a key that exists is answered; the others go again.
          const again: PendingCreate[] = [];
          let at = 0;
          for (const create of batch) {
            let existing = -1;
            for (let i = 0; i < create.pairs.length && existing < 0; i++) {
              if (Number(response.responses[at + i]!.response_range.count) > 0) existing = i;
            }
            at += create.pairs.length;
            if (existing >= 0) create.resolve({ ok: false, existingKey: create.pairs[existing]![0] });
            else again.push(create);
          }
          // a failed compare is a key that exists (the counts are read in the same transaction), so
          // each round answers at least one POST; should none be named, none is sent blindly again
          if (again.length === batch.length) {
            const error = new StoreUnavailableError('etcd refused a create without naming a key that exists; nothing was applied');
            for (const create of batch) create.reject(error);
            return;
          }
          this.createQueue.unshift(...again);
        },
        async (error: unknown) => {
          if (error instanceof NoSpaceAnswer) {
            try {
              const applied = await this.appliedDespiteNoSpace(stamp, copy);
              for (const create of batch) {
                if (applied) create.resolve(CREATED);
                else create.reject(new StoreFullError('etcd space quota (NOSPACE alarm)'));
              }
            } catch (unknown) {
              for (const create of batch) create.reject(unknown);
            }
            return;
          }
          if (error instanceof ValueTooLargeError && batch.length > 1) {
            // etcd's own limits are below what tcpkv was told: each POST is sent again alone (counted
            // as a whole request's size, it never shares a transaction) and gets its own answer
            this.createQueue.unshift(...batch.map((create) => ({ ...create, bytes: this.maxRequestBytes })));
            return;
          }
          for (const create of batch) create.reject(error);
        },
      )
      .finally(() => {
        this.createBatchesInFlight--;
        this.scheduleCreates();
      });
  }

  async upsertAll(pairs: readonly Pair[]): Promise<UpsertResult> {
    // one put per key (etcd refuses a key twice in one transaction): the last value wins, as in a Map
    const values = new Map<string, string>();
    for (const [key, value] of pairs) values.set(key, value);
    const keys = [...values.keys()];
    this.checkSize(pairs);
    await this.checkLimits(() => {
      let newKeys = 0;
      let addedBytes = 0;
      for (const key of keys) {
        const held = this.cache.entries.get(key);
        if (held === undefined) newKeys++;
        addedBytes += Buffer.byteLength(values.get(key)!) + (held ? -Buffer.byteLength(held.value) : Buffer.byteLength(key));
      }
      return { newKeys, addedBytes };
    });
    let revisions: (number | undefined)[] = keys.map((key) => this.cache.entries.get(key)?.modRevision);
    // the values at those revisions: the previous values if the write applies with an answer lost to NOSPACE
    let held: (string | undefined)[] = keys.map((key) => this.cache.entries.get(key)?.value);
    const ordered = (expected: readonly (number | undefined)[]) => expected.filter((r) => r === undefined).length > 1;
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const expected = revisions;
      const stamp = this.nextStamp();
      const copy = this.cache.entries;
      const response = await this.call('update', true, () =>
        this.client.kv.txn({
          compare: keys.map((key, i) =>
            expected[i] === undefined
              ? { key: this.kvKey(key), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
              : { key: this.kvKey(key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: expected[i] },
          ),
          success: [
            ...keys.flatMap((key, i) => {
              const put = { request_put: { key: this.kvKey(key), value: Buffer.from(values.get(key)!, 'utf8'), prev_kv: true } };
              return expected[i] === undefined && ordered(expected) ? [put, { request_put: { key: this.ordKey(key), value: Buffer.from(String(i)) } }] : [put];
            }),
            { request_put: { key: this.stampKey, value: Buffer.from(stamp) } },
          ],
          // mod revisions only: values could make the answer larger than the client takes
          failure: keys.map((key) => ({ request_range: { key: this.kvKey(key), keys_only: true } })),
        }),
      ).catch(async (error: unknown) => {
        if (!(error instanceof NoSpaceAnswer)) throw error;
        if (!(await this.appliedDespiteNoSpace(stamp, copy))) throw new StoreFullError('etcd space quota (NOSPACE alarm)');
        // applied: each key was at the revision compared, so its previous value is the one held then
        return { succeeded: true, applied: true } as const;
      });
      if ('applied' in response) {
        const previous = new Map(keys.map((key, i) => [key, held[i]] as const));
        return { previous: pairs.map(([key]) => previous.get(key)) };
      }
      if (response.succeeded) {
        const previous = new Map<string, string | undefined>();
        let at = 0;
        for (const [i, key] of keys.entries()) {
          const prev = (response.responses[at] as IResponseOp).response_put.prev_kv;
          previous.set(key, prev ? prev.value.toString('utf8') : undefined);
          at += expected[i] === undefined && ordered(expected) ? 2 : 1;
        }
        return { previous: pairs.map(([key]) => previous.get(key)) };
      }
      // another write got there first: nothing was applied; try again with what etcd holds now
      revisions = response.responses.map((r) => {
        const kv = r.response_range.kvs[0];
        return kv ? Number(kv.mod_revision) : undefined;
      });
      held = response.responses.map((r) => r.response_range.kvs[0]?.value.toString('utf8'));
      if (Date.now() > deadline) throw new StoreUnavailableError('PUT kept losing to concurrent writes of the same keys until the etcd deadline; nothing was applied');
    }
  }

  async delete(key: string): Promise<boolean> {
    const response = await this.call('delete', true, () =>
      this.client.kv.txn({
        compare: [{ key: this.kvKey(key), target: 'Create' as const, result: 'Greater' as const, create_revision: 0 }],
        success: [
          { request_delete_range: { key: this.kvKey(key) } },
          { request_delete_range: { key: this.ordKey(key) } },
          { request_delete_range: { key: this.stampKey } },
        ],
        failure: [],
      }),
    );
    return response.succeeded;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cache.close();
    this.memberHealth.close();
    this.client.close();
    for (const client of this.memberClients) client.close();
  }

  private noteFailure(what: string, message: string): void {
    const now = Date.now();
    this.unavailableSince ??= now;
    if (now - this.lastErrorLog >= ERROR_LOG_EVERY_MS) {
      this.lastErrorLog = now;
      this.logger.error({ op: what, err: message }, 'etcd call failed: answering 503 until it recovers');
    } else {
      this.logger.debug({ op: what, err: message }, 'etcd call failed');
    }
  }

  /**
   * One call to etcd. An outage becomes StoreUnavailableError (logged at error level once in a
   * while); a refusal of this request by a healthy member becomes 413, 507 or a 503 that says nothing
   * was applied, and is not counted as a member failure.
   */
  private async call<T>(what: string, isWrite: boolean, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.events.etcdCall(what, (performance.now() - started) / 1000, true);
      if (this.unavailableSince !== undefined) {
        this.logger.info({ downMs: Date.now() - this.unavailableSince }, 'etcd answers again');
        this.unavailableSince = undefined;
      }
      return result;
    } catch (error) {
      const message = (error as Error).message;
      const refused = refusal(message);
      this.events.etcdCall(what, (performance.now() - started) / 1000, refused !== undefined);
      switch (refused) {
        case 'too-many-ops':
          this.logger.warn({ op: what, err: message }, 'etcd refused the write: more operations than its --max-txn-ops; set TCPKV_ETCD_MAX_TXN_OPS to match it');
          throw new ValueTooLargeError(`etcd refused the write: more operations than its --max-txn-ops (TCPKV_ETCD_MAX_TXN_OPS=${this.maxTxnOps} says more); nothing was applied`);
        case 'too-large':
          this.logger.warn({ op: what, err: message }, 'etcd refused the write as too large; set TCPKV_ETCD_MAX_REQUEST_BYTES to match its --max-request-bytes');
          throw new ValueTooLargeError(`etcd refused the write as too large (over its --max-request-bytes); nothing was applied`);
        case 'no-space':
          // whether a write was applied is decided by the caller (see appliedDespiteNoSpace)
          this.logger.error({ op: what, err: message }, 'etcd is out of space (NOSPACE alarm): writes answer 507 until an operator compacts, defragments and disarms the alarm');
          throw new NoSpaceAnswer('etcd space quota (NOSPACE alarm)');
        case 'denied':
          this.logger.error({ op: what, err: message }, 'etcd refused the request: check the etcd user and its role');
          throw new StoreUnavailableError(`etcd refused the request (${message}); nothing was applied`);
        default:
          this.noteFailure(what, message);
          // A write whose answer was lost may have been applied; one that never reached etcd was not.
          throw new StoreUnavailableError(message, { indeterminate: isWrite && !neverSent(error) });
      }
    }
  }
}

/** The call cannot have reached etcd: no connection was made, or every member's breaker stopped it. */
function neverSent(error: unknown): boolean {
  if (isBrokenCircuitError(error)) return true;
  const message = (error as Error)?.message ?? '';
  return /No connection established|ECONNREFUSED|Connection pool has no hosts/.test(message);
}
