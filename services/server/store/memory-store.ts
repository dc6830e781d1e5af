// The in-memory store, indexed for size: a key → entry map for lookups, and the entries in insertion
// order, grouped into blocks. Each block keeps its entries rendered as one flat string of
// `\nkey:value` lines and the UTF-8 byte count of it; a block is rendered again only when one of its
// entries changes. So:
//   listing()   O(blocks), and unchanged blocks are the very same strings in every listing (a GET
//               never renders the whole store, and listings of different revisions share memory)
//   get(key)    one map lookup
//   page(...)   finds `after` through the map and walks forward from it: O(limit), never O(position)
//   writes      O(pairs), plus the re-render of the blocks they touched (bounded by the block size)
//
// A value lives in exactly one place: inside its block's rendered string (entries keep its offsets),
// or, between a write and the next render of its block, as the string given. Rendering goes through a
// byte buffer, so block strings are always fresh flat strings that pin nothing else. Keys are kept as
// given: callers pass independent strings (the rules decode each key from its own bytes; a log replay
// parses fresh ones), never slices of a larger string.
//
// The API the log store builds on (besides the Store contract):
//   new MemoryStore({ limits?, logger? })   limits default to defaultStoreLimits()
//   restore(pairs) / restoreDelete(key)     replay: applied without checks
//   checkGrowth(addedKeys, addedBytes)      the store-limit check for a batch validated elsewhere;
//                                           returns the StoreFullError to throw (and logs it, at most
//                                           once a minute), or undefined
//   usage(), limits, size, list(), entries()
//   utf8Bytes(s)                             exported helper: UTF-8 length of a string

import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import { StoreFullError, type CreateResult, type ListingSnapshot, type Page, type PageRequest, type Pair, type Store, type StoreLimits, type StoreUsage, type UpsertResult } from './store.js';

const CREATED: CreateResult = Object.freeze({ ok: true });

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
// and a byte cost there (measured on Node 24 by bench/memory.mjs and docs/store.md's table):
//   per key   145–160 B of heap besides its bytes (map slot, entry object, key string header, its
//             share of a block)
//   per byte  1 B for a value's byte, 2 B for a key's (held in the map and in its block's text); text
//             with a character beyond Latin-1 is UTF-16 in V8, so an ASCII byte in such a block takes
//             2 B: at worst 3 B per byte
// Each limit alone may take a quarter of the heap, with margin on both costs, so both together stay
// under half of it: the rest is for connections, request bodies, answers in flight and the garbage
// collector's headroom.
const HEAP_SHARE_PER_LIMIT = 0.25;
export const HEAP_PER_KEY = 200;
export const HEAP_PER_DATA_BYTE = 4;

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

interface Entry {
  readonly key: string;
  block: Block;
  /** index in block.entries */
  slot: number;
  /** the value until its block is rendered; then undefined and the value is text[start, end) */
  pending: string | undefined;
  start: number;
  end: number;
  /** UTF-8 bytes of key plus value */
  bytes: number;
}

interface Block {
  /** in insertion order; undefined = deleted (dropped at the next render) */
  entries: (Entry | undefined)[];
  live: number;
  /** the live entries rendered, `\nkey:value` each; stale while `dirty` */
  text: string;
  /** UTF-8 bytes of the live entries rendered (kept current on every change) */
  bytes: number;
  dirty: boolean;
  prev: Block | undefined;
  next: Block | undefined;
}

export interface MemoryStoreOptions {
  readonly limits?: StoreLimits;
  /** where the "store full" warning goes */
  readonly logger?: Logger;
}

export class MemoryStore implements Store {
  readonly limits: StoreLimits;
  private readonly logger: Logger | undefined;
  private readonly map = new Map<string, Entry>();
  private head: Block | undefined;
  private tail: Block | undefined;
  private dirtyBlocks: Block[] = [];
  private dataBytes = 0;
  private rev = 0;
  private snapshot: { revision: number; listing: ListingSnapshot } | undefined;
  private lastFullWarning = -Infinity;
  /** reused for rendering; grows to the largest block */
  private scratch = Buffer.allocUnsafe(BLOCK_BYTES * 2);

  constructor(options: MemoryStoreOptions = {}) {
    this.limits = options.limits ?? defaultStoreLimits();
    this.logger = options.logger;
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
    const entry = this.map.get(key);
    if (entry === undefined) return undefined;
    return entry.pending ?? entry.block.text.slice(entry.start, entry.end);
  }

  listing(): ListingSnapshot {
    const cached = this.snapshot;
    if (cached !== undefined && cached.revision === this.rev) return cached.listing;
    this.renderDirty();
    const slices: string[] = [];
    let bytes = 0;
    for (let b = this.head; b !== undefined; b = b.next) {
      if (b.live === 0) continue;
      slices.push(b.text);
      bytes += b.bytes;
    }
    const listing: ListingSnapshot = { count: this.map.size, slices, bytes };
    this.snapshot = { revision: this.rev, listing };
    return listing;
  }

  page(request: PageRequest): Page {
    const items: Pair[] = [];
    let block: Block | undefined;
    let slot: number;
    if (request.after === undefined) {
      block = this.head;
      slot = 0;
    } else {
      const from = this.map.get(request.after);
      // a cursor key deleted since: its place is gone, so the walk ends (see docs/store.md)
      if (from === undefined) return { items, next: undefined };
      block = from.block;
      slot = from.slot + 1;
    }
    const prefix = request.prefix;
    let scanned = 0;
    let lastScanned = '';
    for (; block !== undefined; block = block.next, slot = 0) {
      const entries = block.entries;
      for (; slot < entries.length; slot++) {
        const entry = entries[slot];
        if (entry === undefined) continue;
        // out of budget: a short page whose cursor is the last key looked at, matching or not
        if (scanned === PAGE_SCAN_BUDGET) return { items, next: lastScanned };
        scanned++;
        if (prefix !== '' && !entry.key.startsWith(prefix)) {
          lastScanned = entry.key;
          continue;
        }
        // a full page, and another matching entry follows it
        if (items.length === request.limit) return { items, next: items[items.length - 1]![0] };
        items.push([entry.key, entry.pending ?? block.text.slice(entry.start, entry.end)]);
        lastScanned = entry.key;
      }
    }
    return { items, next: undefined };
  }

  /** Every pair in insertion order (a compaction snapshot). */
  list(): Pair[] {
    const pairs: Pair[] = [];
    for (const pair of this.entries()) pairs.push(pair);
    return pairs;
  }

  /** Every pair in insertion order, lazily. */
  *entries(): IterableIterator<Pair> {
    for (let b = this.head; b !== undefined; b = b.next) {
      for (const entry of b.entries) if (entry !== undefined) yield [entry.key, entry.pending ?? b.text.slice(entry.start, entry.end)];
    }
  }

  // ---- writes -----------------------------------------------------------------------------------

  createAll(pairs: readonly Pair[]): CreateResult {
    let bytes = 0;
    for (const [key, value] of pairs) {
      if (this.map.has(key)) return { ok: false, existingKey: key };
      bytes += utf8Bytes(key) + utf8Bytes(value);
    }
    const full = this.checkGrowth(pairs.length, bytes);
    if (full !== undefined) throw full;
    for (const [key, value] of pairs) this.append(key, value);
    this.changed();
    return CREATED;
  }

  upsertAll(pairs: readonly Pair[]): UpsertResult {
    const previous: (string | undefined)[] = new Array<string | undefined>(pairs.length);
    let addedKeys = 0;
    let addedBytes = 0;
    for (let i = 0; i < pairs.length; i++) {
      const [key, value] = pairs[i]!;
      const entry = this.map.get(key);
      const valueBytes = utf8Bytes(value);
      if (entry === undefined) {
        addedKeys++;
        addedBytes += utf8Bytes(key) + valueBytes;
        previous[i] = undefined;
      } else {
        const old = entry.pending ?? entry.block.text.slice(entry.start, entry.end);
        addedBytes += valueBytes - utf8Bytes(old);
        previous[i] = old;
      }
    }
    const full = this.checkGrowth(addedKeys, addedBytes);
    if (full !== undefined) throw full;
    this.restore(pairs);
    return { previous };
  }

  delete(key: string): boolean {
    const had = this.remove(key);
    if (had) this.changed();
    return had;
  }

  /** Applies a batch without the checks: used to replay a log whose records were checked when written. */
  restore(pairs: readonly Pair[]): void {
    for (const [key, value] of pairs) {
      const entry = this.map.get(key);
      if (entry === undefined) this.append(key, value);
      else this.replace(entry, value);
    }
    this.changed();
  }

  /** Removes a key without the checks (replay of a delete). */
  restoreDelete(key: string): boolean {
    return this.delete(key);
  }

  async close(): Promise<void> {}

  // ---- the blocks -------------------------------------------------------------------------------

  private changed(): void {
    this.rev++;
    if (this.dirtyBlocks.length > MAX_DIRTY_BLOCKS) this.renderDirty();
  }

  private append(key: string, value: string): void {
    const bytes = utf8Bytes(key) + utf8Bytes(value);
    let block = this.tail;
    if (block === undefined || block.entries.length >= BLOCK_ENTRIES || (block.bytes >= BLOCK_BYTES && block.entries.length > 0)) {
      block = { entries: [], live: 0, text: '', bytes: 0, dirty: false, prev: this.tail, next: undefined };
      if (this.tail === undefined) this.head = block;
      else this.tail.next = block;
      this.tail = block;
    }
    const entry: Entry = { key, block, slot: block.entries.length, pending: value, start: 0, end: 0, bytes };
    block.entries.push(entry);
    block.live++;
    block.bytes += bytes + 2;
    this.map.set(key, entry);
    this.dataBytes += bytes;
    this.markDirty(block);
  }

  private replace(entry: Entry, value: string): void {
    const bytes = utf8Bytes(entry.key) + utf8Bytes(value);
    entry.pending = value;
    entry.block.bytes += bytes - entry.bytes;
    this.dataBytes += bytes - entry.bytes;
    entry.bytes = bytes;
    this.markDirty(entry.block);
  }

  private remove(key: string): boolean {
    const entry = this.map.get(key);
    if (entry === undefined) return false;
    this.map.delete(key);
    const block = entry.block;
    block.entries[entry.slot] = undefined;
    block.live--;
    block.bytes -= entry.bytes + 2;
    this.dataBytes -= entry.bytes;
    if (block.live === 0) {
      this.unlink(block);
    } else {
      this.markDirty(block);
    }
    return true;
  }

  /** An empty block leaves the chain (its text may still be in a listing someone is sending). */
  private unlink(block: Block): void {
    if (block.prev === undefined) this.head = block.next;
    else block.prev.next = block.next;
    if (block.next === undefined) this.tail = block.prev;
    else block.next.prev = block.prev;
    // a walk standing on it (a page) finds no live entry and goes on to what followed it
    block.entries = [];
    block.text = '';
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

  /** Renders a block's live entries into one fresh flat string and drops its deleted slots. */
  private render(block: Block): void {
    if (this.scratch.length < block.bytes) this.scratch = Buffer.allocUnsafe(Math.max(block.bytes, this.scratch.length * 2));
    const buf = this.scratch;
    const old = block.text;
    const kept: Entry[] = [];
    let pos = 0;
    let chars = 0;
    for (const entry of block.entries) {
      if (entry === undefined) continue;
      const value = entry.pending ?? old.slice(entry.start, entry.end);
      buf[pos++] = 0x0a;
      pos += buf.write(entry.key, pos, 'utf8');
      buf[pos++] = 0x3a;
      pos += buf.write(value, pos, 'utf8');
      entry.start = chars + entry.key.length + 2;
      entry.end = entry.start + value.length;
      chars = entry.end;
      entry.pending = undefined;
      entry.slot = kept.length;
      kept.push(entry);
    }
    block.entries = kept;
    // as many bytes as characters: ASCII, which latin1 decodes faster into a one-byte string
    block.text = buf.toString(pos === chars ? 'latin1' : 'utf8', 0, pos);
  }
}
