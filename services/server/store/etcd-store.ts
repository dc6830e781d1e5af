// The shared store: data kept in an etcd cluster, so any number of stateless tcpkv replicas serve the
// same data. etcd (Raft) does the hard part; this file maps the seed's batch semantics onto its
// transactions. Every request is ONE transaction: atomic, and one round trip.
//
//   <prefix>kv/<key>   the value, as it is
//   <prefix>ord/<key>  n, written with the key when it is created: keys created in the same
//                      transaction share a create revision, so keys sort by (create revision of kv/,
//                      n) = insertion order. An update keeps the create revision and n: its place.
//
//   POST  if every kv/ key's create revision is 0 (none exists), put them all with their ord/ keys;
//         else count them, to name the one that exists. All or none.
//   PUT   for each key a nested transaction: if it does not exist, put it and its ord/ key, else put
//         it; every put asks for the previous value. No read first, so no conflict to retry.
//   GET   both ranges in one transaction (one consistent revision). etcd reads are linearizable by
//         default: a write answered through one replica is seen by a read through any other.
//
// etcd3's own retries are switched off: a transaction retried after a lost answer could be applied
// twice, or report its own write as a conflict. A failure answers 503 instead, saying whether the
// write may have been applied (the client was told nothing it can rely on, as with a lost packet).
// What stays on is a circuit breaker per member: after a failure, calls skip that member for
// BREAKER_HALF_OPEN_MS and go to the others — a call the breaker stops never reached etcd, so moving
// it on is safe. Without it, a dead member would take its share of calls (a third, of three) to 503.

import { readFileSync } from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, isBrokenCircuitError, NoopPolicy } from 'cockatiel';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import type { Logger } from 'pino';
import { StoreUnavailableError, type CreateResult, type ListingSnapshot, type Page, type PageRequest, type Pair, type Store, type UpsertResult } from './store.js';

export interface EtcdStoreOptions {
  readonly endpoints: readonly string[];
  /** every key tcpkv writes starts with this */
  readonly prefix: string;
  /** deadline for each call to etcd */
  readonly timeoutMs: number;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly logger: Logger;
}

/** How long a failed member is skipped before one call tries it again. */
const BREAKER_HALF_OPEN_MS = 2000;
/** An outage is logged at error level at most this often (each failure is at debug level). */
const ERROR_LOG_EVERY_MS = 10_000;

interface Row {
  readonly key: string;
  readonly value: string;
  readonly createRevision: bigint;
  readonly order: number;
}

/** The end of the key range that holds exactly the keys starting with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export class EtcdStore implements Store {
  /** a shared store cannot tell cheaply whether another replica wrote: no GET cache */
  readonly revision = undefined;
  private readonly client: Etcd3;
  private readonly kvPrefix: Buffer;
  private readonly ordPrefix: Buffer;
  private readonly logger: Logger;
  private unavailableSince: number | undefined;
  private lastErrorLog = -Infinity;

  constructor(options: EtcdStoreOptions) {
    this.kvPrefix = Buffer.from(`${options.prefix}kv/`, 'utf8');
    this.ordPrefix = Buffer.from(`${options.prefix}ord/`, 'utf8');
    this.logger = options.logger;
    const config: IOptions = {
      hosts: [...options.endpoints],
      dialTimeout: options.timeoutMs,
      defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.timeoutMs }),
      faultHandling: {
        host: () => circuitBreaker(handleWhen(memberUnreachable), { halfOpenAfter: BREAKER_HALF_OPEN_MS, breaker: new ConsecutiveBreaker(1) }),
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
  }

  /** Checks that etcd answers; the server starts anyway if not (and answers 503 until it does). */
  async probe(): Promise<boolean> {
    try {
      await this.client.maintenance.status();
      return true;
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'etcd is not reachable yet: writes and reads answer 503 until it is');
      return false;
    }
  }

  private kvKey(key: string): Buffer {
    return Buffer.concat([this.kvPrefix, Buffer.from(key, 'utf8')]);
  }

  private ordKey(key: string): Buffer {
    return Buffer.concat([this.ordPrefix, Buffer.from(key, 'utf8')]);
  }

  // SCAFFOLD (replaced by the watch cache of issue 18): derived from a full range read.
  async listing(): Promise<ListingSnapshot> {
    const entries = await this.list();
    let text = '';
    for (const [key, value] of entries) text += '\n' + key + ':' + value;
    return { count: entries.length, slices: text === '' ? [] : [text], bytes: Buffer.byteLength(text) };
  }

  async get(key: string): Promise<string | undefined> {
    for (const [k, v] of await this.list()) if (k === key) return v;
    return undefined;
  }

  async page(request: PageRequest): Promise<Page> {
    const all = (await this.list()).filter(([k]) => k.startsWith(request.prefix));
    const from = request.after === undefined ? 0 : all.findIndex(([k]) => k === request.after) + 1;
    const items = all.slice(from, from + request.limit);
    return { items, next: from + request.limit < all.length ? items[items.length - 1]?.[0] : undefined };
  }

  delete(_key: string): Promise<boolean> {
    return Promise.reject(new StoreUnavailableError('DELETE is not implemented in the etcd store yet'));
  }

  usage(): undefined {
    return undefined;
  }

  async list(): Promise<readonly Pair[]> {
    const response = await this.call('list', false, () =>
      this.client.kv.txn({
        compare: [],
        success: [
          { request_range: { key: this.kvPrefix, range_end: prefixEnd(this.kvPrefix) } },
          { request_range: { key: this.ordPrefix, range_end: prefixEnd(this.ordPrefix) } },
        ],
        failure: [],
      }),
    );
    const values = response.responses[0]!.response_range.kvs;
    const orders = response.responses[1]!.response_range.kvs;
    const orderOf = new Map(orders.map((kv) => [kv.key.subarray(this.ordPrefix.length).toString('utf8'), Number(kv.value.toString('latin1'))]));
    const rows: Row[] = values.map((kv) => {
      const key = kv.key.subarray(this.kvPrefix.length).toString('utf8');
      return { key, value: kv.value.toString('utf8'), createRevision: BigInt(kv.create_revision), order: orderOf.get(key) ?? 0 };
    });
    rows.sort((a, b) => (a.createRevision === b.createRevision ? a.order - b.order : a.createRevision < b.createRevision ? -1 : 1));
    return rows.map((r) => [r.key, r.value] as const);
  }

  async createAll(pairs: readonly Pair[]): Promise<CreateResult> {
    const response = await this.call('create', true, () =>
      this.client.kv.txn({
        compare: pairs.map(([key]) => ({ key: this.kvKey(key), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 })),
        success: pairs.flatMap(([key, value], i) => [
          { request_put: { key: this.kvKey(key), value: Buffer.from(value, 'utf8') } },
          { request_put: { key: this.ordKey(key), value: Buffer.from(String(i)) } },
        ]),
        failure: pairs.map(([key]) => ({ request_range: { key: this.kvKey(key), count_only: true } })),
      }),
    );
    if (response.succeeded) return { ok: true };
    const existing = response.responses.findIndex((r) => Number(r.response_range.count) > 0);
    return { ok: false, existingKey: pairs[Math.max(0, existing)]![0] };
  }

  async upsertAll(pairs: readonly Pair[]): Promise<UpsertResult> {
    const response = await this.call('update', true, () =>
      this.client.kv.txn({
        compare: [],
        success: pairs.map(([key, value], i) => {
          const put = { request_put: { key: this.kvKey(key), value: Buffer.from(value, 'utf8'), prev_kv: true } };
          return {
            request_txn: {
              compare: [{ key: this.kvKey(key), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }],
              success: [put, { request_put: { key: this.ordKey(key), value: Buffer.from(String(i)) } }],
              failure: [put],
            },
          };
        }),
        failure: [],
      }),
    );
    return {
      previous: response.responses.map((r) => {
        const prev = r.response_txn.responses[0]!.response_put.prev_kv;
        return prev ? prev.value.toString('utf8') : undefined;
      }),
    };
  }

  async close(): Promise<void> {
    this.client.close();
  }

  /** One call to etcd; its failure becomes StoreUnavailableError, logged at error level once in a while. */
  private async call<T>(what: string, isWrite: boolean, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      if (this.unavailableSince !== undefined) {
        this.logger.info({ downMs: Date.now() - this.unavailableSince }, 'etcd answers again');
        this.unavailableSince = undefined;
      }
      return result;
    } catch (error) {
      const message = (error as Error).message;
      const now = Date.now();
      this.unavailableSince ??= now;
      if (now - this.lastErrorLog >= ERROR_LOG_EVERY_MS) {
        this.lastErrorLog = now;
        this.logger.error({ op: what, err: message }, 'etcd call failed: answering 503 until it recovers');
      } else {
        this.logger.debug({ op: what, err: message }, 'etcd call failed');
      }
      // A write whose answer was lost may have been applied; one that never reached etcd was not.
      throw new StoreUnavailableError(message, { indeterminate: isWrite && !neverSent(error) });
    }
  }
}

/**
 * The member could not be reached (gRPC UNAVAILABLE without an answer from etcd). An answer from a
 * live member that is itself unavailable — "etcdserver: no leader" during an election, which uses
 * the same gRPC code — must not make the replica skip that member: then every member would be
 * skipped at once, just when the new leader is being elected.
 */
function memberUnreachable(error: Error): boolean {
  return isRecoverableError(error) && !/etcdserver:/.test(error.message);
}

/** The call cannot have reached etcd: no connection was made, or every member's breaker stopped it. */
function neverSent(error: unknown): boolean {
  if (isBrokenCircuitError(error)) return true;
  const message = (error as Error)?.message ?? '';
  return /No connection established|ECONNREFUSED|Connection pool has no hosts/.test(message);
}
