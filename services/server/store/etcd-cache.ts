// The etcd store's read side: a copy of the prefix in this replica's memory, fed by an etcd watch
// (list-then-watch, as Kubernetes' apiserver does). Reads are answered from here once the copy has
// applied the revision a read barrier asks for (see etcd-store.ts); this file only keeps the copy
// and says how far it has got.
//
//   sync    list <prefix>kv/ and <prefix>ord/ in pages, all at one revision R (never the whole prefix
//           in one gRPC answer: the client caps answers, see maxEtcdAnswerBytes), order the keys, then
//           watch <prefix>kv/ from R+1. Pages are sized by bytes, as large as the client safely takes:
//           etcd 3.4 walks its index over the whole rest of the range for every page, whatever its
//           limit, so a big prefix listed in small pages costs pages × keys. Events arrive in revision order and a revision's events in one answer, so each
//           answer is applied whole and `applied` moves to its last event's revision.
//   resume  a broken watch reconnects from applied+1, once a read of the write stamp at `applied`
//           finds what the copy holds (the stamp's value is unique per write): etcd restored from an
//           old backup or wiped gives another stamp there, or no such revision, and the copy lists
//           again; so does a watch whose start was compacted away, or a cluster id that changed.
//           Until that check, the copy answers no read.
//   size    the watch asks etcd to split answers over its --max-request-bytes into fragments (a
//           catch-up after a pause would otherwise come as one answer of any size); fragments of
//           one answer are applied together.
//
// Insertion order: a key created later has a larger create revision, so a watch PUT of a new key
// appends; keys created in one transaction arrive in the transaction's order. The initial list sorts
// by (create revision, the n stored in ord/).

import type { Etcd3, IEvent, IKeyValue, IWatchResponse, IDuplexStream, IWatchRequest } from 'etcd3';
import type { Logger } from 'pino';
import { TimeSlicer } from '../../common/time-slice.js';
import type { ChangeFeed } from './change-feed.js';
import { leaseEnd } from './etcd-leases.js';
import { MemoryStore } from './memory-store.js';
import type { ListingSnapshot, Page, PageRequest, Pair, StoreUsage } from './store.js';

/** Keys of the first range request of a list; the next pages are sized by the bytes the first one brought. */
const LIST_FIRST_PAGE_KEYS = 1000;
/** Keys per range request, at most (keys of a few bytes would otherwise make one page a huge count of objects). */
const LIST_PAGE_MAX_KEYS = 50_000;
/** A list page aims at this share of the largest answer the client takes (keys differ in size). */
const LIST_PAGE_SHARE = 0.5;
/** Bytes of an etcd KeyValue in an answer besides its key and value (revisions, version, framing). */
const KV_OVERHEAD_BYTES = 32;
/** Without a configured receive limit: gRPC's default one. */
const DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024;
/** Pairs put into the copy at once while it is built from a list (a batch's values are strings until rendered). */
const BUILD_BATCH = 4096;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;
/** A watch that lasted this long without failing counts as healthy: the next reconnect is not delayed. */
const WATCH_HEALTHY_AFTER_MS = 10_000;
/** A watch failure (e.g. an answer over the receive limit) is logged at warn level at most this often. */
const WATCH_FAILURE_LOG_EVERY_MS = 10_000;

/** Watch streams this side ended: their end is no sign of a restarted member. */
const stoppedHere = new WeakSet<IDuplexStream<IWatchRequest, IWatchResponse>>();

/**
 * Ends a watch stream from this side. etcd3 counts an error on a stream that is still writable as a
 * failure of its member (and resets its connection); the cancellation a stop causes is no such
 * failure, so the writing side is ended first.
 */
function stopStream(stream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined): void {
  if (stream === undefined) return;
  stoppedHere.add(stream);
  stream.end();
  stream.cancel();
}

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
 * Besides, each key's etcd mod revision: its version, which PUT compares.
 */
export class OrderedEntries {
  private readonly store = new MemoryStore({ limits: { maxKeys: Number.MAX_SAFE_INTEGER, maxDataBytes: Number.MAX_SAFE_INTEGER } });
  private readonly modRevisions = new Map<string, number>();
  /** keys put with a tcpkv lease: when it ends (wall-clock ms, read from the lease id: etcd-leases.ts) */
  private readonly expiries = new Map<string, number>();
  /** the same keys by the end of their lease: the copy hides them from then on (see dropExpired) */
  private readonly byEnd = new Map<number, Set<string>>();
  /** the earliest end in byEnd (Infinity: none) */
  private earliestEnd = Infinity;

  get size(): number {
    return this.store.size;
  }

  /** The key as the copy holds it, unless its lease has ended by `now` (etcd's DELETE may not be here yet). */
  get(key: string, now = Date.now()): { readonly value: string; readonly modRevision: number; readonly expiresAt?: number } | undefined {
    const modRevision = this.modRevisions.get(key);
    if (modRevision === undefined) return undefined;
    const expiresAt = this.expiries.get(key);
    if (expiresAt === undefined) return { value: this.store.get(key)!, modRevision };
    if (expiresAt <= now) return undefined;
    return { value: this.store.get(key)!, modRevision, expiresAt };
  }

  /** `expiresAt`: the end of the key's lease (undefined: no lease, or one tcpkv did not grant). */
  set(key: string, value: string, modRevision: number, expiresAt?: number): void {
    this.store.restore([[key, value]]);
    this.modRevisions.set(key, modRevision);
    this.setExpiry(key, expiresAt);
  }

  private setExpiry(key: string, expiresAt: number | undefined): void {
    const was = this.expiries.get(key);
    if (was === expiresAt) return;
    if (was !== undefined) {
      const keys = this.byEnd.get(was);
      keys?.delete(key);
      if (keys?.size === 0) this.byEnd.delete(was);
      this.expiries.delete(key);
    }
    if (expiresAt === undefined) return;
    this.expiries.set(key, expiresAt);
    let keys = this.byEnd.get(expiresAt);
    if (keys === undefined) this.byEnd.set(expiresAt, (keys = new Set()));
    keys.add(key);
    if (expiresAt < this.earliestEnd) this.earliestEnd = expiresAt;
  }

  /**
   * Removes from the copy every key whose lease has ended by `now`, before a listing or a page: etcd
   * deletes them too, and the copy records that DELETE (in the feed) when the watch brings it. The
   * keys of one lease go together, as etcd deletes them.
   */
  dropExpired(now = Date.now()): number {
    if (now < this.earliestEnd) return 0;
    let dropped = 0;
    let earliest = Infinity;
    for (const [end, keys] of this.byEnd) {
      if (end > now) {
        if (end < earliest) earliest = end;
        continue;
      }
      for (const key of keys) {
        this.modRevisions.delete(key);
        this.expiries.delete(key);
        this.store.restoreDelete(key);
        dropped++;
      }
      this.byEnd.delete(end);
    }
    this.earliestEnd = earliest;
    return dropped;
  }

  /**
   * A copy of `count` entries, in this order, from `entry(i)`: put in batches, as bytes (the store
   * renders the blocks they filled as it goes, and the rest at the end: the copy keeps no view of the
   * buffers given), giving the event loop back between slices (TimeSlicer).
   */
  static async build(count: number, entry: (i: number) => readonly [key: string, value: Buffer, modRevision: number, expiresAt?: number]): Promise<OrderedEntries> {
    const entries = new OrderedEntries();
    const slicer = new TimeSlicer();
    for (let from = 0; from < count; from += BUILD_BATCH) {
      const batch: [string, Buffer][] = [];
      for (let i = from; i < Math.min(count, from + BUILD_BATCH); i++) {
        const [key, value, modRevision, expiresAt] = entry(i);
        batch.push([key, value]);
        entries.modRevisions.set(key, modRevision);
        if (expiresAt !== undefined) entries.setExpiry(key, expiresAt);
      }
      entries.store.restoreBytes(batch);
      await slicer.pause();
    }
    entries.store.listing();
    return entries;
  }

  delete(key: string): boolean {
    this.modRevisions.delete(key);
    this.setExpiry(key, undefined);
    return this.store.restoreDelete(key);
  }

  usage(): StoreUsage {
    return this.store.usage();
  }

  /** Shared by every listing until the next change; after one, only the changed blocks are new. */
  listing(): ListingSnapshot {
    this.dropExpired();
    return this.store.listing();
  }

  pairs(): Pair[] {
    this.dropExpired();
    return this.store.list();
  }

  /** Pages as the memory store's: `after` found through the map (see docs/store.md); versions are the mod revisions. */
  page(request: PageRequest): Page {
    this.dropExpired();
    const { items, next } = this.store.page(request);
    return { items, versions: items.map(([key]) => this.modRevisions.get(key)!), next };
  }
}

export interface WatchCacheOptions {
  readonly client: Etcd3;
  /** where each applied revision's changes go (watches); reset at every list */
  readonly changes?: ChangeFeed;
  /** <prefix>kv/ and <prefix>ord/ */
  readonly kvPrefix: Buffer;
  readonly ordPrefix: Buffer;
  /** deadline of each list call */
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** the largest answer the client takes (for the message when one is larger) */
  readonly maxResponseBytes?: number;
  /** every answer's cluster id and revision, for the wiped-etcd check (see EtcdStore) */
  readonly onHeader: (clusterId: string, revision: number, source: string) => void;
  /** the value and revision of each put of the write stamp the watch brings (see EtcdStore) */
  readonly onStamp?: (value: Buffer, revision: number) => void;
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
  /** changes with every list and every relist: a barrier compares it to tell whether the copy was replaced meanwhile */
  generation = 0;
  /** the write stamp (the empty key) as of `applied`, or undefined while it does not exist */
  private stamp: { readonly modRevision: number; readonly value: Buffer } | undefined;
  /**
   * The copy may answer reads: it was just listed, or its watch was checked to continue the history
   * it was made from. False from the moment a watch breaks until the next one passed that check.
   */
  private following = false;
  /** listed since the last watch began: the next watch starts where the list stopped, without a check */
  private listedFresh = false;
  /** a relist for another history is under way (it is logged once) */
  private historyRelistPending = false;
  private lastWatchFailureLog = -Infinity;
  /** ends the wait before the next list or watch attempt early (see wake) */
  private wakeUp: (() => void) | undefined;

  constructor(private readonly options: WatchCacheOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  close(): void {
    this.closed = true;
    stopStream(this.stream);
    this.stream = undefined;
  }

  /** Whether a read that needs `revision` can be answered from the copy now. */
  serves(revision: number): boolean {
    return this.following && this.applied >= revision;
  }

  /** Resolves once the copy serves `revision` (never rejects; the caller times out). */
  reach(revision: number): Promise<void> {
    if (this.serves(revision)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  /**
   * A stamp that etcd answered (a barrier's) against the copy's: the same mod revision with another
   * value can only come from another history.
   */
  stampMatches(modRevision: number, value: Buffer): boolean {
    return this.stamp === undefined || this.stamp.modRevision !== modRevision || this.stamp.value.equals(value);
  }

  /**
   * etcd holds another history than the copy was made from (restored from an old backup, or wiped
   * and started again): logged once at error level, however many checks notice it, and listed again.
   */
  historyChanged(reason: string, details: Record<string, unknown>): void {
    if (this.historyRelistPending) {
      this.options.logger.debug({ ...details, reason }, 'etcd cache: another history noticed again; already listing');
    } else {
      this.options.logger.error(
        { ...details, reason },
        'etcd holds another history than this replica had read (restored from an old backup, or wiped and recreated): tcpkv data written before may be gone; listing it again',
      );
    }
    this.historyRelistPending = true;
    this.relist(reason);
  }

  /** Throws the list away and lists again (etcd was wiped or replaced: the copy is of another history). */
  relist(reason: string): void {
    this.options.logger.warn({ reason }, 'etcd cache: listing the prefix again');
    this.relistWanted = true;
    // no read may be answered from the old copy: it is of another history
    this.applied = -1;
    this.following = false;
    this.stamp = undefined;
    this.generation++;
    this.problem = `the etcd cache is listing again: ${reason}`;
    stopStream(this.stream);
  }

  /**
   * A read barrier was answered while the watch is down: etcd answers again, so the next attempt
   * need not wait out its backoff.
   */
  wake(): void {
    this.wakeUp?.();
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
    stopStream(this.stream);
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      // only a wait after etcd could not be reached is cut short by a read (see wake): a watch that
      // etcd opened and that then broke would break again as soon
      let unreachable = false;
      try {
        if (this.relistWanted) await this.list();
        if (await this.watch()) {
          this.backoff = RECONNECT_MIN_MS;
          continue;
        }
      } catch (error) {
        if (this.closed) return;
        const message = (error as Error).message;
        this.problem ??= `the etcd watch is broken: ${message}`;
        this.options.logger.debug({ err: message }, 'etcd cache: list or watch failed; trying again');
        unreachable = true;
      }
      // a watch that broke before it brought anything waits before the next, as a failed list does
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.backoff);
        if (!unreachable) return;
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
      this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
    }
  }

  /** A broken watch: at debug level, and at warn level once in a while (an answer too large for the client: which setting). */
  private noteWatchFailure(reason: string): void {
    const tooLarge = /RESOURCE_EXHAUSTED|larger than max/.test(reason);
    const now = Date.now();
    if (tooLarge && now - this.lastWatchFailureLog >= WATCH_FAILURE_LOG_EVERY_MS) {
      this.lastWatchFailureLog = now;
      this.options.logger.warn(
        { err: reason, maxResponseBytes: this.options.maxResponseBytes },
        "etcd cache: an etcd watch answer is larger than this replica takes; set TCPKV_ETCD_MAX_REQUEST_BYTES to etcd's --max-request-bytes",
      );
    } else {
      this.options.logger.debug({ err: reason, applied: this.applied }, 'etcd cache: the watch broke; reconnecting');
    }
  }

  /**
   * Whether etcd still holds the history the copy was made from: the write stamp at revision `at`
   * (what the copy applied last) must be the one the copy holds. A revision etcd does not have yet
   * (it went back) or another stamp there (its value is unique per write) is another history.
   */
  private async checkHistory(at: number): Promise<boolean> {
    const started = performance.now();
    let response;
    try {
      response = await this.options.client.kv.range({ key: this.options.kvPrefix, revision: at }, { deadline: Date.now() + this.options.timeoutMs });
    } catch (error) {
      const message = (error as Error).message;
      this.options.onCall('history-check', (performance.now() - started) / 1000, /future revision|compacted/.test(message));
      if (/future revision/.test(message)) {
        this.historyChanged(`etcd went back in revisions: it has no revision ${at}, which this copy had applied`, { applied: at });
        return false;
      }
      if (/compacted/.test(message)) {
        this.relistWanted = true;
        this.options.logger.warn({ applied: at }, 'etcd cache: the revision the copy is at was compacted; listing again');
        return false;
      }
      throw error;
    }
    this.options.onCall('history-check', (performance.now() - started) / 1000, true);
    this.options.onHeader(response.header.cluster_id, Number(response.header.revision), 'history-check');
    const kv = response.kvs[0];
    const same = kv === undefined ? this.stamp === undefined : this.stamp !== undefined && Number(kv.mod_revision) === this.stamp.modRevision && kv.value.equals(this.stamp.value);
    if (same) return true;
    this.historyChanged(`the write stamp at revision ${at} is not the one this copy applied`, {
      applied: at,
      copyStampRevision: this.stamp?.modRevision,
      etcdStampRevision: kv === undefined ? undefined : Number(kv.mod_revision),
    });
    return false;
  }

  /** Lists both ranges in pages at one revision and replaces the copy with what it finds. */
  private async list(): Promise<void> {
    const started = performance.now();
    const generation = this.generation;
    let revision = 0;
    // each key as it comes, without the rest of etcd's answer (a big prefix would hold it all twice);
    // a value stays where it is in its page's answer (the page's buffer, an offset and a length: no
    // object per value) until the copy renders it into its blocks
    const keys: string[] = [];
    const pages: Buffer[] = [];
    const pageOf: number[] = [];
    const starts: number[] = [];
    const lengths: number[] = [];
    const creates: number[] = [];
    const mods: number[] = [];
    /** the lease end of each key put with a tcpkv lease, by its place in `keys` */
    const ends = new Map<number, number>();
    const orders = new Map<string, number>();
    let stamp: { modRevision: number; value: Buffer } | undefined;
    const pageBytes = (this.options.maxResponseBytes ?? DEFAULT_RECEIVE_BYTES) * LIST_PAGE_SHARE;
    try {
      for (const [prefix, sink] of [
        [
          this.options.kvPrefix,
          (kv: IKeyValue) => {
            const key = kv.key.toString('utf8', this.options.kvPrefix.length);
            // the write stamp (see EtcdStore) is not a user key; kept for the history check (a copy:
            // the decoded value is a view of the whole answer)
            if (key === '') {
              stamp = { modRevision: Number(kv.mod_revision), value: Buffer.from(kv.value) };
              return;
            }
            const value = kv.value;
            const page = pages[pages.length - 1];
            if (page === undefined || page.buffer !== value.buffer) pages.push(Buffer.from(value.buffer));
            keys.push(key);
            pageOf.push(pages.length - 1);
            starts.push(value.byteOffset);
            lengths.push(value.length);
            creates.push(Number(kv.create_revision));
            mods.push(Number(kv.mod_revision));
            const end = leaseEnd(kv.lease);
            if (end !== undefined) ends.set(keys.length - 1, end);
          },
        ],
        [this.options.ordPrefix, (kv: IKeyValue) => orders.set(kv.key.toString('utf8', this.options.ordPrefix.length), Number(kv.value.toString('latin1')))],
      ] as const) {
        let from: Buffer = prefix;
        let limit = LIST_FIRST_PAGE_KEYS;
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
          let bytes = 0;
          for (const kv of response.kvs) {
            bytes += kv.key.length + kv.value.length + KV_OVERHEAD_BYTES;
            sink(kv);
          }
          if (!response.more || response.kvs.length === 0) break;
          from = Buffer.concat([response.kvs[response.kvs.length - 1]!.key, Buffer.from([0])]);
          // the next page as large as the client safely takes, judged by this one's keys
          limit = Math.max(1, Math.min(LIST_PAGE_MAX_KEYS, Math.floor((pageBytes * response.kvs.length) / bytes)));
        }
      }
    } catch (error) {
      this.options.onCall('list', (performance.now() - started) / 1000, false);
      throw error;
    }
    this.options.onCall('list', (performance.now() - started) / 1000, true);
    if (generation !== this.generation) throw new Error('asked to list again while listing');
    // insertion order: create revision, then the place in its transaction
    const count = keys.length;
    const places = new Float64Array(count);
    let ordered = true;
    for (let i = 0; i < count; i++) {
      places[i] = orders.get(keys[i]!) ?? 0;
      if (i > 0 && (creates[i]! < creates[i - 1]! || (creates[i] === creates[i - 1] && places[i]! < places[i - 1]!))) ordered = false;
    }
    orders.clear();
    const order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
    if (!ordered) order.sort((a, b) => creates[a]! - creates[b]! || places[a]! - places[b]!);
    const entries = await OrderedEntries.build(count, (i) => {
      const at = order[i]!;
      const start = starts[at]!;
      return [keys[at]!, pages[pageOf[at]!]!.subarray(start, start + lengths[at]!), mods[at]!, ends.get(at)];
    });
    if (generation !== this.generation || this.closed) throw new Error('asked to list again while listing');
    this.entries = entries;
    this.stamp = stamp;
    this.generation++;
    this.relistWanted = false;
    this.historyRelistPending = false;
    this.listedFresh = true;
    this.following = true;
    // the history starts again here: a watcher from before the list is told to list too
    this.options.changes?.reset(revision);
    this.advance(revision, true);
    this.options.logger.info({ keys: entries.size, revision, ms: Math.round(performance.now() - started) }, 'etcd cache listed the prefix');
  }

  /**
   * Watches from applied+1 until the stream breaks or cannot be opened (throws). Resolves true if the
   * watch brought something, lasted, or a list is wanted next; false if it broke at once (the caller
   * waits before the next).
   */
  private async watch(): Promise<boolean> {
    const stream = await this.options.client.watchClient.watch();
    if (this.closed || this.relistWanted) {
      stopStream(stream);
      return true;
    }
    this.stream = stream;
    const generation = this.generation;
    // resuming after a break (not right after a list): the history is checked before anything is applied
    const from = this.applied;
    let checked = this.listedFresh;
    this.listedFresh = false;
    const openedAt = Date.now();
    let progressed = false;
    return new Promise<boolean>((resolve) => {
      let done = false;
      /** answers that came before the check, applied after it */
      const held: IWatchResponse[] = [];
      /** the events of an answer etcd split into fragments, until its last fragment */
      let fragments: IEvent[] = [];
      const finish = (reason: string | undefined) => {
        if (done) return;
        done = true;
        // a stream that broke may have been to a member since restored from a backup: no read is
        // answered until the next one has checked the history; one this side stopped (nudge) was not
        if (!stoppedHere.has(stream)) this.following = false;
        if (reason !== undefined && !this.closed) {
          this.problem = `the etcd watch is broken: ${reason}`;
          this.noteWatchFailure(reason);
        }
        stopStream(stream);
        if (this.stream === stream) this.stream = undefined;
        resolve(progressed || this.relistWanted || Date.now() - openedAt >= WATCH_HEALTHY_AFTER_MS);
      };
      const follow = () => {
        this.following = true;
        this.problem = undefined;
        for (const response of held.splice(0)) this.apply(response);
        this.advance(this.applied, true);
      };
      stream.on('data', (response: IWatchResponse) => {
        if (done) return;
        if (generation !== this.generation) return finish(undefined);
        this.options.onHeader(response.header.cluster_id, Number(response.header.revision), 'watch');
        if (response.compact_revision !== undefined && response.compact_revision !== '0') {
          this.relistWanted = true;
          this.options.logger.warn({ applied: this.applied, compacted: response.compact_revision }, 'etcd cache: the watched revision was compacted; listing again');
          return finish('compacted');
        }
        if (response.canceled) return finish(`canceled: ${response.cancel_reason}`);
        if (response.created) {
          if (checked) return follow();
          // after `created`: a restore or wipe before it is seen by the check, one after it breaks this stream
          this.checkHistory(from).then(
            (same) => {
              if (done || generation !== this.generation) return;
              if (!same) return finish(undefined);
              checked = true;
              follow();
            },
            (error: unknown) => finish(`checking etcd's history: ${(error as Error).message}`),
          );
          return;
        }
        if (response.fragment) {
          fragments.push(...response.events);
          return;
        }
        const whole = fragments.length === 0 ? response : { ...response, events: [...fragments, ...response.events] };
        fragments = [];
        progressed = true;
        if (checked) this.apply(whole);
        else held.push(whole);
      });
      stream.on('error', (error: Error) => finish(error.message));
      stream.on('end', () => finish('the stream ended'));
      stream.write({ create_request: { key: this.options.kvPrefix, range_end: prefixEnd(this.options.kvPrefix), start_revision: from + 1, fragment: true } });
    });
  }

  private apply(response: IWatchResponse): void {
    let last = this.applied;
    // one etcd revision is one write: its changes go to the feed together
    const feed = this.options.changes;
    let group: [string, string | undefined][] = [];
    let groupRevision = -1;
    const closeGroup = () => {
      if (feed !== undefined && groupRevision > feed.revision) {
        if (group.length > 0) feed.record(groupRevision, group);
        else feed.advance(groupRevision);
      }
      group = [];
    };
    for (const event of response.events) {
      const key = event.kv.key.subarray(this.options.kvPrefix.length).toString('utf8');
      const revision = Number(event.kv.mod_revision);
      if (revision !== groupRevision) {
        closeGroup();
        groupRevision = revision;
      }
      last = Math.max(last, revision);
      if (key === '') {
        // the write stamp: kept for the history check
        // (a copy: the decoded value may be a view of the whole answer)
        this.stamp = event.type === 'Delete' ? undefined : { modRevision: Number(event.kv.mod_revision), value: Buffer.from(event.kv.value) };
        if (event.type !== 'Delete') this.options.onStamp?.(event.kv.value, Number(event.kv.mod_revision)); // this replica's NOSPACE check
        continue;
      }
      if (event.type === 'Delete') {
        this.entries.delete(key);
        group.push([key, undefined]);
      } else {
        const value = event.kv.value.toString('utf8');
        this.entries.set(key, value, revision, leaseEnd(event.kv.lease));
        group.push([key, value]);
      }
    }
    closeGroup();
    this.advance(last, false);
  }

  private advance(revision: number, reset: boolean): void {
    if (!reset && revision <= this.applied) return;
    this.applied = revision;
    if (this.waiters.length === 0 || !this.following) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.revision <= revision) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}
