// The in-memory store, indexed for size: a key → entry map for lookups, and the entries in insertion
// order, grouped into blocks. Each block keeps its entries rendered as one buffer of UTF-8
// `\nkey:value` lines; a block is rendered again only when one of its entries changes. So:
//   listing()   O(blocks), and unchanged blocks are the very same buffers in every listing (a GET
//               never renders the whole store, listings of different revisions share memory, and a
//               socket takes a block as it is: no encoding, no copy, no garbage per listing)
//   get(key)    one map lookup
//   page(...)   finds `after` through the map and walks forward from it: O(limit), never O(position)
//   writes      O(pairs), plus the re-render of the blocks they touched (bounded by the block size)
//
// A deleted entry stays in its block, dead, as long as its key is remembered as a cursor (`graves`,
// key → id, oldest delete first): a page whose `after` was deleted since continues from that place
// (store.ts, PageRequest.after). The last REMEMBERED_CURSORS deletes are remembered, whatever the
// store's size; then the oldest grave's id is freed and its slot dropped at the block's next render.
//
// An entry is a small integer id, not an object: the map holds key → id, and typed arrays hold each
// id's place (block, slot), its value's offsets and its version — a million entries are a million keys for the
// garbage collector to trace, not three million objects. A value lives in exactly one place: inside
// its block's rendered bytes (at its byte offsets, outside the JavaScript heap), or, between a write
// and the next render of its block, as the string (or bytes) given (in `pending`). A block's buffer is its own
// allocation, so it pins nothing else, and a read decodes a fresh string from it. Keys are kept as
// given: callers pass independent strings (the rules decode each key from its own bytes; a log replay
// parses fresh ones), never slices of a larger string.
//
// Versions (store.ts): `rev` counts the writes, one per accepted write, and every key a write sets gets
// the write's revision as its version (versionOf, by entry id).
//
// Expiry (store.ts): an entry's deadline is in `expiryOf` (performance.now() ms, 0 = none; monotonic, so
// a wall-clock jump does not move it), and every deadline set is pushed on a binary min-heap of
// (deadline, id). A heap item is current while `expiryOf[id]` still equals its deadline: a later write
// leaves the old item behind, stale, and it is skipped when it comes up (the heap is rebuilt when stale
// items outnumber the current ones). Reads compare the deadline with the clock, so an expired key is
// never read, swept or not. The sweeper is one unref'd timer for the earliest deadline; it takes the
// due keys in slices (at most `sweepSliceMs` of work each) and removes each slice as one write: a
// revision, deletions in `changes`. A write that finds a key expired but not yet swept first removes it
// so (the key's expiry is its own revision, as if the sweeper had been on time). Keys expire at random
// places in the insertion order, so each removal dirties a block, and the dirty-block bound re-renders
// them: that, not finding the due keys, is what the sweep costs. Deadlines cross to the
// wall clock (getVersioned's expiresAt, the restore* methods' wall-clock deadlines) with the offset
// between the two clocks at that moment: after a wall-clock jump, expiresAt names the new wall-clock
// time of the same monotonic deadline.
//
// The API the log store builds on (besides the Store contract):
//   new MemoryStore({ limits?, logger? })   limits default to defaultStoreLimits()
//   restore(pairs) / restoreDelete(key)     replay: applied without checks, each a write (a revision)
//   restoreDeletes(keys)                    replay of a delete record: one revision, whatever it removes
//   restoreVersioned(entries), raiseRevision(n)
//                                           replay of a snapshot: keys at their own versions, and the
//                                           counter where the snapshot was taken (no revision taken)
//   versionOf(key)                          a key's version, undefined = no such key (or expired)
//   restoreExpiring(entries)                replay of a SET with expiry: restore, with wall-clock deadlines
//   isDue(key, now?), dueKeys(max)          expired but not yet removed (the log store decides with them)
//   startSweeper()                          the sweeper starts only when called (the log store calls it
//                                           once its log is open), and hands due keys to `expire` if given
//   checkGrowth(addedKeys, addedBytes)      the store-limit check for a batch validated elsewhere;
//                                           returns the StoreFullError to throw (and logs it, at most
//                                           once a minute), or undefined
//   usage(), limits, size, list(), entries()
//   frozenPairs()                            every pair (and version) as of now, read later (compaction; async)
//   utf8Bytes(s)                             exported helper: UTF-8 length of a string

import { getHeapStatistics } from 'node:v8';
import { DEFAULT_SLICE_MS, TimeSlicer } from '../../common/time-slice.js';
import { ChangeFeed, DEFAULT_FEED_LIMITS, type ChangeFeedLimits } from './change-feed.js';
import type { Logger } from 'pino';
import {
  conditionHolds,
  CREATED,
  REMEMBERED_CURSORS,
  StoreFullError,
  UnknownCursorError,
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

/** A block is closed to appends at this many entries or rendered bytes (whichever comes first). */
const BLOCK_ENTRIES = 256;
const BLOCK_BYTES = 16 * 1024;
/** Changed blocks wait for the next listing, but no more than this many: then they are rendered. */
const MAX_DIRTY_BLOCKS = 64;
/** Entries one page may look at (prefix filtering): a page may come back short, with a `next`. */
const PAGE_SCAN_BUDGET = 10_000;
/** At most one "store full" warning per this many milliseconds. */
const FULL_WARNING_EVERY_MS = 60_000;

// Heap the store may take by default, as a share of the heap the process actually has, and what a key
// and a byte are charged there: the charges are upper bounds of the costs bench/memory.mjs measures
// (docs/store.md lists them). A key costs its map slot, its string header, its ids and offsets and its
// share of a block; a value's byte lives once in its block's buffer, outside the heap; a key's byte
// twice (its string in the map — two bytes per character beyond Latin-1 — and once in the block).
// Each limit alone may take a sixth of the heap at those charges, so both together stay under a third
// of `heap_size_limit` — which counts the young generation too: the rest is for connections, request
// bodies, answers in flight and the garbage collector's headroom.
const HEAP_SHARE_PER_LIMIT = 1 / 6;
export const HEAP_PER_KEY = 128;
export const HEAP_PER_DATA_BYTE = 3;

/** Limits derived from `v8.getHeapStatistics().heap_size_limit`: they can never exhaust the heap. */
export function defaultStoreLimits(heapSizeLimit = getHeapStatistics().heap_size_limit): StoreLimits {
  return {
    maxKeys: Math.max(1, Math.floor((heapSizeLimit * HEAP_SHARE_PER_LIMIT) / HEAP_PER_KEY)),
    maxDataBytes: Math.max(1, Math.floor((heapSizeLimit * HEAP_SHARE_PER_LIMIT) / HEAP_PER_DATA_BYTE)),
  };
}

/** Wall-clock ms minus performance.now() ms, now: a wall-clock jump changes it, a deadline it does not. */
function wallOffset(): number {
  return Date.now() - performance.now();
}

/** UTF-8 length of a string (its length when it is ASCII, which Buffer.byteLength finds fast). */
export function utf8Bytes(s: string): number {
  return s.length === 0 ? 0 : Buffer.byteLength(s, 'utf8');
}

interface Block {
  /** entry ids in insertion order, dead ones (graves) included; -1 = deleted (dropped at the next render) */
  ids: number[];
  live: number;
  /** dead entries kept for cursors: a block leaves the chain when it has neither live nor dead ones */
  graves: number;
  /** the live entries rendered as UTF-8, `\nkey:value` each; stale while `dirty` */
  wire: Buffer;
  /** UTF-8 bytes of the live entries rendered (kept current on every change) */
  bytes: number;
  dirty: boolean;
  prev: Block | undefined;
  next: Block | undefined;
}

const DELETED = -1;

/** A key, its value and its version, and its expiry in wall-clock ms if it has one. */
export type VersionedPair = readonly [key: string, value: string, version: number, expiresAt?: number];

/** A key, its value and its expiry in wall-clock ms. */
export type ExpiringPair = readonly [key: string, value: string, expiresAt: number];

/** The store's pairs at one moment, decoded as they are read (see MemoryStore.frozenPairs). */
export interface FrozenPairs extends Iterable<Pair> {
  readonly count: number;
  /** the store's revision at that moment */
  readonly revision: number;
  /** the same pairs, each with its version */
  versioned(): Iterable<VersionedPair>;
}
const EMPTY = Buffer.alloc(0);

export interface MemoryStoreOptions {
  readonly limits?: StoreLimits;
  /** where the "store full" warning goes */
  readonly logger?: Logger;
  /** the bounds of its watch history (`changes`) */
  readonly feedLimits?: ChangeFeedLimits | undefined;
  /**
   * Who removes expired keys: given, the sweeper hands it each slice of due keys and waits for it (the
   * log store writes them to its log, then removes them with restoreDeletes); absent, the memory store
   * removes them itself, as one write per slice.
   */
  readonly expire?: ((keys: string[]) => Promise<void>) | undefined;
  /** the longest the sweeper holds the event loop at a time */
  readonly sweepSliceMs?: number;
}

/** Keys one sweep slice takes at most (its write is one record in the log store). */
const SWEEP_MAX_KEYS = 1000;
/** Blocks one sweep slice may newly dirty (their re-render is the slice's main cost). */
const SWEEP_MAX_BLOCKS = 4 * MAX_DIRTY_BLOCKS;
/** The sweeper checks the clock once per this many keys. */
const SWEEP_CLOCK_EVERY = 64;
/** After a failed removal (the log could not be written), the sweeper tries again this much later. */
const SWEEP_RETRY_MS = 1000;
/** The heap is rebuilt when it holds more than twice the current deadlines, plus this. */
const HEAP_SLACK = 1024;

export class MemoryStore implements Store {
  readonly kind: string = 'memory';
  readonly limits: StoreLimits;
  /**
   * The writes made through the Store methods (createAll … deleteKey); the restore* methods used by
   * the log's replay and the etcd copy record nothing (those stores keep their own feeds).
   */
  readonly changes: ChangeFeed;
  private readonly logger: Logger | undefined;
  /** key → entry id */
  private readonly map = new Map<string, number>();
  // per entry id: its key, block, index in the block, value byte offsets in the block's buffer, UTF-8 bytes
  // of key plus value, version; ids of deleted entries are reused
  private keyOf: (string | undefined)[] = [];
  private blockOf: (Block | undefined)[] = [];
  private slotOf = new Int32Array(1024);
  private startOf = new Int32Array(1024);
  private endOf = new Int32Array(1024);
  private bytesOf = new Int32Array(1024);
  /** a revision may pass 2^32 in a long-lived store: doubles hold it exactly */
  private versionAt = new Float64Array(1024);
  /** 1 = the entry was deleted and is kept only as a cursor's place (a grave) */
  private deadOf = new Uint8Array(1024);
  /** deleted keys still remembered as cursors, key → dead entry id */
  private readonly graves = new Map<string, number>();
  /**
   * The graves in the order of their deletes, oldest first from `graveHead` (an item whose key has a
   * newer grave or none is stale and skipped): trimming the oldest is O(1), where walking the map
   * from its start would step over every entry deleted from it since it last rehashed.
   */
  private graveKeys: string[] = [];
  private graveIds: number[] = [];
  private graveHead = 0;
  private freeIds: number[] = [];
  private nextId = 0;
  /** values written since their block was last rendered, by entry id (bytes: see restoreBytes) */
  private readonly pending = new Map<number, string | Buffer>();
  private head: Block | undefined;
  private tail: Block | undefined;
  private dirtyBlocks: Block[] = [];
  private dataBytes = 0;
  private rev = 0;
  private snapshot: { revision: number; listing: ListingSnapshot } | undefined;
  private lastFullWarning = -Infinity;
  /** per entry id: its deadline, performance.now() ms; 0 = none */
  private expiryOf = new Float64Array(1024);
  /** entries with a deadline */
  private expiring = 0;
  /** the min-heap of deadlines: heapAt[i] is due at heapDeadline[i] (stale items included) */
  private heapDeadline = new Float64Array(64);
  private heapAt = new Int32Array(64);
  private heapSize = 0;
  private readonly expireHook: ((keys: string[]) => Promise<void>) | undefined;
  private readonly sweepSliceMs: number;
  private sweeperOn: boolean;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepTimerAt = Infinity;
  private sweeping = false;
  /** keys the sweeper took off the heap and gave to the expire hook, until it has removed them */
  private readonly handedOff = new Set<string>();
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.limits = options.limits ?? defaultStoreLimits();
    this.logger = options.logger;
    this.changes = new ChangeFeed(options.feedLimits ?? DEFAULT_FEED_LIMITS, options.logger);
    this.expireHook = options.expire;
    this.sweepSliceMs = options.sweepSliceMs ?? DEFAULT_SLICE_MS;
    // a store with its own sweeper starts it at once; one whose removals go to a log waits for the log
    this.sweeperOn = options.expire === undefined;
  }

  get revision(): number {
    return this.rev;
  }

  /** Keys with an expiry (expired ones not yet removed included). */
  get expiringKeys(): number {
    return this.expiring;
  }

  get size(): number {
    return this.map.size;
  }

  usage(): StoreUsage {
    return { keys: this.map.size, dataBytes: this.dataBytes };
  }

  /** Whether the store holds more than its limits allow (loaded from disk past them): then it only shrinks. */
  overLimits(): string | undefined {
    if (this.map.size > this.limits.maxKeys) return `TCPKV_MAX_KEYS=${this.limits.maxKeys}`;
    if (this.dataBytes > this.limits.maxDataBytes) return `TCPKV_MAX_DATA_BYTES=${this.limits.maxDataBytes}`;
    return undefined;
  }

  /**
   * The limit check for a write adding `addedKeys` keys and `addedBytes` bytes (either may be negative)
   * to what the store holds now. A write that does not grow a measure never fails on it, so a store
   * over its limits still takes deletes and shrinking updates.
   */
  checkGrowth(addedKeys: number, addedBytes: number): StoreFullError | undefined {
    let limit: string | undefined;
    if (addedKeys > 0 && this.map.size + addedKeys > this.limits.maxKeys) limit = `TCPKV_MAX_KEYS=${this.limits.maxKeys}`;
    else if (addedBytes > 0 && this.dataBytes + addedBytes > this.limits.maxDataBytes) limit = `TCPKV_MAX_DATA_BYTES=${this.limits.maxDataBytes}`;
    if (limit === undefined) return undefined;
    const now = Date.now();
    if (now - this.lastFullWarning >= FULL_WARNING_EVERY_MS) {
      this.lastFullWarning = now;
      this.logger?.warn({ limit, keys: this.map.size, dataBytes: this.dataBytes, addedKeys, addedBytes }, 'limit hit: storage is full; writes that grow the store answer 507 (logged at most once a minute)');
    }
    return new StoreFullError(limit);
  }

  // ---- reads ------------------------------------------------------------------------------------

  get(key: string): string | undefined {
    const id = this.liveId(key);
    return id === undefined ? undefined : this.valueAt(id);
  }

  getVersioned(key: string): Versioned | undefined {
    const id = this.liveId(key);
    if (id === undefined) return undefined;
    const deadline = this.expiryOf[id]!;
    if (deadline === 0) return { value: this.valueAt(id), version: this.versionAt[id]! };
    return { value: this.valueAt(id), version: this.versionAt[id]!, expiresAt: Math.round(deadline + wallOffset()) };
  }

  /** A key's version; undefined = no such key (or it has expired). */
  versionOf(key: string): number | undefined {
    const id = this.liveId(key);
    return id === undefined ? undefined : this.versionAt[id];
  }

  /** A key's value if the store holds it, expired or not (the log store's size estimate). */
  heldValue(key: string): string | undefined {
    const id = this.map.get(key);
    return id === undefined ? undefined : this.valueAt(id);
  }

  /** UTF-8 bytes of a key plus its value if the store holds it, expired or not; else 0. */
  heldBytes(key: string): number {
    const id = this.map.get(key);
    return id === undefined ? 0 : this.bytesOf[id]!;
  }

  /** A key's expiry in wall-clock ms; undefined = none (or no such key). */
  expiresAtOf(key: string): number | undefined {
    const id = this.liveId(key);
    return id === undefined || this.expiryOf[id] === 0 ? undefined : Math.round(this.expiryOf[id]! + wallOffset());
  }

  /** The key's entry id, unless it is absent or expired. */
  private liveId(key: string, now?: number): number | undefined {
    const id = this.map.get(key);
    if (id === undefined) return undefined;
    const deadline = this.expiryOf[id]!;
    return deadline !== 0 && deadline <= (now ?? performance.now()) ? undefined : id;
  }

  /** Whether the key is held but expired (not yet removed). */
  isDue(key: string, now = performance.now()): boolean {
    const id = this.map.get(key);
    if (id === undefined) return false;
    const deadline = this.expiryOf[id]!;
    return deadline !== 0 && deadline <= now;
  }

  /** Up to `max` keys held but expired, earliest first (without removing them or their heap items). */
  dueKeys(max: number, now = performance.now()): string[] {
    const keys: string[] = [];
    // a walk of the heap down to the first items not due
    const stack = this.heapSize > 0 ? [0] : [];
    const seen = new Set<number>();
    while (stack.length > 0 && keys.length < max) {
      const i = stack.pop()!;
      const deadline = this.heapDeadline[i]!;
      if (deadline > now) continue;
      const id = this.heapAt[i]!;
      if (this.expiryOf[id] === deadline && !seen.has(id)) {
        seen.add(id);
        keys.push(this.keyOf[id]!);
      }
      if (2 * i + 1 < this.heapSize) stack.push(2 * i + 1);
      if (2 * i + 2 < this.heapSize) stack.push(2 * i + 2);
    }
    return keys;
  }

  private valueAt(id: number): string {
    const block = this.blockOf[id]!;
    if (block.dirty) {
      const pending = this.pending.get(id);
      if (pending !== undefined) return typeof pending === 'string' ? pending : pending.toString('utf8');
    }
    return block.wire.toString('utf8', this.startOf[id], this.endOf[id]);
  }

  listing(): ListingSnapshot {
    const now = performance.now();
    // keys expired but not yet swept (on the heap, or handed to the expire hook and not yet removed)
    // are cut out of their blocks' text for this listing alone
    const due = this.heapSize > 0 && this.heapDeadline[0]! <= now ? this.dueKeys(Infinity, now) : [];
    if (this.handedOff.size > 0) {
      const onHeap = new Set(due);
      for (const key of this.handedOff) if (this.isDue(key, now) && !onHeap.has(key)) due.push(key);
    }
    const cached = this.snapshot;
    if (due.length === 0 && cached !== undefined && cached.revision === this.rev) return cached.listing;
    this.renderDirty();
    const hidden = new Map<Block, number[]>();
    for (const key of due) {
      const id = this.map.get(key)!;
      const block = this.blockOf[id]!;
      const ids = hidden.get(block);
      if (ids === undefined) hidden.set(block, [id]);
      else ids.push(id);
    }
    const slices: Buffer[] = [];
    let bytes = 0;
    for (let b = this.head; b !== undefined; b = b.next) {
      if (b.live === 0) continue;
      const cut = hidden.get(b);
      const wire = cut === undefined ? b.wire : this.wireWithout(b, cut);
      if (wire.length === 0) continue;
      slices.push(wire);
      bytes += wire.length;
    }
    const listing: ListingSnapshot = { count: this.map.size - due.length, slices, bytes };
    if (due.length === 0) this.snapshot = { revision: this.rev, listing };
    return listing;
  }

  /** A rendered block's text without the lines of `ids` (each line runs from its `\n` to its value's end). */
  private wireWithout(block: Block, ids: number[]): Buffer {
    const cuts = ids.map((id) => [this.startOf[id]! - utf8Bytes(this.keyOf[id]!) - 2, this.endOf[id]!] as const).sort((a, b) => a[0] - b[0]);
    const parts: Buffer[] = [];
    let at = 0;
    for (const [start, end] of cuts) {
      if (start > at) parts.push(block.wire.subarray(at, start));
      at = end;
    }
    if (at < block.wire.length) parts.push(block.wire.subarray(at));
    return Buffer.concat(parts);
  }

  page(request: PageRequest): Page {
    const items: Pair[] = [];
    const versions: number[] = [];
    let block: Block | undefined;
    let slot: number;
    if (request.after === undefined) {
      block = this.head;
      slot = 0;
    } else {
      // a cursor key deleted since: the walk goes on from the place it had
      const from = this.map.get(request.after) ?? this.graves.get(request.after);
      if (from === undefined) throw new UnknownCursorError(request.after);
      block = this.blockOf[from];
      slot = this.slotOf[from]! + 1;
    }
    const prefix = request.prefix;
    const now = performance.now();
    let scanned = 0;
    let lastScanned = '';
    for (; block !== undefined; block = block.next, slot = 0) {
      const ids = block.ids;
      for (; slot < ids.length; slot++) {
        const id = ids[slot]!;
        if (id === DELETED || this.deadOf[id] === 1) continue;
        const deadline = this.expiryOf[id]!;
        if (deadline !== 0 && deadline <= now) continue;
        const key = this.keyOf[id]!;
        // out of budget: a short page whose cursor is the last key looked at, matching or not
        if (scanned === PAGE_SCAN_BUDGET) return { items, versions, next: lastScanned };
        scanned++;
        if (prefix !== '' && !key.startsWith(prefix)) {
          lastScanned = key;
          continue;
        }
        // a full page, and another matching entry follows it
        if (items.length === request.limit) return { items, versions, next: items[items.length - 1]![0] };
        items.push([key, this.valueAt(id)]);
        versions.push(this.versionAt[id]!);
        lastScanned = key;
      }
    }
    return { items, versions, next: undefined };
  }

  /** Every pair in insertion order, as an array (tests and tools; compaction uses frozenPairs). */
  list(): Pair[] {
    return Array.from(this.entries());
  }

  /**
   * Every pair as of now, in insertion order, to be read later (the log's compaction writes it while
   * writes go on). Taking it renders the changed blocks and keeps, per block, its buffer (never
   * changed once rendered: a later change renders a new one) with its keys and value offsets — no
   * value is decoded until the pairs are read. Copying a million keys' places still takes a tenth of a
   * second or more, so it gives the event loop back every `sliceMs`: the caller must keep writes out
   * until it resolves (the log store holds its write chain), or the copy would mix two moments.
   */
  async frozenPairs(sliceMs = DEFAULT_SLICE_MS): Promise<FrozenPairs> {
    this.renderDirty();
    const blocks: { wire: Buffer; keys: string[]; offsets: Int32Array; versions: Float64Array; expiries: Float64Array | undefined }[] = [];
    const offset = wallOffset();
    let count = 0;
    const revision = this.rev;
    const slicer = new TimeSlicer(sliceMs);
    for (let b = this.head; b !== undefined; b = b.next) {
      if (b.live === 0) continue;
      const keys: string[] = [];
      const offsets = new Int32Array(b.live * 2);
      const versions = new Float64Array(b.live);
      let expiries: Float64Array | undefined;
      for (const id of b.ids) {
        if (id === DELETED || this.deadOf[id] === 1) continue;
        if (this.expiryOf[id] !== 0) (expiries ??= new Float64Array(b.live))[keys.length] = Math.round(this.expiryOf[id]! + offset);
        versions[keys.length] = this.versionAt[id]!;
        offsets[keys.length * 2] = this.startOf[id]!;
        offsets[keys.length * 2 + 1] = this.endOf[id]!;
        keys.push(this.keyOf[id]!);
      }
      blocks.push({ wire: b.wire, keys, offsets, versions, expiries });
      count += keys.length;
      await slicer.pause();
    }
    return {
      count,
      revision,
      *[Symbol.iterator]() {
        for (const { wire, keys, offsets } of blocks) {
          for (let i = 0; i < keys.length; i++) yield [keys[i]!, wire.toString('utf8', offsets[i * 2], offsets[i * 2 + 1])] as const;
        }
      },
      *versioned() {
        for (const { wire, keys, offsets, versions, expiries } of blocks) {
          for (let i = 0; i < keys.length; i++) {
            const value = wire.toString('utf8', offsets[i * 2], offsets[i * 2 + 1]);
            const expiresAt = expiries === undefined ? 0 : expiries[i]!;
            yield expiresAt === 0 ? ([keys[i]!, value, versions[i]!] as const) : ([keys[i]!, value, versions[i]!, expiresAt] as const);
          }
        }
      },
    };
  }

  /** Every pair in insertion order, lazily. */
  *entries(): IterableIterator<Pair> {
    for (let b = this.head; b !== undefined; b = b.next) {
      for (const id of b.ids) if (id !== DELETED && this.deadOf[id] === 0 && !this.expiredAt(id, performance.now())) yield [this.keyOf[id]!, this.valueAt(id)];
    }
  }

  private expiredAt(id: number, now: number): boolean {
    const deadline = this.expiryOf[id]!;
    return deadline !== 0 && deadline <= now;
  }

  // ---- writes -----------------------------------------------------------------------------------

  createAll(pairs: readonly Pair[]): CreateResult {
    this.expireFirst(pairs.map(([key]) => key));
    let bytes = 0;
    // a key given twice counts as existing (store.ts): its second pair finds the first
    const seen = pairs.length > 1 ? new Set<string>() : undefined;
    for (const [key, value] of pairs) {
      if (this.map.has(key) || seen?.has(key) === true) return { ok: false, existingKey: key };
      seen?.add(key);
      bytes += utf8Bytes(key) + utf8Bytes(value);
    }
    const full = this.checkGrowth(pairs.length, bytes);
    if (full !== undefined) throw full;
    const version = this.rev + 1;
    for (const [key, value] of pairs) this.append(key, value, version);
    this.changed();
    this.changes.record(this.rev, pairs);
    return CREATED;
  }

  upsertAll(pairs: readonly Pair[]): UpsertResult {
    this.expireFirst(pairs.map(([key]) => key));
    const previous: (string | undefined)[] = new Array<string | undefined>(pairs.length);
    let addedKeys = 0;
    let addedBytes = 0;
    // a key given twice (store.ts): counted once, by the bytes of its last value
    const within = pairs.length > 1 ? new Map<string, string>() : undefined;
    for (let i = 0; i < pairs.length; i++) {
      const [key, value] = pairs[i]!;
      const id = this.map.get(key);
      const valueBytes = utf8Bytes(value);
      const old = id === undefined ? undefined : this.valueAt(id);
      previous[i] = old;
      const before = within?.has(key) === true ? within.get(key) : old;
      within?.set(key, value);
      if (before === undefined) {
        addedKeys++;
        addedBytes += utf8Bytes(key) + valueBytes;
      } else {
        addedBytes += valueBytes - utf8Bytes(before);
      }
    }
    const full = this.checkGrowth(addedKeys, addedBytes);
    if (full !== undefined) throw full;
    this.restore(pairs);
    // a key given twice changed once, to its last value
    this.changes.record(this.rev, within === undefined ? pairs : [...within]);
    return { previous };
  }

  delete(key: string): boolean {
    this.expireFirst([key]);
    const had = this.remove(key);
    if (had) {
      this.changed();
      this.changes.record(this.rev, [[key, undefined]]);
    }
    return had;
  }

  putKey(key: string, value: string, condition: Condition, ttlMs?: number): KeyPutResult {
    this.expireFirst([key]);
    const id = this.map.get(key);
    const current = id === undefined ? undefined : this.versionAt[id];
    if (!conditionHolds(condition, current)) return { ok: false, current };
    const valueBytes = utf8Bytes(value);
    const full = id === undefined ? this.checkGrowth(1, utf8Bytes(key) + valueBytes) : this.checkGrowth(0, valueBytes - utf8Bytes(this.valueAt(id)));
    if (full !== undefined) throw full;
    const version = this.rev + 1;
    const deadline = ttlMs === undefined ? 0 : performance.now() + ttlMs;
    if (id === undefined) this.append(key, value, version, deadline);
    else this.replace(id, value, version, deadline);
    this.changed();
    this.changes.record(version, [[key, value]]);
    return { ok: true, version, created: id === undefined };
  }

  deleteKey(key: string, condition: Condition): KeyDeleteResult {
    this.expireFirst([key]);
    const current = this.versionOf(key);
    if (current === undefined || !conditionHolds(condition, current)) return { ok: false, current };
    this.remove(key);
    this.changed();
    this.changes.record(this.rev, [[key, undefined]]);
    return { ok: true, version: this.rev };
  }

  /**
   * Applies a batch without the checks (one write, one revision): used to replay a log whose records
   * were checked when written. Values may be strings or their UTF-8 bytes (see restoreBytes).
   */
  restore(pairs: readonly (readonly [key: string, value: string | Buffer])[]): void {
    const version = this.rev + 1;
    for (const [key, value] of pairs) {
      const id = this.map.get(key);
      if (id === undefined) this.append(key, value, version);
      else this.replace(id, value, version);
    }
    this.changed();
  }

  /** As restore, each key with its expiry in wall-clock ms (replay of a SET with expiry): one revision. */
  restoreExpiring(entries: readonly ExpiringPair[]): void {
    const version = this.rev + 1;
    for (const [key, value, expiresAt] of entries) {
      const id = this.map.get(key);
      const deadline = this.deadlineOf(expiresAt);
      if (id === undefined) this.append(key, value, version, deadline);
      else this.replace(id, value, version, deadline);
    }
    this.changed();
  }

  /**
   * Sets pairs at the versions they carry, taking no revision (replay of a snapshot, whose revision
   * raiseRevision gives); the counter is raised to the highest version, so it never falls behind one.
   */
  restoreVersioned(entries: readonly VersionedPair[]): void {
    for (const [key, value, version, expiresAt] of entries) {
      const id = this.map.get(key);
      const deadline = expiresAt === undefined ? 0 : this.deadlineOf(expiresAt);
      if (id === undefined) this.append(key, value, version, deadline);
      else this.replace(id, value, version, deadline);
      if (version > this.rev) this.rev = version;
    }
    // no revision taken, but what a listing shows changed
    this.snapshot = undefined;
    if (this.dirtyBlocks.length > MAX_DIRTY_BLOCKS) this.renderDirty();
  }

  /** Raises the revision counter to `revision` (never lowers it): the next write takes revision + 1. */
  raiseRevision(revision: number): void {
    if (revision > this.rev) this.rev = revision;
  }

  /**
   * As restore, with each value as its UTF-8 bytes (a copy built from bytes never makes a string of
   * them). The buffers are read until their blocks are rendered: they must not change before.
   */
  restoreBytes(pairs: readonly (readonly [key: string, value: Buffer])[]): void {
    this.restore(pairs);
  }

  /** Removes a key without the checks (replay of a delete); a revision only if it was there. */
  restoreDelete(key: string): boolean {
    const had = this.remove(key);
    if (had) this.changed();
    return had;
  }

  /**
   * Removes keys without the checks, as one write that takes one revision whether or not any key was
   * there (a log's delete record: replay numbers records, it does not look at what they find).
   */
  restoreDeletes(keys: readonly string[]): void {
    for (const key of keys) this.remove(key);
    this.changed();
  }

  /** Removes these keys as one write of expiry: a revision, deletions in `changes` (none: no write). */
  private expireNow(keys: readonly string[]): void {
    const removed: [string, undefined][] = [];
    for (const key of keys) if (this.remove(key)) removed.push([key, undefined]);
    if (removed.length === 0) return;
    this.changed();
    this.changes.record(this.rev, removed);
  }

  /** Before a write: its keys that expired but were not swept yet are removed first, as their own write. */
  private expireFirst(keys: readonly string[]): void {
    if (this.expiring === 0) return;
    const now = performance.now();
    let due: string[] | undefined;
    for (const key of keys) if (this.isDue(key, now)) (due ??= []).push(key);
    if (due !== undefined) this.expireNow(due);
  }

  /** A wall-clock deadline on this store's clock (a past one is due at once). */
  private deadlineOf(expiresAt: number): number {
    // never 0 (that means "none"): a deadline long past is still a deadline
    return Math.max(Number.MIN_VALUE, expiresAt - wallOffset());
  }

  /** Starts the sweeper (a store built with `expire` waits for this). */
  startSweeper(): void {
    this.sweeperOn = true;
    this.scheduleSweep();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  // ---- expiry ---------------------------------------------------------------------------------

  /** Gives entry `id` the deadline (0 = none) and, if it has one, puts it on the heap. */
  private setExpiry(id: number, deadline: number): void {
    const old = this.expiryOf[id]!;
    if (old === deadline) return;
    if (old === 0) this.expiring++;
    else if (deadline === 0) this.expiring--;
    this.expiryOf[id] = deadline;
    if (deadline === 0) return;
    if (this.heapSize > 2 * this.expiring + HEAP_SLACK) this.rebuildHeap();
    this.heapPush(deadline, id);
    if (deadline < this.sweepTimerAt) this.scheduleSweep();
  }

  private heapPush(deadline: number, id: number): void {
    if (this.heapSize === this.heapAt.length) {
      const d = new Float64Array(this.heapAt.length * 2);
      d.set(this.heapDeadline);
      this.heapDeadline = d;
      const a = new Int32Array(this.heapAt.length * 2);
      a.set(this.heapAt);
      this.heapAt = a;
    }
    let i = this.heapSize++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.heapDeadline[parent]! <= deadline) break;
      this.heapDeadline[i] = this.heapDeadline[parent]!;
      this.heapAt[i] = this.heapAt[parent]!;
      i = parent;
    }
    this.heapDeadline[i] = deadline;
    this.heapAt[i] = id;
  }

  /** Drops the heap's first item. */
  private heapPop(): void {
    const last = --this.heapSize;
    if (last === 0) return;
    const deadline = this.heapDeadline[last]!;
    const id = this.heapAt[last]!;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.heapDeadline[child + 1]! < this.heapDeadline[child]!) child++;
      if (this.heapDeadline[child]! >= deadline) break;
      this.heapDeadline[i] = this.heapDeadline[child]!;
      this.heapAt[i] = this.heapAt[child]!;
      i = child;
    }
    this.heapDeadline[i] = deadline;
    this.heapAt[i] = id;
  }

  /** The heap again from the current deadlines alone (stale items dropped). */
  private rebuildHeap(): void {
    this.heapSize = 0;
    for (let id = 0; id < this.nextId; id++) {
      const deadline = this.expiryOf[id]!;
      if (deadline !== 0) this.heapPush(deadline, id);
    }
  }

  /** One timer, for the earliest deadline (unref'd: expiry alone does not keep a process up). */
  private scheduleSweep(delayMs?: number): void {
    if (!this.sweeperOn || this.closed || this.sweeping) return;
    // stale items at the top would only wake the timer for nothing
    while (this.heapSize > 0 && this.expiryOf[this.heapAt[0]!] !== this.heapDeadline[0]) this.heapPop();
    const at = delayMs !== undefined ? performance.now() + delayMs : this.heapSize > 0 ? this.heapDeadline[0]! : Infinity;
    if (at >= this.sweepTimerAt) return;
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepTimerAt = at;
    if (at === Infinity) {
      this.sweepTimer = undefined;
      return;
    }
    this.sweepTimer = setTimeout(() => void this.sweep(), Math.max(0, Math.ceil(at - performance.now())));
    this.sweepTimer.unref();
  }

  /** Removes the due keys, a slice at a time, each slice one write; then waits for the next deadline. */
  private async sweep(): Promise<void> {
    this.sweepTimer = undefined;
    this.sweepTimerAt = Infinity;
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    let retryMs: number | undefined;
    try {
      for (;;) {
        const keys = this.takeDue();
        if (keys.length === 0) break;
        if (this.expireHook === undefined) this.expireNow(keys);
        else {
          // off the heap until the hook removes them: listings find them here meanwhile
          for (const key of keys) this.handedOff.add(key);
          try {
            await this.expireHook(keys);
          } catch (error) {
            // the log could not take them: they stay hidden, and go back on the heap for a retry
            for (const key of keys) {
              const id = this.map.get(key);
              if (id !== undefined && this.expiryOf[id] !== 0) this.heapPush(this.expiryOf[id]!, id);
            }
            if (!this.closed) this.logger?.warn({ keys: keys.length, err: (error as Error).message }, 'expired keys could not be removed yet; retrying');
            retryMs = SWEEP_RETRY_MS;
            break;
          } finally {
            for (const key of keys) this.handedOff.delete(key);
          }
        }
        if (this.closed) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.sweeping = false;
      this.scheduleSweep(retryMs);
    }
  }

  /** Pops due heap items for at most one slice: the keys they name that are still due. */
  private takeDue(): string[] {
    const started = performance.now();
    let now = started;
    const keys: string[] = [];
    // removing a key re-renders its block: a slice stops at SWEEP_MAX_BLOCKS blocks it would newly
    // dirty, or in a large store keys expiring at random places would make a slice re-render as many
    // blocks as it takes keys
    const touched = new Set<Block>();
    let n = 0;
    while (this.heapSize > 0 && this.heapDeadline[0]! <= now && keys.length < SWEEP_MAX_KEYS && touched.size < SWEEP_MAX_BLOCKS) {
      const deadline = this.heapDeadline[0]!;
      const id = this.heapAt[0]!;
      this.heapPop();
      if (this.expiryOf[id] === deadline) {
        keys.push(this.keyOf[id]!);
        const block = this.blockOf[id]!;
        if (!block.dirty) touched.add(block);
      }
      if (++n % SWEEP_CLOCK_EVERY === 0) {
        now = performance.now();
        if (now - started >= this.sweepSliceMs) break;
      }
    }
    return keys;
  }

  // ---- the blocks -------------------------------------------------------------------------------

  private changed(): void {
    this.rev++;
    if (this.dirtyBlocks.length > MAX_DIRTY_BLOCKS) this.renderDirty();
  }

  private newId(): number {
    if (this.freeIds.length > 0) return this.freeIds.pop()!;
    const id = this.nextId++;
    if (id === this.slotOf.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.slotOf = grow(this.slotOf);
      this.startOf = grow(this.startOf);
      this.endOf = grow(this.endOf);
      this.bytesOf = grow(this.bytesOf);
      const versions = new Float64Array(this.versionAt.length * 2);
      versions.set(this.versionAt);
      this.versionAt = versions;
      const expiries = new Float64Array(this.expiryOf.length * 2);
      expiries.set(this.expiryOf);
      this.expiryOf = expiries;
      const dead = new Uint8Array(this.deadOf.length * 2);
      dead.set(this.deadOf);
      this.deadOf = dead;
    }
    return id;
  }

  private append(key: string, value: string | Buffer, version: number, deadline = 0): void {
    // a key created again is a new entry at the end: its old place is no cursor's any more (store.ts)
    const grave = this.graves.get(key);
    if (grave !== undefined) this.forget(key, grave);
    const bytes = utf8Bytes(key) + (typeof value === 'string' ? utf8Bytes(value) : value.length);
    let block = this.tail;
    if (block === undefined || block.ids.length >= BLOCK_ENTRIES || (block.bytes >= BLOCK_BYTES && block.ids.length > 0)) {
      block = { ids: [], live: 0, graves: 0, wire: EMPTY, bytes: 0, dirty: false, prev: this.tail, next: undefined };
      if (this.tail === undefined) this.head = block;
      else this.tail.next = block;
      this.tail = block;
    }
    const id = this.newId();
    this.keyOf[id] = key;
    this.blockOf[id] = block;
    this.slotOf[id] = block.ids.length;
    this.bytesOf[id] = bytes;
    this.versionAt[id] = version;
    this.pending.set(id, value);
    block.ids.push(id);
    block.live++;
    block.bytes += bytes + 2;
    this.map.set(key, id);
    this.dataBytes += bytes;
    this.setExpiry(id, deadline);
    this.markDirty(block);
  }

  private replace(id: number, value: string | Buffer, version: number, deadline = 0): void {
    const bytes = utf8Bytes(this.keyOf[id]!) + (typeof value === 'string' ? utf8Bytes(value) : value.length);
    const block = this.blockOf[id]!;
    this.versionAt[id] = version;
    this.setExpiry(id, deadline);
    this.pending.set(id, value);
    block.bytes += bytes - this.bytesOf[id]!;
    this.dataBytes += bytes - this.bytesOf[id]!;
    this.bytesOf[id] = bytes;
    this.markDirty(block);
  }

  private remove(key: string): boolean {
    const id = this.map.get(key);
    if (id === undefined) return false;
    this.map.delete(key);
    const block = this.blockOf[id]!;
    const bytes = this.bytesOf[id]!;
    // the entry stays in its block, dead, as the place of a cursor naming it
    this.deadOf[id] = 1;
    this.setExpiry(id, 0);
    this.graves.set(key, id);
    block.graves++;
    block.live--;
    block.bytes -= bytes + 2;
    this.dataBytes -= bytes;
    this.pending.delete(id);
    if (block.live > 0) this.markDirty(block);
    this.graveKeys.push(key);
    this.graveIds.push(id);
    this.trimGraves();
    return true;
  }

  /** Forgets the oldest graves beyond REMEMBERED_CURSORS; drops the queue's stale items now and then. */
  private trimGraves(): void {
    while (this.graves.size > REMEMBERED_CURSORS) {
      const key = this.graveKeys[this.graveHead]!;
      const id = this.graveIds[this.graveHead]!;
      this.graveHead++;
      if (this.graves.get(key) === id) this.forget(key, id);
    }
    const queued = this.graveKeys.length - this.graveHead;
    if (this.graveHead > 4096 && this.graveHead > queued) {
      this.graveKeys = this.graveKeys.slice(this.graveHead);
      this.graveIds = this.graveIds.slice(this.graveHead);
      this.graveHead = 0;
    } else if (queued > 2 * this.graves.size + 4096) {
      // keys deleted and created again leave stale items the trim never reaches while graves are few
      const keys: string[] = [];
      const ids: number[] = [];
      for (let i = this.graveHead; i < this.graveKeys.length; i++) {
        if (this.graves.get(this.graveKeys[i]!) === this.graveIds[i]) {
          keys.push(this.graveKeys[i]!);
          ids.push(this.graveIds[i]!);
        }
      }
      this.graveKeys = keys;
      this.graveIds = ids;
      this.graveHead = 0;
    }
  }

  /** Frees a grave: its id is reused, its slot dropped at the block's next render (or with the block). */
  private forget(key: string, id: number): void {
    this.graves.delete(key);
    const block = this.blockOf[id]!;
    block.ids[this.slotOf[id]!] = DELETED;
    block.graves--;
    this.deadOf[id] = 0;
    this.keyOf[id] = undefined;
    this.blockOf[id] = undefined;
    this.freeIds.push(id);
    if (block.live === 0 && block.graves === 0) this.unlink(block);
  }

  /** An empty block leaves the chain (its text may still be in a listing someone is sending). */
  private unlink(block: Block): void {
    if (block.prev === undefined) this.head = block.next;
    else block.prev.next = block.next;
    if (block.next === undefined) this.tail = block.prev;
    else block.next.prev = block.prev;
    block.ids = [];
    block.wire = EMPTY;
    block.bytes = 0;
  }

  private markDirty(block: Block): void {
    if (block.dirty) return;
    block.dirty = true;
    this.dirtyBlocks.push(block);
  }

  private renderDirty(): void {
    const dirty = this.dirtyBlocks;
    this.dirtyBlocks = [];
    for (const block of dirty) {
      block.dirty = false;
      if (block.live > 0) this.render(block);
    }
  }

  /** Renders a block's live entries into one new buffer of its own and drops its deleted slots. */
  private render(block: Block): void {
    const buf = Buffer.allocUnsafeSlow(block.bytes); // not from the shared pool: it would pin a slab
    const old = block.wire;
    const kept: number[] = [];
    let pos = 0;
    for (const id of block.ids) {
      if (id === DELETED) continue;
      if (this.deadOf[id] === 1) {
        // a grave keeps its place in the order, and writes nothing
        this.slotOf[id] = kept.length;
        kept.push(id);
        continue;
      }
      buf[pos++] = 0x0a;
      pos += buf.write(this.keyOf[id]!, pos, 'utf8');
      buf[pos++] = 0x3a;
      const start = pos;
      const value = this.pending.get(id);
      if (value === undefined) pos += old.copy(buf, pos, this.startOf[id], this.endOf[id]);
      else {
        this.pending.delete(id);
        pos += typeof value === 'string' ? buf.write(value, pos, 'utf8') : value.copy(buf, pos);
      }
      this.startOf[id] = start;
      this.endOf[id] = pos;
      this.slotOf[id] = kept.length;
      kept.push(id);
    }
    block.ids = kept;
    block.wire = buf;
  }
}
