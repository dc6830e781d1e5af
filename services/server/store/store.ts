// The storage contract every store meets (memory now; append-only log and etcd later). One call per
// request, with the seed's batch semantics, so that a remote store can make each one a single
// transaction. Results may be plain values or promises: the memory store answers synchronously and
// the hot path never waits on a microtask it does not need.

export type Pair = readonly [key: string, value: string];

export type CreateResult = { readonly ok: true } | { readonly ok: false; readonly existingKey: string };

export interface UpsertResult {
  /** previous value of each pair's key, aligned with the pairs given; undefined = the key was new */
  readonly previous: readonly (string | undefined)[];
}

export type MaybePromise<T> = T | Promise<T>;

export interface Store {
  /** Every entry, in insertion order (an update keeps the key's place). */
  list(): MaybePromise<readonly Pair[]>;
  /** Stores every pair only if none of the keys exists yet; otherwise nothing (all or none). */
  createAll(pairs: readonly Pair[]): MaybePromise<CreateResult>;
  /** Sets every pair, creating missing keys, and reports the values it replaced. All or none. */
  upsertAll(pairs: readonly Pair[]): MaybePromise<UpsertResult>;
  /**
   * A number that changes on every write, when the store can tell cheaply (the memory store can; a
   * shared remote store cannot). Lets the GET listing be rendered once per change.
   */
  readonly revision: number | undefined;
  /** Flushes whatever needs flushing and releases the store. */
  close(): Promise<void>;
}

/**
 * The store cannot serve the request now (I/O error, lost quorum): answered 503. Nothing was applied,
 * unless `indeterminate`: a write whose confirmation was lost may have been (a remote store cannot
 * always know), and the answer says so.
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  readonly indeterminate: boolean;
  constructor(message: string, options: { indeterminate?: boolean } = {}) {
    super(message);
    this.indeterminate = options.indeterminate ?? false;
  }
}

/**
 * Whether a store (or the rules) answered later. Stores answer later with native promises (async
 * functions), so `instanceof` is enough — and unlike probing for `.then` on every kind of answer, it
 * costs the same whatever the answer's shape.
 */
export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return value instanceof Promise;
}
