// The etcd store's read side: a copy of the prefix in this replica's memory, fed by an etcd watch
// (list-then-watch, as Kubernetes' apiserver does). Reads are answered from here once the copy has
// applied the revision a read barrier asks for (see etcd-store.ts); this file only keeps the copy
// and says how far it has got.
//
//   sync    list <prefix>kv/ and <prefix>ord/ in pages, all at one revision R (never the whole prefix
//           in one gRPC answer: that is capped at 4 MiB), order the keys, then watch <prefix>kv/ from
//           R+1. Events arrive in revision order and a revision's events in one answer, so each
//           answer is applied whole and `applied` moves to its last event's revision.
//   resume  a broken watch reconnects from applied+1; a watch whose start was compacted away, a
//           cluster id that changed or a revision that went backwards (etcd wiped) lists again.
//
// Insertion order: a key created later has a larger create revision, so a watch PUT of a new key
// appends; keys created in one transaction arrive in the transaction's order. The initial list sorts
// by (create revision, the n stored in ord/).

import type { Etcd3, IKeyValue, IWatchResponse, IDuplexStream, IWatchRequest } from 'etcd3';
import type { Logger } from 'pino';
import { MemoryStore } from './memory-store.js';
import type { ListingSnapshot, Page, PageRequest, Pair, StoreUsage } from './store.js';

/** Keys per range request of the initial list; halved while an answer is over gRPC's 4 MiB. */
const LIST_PAGE_KEYS = 1000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;

/** The end of the key range that holds exactly the keys starting with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * The key/value map in insertion order, kept as the memory store keeps it (memory-store.ts): blocks
 * of entries, each rendered again only when one of its entries changes, so a listing after a write
 * costs the block it touched, not the whole store, and unchanged blocks are shared between listings.
 * Besides, each key's etcd mod revision (PUT compares it).
 */
export class OrderedEntries {
  private readonly store = new MemoryStore({ limits: { maxKeys: Number.MAX_SAFE_INTEGER, maxDataBytes: Number.MAX_SAFE_INTEGER } });
  private readonly modRevisions = new Map<string, number>();

  get size(): number {
    return this.store.size;
  }

  get(key: string): { readonly value: string; readonly modRevision: number } | undefined {
    const modRevision = this.modRevisions.get(key);
    if (modRevision === undefined) return undefined;
    return { value: this.store.get(key)!, modRevision };
  }

  set(key: string, value: string, modRevision: number): void {
    this.store.restore([[key, value]]);
    this.modRevisions.set(key, modRevision);
  }

  delete(key: string): boolean {
    this.modRevisions.delete(key);
    return this.store.restoreDelete(key);
  }

  usage(): StoreUsage {
    return this.store.usage();
  }

  /** Shared by every listing until the next change; after one, only the changed blocks are new. */
  listing(): ListingSnapshot {
    return this.store.listing();
  }

  pairs(): Pair[] {
    return this.store.list();
  }

  /** Pages as the memory store's: `after` found through the map (see docs/store.md). */
  page(request: PageRequest): Page {
    return this.store.page(request);
  }
}

export interface WatchCacheOptions {
  readonly client: Etcd3;
  /** <prefix>kv/ and <prefix>ord/ */
  readonly kvPrefix: Buffer;
  readonly ordPrefix: Buffer;
  /** deadline of each list call */
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** every answer's cluster id and revision, for the wiped-etcd check (see EtcdStore) */
  readonly onHeader: (clusterId: string, revision: number, source: string) => void;
  /** the value of each put of the write stamp the watch brings (see EtcdStore) */
  readonly onStamp?: (value: Buffer) => void;
  /** a list or watch failure, counted like every etcd call */
  readonly onCall: (operation: string, seconds: number, ok: boolean) => void;
}

interface Waiter {
  readonly revision: number;
  readonly resolve: () => void;
}

/** The watch-fed copy of the prefix. `applied` is the revision the copy is at; -1 until the first list. */
export class WatchCache {
  entries = new OrderedEntries();
  applied = -1;
  /** why the copy is not following etcd now (for readiness); undefined while it is */
  problem: string | undefined = 'the etcd cache has not synced yet';
  private stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private waiters: Waiter[] = [];
  private closed = false;
  private running = false;
  private relistWanted = true;
  private backoff = RECONNECT_MIN_MS;
  private lastRestart = 0;
  private generation = 0;

  constructor(private readonly options: WatchCacheOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  close(): void {
    this.closed = true;
    this.stream?.cancel();
    this.stream = undefined;
  }

  /** Resolves once `applied` ≥ revision (never rejects; the caller times out). */
  reach(revision: number): Promise<void> {
    if (this.applied >= revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  /** Throws the list away and lists again (etcd was wiped or replaced: the copy is of another history). */
  relist(reason: string): void {
    this.options.logger.warn({ reason }, 'etcd cache: listing the prefix again');
    this.relistWanted = true;
    // no read may be answered from the old copy: it is of another history
    this.applied = -1;
    this.generation++;
    this.problem = `the etcd cache is listing again: ${reason}`;
    this.stream?.cancel();
  }

  /**
   * A read waited for a revision the watch did not bring in time: its member may be cut off from the
   * others (a partitioned member keeps the stream open but learns nothing). Reconnect, at most once
   * a second, so that the connection pool can pick another member.
   */
  nudge(): void {
    const now = Date.now();
    if (now - this.lastRestart < 1000 || !this.stream) return;
    this.lastRestart = now;
    this.options.logger.warn({ applied: this.applied }, 'etcd cache: the watch is behind the read barrier; reconnecting it');
    this.stream.cancel();
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      try {
        if (this.relistWanted) await this.list();
        await this.watch();
        this.backoff = RECONNECT_MIN_MS;
      } catch (error) {
        if (this.closed) return;
        const message = (error as Error).message;
        this.problem ??= `the etcd watch is broken: ${message}`;
        this.options.logger.debug({ err: message }, 'etcd cache: list or watch failed; trying again');
        await new Promise((r) => setTimeout(r, this.backoff));
        this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
      }
    }
  }

  /** Lists both ranges in pages at one revision and replaces the copy with what it finds. */
  private async list(): Promise<void> {
    const started = performance.now();
    const generation = this.generation;
    let revision = 0;
    // each key as it comes, without the rest of etcd's answer (a big prefix would hold it all twice)
    const rows: { key: string; value: Buffer; create: number; mod: number; n: number }[] = [];
    const orders = new Map<string, number>();
    try {
      for (const [prefix, sink] of [
        [
          this.options.kvPrefix,
          (kv: IKeyValue) => {
            const key = kv.key.subarray(this.options.kvPrefix.length).toString('utf8');
            // the write stamp (see EtcdStore) is not a user key
            if (key !== '') rows.push({ key, value: kv.value, create: Number(kv.create_revision), mod: Number(kv.mod_revision), n: 0 });
          },
        ],
        [this.options.ordPrefix, (kv: IKeyValue) => orders.set(kv.key.subarray(this.options.ordPrefix.length).toString('utf8'), Number(kv.value.toString('latin1')))],
      ] as const) {
        let from: Buffer = prefix;
        let limit = LIST_PAGE_KEYS;
        for (;;) {
          let response;
          try {
            response = await this.options.client.kv.range(
              { key: from, range_end: prefixEnd(prefix), limit, ...(revision > 0 ? { revision } : {}) },
              { deadline: Date.now() + this.options.timeoutMs },
            );
          } catch (error) {
            // one page larger than the client takes (values up to etcd's request limit each): smaller pages
            if (/RESOURCE_EXHAUSTED|larger than max/.test((error as Error).message) && limit > 1) {
              limit = Math.max(1, limit >> 2);
              continue;
            }
            throw error;
          }
          if (revision === 0) revision = Number(response.header.revision);
          this.options.onHeader(response.header.cluster_id, Number(response.header.revision), 'list');
          for (const kv of response.kvs) sink(kv);
          if (!response.more || response.kvs.length === 0) break;
          from = Buffer.concat([response.kvs[response.kvs.length - 1]!.key, Buffer.from([0])]);
        }
      }
    } catch (error) {
      this.options.onCall('list', (performance.now() - started) / 1000, false);
      throw error;
    }
    this.options.onCall('list', (performance.now() - started) / 1000, true);
    if (generation !== this.generation) throw new Error('asked to list again while listing');
    for (const r of rows) r.n = orders.get(r.key) ?? 0;
    orders.clear();
    rows.sort((a, b) => (a.create === b.create ? a.n - b.n : a.create - b.create));
    const entries = new OrderedEntries();
    for (const r of rows) entries.set(r.key, r.value.toString('utf8'), r.mod);
    this.entries = entries;
    this.generation++;
    this.relistWanted = false;
    this.advance(revision, true);
    this.options.logger.info({ keys: entries.size, revision }, 'etcd cache listed the prefix');
  }

  /** Watches from applied+1 until the stream breaks (resolves) or cannot be opened (throws). */
  private async watch(): Promise<void> {
    const stream = await this.options.client.watchClient.watch();
    if (this.closed || this.relistWanted) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    const generation = this.generation;
    await new Promise<void>((resolve) => {
      let done = false;
      const finish = (reason: string | undefined) => {
        if (done) return;
        done = true;
        if (reason !== undefined && !this.closed) this.problem = `the etcd watch is broken: ${reason}`;
        stream.cancel();
        if (this.stream === stream) this.stream = undefined;
        resolve();
      };
      stream.on('data', (response: IWatchResponse) => {
        if (generation !== this.generation) return finish(undefined);
        this.options.onHeader(response.header.cluster_id, Number(response.header.revision), 'watch');
        if (response.compact_revision !== undefined && response.compact_revision !== '0') {
          this.relistWanted = true;
          this.options.logger.warn({ applied: this.applied, compacted: response.compact_revision }, 'etcd cache: the watched revision was compacted; listing again');
          return finish('compacted');
        }
        if (response.canceled) return finish(`canceled: ${response.cancel_reason}`);
        if (response.created) {
          this.problem = undefined;
          return;
        }
        this.apply(response);
      });
      stream.on('error', (error: Error) => finish(error.message));
      stream.on('end', () => finish('the stream ended'));
      stream.write({ create_request: { key: this.options.kvPrefix, range_end: prefixEnd(this.options.kvPrefix), start_revision: this.applied + 1 } });
    });
  }

  private apply(response: IWatchResponse): void {
    let last = this.applied;
    for (const event of response.events) {
      const key = event.kv.key.subarray(this.options.kvPrefix.length).toString('utf8');
      last = Math.max(last, Number(event.kv.mod_revision));
      if (key === '') {
        if (event.type !== 'Delete') this.options.onStamp?.(event.kv.value); // the write stamp
        continue;
      }
      if (event.type === 'Delete') this.entries.delete(key);
      else this.entries.set(key, event.kv.value.toString('utf8'), Number(event.kv.mod_revision));
    }
    this.advance(last, false);
  }

  private advance(revision: number, reset: boolean): void {
    if (!reset && revision <= this.applied) return;
    this.applied = revision;
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.revision <= revision) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}
