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
// The API the log store builds on (besides the Store contract):
//   new MemoryStore({ limits?, logger? })   limits default to defaultStoreLimits()
//   restore(pairs) / restoreDelete(key)     replay: applied without checks, each a write (a revision)
//   restoreDeletes(keys)                    replay of a delete record: one revision, whatever it removes
//   restoreVersioned(entries), raiseRevision(n)
//                                           replay of a snapshot: keys at their own versions, and the
//                                           counter where the snapshot was taken (no revision taken)
//   versionOf(key)                          a key's version, undefined = no such key
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

/** A key, its value and its version. */
export type VersionedPair = readonly [key: string, value: string, version: number];

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
}

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
  /** deleted keys still remembered as cursors, key → dead entry id, oldest delete first */
  private readonly graves = new Map<string, number>();
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

  constructor(options: MemoryStoreOptions = {}) {
    this.limits = options.limits ?? defaultStoreLimits();
    this.logger = options.logger;
    this.changes = new ChangeFeed(options.feedLimits ?? DEFAULT_FEED_LIMITS, options.logger);
  }

  get revision(): number {
    return this.rev;
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
    const id = this.map.get(key);
    return id === undefined ? undefined : this.valueAt(id);
  }

  getVersioned(key: string): Versioned | undefined {
    const id = this.map.get(key);
    return id === undefined ? undefined : { value: this.valueAt(id), version: this.versionAt[id]! };
  }

  /** A key's version; undefined = no such key. */
  versionOf(key: string): number | undefined {
    const id = this.map.get(key);
    return id === undefined ? undefined : this.versionAt[id];
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
    const cached = this.snapshot;
    if (cached !== undefined && cached.revision === this.rev) return cached.listing;
    this.renderDirty();
    const slices: Buffer[] = [];
    let bytes = 0;
    for (let b = this.head; b !== undefined; b = b.next) {
      if (b.live === 0) continue;
      slices.push(b.wire);
      bytes += b.wire.length;
    }
    const listing: ListingSnapshot = { count: this.map.size, slices, bytes };
    this.snapshot = { revision: this.rev, listing };
    return listing;
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
    let scanned = 0;
    let lastScanned = '';
    for (; block !== undefined; block = block.next, slot = 0) {
      const ids = block.ids;
      for (; slot < ids.length; slot++) {
        const id = ids[slot]!;
        if (id === DELETED || this.deadOf[id] === 1) continue;
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
    const blocks: { wire: Buffer; keys: string[]; offsets: Int32Array; versions: Float64Array }[] = [];
    let count = 0;
    const revision = this.rev;
    const slicer = new TimeSlicer(sliceMs);
    for (let b = this.head; b !== undefined; b = b.next) {
      if (b.live === 0) continue;
      const keys: string[] = [];
      const offsets = new Int32Array(b.live * 2);
      const versions = new Float64Array(b.live);
      for (const id of b.ids) {
        if (id === DELETED || this.deadOf[id] === 1) continue;
        versions[keys.length] = this.versionAt[id]!;
        offsets[keys.length * 2] = this.startOf[id]!;
        offsets[keys.length * 2 + 1] = this.endOf[id]!;
        keys.push(this.keyOf[id]!);
      }
      blocks.push({ wire: b.wire, keys, offsets, versions });
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
        for (const { wire, keys, offsets, versions } of blocks) {
          for (let i = 0; i < keys.length; i++) yield [keys[i]!, wire.toString('utf8', offsets[i * 2], offsets[i * 2 + 1]), versions[i]!] as const;
        }
      },
    };
  }

  /** Every pair in insertion order, lazily. */
  *entries(): IterableIterator<Pair> {
    for (let b = this.head; b !== undefined; b = b.next) {
      for (const id of b.ids) if (id !== DELETED && this.deadOf[id] === 0) yield [this.keyOf[id]!, this.valueAt(id)];
    }
  }

  // ---- writes -----------------------------------------------------------------------------------

  createAll(pairs: readonly Pair[]): CreateResult {
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
    const had = this.remove(key);
    if (had) {
      this.changed();
      this.changes.record(this.rev, [[key, undefined]]);
    }
    return had;
  }

  putKey(key: string, value: string, condition: Condition): KeyPutResult {
    const id = this.map.get(key);
    const current = id === undefined ? undefined : this.versionAt[id];
    if (!conditionHolds(condition, current)) return { ok: false, current };
    const valueBytes = utf8Bytes(value);
    const full = id === undefined ? this.checkGrowth(1, utf8Bytes(key) + valueBytes) : this.checkGrowth(0, valueBytes - utf8Bytes(this.valueAt(id)));
    if (full !== undefined) throw full;
    const version = this.rev + 1;
    if (id === undefined) this.append(key, value, version);
    else this.replace(id, value, version);
    this.changed();
    this.changes.record(version, [[key, value]]);
    return { ok: true, version, created: id === undefined };
  }

  deleteKey(key: string, condition: Condition): KeyDeleteResult {
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

  /**
   * Sets pairs at the versions they carry, taking no revision (replay of a snapshot, whose revision
   * raiseRevision gives); the counter is raised to the highest version, so it never falls behind one.
   */
  restoreVersioned(entries: readonly VersionedPair[]): void {
    for (const [key, value, version] of entries) {
      const id = this.map.get(key);
      if (id === undefined) this.append(key, value, version);
      else this.replace(id, value, version);
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

  async close(): Promise<void> {}

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
      const dead = new Uint8Array(this.deadOf.length * 2);
      dead.set(this.deadOf);
      this.deadOf = dead;
    }
    return id;
  }

  private append(key: string, value: string | Buffer, version: number): void {
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
    this.markDirty(block);
  }

  private replace(id: number, value: string | Buffer, version: number): void {
    const bytes = utf8Bytes(this.keyOf[id]!) + (typeof value === 'string' ? utf8Bytes(value) : value.length);
    const block = this.blockOf[id]!;
    this.versionAt[id] = version;
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
    this.graves.set(key, id);
    block.graves++;
    block.live--;
    block.bytes -= bytes + 2;
    this.dataBytes -= bytes;
    this.pending.delete(id);
    if (block.live > 0) this.markDirty(block);
    const keep = REMEMBERED_CURSORS;
    if (this.graves.size > keep) {
      for (const [oldKey, oldId] of this.graves) {
        this.forget(oldKey, oldId);
        if (this.graves.size <= keep) break;
      }
    }
    return true;
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
