// The checker of a lock's recorded history: every holder's interval, on one clock (the host's
// Date.now(); all clients of a test run on one host), and no instant with two holders.
//
// A holder's interval runs from when it learnt it held the lock (the answer's arrival: never before
// the server applied it) to the earliest of: the start of its release, the loss it was told of, its
// death, its last validUntil. Each end is no later than the moment the holder actually stopped
// counting on the lock, so any overlap of two intervals is two holders at once.

/** One client's hold of the lock. */
export interface HoldInterval {
  readonly client: string;
  readonly start: number;
  readonly end: number;
  /** the key's version when acquired: a fencing token (later holders must have larger ones) */
  readonly version?: number | undefined;
}

export interface Overlap {
  readonly first: HoldInterval;
  readonly second: HoldInterval;
  /** how long both held it (ms) */
  readonly ms: number;
}

export interface LockCheck {
  readonly ok: boolean;
  readonly overlaps: readonly Overlap[];
  /** intervals that end before they start, or are not numbers */
  readonly malformed: readonly HoldInterval[];
  /** a later holder whose fencing token is not larger than an earlier holder's */
  readonly fencing: readonly [HoldInterval, HoldInterval][];
}

/** The end of one hold: the earliest of the times that are known (a hold with none is malformed). */
export function holdEnd(times: { releaseStarted?: number | undefined; lost?: number | undefined; died?: number | undefined; validUntil?: number | undefined }): number {
  const known = [times.releaseStarted, times.lost, times.died, times.validUntil].filter((t): t is number => t !== undefined);
  return known.length === 0 ? NaN : Math.min(...known);
}

/**
 * Every pair of intervals that share an instant (touching ends — one starts the millisecond the
 * other ends — do not count), every malformed interval, and every holder after another whose version
 * is not larger.
 */
export function checkLockHistory(intervals: readonly HoldInterval[]): LockCheck {
  const malformed = intervals.filter((i) => !Number.isFinite(i.start) || !Number.isFinite(i.end) || i.end < i.start);
  const sorted = intervals.filter((i) => !malformed.includes(i)).sort((a, b) => a.start - b.start || a.end - b.end);
  const overlaps: Overlap[] = [];
  const fencing: [HoldInterval, HoldInterval][] = [];
  // the intervals that have begun and not ended yet, as the sweep moves on by start
  let open: HoldInterval[] = [];
  let lastVersioned: HoldInterval | undefined;
  for (const next of sorted) {
    open = open.filter((o) => o.end > next.start);
    for (const o of open) overlaps.push({ first: o, second: next, ms: Math.min(o.end, next.end) - next.start });
    open.push(next);
    if (next.version !== undefined) {
      if (lastVersioned?.version !== undefined && next.version <= lastVersioned.version) fencing.push([lastVersioned, next]);
      lastVersioned = next;
    }
  }
  return { ok: overlaps.length === 0 && malformed.length === 0 && fencing.length === 0, overlaps, malformed, fencing };
}

/** One line per problem, for a failing test's message. */
export function describeLockCheck(check: LockCheck, max = 10): string {
  const at = (i: HoldInterval) => `${i.client} [${i.start}, ${i.end}]${i.version === undefined ? '' : ` v${i.version}`}`;
  return [
    ...check.overlaps.slice(0, max).map((o) => `two holders for ${o.ms} ms: ${at(o.first)} and ${at(o.second)}`),
    ...check.malformed.slice(0, max).map((i) => `malformed: ${at(i)}`),
    ...check.fencing.slice(0, max).map(([a, b]) => `fencing token not larger: ${at(a)} then ${at(b)}`),
  ].join('\n');
}

/** An event a lock client prints (test/support/lock-client.mjs, `tcpkv-client --json lock`). */
export interface LockClientEvent {
  readonly event: string;
  /** Date.now() */
  readonly at: number;
  /** wall-clock ms */
  readonly validUntil?: number;
  readonly version?: number;
}

/**
 * One client's events as intervals: each `acquired` opens one; `releasing` or `lost` ends it, or the
 * client's death (`diedAt`), or failing that its last validUntil (a record cut short).
 */
export function intervalsFromEvents(client: string, events: readonly LockClientEvent[], diedAt?: number): HoldInterval[] {
  const out: HoldInterval[] = [];
  let open: { start: number; validUntil: number | undefined; version: number | undefined } | undefined;
  const close = (end: number) => {
    out.push({ client, start: open!.start, end: Math.min(end, open!.validUntil ?? Infinity), version: open!.version });
    open = undefined;
  };
  for (const e of events) {
    if (e.event === 'acquired') {
      if (open) close(e.at); // a second acquisition without an end: count the first until then
      open = { start: e.at, validUntil: e.validUntil, version: e.version };
    } else if (open && e.event === 'renewed' && e.validUntil !== undefined) open.validUntil = e.validUntil;
    else if (open && (e.event === 'releasing' || e.event === 'lost' || e.event === 'released')) close(e.at);
  }
  if (open) close(diedAt ?? open.validUntil ?? NaN);
  return out;
}
