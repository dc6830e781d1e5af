// The changes a store has applied, kept for watchers (`GET /kv?watch`): every key a write set or
// removed, with the write's revision, in revision order, in a ring bounded by changes and by bytes.
// A watcher asks for the changes after the revision it has seen; the ring serves it as long as it
// still holds everything after that revision, and otherwise says how far back it does reach (410:
// the client lists again and watches from there, as after etcd's ErrCompacted).
//
// Each store records what it applies, in the order it applies it (store.ts, "changes"); the feed
// knows nothing of stores. Waiting watchers are woken on each record and look again themselves.

import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../../common/setting-names.js';

/** One key changed by one write: its new value, or undefined when the write removed it. */
export interface Change {
  readonly key: string;
  readonly value: string | undefined;
  /** the write's revision: the key's new version (or the revision of its removal) */
  readonly version: number;
}

export interface ChangeFeedLimits {
  /** changes kept at most (TCPKV_WATCH_HISTORY_CHANGES) */
  readonly maxChanges: number;
  /** approximate bytes the kept changes may take (TCPKV_WATCH_HISTORY_BYTES) */
  readonly maxBytes: number;
}

/** The history's bytes by default: a sixteenth of the heap the process has, at most this. */
const DEFAULT_MAX_BYTES_CAP = 64 * 1024 * 1024;

/** Bounds from the heap (`v8.getHeapStatistics().heap_size_limit`), as the store limits are sized. */
export function defaultFeedLimits(heapSizeLimit = getHeapStatistics().heap_size_limit): ChangeFeedLimits {
  return { maxChanges: numericDefault(S.watchHistoryChanges), maxBytes: Math.max(1024, Math.min(DEFAULT_MAX_BYTES_CAP, Math.floor(heapSizeLimit / 16))) };
}

export const DEFAULT_FEED_LIMITS: ChangeFeedLimits = Object.freeze(defaultFeedLimits());

/** What one watch answer is given: the changes after `since` under `prefix`, and where to go on from. */
export type FeedRead =
  | {
      readonly changes: readonly Change[];
      /** the revision the next read starts after: everything up to it under the prefix is in `changes` */
      readonly next: number;
    }
  | {
      /** the feed no longer holds the changes after `since`: it reaches back to here */
      readonly gone: number;
    };

/** Heap a change costs besides its strings (object, ring slot): charged so that the bound is honest for small ones. */
const CHANGE_OVERHEAD_BYTES = 64;
const WARNING_EVERY_MS = 60_000;

function costOf(key: string, value: string | undefined): number {
  // two bytes a character: an upper bound of what V8 holds for either string representation
  return CHANGE_OVERHEAD_BYTES + 2 * (key.length + (value?.length ?? 0));
}

export class ChangeFeed {
  readonly limits: ChangeFeedLimits;
  private readonly logger: Logger | undefined;
  /** ring of changes, oldest at `first`; `count` of them */
  private ring: (Change | undefined)[] = new Array<Change | undefined>(64);
  private first = 0;
  private count = 0;
  private bytes = 0;
  /** every change after this revision is held */
  private floor = 0;
  /** the last revision the store reached */
  private head = 0;
  private waiters = new Set<() => void>();
  private lastWarning = -Infinity;
  private dropped = 0;

  constructor(limits: ChangeFeedLimits = DEFAULT_FEED_LIMITS, logger?: Logger) {
    if (!(limits.maxChanges >= 1) || !(limits.maxBytes >= 1)) throw new RangeError('a change feed needs room for at least one change');
    this.limits = limits;
    this.logger = logger;
  }

  /** The last revision recorded or reached. */
  get revision(): number {
    return this.head;
  }

  /** The oldest `since` a read is served from: every change after it is held. */
  get oldest(): number {
    return this.floor;
  }

  /** The most changes the bounds let it hold (each costs at least a change of a one-character key). */
  get capacity(): number {
    return Math.min(this.limits.maxChanges, Math.ceil(this.limits.maxBytes / costOf('k', undefined)));
  }

  /** Changes held now, and their approximate bytes (metrics, tests). */
  get size(): { readonly changes: number; readonly bytes: number } {
    return { changes: this.count, bytes: this.bytes };
  }

  /**
   * The history starts (again) at `revision`: what came before is forgotten (a store opening, a
   * replica that had to list its data again). Watchers from before it are answered "gone".
   */
  reset(revision: number): void {
    this.ring = new Array<Change | undefined>(64);
    this.first = 0;
    this.count = 0;
    this.bytes = 0;
    this.floor = revision;
    this.head = revision;
    this.wake();
  }

  /**
   * One write applied at `version` (greater than every revision before): the keys it set (a value) or
   * removed (undefined). Changes of one write are kept or dropped together, so a reader never gets
   * half of a write.
   */
  record(version: number, changes: readonly (readonly [key: string, value: string | undefined])[]): void {
    if (!(version > this.head)) throw new RangeError(`revision ${version} recorded after ${this.head}`);
    for (const [key, value] of changes) {
      this.push({ key, value, version });
      this.bytes += costOf(key, value);
    }
    this.head = version;
    this.trim();
    this.wake();
  }

  /** The store moved to `revision` without a change the feed keeps (etcd: another prefix's write). */
  advance(revision: number): void {
    if (revision <= this.head) return;
    this.head = revision;
    if (this.count === 0) this.floor = revision;
    this.wake();
  }

  /**
   * The changes after `since` whose key starts with `prefix`: at most `maxChanges` and about
   * `maxBytes`, cut only between writes (one write's changes come whole, even past the bounds).
   */
  read(since: number, prefix: string, maxChanges: number, maxBytes: number): FeedRead {
    if (since < this.floor) return { gone: this.floor };
    const out: Change[] = [];
    let bytes = 0;
    let i = this.firstAfter(since);
    let next = since;
    let cut = false;
    while (i < this.count) {
      // one write: the changes that share a version
      const version = this.at(i).version;
      const from = i;
      let matched = 0;
      let groupBytes = 0;
      while (i < this.count && this.at(i).version === version) {
        const c = this.at(i++);
        if (prefix === '' || c.key.startsWith(prefix)) {
          matched++;
          groupBytes += costOf(c.key, c.value);
        }
      }
      if (matched > 0 && out.length > 0 && (out.length + matched > maxChanges || bytes + groupBytes > maxBytes)) {
        cut = true;
        break;
      }
      for (let j = from; j < i; j++) {
        const c = this.at(j);
        if (prefix === '' || c.key.startsWith(prefix)) out.push(c);
      }
      bytes += groupBytes;
      next = version;
      if (out.length >= maxChanges || bytes >= maxBytes) {
        cut = i < this.count;
        break;
      }
    }
    // read to the end: the reader has seen everything up to the head, matching or not
    if (!cut && next < this.head) next = this.head;
    return { changes: out, next };
  }

  /**
   * Resolves on the next record, advance or reset after now, or after `timeoutMs` (whichever is first).
   * The caller reads again: a wake-up does not say its prefix changed.
   */
  changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  /** Watchers waiting now. */
  get waiting(): number {
    return this.waiters.size;
  }

  private wake(): void {
    if (this.waiters.size === 0) return;
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const done of waiters) done();
  }

  private at(i: number): Change {
    return this.ring[(this.first + i) % this.ring.length]!;
  }

  /** Index of the first change whose version is greater than `since` (versions never decrease). */
  private firstAfter(since: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).version <= since) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private push(change: Change): void {
    if (this.count === this.ring.length) {
      const grown = new Array<Change | undefined>(this.ring.length * 2);
      for (let i = 0; i < this.count; i++) grown[i] = this.at(i);
      this.ring = grown;
      this.first = 0;
    }
    this.ring[(this.first + this.count) % this.ring.length] = change;
    this.count++;
  }

  /** Drops the oldest writes, whole, while the feed is over a bound; the newest write always stays. */
  private trim(): void {
    let droppedNow = 0;
    while (this.count > 0 && (this.count > this.limits.maxChanges || this.bytes > this.limits.maxBytes)) {
      const version = this.at(0).version;
      if (version === this.head) break; // the write just recorded stays, whatever its size
      while (this.count > 0 && this.at(0).version === version) {
        const c = this.at(0);
        this.ring[this.first] = undefined;
        this.first = (this.first + 1) % this.ring.length;
        this.count--;
        this.bytes -= costOf(c.key, c.value);
        droppedNow++;
      }
      this.floor = version;
    }
    if (droppedNow === 0) return;
    this.dropped += droppedNow;
    const now = Date.now();
    if (now - this.lastWarning >= WARNING_EVERY_MS) {
      this.lastWarning = now;
      this.logger?.info(
        { oldest: this.floor, changes: this.count, bytes: this.bytes, dropped: this.dropped, maxChanges: this.limits.maxChanges, maxBytes: this.limits.maxBytes },
        'limit hit: the watch history is full; its oldest changes are dropped (watchers from before them answer 410) — TCPKV_WATCH_HISTORY_CHANGES / TCPKV_WATCH_HISTORY_BYTES (logged at most once a minute)',
      );
    }
  }
}
