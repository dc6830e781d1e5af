// The Prometheus metrics of the admin port. The data path and the stores report through the narrow
// ServerEvents/StoreEvents interfaces; this module counts into preallocated typed arrays there (an
// index computed from a switch or a small integer table, never a label object or a string-keyed map
// per request), and turns the counts into metric families only when Prometheus scrapes. prom-client
// does the exposition format, the process and Node.js metrics (event-loop lag among them) and the
// store gauges, which are read at scrape time.

import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { EndOutcome, RefusalReason, RouteLabel, ServerEvents, StoreEvents } from './events.js';
import type { Store, StoreLimits } from './store/store.js';
import { TLS_HANDSHAKE_OUTCOMES, type TlsEvents, type TlsHandshakeOutcome } from './tls.js';

/** One line of a metric family, as prom-client's Registry formats it. */
interface Sample {
  readonly value: number;
  readonly labels: Readonly<Record<string, string>>;
  /** e.g. `<name>_bucket` inside a histogram family */
  readonly metricName?: string;
}

type FamilyType = 'counter' | 'gauge' | 'histogram';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'END', 'other'] as const;
const ROUTES: readonly RouteLabel[] = ['listing', 'head', 'create', 'update', 'kv-key', 'kv-page', 'kv-watch', 'end', 'other'];
const REFUSALS: readonly RefusalReason[] = ['allow-list', 'max-connections', 'draining'];
const END_OUTCOMES: readonly EndOutcome[] = ['accepted', 'disabled', 'not-loopback', 'bad-token'];

/** Distinct statuses counted apart; a status past these (never seen in practice) counts as the last. */
const STATUS_SLOTS = 32;
/** Distinct limit codes, etcd operations and members kept apart; more are counted as "other". */
const MAX_LABEL_VALUES = 64;

/** Request latency buckets (seconds): a memory-store GET answers in tens of microseconds. */
const REQUEST_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** fsync, compaction and etcd call buckets (seconds). */
const IO_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** prom-client defaults that `promtool check metrics` refuses: gauges with a `_total` suffix. */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

function methodIndex(method: string): number {
  switch (method) {
    case 'GET': return 0;
    case 'HEAD': return 1;
    case 'POST': return 2;
    case 'PUT': return 3;
    case 'DELETE': return 4;
    case 'END': return 5;
    default: return 6;
  }
}

function routeIndex(route: RouteLabel): number {
  switch (route) {
    case 'listing': return 0;
    case 'head': return 1;
    case 'create': return 2;
    case 'update': return 3;
    case 'kv-key': return 4;
    case 'kv-page': return 5;
    case 'kv-watch': return 6;
    case 'end': return 7;
    default: return 8;
  }
}

/** Counts of observations per bucket (not cumulative), plus sum and count, for several label sets. */
class HistogramCounts {
  readonly bounds: readonly number[];
  /** (labelSet × (bounds + 1)): the last slot of each set is +Inf */
  readonly counts: Float64Array;
  readonly sums: Float64Array;
  constructor(bounds: readonly number[], labelSets: number) {
    this.bounds = bounds;
    this.counts = new Float64Array(labelSets * (bounds.length + 1));
    this.sums = new Float64Array(labelSets);
  }

  observe(set: number, seconds: number): void {
    const bounds = this.bounds;
    let b = 0;
    while (b < bounds.length && seconds > bounds[b]!) b++;
    this.counts[set * (bounds.length + 1) + b]!++;
    this.sums[set]! += seconds;
  }

  /** Prometheus histogram lines for one label set (cumulative buckets, _sum and _count). */
  values(name: string, set: number, labels: Record<string, string>): Sample[] {
    const width = this.bounds.length + 1;
    const out: Sample[] = [];
    let cumulative = 0;
    for (let b = 0; b < width; b++) {
      cumulative += this.counts[set * width + b]!;
      const le = b < this.bounds.length ? String(this.bounds[b]) : '+Inf';
      out.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
    }
    out.push({ metricName: `${name}_sum`, labels, value: this.sums[set]! });
    out.push({ metricName: `${name}_count`, labels, value: cumulative });
    return out;
  }
}

/**
 * A metric family whose values are computed at scrape time from the counters above. prom-client's
 * Registry formats anything with this shape (name, help, type, get()), so no per-event bookkeeping
 * of label objects is needed.
 */
class SnapshotMetric {
  readonly aggregator = 'sum' as const;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: FamilyType,
    private readonly read: () => Sample[],
  ) {}

  get() {
    return { name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator };
  }
}

/** A small bounded table from a label value to a slot, for events that are not per request. */
class LabelSlots {
  readonly names: string[] = [];
  private readonly index = new Map<string, number>();
  constructor(private readonly max: number) {}

  slot(name: string): number {
    const known = this.index.get(name);
    if (known !== undefined) return known;
    // the last slot is kept for "other"
    if (this.names.length >= this.max - 1 && name !== 'other') return this.slot('other');
    this.names.push(name);
    this.index.set(name, this.names.length - 1);
    return this.names.length - 1;
  }
}

export interface MetricsOptions {
  /** the store limits (TCPKV_MAX_KEYS, TCPKV_MAX_DATA_BYTES), shown as gauges; default: the store's own, if it shows them */
  readonly limits?: StoreLimits;
  /** the server's version, in tcpkv_build_info */
  readonly version?: string;
  /** prom-client's process and Node.js metrics (on unless a test turns them off) */
  readonly defaultMetrics?: boolean;
}

export class TcpkvMetrics implements ServerEvents, StoreEvents, TlsEvents {
  readonly registry = new Registry();
  private store: Store | undefined;

  // --- per request, preallocated ---
  private readonly requests = new Float64Array(METHODS.length * ROUTES.length * STATUS_SLOTS);
  /** status (100..599) → its slot in `requests`; -1 = not seen yet */
  private readonly statusSlot = new Int8Array(600).fill(-1);
  private readonly statuses: number[] = [];
  private readonly duration = new HistogramCounts(REQUEST_BUCKETS, ROUTES.length);
  private bytesIn = 0;
  private bytesOut = 0;

  // --- per connection ---
  private opened = 0;
  private open = 0;
  private readonly refused = new Float64Array(REFUSALS.length);

  // --- rarer events ---
  private readonly limitCodes = new LabelSlots(MAX_LABEL_VALUES);
  private readonly limitHits = new Float64Array(MAX_LABEL_VALUES);
  private readonly ends = new Float64Array(END_OUTCOMES.length);

  // --- TLS ---
  private readonly handshakes = new Float64Array(TLS_HANDSHAKE_OUTCOMES.length);
  private handshaking = 0;
  /** [ok, failed] */
  private readonly reloads = new Float64Array(2);
  private certificateNotAfter: number | undefined;

  // --- store events ---
  private readonly fsync = new HistogramCounts(IO_BUCKETS, 1);
  private fsyncFailures = 0;
  private readonly compaction = new HistogramCounts(IO_BUCKETS, 1);
  /** [ok, failed] */
  private readonly compactions = new Float64Array(2);
  private readonly etcdOperations = new LabelSlots(MAX_LABEL_VALUES);
  private readonly etcdLatency = new HistogramCounts(IO_BUCKETS, MAX_LABEL_VALUES);
  private readonly etcdFailures = new Float64Array(MAX_LABEL_VALUES);
  private readonly breakerMembers = new LabelSlots(MAX_LABEL_VALUES);
  private readonly breakerStates: ('closed' | 'open' | 'half-open')[] = [];

  constructor(options: MetricsOptions = {}) {
    const r = this.registry;
    const add = (name: string, help: string, type: FamilyType, read: () => Sample[]) =>
      r.registerMetric(new SnapshotMetric(name, help, type, read) as never);

    add('tcpkv_requests_total', 'Requests answered, by method, route and status.', 'counter', () => this.requestValues());
    add('tcpkv_request_duration_seconds', 'Time from a request\'s first byte to its answer handed to the socket, by route.', 'histogram', () =>
      // every route from the start, at zero: a series that first appears with its first request
      // would make Prometheus's rate() miss that request
      ROUTES.flatMap((route, i) => this.duration.values('tcpkv_request_duration_seconds', i, { route })),
    );
    add('tcpkv_request_body_bytes_total', 'Bytes of request bodies received.', 'counter', () => [{ value: this.bytesIn, labels: {} }]);
    add('tcpkv_response_bytes_total', 'Bytes of answers sent (head and body).', 'counter', () => [{ value: this.bytesOut, labels: {} }]);
    add('tcpkv_connections_open', 'Connections open now.', 'gauge', () => [{ value: this.open, labels: {} }]);
    add('tcpkv_connections_total', 'Connections accepted.', 'counter', () => [{ value: this.opened, labels: {} }]);
    add('tcpkv_connections_refused_total', 'Connections closed at accept, by reason.', 'counter', () =>
      REFUSALS.map((reason, i) => ({ labels: { reason }, value: this.refused[i]! })),
    );
    add('tcpkv_limit_hits_total', 'Requests or connections stopped by a configured limit, by error code.', 'counter', () =>
      this.limitCodes.names.map((code, i) => ({ labels: { code }, value: this.limitHits[i]! })),
    );
    add('tcpkv_end_attempts_total', 'END requests, by outcome.', 'counter', () =>
      END_OUTCOMES.map((outcome, i) => ({ labels: { outcome }, value: this.ends[i]! })),
    );

    add('tcpkv_tls_handshakes_total', 'TLS handshakes finished on the TLS port.', 'counter', () => [{ value: this.handshakes[0]!, labels: {} }]);
    add('tcpkv_tls_handshake_failures_total', 'TLS handshakes that failed, by reason (plain-http: a plain HTTP request on the TLS port).', 'counter', () =>
      TLS_HANDSHAKE_OUTCOMES.slice(1).map((reason, i) => ({ labels: { reason }, value: this.handshakes[i + 1]! })),
    );
    add('tcpkv_tls_handshakes_in_progress', 'TLS handshakes started and not finished (they count against TCPKV_MAX_CONNECTIONS).', 'gauge', () => [{ value: this.handshaking, labels: {} }]);
    add('tcpkv_tls_certificate_reloads_total', 'Reloads of the TLS certificate files, by result (failed = the previous certificate stays in use).', 'counter', () => [
      { labels: { result: 'ok' }, value: this.reloads[0]! },
      { labels: { result: 'failed' }, value: this.reloads[1]! },
    ]);
    add('tcpkv_tls_certificate_not_after_seconds', "The serving TLS certificate's expiry (notAfter), seconds since the epoch.", 'gauge', () =>
      this.certificateNotAfter === undefined ? [] : [{ value: this.certificateNotAfter, labels: {} }],
    );

    add('tcpkv_log_fsync_duration_seconds', 'Duration of the log\'s fsyncs.', 'histogram', () => this.fsync.values('tcpkv_log_fsync_duration_seconds', 0, {}));
    add('tcpkv_log_fsync_failures_total', 'Fsyncs of the log that failed.', 'counter', () => [{ value: this.fsyncFailures, labels: {} }]);
    add('tcpkv_log_compactions_total', 'Compactions of the log, by result.', 'counter', () => [
      { labels: { result: 'ok' }, value: this.compactions[0]! },
      { labels: { result: 'failed' }, value: this.compactions[1]! },
    ]);
    add('tcpkv_log_compaction_duration_seconds', 'Duration of the log\'s compactions.', 'histogram', () =>
      this.compaction.values('tcpkv_log_compaction_duration_seconds', 0, {}),
    );
    add('tcpkv_etcd_request_duration_seconds', 'Duration of calls to etcd, by operation.', 'histogram', () =>
      this.etcdOperations.names.flatMap((operation, i) => this.etcdLatency.values('tcpkv_etcd_request_duration_seconds', i, { operation })),
    );
    add('tcpkv_etcd_request_failures_total', 'Calls to etcd that failed, by operation.', 'counter', () =>
      this.etcdOperations.names.map((operation, i) => ({ labels: { operation }, value: this.etcdFailures[i]! })),
    );
    add('tcpkv_etcd_breaker_state', 'The circuit breaker of each etcd member: 1 for its current state.', 'gauge', () =>
      this.breakerMembers.names.flatMap((member, i) =>
        (['closed', 'open', 'half-open'] as const).map((state) => ({ labels: { member, state }, value: this.breakerStates[i] === state ? 1 : 0 })),
      ),
    );
    add('tcpkv_build_info', 'The running version (always 1).', 'gauge', () => [{ labels: { version: options.version ?? 'unknown' }, value: 1 }]);

    // read from the store at scrape time: nothing on the hot path
    add('tcpkv_store_keys', 'Keys held by the store.', 'gauge', () => {
      const usage = this.store?.usage();
      return usage ? [{ value: usage.keys, labels: {} }] : [];
    });
    add('tcpkv_store_data_bytes', 'UTF-8 bytes of keys plus values held by the store.', 'gauge', () => {
      const usage = this.store?.usage();
      return usage ? [{ value: usage.dataBytes, labels: {} }] : [];
    });
    add('tcpkv_log_bytes', 'Size of the append-only log file (log store only).', 'gauge', () => {
      const logBytes = this.store?.gauges?.().logBytes;
      return logBytes === undefined ? [] : [{ value: logBytes, labels: {} }];
    });
    const limits = () => options.limits ?? this.store?.limits;
    add('tcpkv_store_max_keys', 'The store\'s key limit (TCPKV_MAX_KEYS).', 'gauge', () => {
      const l = limits();
      return l ? [{ value: l.maxKeys, labels: {} }] : [];
    });
    add('tcpkv_store_max_data_bytes', 'The store\'s data limit in bytes (TCPKV_MAX_DATA_BYTES).', 'gauge', () => {
      const l = limits();
      return l ? [{ value: l.maxDataBytes, labels: {} }] : [];
    });
    // read at scrape time (a prom-client gauge with an async collect): nothing on the hot path
    const readiness = () => this.readiness();
    new Gauge({
      name: 'tcpkv_store_ready',
      help: 'Whether the store can take writes now (1) or not (0), as /readyz answers.',
      registers: [r],
      async collect() {
        this.set((await readiness()) === undefined ? 1 : 0);
      },
    });
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: r });
      // gauges named like counters (promtool's lint refuses them); the per-type breakdowns
      // nodejs_active_handles / nodejs_active_requests / nodejs_active_resources stay
      for (const name of LINT_FAILING_DEFAULTS) r.removeSingleMetric(name);
    }
  }

  /** The store is opened after the metrics exist (it reports to them): attach it once it is open. */
  attachStore(store: Store): void {
    this.store = store;
  }

  /** undefined = ready, else why not (no store yet, or the store's own reason). */
  async readiness(): Promise<string | undefined> {
    const store = this.store;
    if (!store) return 'the store is not open yet';
    return store.readiness ? await store.readiness() : undefined;
  }

  /** The exposition text, and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  // ---- ServerEvents (the hot path) ----

  connectionOpened(): void {
    this.opened++;
    this.open++;
  }

  connectionClosed(): void {
    this.open--;
  }

  connectionRefused(reason: RefusalReason): void {
    this.refused[reason === 'allow-list' ? 0 : reason === 'max-connections' ? 1 : 2]!++;
  }

  requestDone(method: string, route: RouteLabel, status: number, seconds: number, bytesIn: number, bytesOut: number): void {
    const r = routeIndex(route);
    let s = status >= 0 && status < 600 ? this.statusSlot[status]! : -1;
    if (s < 0) s = this.newStatusSlot(status);
    this.requests[(methodIndex(method) * ROUTES.length + r) * STATUS_SLOTS + s]!++;
    this.duration.observe(r, seconds);
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
  }

  limitHit(code: string): void {
    this.limitHits[this.limitCodes.slot(/^[A-Z0-9_]{1,64}$/.test(code) ? code : 'other')]!++;
  }

  endAttempt(outcome: EndOutcome): void {
    const i = END_OUTCOMES.indexOf(outcome);
    if (i >= 0) this.ends[i]!++;
  }

  // ---- TlsEvents ----

  tlsHandshakeStarted(): void {
    this.handshaking++;
  }

  tlsHandshakeEnded(outcome: TlsHandshakeOutcome): void {
    this.handshaking--;
    const i = TLS_HANDSHAKE_OUTCOMES.indexOf(outcome);
    this.handshakes[i >= 0 ? i : TLS_HANDSHAKE_OUTCOMES.length - 1]!++;
  }

  certificateReload(ok: boolean): void {
    this.reloads[ok ? 0 : 1]!++;
  }

  certificateExpiry(notAfterSeconds: number): void {
    this.certificateNotAfter = notAfterSeconds;
  }

  // ---- StoreEvents ----

  logFsync(seconds: number, ok: boolean): void {
    this.fsync.observe(0, seconds);
    if (!ok) this.fsyncFailures++;
  }

  logCompaction(seconds: number, ok: boolean): void {
    this.compaction.observe(0, seconds);
    this.compactions[ok ? 0 : 1]!++;
  }

  etcdCall(operation: string, seconds: number, ok: boolean): void {
    const i = this.etcdOperations.slot(operation);
    this.etcdLatency.observe(i, seconds);
    if (!ok) this.etcdFailures[i]!++;
  }

  etcdBreaker(member: string, state: 'closed' | 'open' | 'half-open'): void {
    this.breakerStates[this.breakerMembers.slot(member)] = state;
  }

  // ---- scrape time ----

  /** The first time a status is seen it gets a slot; statuses are few (a dozen in practice). */
  private newStatusSlot(status: number): number {
    const valid = Number.isInteger(status) && status >= 100 && status < 600;
    if (valid && this.statuses.length < STATUS_SLOTS - 1) {
      this.statuses.push(status);
      this.statusSlot[status] = this.statuses.length - 1;
      return this.statuses.length - 1;
    }
    // the last slot collects anything else, reported as status "other"
    return STATUS_SLOTS - 1;
  }

  private requestValues(): Sample[] {
    const out: Sample[] = [];
    for (let m = 0; m < METHODS.length; m++) {
      for (let r = 0; r < ROUTES.length; r++) {
        for (let s = 0; s < STATUS_SLOTS; s++) {
          const value = this.requests[(m * ROUTES.length + r) * STATUS_SLOTS + s]!;
          if (value === 0) continue;
          const status = s < this.statuses.length ? String(this.statuses[s]) : 'other';
          out.push({ labels: { method: METHODS[m]!, route: ROUTES[r]!, status }, value });
        }
      }
    }
    return out;
  }
}
