// The shared store: data kept in an etcd cluster, so any number of stateless tcpkv replicas serve the
// same data. etcd (Raft) orders every write; this file maps the seed's batch semantics onto its
// transactions (one transaction per write), and answers reads from a watch-fed copy of the prefix
// (etcd-cache.ts) without giving up linearizability. It composes the pieces, one concern each:
//
//   etcd-settings.ts       the options, the checks that need no etcd, the etcd3 client's options
//   etcd-keyspace.ts       where the data lies under the prefix, and the write stamp
//   etcd-calls.ts          one call to etcd: refusals, outages, "may have been applied"
//   etcd-member-health.ts  which members calls skip
//   etcd-read-barrier.ts   reads gathered into shared read barriers
//   etcd-barrier-route.ts  which member a barrier goes to (the leader)
//   etcd-group-commit.ts   POSTs that arrive together share one transaction
//   etcd-cas-put.ts        PUT as one compare-and-swap transaction
//   etcd-key-writes.ts     one-key writes with a condition (putKey, deleteKey), in the transaction
//   etcd-leases.ts         expiry: a lease per second of expiry, its end in its id, hidden on read
//   etcd-limits.ts         etcd's request limits and the store limits, before a write is sent
//
//   POST   if no kv/ key exists (create revision 0), put them all with their ord/ keys and the stamp;
//          else count them, to name the one that exists. All or none (group commit).
//   PUT    compare-and-swap against the copy's mod revisions (etcd-cas-put.ts).
//   DELETE if the key exists, delete kv/, ord/ and the stamp: a transaction that only deletes (and reads) is one
//          etcd's space quota admits, so data can be freed under the NOSPACE alarm.
//   putKey, deleteKey   the condition is a term of the transaction's compare (etcd-key-writes.ts);
//          DELETE is deleteKey without a condition. A TTL: kv/ is put with its expiry second's lease,
//          in the same transaction (etcd-leases.ts); etcd's DELETE at the lease's end reaches every copy.
//   versions  a key's version is its kv/ key's mod revision; a write's, its transaction's revision
//          (every write puts the stamp or deletes a key, so each accepted one has its own).
//   reads  the read barrier: one linearizable read of the stamp gives the revision W of the latest
//          write (the stamp is there: no DELETE since the last put of it, and W is its mod revision;
//          it is not: see revisionWithoutStamp); the answer comes from the copy once it has applied
//          W. Every write acknowledged before the read began is ≤ W, and the copy's state at any
//          revision ≥ W was the current state at some instant after the read began: linearizable.

import { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { NO_STORE_EVENTS, type StoreEvents } from '../events.js';
import { BarrierRoute } from './etcd-barrier-route.js';
import { ChangeFeed, DEFAULT_FEED_LIMITS } from './change-feed.js';
import { OrderedEntries, prefixEnd, WatchCache } from './etcd-cache.js';
import { EtcdCalls, NoSpaceAnswer, refusal } from './etcd-calls.js';
import { compareAndSwapPut } from './etcd-cas-put.js';
import { GroupCommit } from './etcd-group-commit.js';
import { conditionalDelete, conditionalPut, type KeyWriteOptions } from './etcd-key-writes.js';
import { EtcdKeyspace, WriteStamps } from './etcd-keyspace.js';
import { etcdLeaseGrants, LeaseBuckets } from './etcd-leases.js';
import { WriteLimits } from './etcd-limits.js';
import { MemberHealth } from './etcd-member-health.js';
import { BarrierGathering } from './etcd-read-barrier.js';
import {
  ETCD_DEFAULT_MAX_REQUEST_BYTES,
  ETCD_DEFAULT_MAX_TXN_OPS,
  EtcdStartError,
  etcdClientOptions,
  maxEtcdAnswerBytes,
  singleMemberOptions,
  type EtcdStoreOptions,
} from './etcd-settings.js';
import {
  repeatedKey,
  StoreFullError,
  StoreUnavailableError,
  UNCONDITIONAL,
  type Condition,
  type CreateResult,
  type KeyDeleteResult,
  type KeyPutResult,
  type ListingSnapshot,
  type Page,
  type PageRequest,
  type Pair,
  type Store,
  type StoreLimits,
  type StoreUsage,
  type UpsertResult,
  type Versioned,
} from './store.js';

export {
  ETCD_DEFAULT_MAX_REQUEST_BYTES,
  ETCD_DEFAULT_MAX_TXN_OPS,
  EtcdStartError,
  checkEtcdPrefix,
  checkEtcdTls,
  maxEtcdAnswerBytes,
  type EtcdStoreOptions,
} from './etcd-settings.js';

/** How long a failed member is skipped before it is asked again (a single endpoint: one call tries it). */
const BREAKER_HALF_OPEN_MS = 2000;
/** Deadline of the status request that decides whether a member whose call failed is alive. */
const STATUS_TIMEOUT_MS = 1000;
/** How soon a member that answered its status without a leader is asked again. */
const LEADERLESS_RETRY_MS = 250;
/** Read barriers sent and not answered yet, at most (more reads wait for the next one). */
const MAX_BARRIERS_IN_FLIGHT = 3;
/**
 * A second barrier goes out only once the one out has taken this long: until then reads gather for
 * the next one, so a quick etcd is asked once per round trip rather than up to three times.
 */
const BARRIER_OVERLAP_AFTER_MS = 20;
/** Gathering for the next barrier, at most (ms): a read waits at most about one more round trip. */
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

export class EtcdStore implements Store {
  readonly kind = 'etcd';
  readonly limits: StoreLimits | undefined;
  /** fed by the watch-fed copy: every replica sees every replica's writes, with etcd's revisions */
  readonly changes: ChangeFeed;
  /** a shared store cannot tell without a round trip whether another replica wrote */
  readonly revision = undefined;
  private readonly client: Etcd3;
  /** one client per endpoint, to send barriers to the leader and ask a member for its status (none with a single endpoint) */
  private readonly memberClients: Etcd3[] = [];
  private readonly memberHealth: MemberHealth;
  private readonly keyspace: EtcdKeyspace;
  private readonly stamps = new WriteStamps();
  /** the leases of TTL'd putKeys (etcd-leases.ts) */
  readonly leases: LeaseBuckets;
  private readonly calls: EtcdCalls;
  private readonly route: BarrierRoute<Etcd3>;
  private readonly gathering: BarrierGathering;
  private readonly groupCommit: GroupCommit;
  private readonly writeLimits: WriteLimits;
  private readonly logger: Logger;
  private readonly events: StoreEvents;
  private readonly timeoutMs: number;
  private readonly barrierMode: 'quorum' | 'none';
  private readonly cache: WatchCache;
  /** what the PUT paths need of the store (etcd-cas-put.ts, etcd-key-writes.ts) */
  private readonly putOptions: KeyWriteOptions;
  private clusterId: string | undefined;

  constructor(options: EtcdStoreOptions) {
    this.keyspace = new EtcdKeyspace(options.prefix);
    this.logger = options.logger;
    this.events = options.events ?? NO_STORE_EVENTS;
    this.timeoutMs = options.timeoutMs;
    const maxTxnOps = options.maxTxnOps ?? ETCD_DEFAULT_MAX_TXN_OPS;
    const maxRequestBytes = options.maxRequestBytes ?? ETCD_DEFAULT_MAX_REQUEST_BYTES;
    this.barrierMode = options.unsafeReadBarrier ?? 'quorum';
    this.calls = new EtcdCalls({ logger: this.logger, events: this.events, maxTxnOps });
    this.memberHealth = new MemberHealth({
      statusClient: (member) => this.memberClients[options.endpoints.indexOf(member)],
      statusTimeoutMs: Math.min(STATUS_TIMEOUT_MS, options.timeoutMs),
      retryMs: BREAKER_HALF_OPEN_MS,
      leaderlessRetryMs: LEADERLESS_RETRY_MS,
      suspectAfterMs: Math.min(SUSPECT_AFTER_MS, options.timeoutMs / 4),
      events: this.events,
      logger: this.logger,
    });
    const config = etcdClientOptions(options, maxRequestBytes, (member) => this.memberHealth.policy(member));
    this.client = new Etcd3(config);
    if (options.endpoints.length > 1) {
      for (const endpoint of options.endpoints) this.memberClients.push(new Etcd3(singleMemberOptions(config, endpoint)));
    }
    this.route = new BarrierRoute({
      pooled: this.client,
      memberClients: this.memberClients,
      endpoints: [...options.endpoints],
      health: this.memberHealth,
      statusTimeoutMs: Math.min(STATUS_TIMEOUT_MS, options.timeoutMs),
      leaderCheckEveryMs: LEADER_CHECK_EVERY_MS,
      suspectAfterMs: SUSPECT_AFTER_MS,
    });
    this.gathering = new BarrierGathering({
      send: () => this.readBarrier(),
      maxInFlight: MAX_BARRIERS_IN_FLIGHT,
      overlapAfterMs: BARRIER_OVERLAP_AFTER_MS,
      gatherMaxMs: GATHER_MAX_MS,
    });
    this.changes = new ChangeFeed(options.feedLimits ?? DEFAULT_FEED_LIMITS, options.logger);
    this.cache = new WatchCache({
      changes: this.changes,
      client: this.client,
      kvPrefix: this.keyspace.kvPrefix,
      ordPrefix: this.keyspace.ordPrefix,
      timeoutMs: options.timeoutMs,
      logger: options.logger,
      maxResponseBytes: maxEtcdAnswerBytes(maxRequestBytes),
      onHeader: (clusterId) => this.checkClusterId(clusterId),
      onStamp: (value, revision) => this.stamps.note(value, revision),
      onCall: (operation, seconds, ok) => this.events.etcdCall(operation, seconds, ok),
    });
    this.limits = options.limits;
    this.writeLimits = new WriteLimits({
      keyspace: this.keyspace,
      maxTxnOps,
      maxRequestBytes,
      limits: options.limits,
      logger: this.logger,
      copyUsage: () => this.cache.entries.usage(),
      copySynced: () => this.cache.applied >= 0,
      fresh: () => this.fresh(),
    });
    this.groupCommit = new GroupCommit({
      maxPairs: this.writeLimits.maxPairs,
      maxRequestBytes,
      fixedBytes: this.writeLimits.fixedBytes,
      timeoutMs: options.timeoutMs,
      maxInFlight: MAX_CREATE_BATCHES_IN_FLIGHT,
      minTimeLeftMs: MIN_CREATE_TIME_LEFT_MS,
      commit: (pairs, deadline) => this.commitCreates(pairs, deadline),
    });
    const grants = etcdLeaseGrants(this.client);
    this.leases = new LeaseBuckets({ grant: (id, ttlSeconds) => this.calls.call('lease', false, () => grants.grant(id, ttlSeconds)) });
    this.putOptions = {
      leases: this.leases,
      client: this.client,
      keyspace: this.keyspace,
      stamps: this.stamps,
      calls: this.calls,
      copy: () => this.cache.entries,
      revisionDespiteNoSpace: (stamp, copy) => this.revisionDespiteNoSpace(stamp, copy),
      timeoutMs: this.timeoutMs,
    };
  }

  /** The prefix every key of this store starts with (EtcdStoreOptions.prefix). */
  get prefix(): string {
    return this.keyspace.prefix;
  }

  /** Read barriers sent so far: each one etcd round trip (the bench counts them per GET). */
  get barrierCalls(): number {
    return this.gathering.barriersSent;
  }

  /**
   * The start-up check: one authenticated read of the prefix. Credentials etcd refuses and a user
   * without rights on the prefix throw EtcdStartError (no retry fixes them); an etcd that does not
   * answer yet is only logged — the replica starts, not ready, and serves once etcd answers. Then the
   * copy starts syncing.
   */
  async start(): Promise<boolean> {
    const { kvPrefix } = this.keyspace;
    let reachable = true;
    try {
      const response = await this.client.kv.range({ key: kvPrefix, range_end: prefixEnd(kvPrefix), limit: 1, keys_only: true });
      this.checkClusterId(response.header.cluster_id);
    } catch (error) {
      const message = (error as Error).message;
      if (refusal(error) === 'denied') {
        throw new EtcdStartError(`etcd refused to let this user read the prefix ${kvPrefix.toString('utf8')}: ${message} (check TCPKV_ETCD_USERNAME, TCPKV_ETCD_PASSWORD and the user's role)`, 'TCPKV_ETCD_USERNAME', { cause: error });
      }
      this.logger.warn({ err: message }, 'etcd is not reachable yet: the replica is not ready, and answers 503, until it is');
      reachable = false;
    }
    this.cache.start();
    return reachable;
  }

  // ---- reads ---------------------------------------------------------------------------------------

  async listing(): Promise<ListingSnapshot> {
    return (await this.fresh()).listing();
  }

  async get(key: string): Promise<string | undefined> {
    return (await this.fresh()).get(key)?.value;
  }

  /**
   * The value and version (mod revision) through the same read barrier as get; `expiresAt`: the end
   * of the key's lease by the clock of the replica that granted it (etcd expires it by its leader's
   * clock, at or after that: see etcd-leases.ts).
   */
  async getVersioned(key: string): Promise<Versioned | undefined> {
    const held = (await this.fresh()).get(key);
    if (held === undefined) return undefined;
    return held.expiresAt === undefined ? { value: held.value, version: held.modRevision } : { value: held.value, version: held.modRevision, expiresAt: held.expiresAt };
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
    return this.reach(await this.gathering.barrier(), started);
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
      this.calls.noteFailure('read', 'the etcd cache did not reach the read barrier in time');
      throw new StoreUnavailableError(`the etcd cache is behind: at revision ${this.cache.applied}, the read needs ${target}`);
    }
    return this.cache.entries;
  }

  /**
   * One read barrier: a linearizable read of the stamp, to the member BarrierRoute chooses. Its answer
   * also checks that etcd's history is the one the copy follows.
   */
  private async readBarrier(): Promise<number> {
    const appliedAtSend = this.cache.applied;
    const copyAtSend = this.cache.generation;
    const { stampKey } = this.keyspace;
    const response = await this.route.read(
      (client) => client.kv.range({ key: stampKey }),
      (run) => this.calls.call('barrier', false, run),
    );
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
    const { kvPrefix, stampKey } = this.keyspace;
    try {
      const put = await this.calls.call('barrier', false, () => this.client.kv.put({ key: stampKey, value: Buffer.from(this.stamps.next()) }));
      return Number(put.header.revision);
    } catch (error) {
      if (!(error instanceof NoSpaceAnswer)) throw error;
    }
    const range = { key: kvPrefix, range_end: prefixEnd(kvPrefix) };
    const read = await this.calls.call('barrier', false, () =>
      this.client.kv.txn({
        compare: [],
        success: [
          { request_range: { key: stampKey } },
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
      (latest === undefined || this.cache.entries.get(latest.key.subarray(kvPrefix.length).toString('utf8'))?.modRevision === Number(latest.mod_revision));
    return same ? Math.min(this.cache.applied, Number(read.header.revision)) : Number(read.header.revision);
  }

  /**
   * Whether etcd applied a write it answered NOSPACE (the one that crossed the quota is applied; one
   * sent once etcd is over it, or once the alarm is raised, is not): a read barrier, then whether the
   * copy saw the write's stamp — decided by what etcd holds, the same on every replica. Undecidable
   * (etcd does not answer the barrier, or the copy was listed again meanwhile): 503 "may or may not".
   */
  private async appliedDespiteNoSpace(stamp: string, copy: OrderedEntries): Promise<boolean> {
    return (await this.revisionDespiteNoSpace(stamp, copy)) !== undefined;
  }

  /** As appliedDespiteNoSpace, with the write's revision when it was applied (undefined: it was not). */
  private async revisionDespiteNoSpace(stamp: string, copy: OrderedEntries): Promise<number | undefined> {
    const unknown = new StoreUnavailableError('etcd ran out of space (NOSPACE) with this write and could not be asked whether it applied it: it may or may not have been applied', { indeterminate: true });
    try {
      await this.fresh();
    } catch {
      throw unknown;
    }
    const revision = this.stamps.revisionOf(stamp);
    if (revision !== undefined) return revision;
    if (this.cache.entries !== copy) throw unknown;
    return undefined;
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

  async createAll(pairs: readonly Pair[]): Promise<CreateResult> {
    // a key given twice counts as existing (store.ts); etcd would refuse the transaction
    const repeated = repeatedKey(pairs);
    if (repeated !== undefined) return { ok: false, existingKey: repeated };
    const deadline = Date.now() + this.timeoutMs;
    const bytes = this.writeLimits.checkSize(pairs);
    await this.writeLimits.checkLimits(() => {
      let addedBytes = 0;
      for (const [key, value] of pairs) addedBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
      return { newKeys: pairs.length, addedBytes };
    });
    return this.groupCommit.create(pairs, bytes, deadline);
  }

  /**
   * The group-commit transaction: creates every pair if no key exists, else counts each key. ord/
   * orders keys created together (in one POST or in POSTs sharing the transaction, in arrival order);
   * a key created alone has a create revision of its own.
   */
  private async commitCreates(pairs: readonly Pair[], deadline: number): Promise<true | boolean[]> {
    const { keyspace } = this;
    const kvKeys = pairs.map(([key]) => keyspace.kvKey(key));
    const ordered = pairs.length > 1;
    const success: { request_put: { key: Buffer; value: Buffer } }[] = [];
    pairs.forEach(([key, value], n) => {
      success.push({ request_put: { key: kvKeys[n]!, value: Buffer.from(value, 'utf8') } });
      if (ordered) success.push({ request_put: { key: keyspace.ordKey(key), value: Buffer.from(String(n)) } });
    });
    const stamp = this.stamps.next();
    const copy = this.cache.entries;
    success.push({ request_put: { key: keyspace.stampKey, value: Buffer.from(stamp) } });
    try {
      const response = await this.calls.call('create', true, () =>
        this.client.kv.txn(
          {
            compare: kvKeys.map((key) => ({ key, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 })),
            success,
            failure: kvKeys.map((key) => ({ request_range: { key, count_only: true } })),
          },
          { deadline },
        ),
      );
      if (response.succeeded) return true;
      return response.responses.map((r) => Number(r.response_range.count) > 0);
    } catch (error) {
      if (!(error instanceof NoSpaceAnswer)) throw error;
      if (await this.appliedDespiteNoSpace(stamp, copy)) return true;
      throw new StoreFullError('etcd space quota (NOSPACE alarm)');
    }
  }

  async upsertAll(pairs: readonly Pair[]): Promise<UpsertResult> {
    // one put per key (etcd refuses a key twice in one transaction): the last value wins, as in a Map
    const values = new Map<string, string>();
    for (const [key, value] of pairs) values.set(key, value);
    this.writeLimits.checkSize(pairs);
    await this.writeLimits.checkLimits(() => {
      let newKeys = 0;
      let addedBytes = 0;
      for (const [key, value] of values) {
        const held = this.cache.entries.get(key);
        if (held === undefined) newKeys++;
        addedBytes += Buffer.byteLength(value) + (held ? -Buffer.byteLength(held.value) : Buffer.byteLength(key));
      }
      return { newKeys, addedBytes };
    });
    return compareAndSwapPut(this.putOptions, pairs, values);
  }

  /**
   * One transaction: the condition in its compare, the key's version read in its failure branch
   * (etcd-key-writes.ts); with `ttlMs`, the key is put with its expiry second's lease (granted first
   * if this replica has none for that second). Limits as upsertAll.
   */
  async putKey(key: string, value: string, condition: Condition, ttlMs?: number): Promise<KeyPutResult> {
    this.writeLimits.checkSize([[key, value]]);
    await this.writeLimits.checkLimits(() => {
      const held = this.cache.entries.get(key);
      return {
        newKeys: held === undefined ? 1 : 0,
        addedBytes: Buffer.byteLength(value) + (held ? -Buffer.byteLength(held.value) : Buffer.byteLength(key)),
      };
    });
    return conditionalPut(this.putOptions, key, value, condition, ttlMs);
  }

  /** One transaction deleting kv/, ord/ and the stamp if the key exists and the condition holds (etcd-key-writes.ts). */
  async deleteKey(key: string, condition: Condition): Promise<KeyDeleteResult> {
    return conditionalDelete(this.putOptions, key, condition);
  }

  async delete(key: string): Promise<boolean> {
    return (await this.deleteKey(key, UNCONDITIONAL)).ok;
  }

  async close(): Promise<void> {
    this.route.close();
    this.cache.close();
    this.memberHealth.close();
    this.client.close();
    for (const client of this.memberClients) client.close();
  }
}
