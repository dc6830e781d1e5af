// What the server tells the outside about itself, as it happens: one narrow interface between the
// data path (server → connection → rules) and whoever counts (the Prometheus metrics of the admin
// port). The data path calls these on every request, so an implementation must be cheap: plain
// increments into preallocated slots, with any label maps or histograms built at scrape time.

/** Why a connection was closed at accept, before any request was read. */
export type RefusalReason = 'allow-list' | 'max-connections' | 'draining';

/** How an END request ended (who may stop the server: docs/security.md). */
export type EndOutcome = 'accepted' | 'disabled' | 'not-loopback' | 'bad-token';

/**
 * The route a request took, a small fixed set (never the raw path: unbounded label values would make
 * the metrics themselves a resource a client can grow).
 */
export type RouteLabel = 'listing' | 'head' | 'create' | 'update' | 'kv-key' | 'kv-page' | 'kv-watch' | 'end' | 'other';

export interface ServerEvents {
  connectionOpened(): void;
  connectionClosed(): void;
  connectionRefused(reason: RefusalReason): void;
  /** one answered request; `seconds` from its first byte to its answer handed to the socket */
  requestDone(method: string, route: RouteLabel, status: number, seconds: number, bytesIn: number, bytesOut: number): void;
  /** a limit stopped a request or connection; `code` is the stable error code (TCPKV_ERR_…) */
  limitHit(code: string): void;
  endAttempt(outcome: EndOutcome): void;
}

/** Counts nothing: the default when no admin port is configured. */
export const NO_EVENTS: ServerEvents = Object.freeze({
  connectionOpened() {},
  connectionClosed() {},
  connectionRefused() {},
  requestDone() {},
  limitHit() {},
  endAttempt() {},
});

/**
 * What a store tells about its own work, for the metrics (log fsyncs and compactions, etcd calls and
 * per-member circuit breakers). Stores take an optional `events` and default to NO_STORE_EVENTS.
 */
export interface StoreEvents {
  /** one fsync (fdatasync) of the log finished */
  logFsync(seconds: number, ok: boolean): void;
  /** one compaction finished (ok = the compacted file replaced the log) */
  logCompaction(seconds: number, ok: boolean): void;
  /** one etcd call finished; `ok` false for failures that count against the member/cluster */
  etcdCall(operation: string, seconds: number, ok: boolean): void;
  /** a member's circuit breaker changed state */
  etcdBreaker(member: string, state: 'closed' | 'open' | 'half-open'): void;
}

export const NO_STORE_EVENTS: StoreEvents = Object.freeze({
  logFsync() {},
  logCompaction() {},
  etcdCall() {},
  etcdBreaker() {},
});
