// The storage contract every store meets (drivers.ts lists them). One call per request,
// with the seed's batch semantics, so that a remote store can make each one a single transaction.
// Results may be plain values or promises: the memory store answers synchronously and the hot path
// never waits on a microtask it does not need.
//
// Failures are typed: StoreUnavailableError (503: I/O error, lost quorum; nothing applied unless
// `indeterminate`), StoreFullError (507: a store limit; nothing applied), ValueTooLargeError (413: a
// single key or value no store of this kind can hold; nothing applied), UnknownCursorError (400: a
// page's `after` the store has no place for). Anything else thrown is a defect (answered 500).
//
// The semantics below are the contract every store meets; test/support/store-contract.ts checks each
// one against every store. A new store passes that table before it is wired in (docs/store.md, "Adding
// a store": one driver file, services/server/store/*-driver.ts, and a line in drivers.ts).
//   order       entries are in insertion order; an update keeps its entry's place; a key deleted and
//               created again is a new entry at the end
//   cursors     a page continues after its `after` key's place, or, when that key was deleted since,
//               after the place it stood; the places of the last REMEMBERED_CURSORS deleted keys are
//               kept; a key with no known place throws UnknownCursorError (see PageRequest.after)
//   repeats     a key twice in one createAll refuses the call like an existing key; twice in one
//               upsertAll: the last value wins, at the first one's place (see createAll, upsertAll)
//   all or none a write is applied whole or not at all, whatever it throws or answers
//   limits      the store owns its limits (`limits`, given at open from TCPKV_MAX_KEYS and
//               TCPKV_MAX_DATA_BYTES; the rules never count): StoreFullError only for a write that
//               grows the keys or bytes past a limit; deletes and writes that do not grow a measure
//               always pass (a store loaded over its limits shrinks)
//   start       a driver's open(config, deps) (store/driver.ts) resolves with a store that answers
//               requests: it has loaded its data, or, for a remote store whose service does not answer
//               yet, reports that through readiness() until it does; a setting or file it cannot use
//               is a StartupError naming the setting, and it holds nothing when it throws
//   deadlines   a call never waits without bound: a store that waits on a network keeps a deadline
//               per call (etcd: TCPKV_ETCD_TIMEOUT_MS) and past it throws StoreUnavailableError — a
//               write whose outcome it cannot know with `indeterminate`; a local store's calls end
//               with its I/O (an I/O error is StoreUnavailableError)
//   readiness   an open store that can take writes answers undefined (or has no readiness())
//   close       resolves once every acknowledged write is as durable as the store makes it; a second
//               close resolves too; a store that keeps data shows every acknowledged write when
//               opened again
//   versions    every accepted write (createAll, upsertAll, a delete that removed its key, putKey,
//               deleteKey) takes the next value of one store-wide counter, its revision, and every key
//               it sets gets that revision as its version; versions only grow, survive restarts of a
//               store that keeps data (and its compactions), and are never reused; a refused write
//               takes none (etcd: its revision, which other writers to the cluster move too)
//   changes     every accepted write is recorded in `changes`, in revision order, with its revision and
//               every key it set (value) or removed (undefined): a local store before it answers, a
//               store that follows a remote copy (etcd) once its copy applies the write
//   expiry      putKey with a ttlMs makes the key expire that long after the write applies; any later
//               write of the key without one (createAll, upsertAll, putKey) clears it. From its expiry
//               on, no read returns the key (get, getVersioned, page, listing), and it is removed by a
//               write of its own — a revision, a deletion in `changes` (several keys expiring together
//               may share one). A store that keeps data keeps each expiry as a point in wall-clock
//               time: a key whose expiry passed while the store was closed is never served again (etcd:
//               a lease, expired by etcd's clock)
//   conditions  putKey/deleteKey decide their Condition against the key's version at the instant the
//               write applies, in the same step (etcd: the same transaction): never a read, then a write

import { RequestError } from '../../protocol/errors.js';
import type { ChangeFeed } from './change-feed.js';

export type Pair = readonly [key: string, value: string];

export type CreateResult = { readonly ok: true } | { readonly ok: false; readonly existingKey: string };

/** The answer of every create that was applied (one shared frozen object). */
export const CREATED: CreateResult = Object.freeze({ ok: true });

export interface UpsertResult {
  /** previous value of each pair's key, aligned with the pairs given; undefined = the key was new */
  readonly previous: readonly (string | undefined)[];
}

export type MaybePromise<T> = T | Promise<T>;

/** `GET /kv?prefix=&after=&limit=`: keys starting with `prefix`, in insertion order, after `after`. */
export interface PageRequest {
  readonly prefix: string;
  /**
   * The last key of the previous page (its `next`); undefined = from the start. The page continues
   * after the place the key has now, or, when the key has been deleted since, after the place it
   * stood — so a walk returns every key present for the whole walk, whatever else is deleted or
   * created meanwhile (a queue drain deletes each key it is given). A key deleted and created again
   * stands at its new place (the end). The place of a deleted key is kept for the most recent
   * deletes (REMEMBERED_CURSORS of them); a key the store has no place for — never
   * stored, or deleted longer ago than that — throws UnknownCursorError, never an empty last page.
   */
  readonly after: string | undefined;
  /** 1..1000 (the rules clamp it) */
  readonly limit: number;
}

export interface Page {
  readonly items: readonly Pair[];
  /** each item's version, aligned with `items` */
  readonly versions: readonly number[];
  /** the key to pass as `after` for the next page; undefined = this was the last page */
  readonly next: string | undefined;
}

/**
 * The whole listing, rendered: `slices` concatenated are the `\nkey:value` lines of every entry in
 * insertion order (no header line — the rules add it), as UTF-8 bytes. Slices are immutable buffers
 * the store may share between listings and reuse across revisions, written to sockets as they are
 * (no encoding, no copy, nothing for the garbage collector per listing); `bytes` is their total
 * length, known before the first slice is written (Content-Length).
 */
export interface ListingSnapshot {
  readonly count: number;
  readonly slices: readonly Buffer[];
  readonly bytes: number;
}

/** A key's value and its version: the revision of the write that last set the key (see "versions"). */
export interface Versioned {
  readonly value: string;
  readonly version: number;
  /** when the key expires, in wall-clock ms (Date.now()); absent: never */
  readonly expiresAt?: number;
}

/** TTLs a putKey takes, in ms: at least a second (etcd's leases are no finer), at most a year. */
export const MIN_TTL_MS = 1000;
export const MAX_TTL_MS = 365 * 24 * 3600 * 1000;

/**
 * What a one-key write requires of the key's version when it applies (RFC 9110 §13.1, the rules read it
 * from If-Match / If-None-Match):
 *   any       no condition
 *   exists    the key exists (If-Match: *)
 *   absent    the key does not exist: create only (If-None-Match: *)
 *   versions  the key exists at one of these versions (If-Match: "7", "9")
 */
export type Condition =
  | { readonly kind: 'any' }
  | { readonly kind: 'exists' }
  | { readonly kind: 'absent' }
  | { readonly kind: 'versions'; readonly versions: readonly number[] };

export const UNCONDITIONAL: Condition = Object.freeze({ kind: 'any' });

/** Whether `condition` holds for a key whose version is `current` (undefined: no such key). */
export function conditionHolds(condition: Condition, current: number | undefined): boolean {
  switch (condition.kind) {
    case 'any':
      return true;
    case 'exists':
      return current !== undefined;
    case 'absent':
      return current === undefined;
    case 'versions':
      return current !== undefined && condition.versions.includes(current);
  }
}

/**
 * putKey's result: applied, with the write's revision (the key's new version) and whether the key was
 * new; or not applied because the condition failed, with the key's version then (undefined: no key).
 */
export type KeyPutResult = { readonly ok: true; readonly version: number; readonly created: boolean } | { readonly ok: false; readonly current: number | undefined };

/**
 * deleteKey's result: removed, with the delete's revision; or not applied, with the key's version then
 * (undefined: no key — whether the condition held, a missing key is never "deleted").
 */
export type KeyDeleteResult = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly current: number | undefined };

/** What the store holds now, for limits, metrics and readiness. */
export interface StoreUsage {
  readonly keys: number;
  /** UTF-8 bytes of keys plus values */
  readonly dataBytes: number;
}

/** The store limits (docs/store.md, Limits); 0 would mean "nothing fits", so both are ≥ 1. */
export interface StoreLimits {
  readonly maxKeys: number;
  readonly maxDataBytes: number;
}

/** Figures a store shows about its own upkeep, read at scrape time (the metrics' gauges). */
export interface StoreGauges {
  /** bytes of the log file now (a store that keeps an append-only log) */
  readonly logBytes?: number;
}

export interface Store {
  /** the name of the driver that opened it ('memory', 'log', …): the start-up log names it */
  readonly kind: string;
  /**
   * Every write it applies, recorded in the order applied with its revision (see "changes"): what
   * watches read. A store that starts (or lists its data again) resets it to its revision then.
   */
  readonly changes: ChangeFeed;
  /** the limits it enforces (see "limits" above); undefined = it enforces none */
  readonly limits: StoreLimits | undefined;
  /** its own figures for the metrics; absent = none */
  gauges?(): StoreGauges;
  /** The listing as rendered slices (see ListingSnapshot). */
  listing(): MaybePromise<ListingSnapshot>;
  /** One key's value; undefined = no such key. */
  get(key: string): MaybePromise<string | undefined>;
  /** One key's value and version; undefined = no such key. */
  getVersioned(key: string): MaybePromise<Versioned | undefined>;
  /** A page of entries in insertion order (see PageRequest). Must not cost O(position of `after`). */
  page(request: PageRequest): MaybePromise<Page>;
  /**
   * Stores every pair only if none of the keys exists yet; otherwise nothing (all or none). A key given
   * twice in one call counts as existing (its second pair finds the first): nothing is stored and
   * `existingKey` names one key that exists or repeats (which one, when several do, is the store's).
   */
  createAll(pairs: readonly Pair[]): MaybePromise<CreateResult>;
  /**
   * Sets every pair, creating missing keys, and reports the values it replaced. All or none. A key
   * given twice in one call: the last value wins, a new key takes the place of its first pair, and
   * the store grows by that key once; `previous[i]` is the value pair i's key held before the call
   * (the same at every place of a repeated key).
   */
  upsertAll(pairs: readonly Pair[]): MaybePromise<UpsertResult>;
  /** Removes one key; false = there was no such key. Durable like every write. */
  delete(key: string): MaybePromise<boolean>;
  /**
   * Sets one key if `condition` holds for its version when the write applies (see "conditions");
   * otherwise changes nothing and reports the version it found. Limits as upsertAll. `ttlMs`
   * (MIN_TTL_MS..MAX_TTL_MS; the rules check it): the key expires that long after (see "expiry");
   * undefined: it never does, and an earlier expiry is cleared.
   */
  putKey(key: string, value: string, condition: Condition, ttlMs?: number): MaybePromise<KeyPutResult>;
  /** Removes one key if it exists and `condition` holds for its version when the delete applies. */
  deleteKey(key: string, condition: Condition): MaybePromise<KeyDeleteResult>;
  /** keys and bytes held now; undefined where the store cannot tell without a round trip */
  usage(): StoreUsage | undefined;
  /**
   * A number that changes on every write, when the store can tell cheaply (the memory store can; a
   * shared remote store cannot). Lets answers be rendered once per change.
   */
  readonly revision: number | undefined;
  /**
   * Whether the store can take writes now (for the admin port's /readyz): undefined = ready, else the
   * reason it cannot (the log's last write failed, etcd has no quorum, the cache has not synced).
   * Optional: a store without it is always ready.
   */
  readiness?(): MaybePromise<string | undefined>;
  /** Flushes whatever needs flushing and releases the store. */
  close(): Promise<void>;
}

/**
 * The store cannot serve the request now (I/O error, lost quorum): answered 503. Nothing was applied,
 * unless `indeterminate`: a write whose confirmation was lost may have been (a remote store cannot
 * always know), and the answer says so.
 */
export class StoreUnavailableError extends RequestError {
  override readonly name = 'StoreUnavailableError';
  readonly indeterminate: boolean;
  constructor(message: string, options: { indeterminate?: boolean } = {}) {
    super(options.indeterminate === true ? 'TCPKV_ERR_STORE_INDETERMINATE' : 'TCPKV_ERR_STORE_UNAVAILABLE', message);
    this.indeterminate = options.indeterminate ?? false;
  }
}

/** A write would take the store past a limit (docs/store.md, Limits): answered 507, nothing applied. */
export class StoreFullError extends RequestError {
  override readonly name = 'StoreFullError';
  /** which limit, as the 507 body names it, e.g. `TCPKV_MAX_KEYS=1000000` */
  readonly limit: string;
  constructor(limit: string) {
    super('TCPKV_ERR_STORE_FULL', `Storage is full: ${limit}`);
    this.limit = limit;
  }
}

/** One key or value is larger than this store can ever hold (a log record, an etcd request): 413, nothing applied. */
export class ValueTooLargeError extends RequestError {
  override readonly name = 'ValueTooLargeError';
  constructor(message: string) {
    super('TCPKV_ERR_VALUE_TOO_LARGE', message);
  }
}

/** Deleted keys whose place every store keeps for a page's `after` (see PageRequest.after). */
export const REMEMBERED_CURSORS = 10_000;

/** A page's `after` names a key the store has no place for (PageRequest.after): answered 400. */
export class UnknownCursorError extends RequestError {
  override readonly name = 'UnknownCursorError';
  readonly after: string;
  constructor(after: string) {
    super('TCPKV_ERR_UNKNOWN_CURSOR', `no place known for the cursor key ${JSON.stringify(after)}`);
    this.after = after;
  }
}

/** The first key that appears a second time in `pairs`, or undefined (createAll's repeated key). */
export function repeatedKey(pairs: readonly Pair[]): string | undefined {
  if (pairs.length < 2) return undefined;
  if (pairs.length === 2) return pairs[0]![0] === pairs[1]![0] ? pairs[0]![0] : undefined;
  const seen = new Set<string>();
  for (const [key] of pairs) {
    if (seen.has(key)) return key;
    seen.add(key);
  }
  return undefined;
}

/**
 * Whether a store (or the rules) answered later. Stores answer later with native promises (async
 * functions), so `instanceof` is enough — and unlike probing for `.then` on every kind of answer, it
 * costs the same whatever the answer's shape.
 */
export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return value instanceof Promise;
}
