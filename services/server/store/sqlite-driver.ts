// The SQLite store and its driver, through Node's built-in `node:sqlite`: the data in one file
// (TCPKV_SQLITE_FILE) that other tools can read and back up (`sqlite3 data.db .backup copy.db`), with
// no dependency to install. It is the example of adding a store: this one file, a line in drivers.ts,
// and the contract suite (test/support/store-contract.ts) passing against it (docs/store.md).
//
// Each entry is a row whose integer `seq` is its place in insertion order (AUTOINCREMENT never hands a
// number out twice, so a key created again lands at the end); an update keeps the row. A deleted
// key's place is kept in `graves` for the last REMEMBERED_CURSORS deletes (store.ts, cursors). The
// store's revision counter is the one row of `meta`, moved inside each accepted write's transaction,
// and each row's `version` is the revision that last set it: the counter is kept apart from the rows
// because the last write may be a delete, whose revision no row holds. Every write is one
// transaction, committed with synchronous=FULL in WAL mode before it is answered: an acknowledged
// write survives a crash or power loss. The database is opened in exclusive locking mode
// and written once at open, so a second server on the same file is refused at start. The node:sqlite
// API is synchronous: a write holds the event loop for its commit, which suits a small deployment; the
// log store (group commit) is the one for write-heavy ones.
//
// A key with a TTL has its expiry in `expires_at` (wall-clock ms; NULL: never), indexed. Reads hide a
// row from its expiry on, whether or not it is gone yet; a sweeper (one unref'd timer, set for the
// earliest expiry, a short pause after the last sweep at the soonest) deletes the expired rows, each
// slice one transaction with one revision whose deletions go to `changes`, and gives the event loop
// back between slices. A write of a key whose
// row has expired removes that row first in a transaction of its own (the expiry's revision), so
// every expiry reaches `changes` as a deletion before anything else happens to the key.

import type { Logger } from 'pino';
import { SERVER_SETTING_NAMES } from '../../common/setting-names.js';
import { ConfigError, path, setting } from '../../common/settings.js';
import { DEFAULT_SLICE_MS } from '../../common/time-slice.js';
import { ChangeFeed, DEFAULT_FEED_LIMITS, type ChangeFeedLimits } from './change-feed.js';
import { storeDriver } from './driver.js';
import {
  conditionHolds,
  CREATED,
  REMEMBERED_CURSORS,
  repeatedKey,
  StoreFullError,
  StoreUnavailableError,
  UnknownCursorError,
  ValueTooLargeError,
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

/** The part of node:sqlite this store uses (the @types/node of the oldest supported Node lacks it). */
interface Statement {
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): Record<string, unknown> | undefined;
  all(...params: unknown[]): Record<string, unknown>[];
}
interface Database {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  close(): void;
}
interface SqliteModule {
  DatabaseSync: new (file: string, options?: { timeout?: number }) => Database;
}

const FULL_WARNING_EVERY_MS = 60_000;
/** The longest delay a Node timer takes; a later expiry is waited for in steps of it. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A sweep that failed (an I/O error) is tried again this much later. */
const SWEEP_RETRY_MS = 1000;
/**
 * A sweep waits at least this long after the last one ended: each is a synchronous commit, and keys
 * expiring one after another would otherwise be swept one commit each, back to back, leaving reads
 * little room between them.
 */
const SWEEP_PAUSE_MS = 20;
/** Rows a sweep slice deletes at most (and it stops sooner once its time is spent). */
const SWEEP_SLICE_ROWS = 2000;
/** A row's expiry from its `expires_at` (NULL: undefined). */
const expiryOf = (row: Record<string, unknown>) => (row.expires_at === null || row.expires_at === undefined ? undefined : Number(row.expires_at));
const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL, bytes INTEGER NOT NULL, version INTEGER NOT NULL, expires_at INTEGER);
  CREATE TABLE IF NOT EXISTS graves (n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
`;

/**
 * A file written before versions existed has `entries` without `version`: each row gets its place in
 * insertion order as its version (1, 2, …; nothing older can be known), and the counter starts after
 * the last. Runs inside open's transaction, so a failure leaves the file as it was.
 */
const ADD_VERSIONS = `
  ALTER TABLE entries ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
  UPDATE entries SET version = ordered.n FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM entries) AS ordered WHERE entries.seq = ordered.seq;
`;

/** A row that has not expired at the instant given as its parameter. */
const LIVE = '(expires_at IS NULL OR expires_at > ?)';

/** A file from before expiry has `entries` without `expires_at`: its keys never expire (NULL). */
const ADD_EXPIRY = 'ALTER TABLE entries ADD COLUMN expires_at INTEGER';
/** The sweeper finds the earliest expiries through it; rows without one are left out of it. */
const EXPIRY_INDEX = 'CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL';

/** A row's version as a number (node:sqlite answers integers as numbers unless asked for bigints). */
const versionOf = (row: Record<string, unknown>) => Number(row.version);

export interface SqliteStoreOptions {
  readonly file: string;
  readonly limits: StoreLimits;
  readonly logger?: Logger;
  readonly feedLimits?: ChangeFeedLimits | undefined;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly limits: StoreLimits;
  readonly changes: ChangeFeed;
  /** the keys the write in progress set (value) or removed (undefined), for `changes` once it commits */
  private noted: [string, string | undefined][] = [];
  private readonly db: Database;
  private readonly logger: Logger | undefined;
  private readonly sql: Record<'get' | 'place' | 'grave' | 'pageAll' | 'pagePrefix' | 'all' | 'insert' | 'update' | 'remove' | 'bury' | 'unbury' | 'forget' | 'nextRevision' | 'expiredKey' | 'expiredRows' | 'earliest', Statement>;
  private keys: number;
  private dataBytes: number;
  /** the last revision committed (a copy of meta's, for `revision` and the listing cache) */
  private rev: number;
  /** the revision the write in progress took, if any: the store's once it commits */
  private takenRevision: number | undefined;
  private snapshot: { revision: number; validUntil: number; listing: ListingSnapshot } | undefined;
  private closed = false;
  /** no row expires before this (wall-clock ms; Infinity: none has an expiry) — may be earlier than the first */
  private nextExpiry: number;
  private sweepTimer: NodeJS.Timeout | undefined;
  /** the expiry the sweep timer is set for */
  private sweepAt = Infinity;
  /** a sweep is between two slices: it looks for the next expiry itself when it ends */
  private sweeping = false;
  /** when the last sweep ended (performance.now()) */
  private lastSweepEnd = -Infinity;
  private lastFullWarning = -Infinity;

  private constructor(db: Database, options: SqliteStoreOptions) {
    this.db = db;
    this.limits = options.limits;
    this.logger = options.logger;
    const p = (sql: string) => db.prepare(sql);
    this.sql = {
      // reads see the rows that have not expired at the instant given (the `now` parameters)
      get: p(`SELECT value, bytes, version, expires_at FROM entries WHERE key = ? AND ${LIVE}`),
      // a cursor's place, expired or not: an expired key is a deleted one, whose place is kept
      place: p('SELECT seq FROM entries WHERE key = ?'),
      grave: p('SELECT seq FROM graves WHERE key = ?'),
      pageAll: p(`SELECT key, value, version FROM entries WHERE seq > ? AND ${LIVE} ORDER BY seq LIMIT ?`),
      // bytes compared as bytes: a prefix is a prefix of the key's UTF-8
      pagePrefix: p(`SELECT key, value, version FROM entries WHERE seq > ? AND ${LIVE} AND substr(CAST(key AS BLOB), 1, ?) = ? ORDER BY seq LIMIT ?`),
      all: p(`SELECT key, value FROM entries WHERE ${LIVE} ORDER BY seq`),
      insert: p('INSERT INTO entries (key, value, bytes, version, expires_at) VALUES (?, ?, ?, ?, ?)'),
      update: p('UPDATE entries SET value = ?, bytes = ?, version = ?, expires_at = ? WHERE key = ?'),
      remove: p('DELETE FROM entries WHERE key = ? RETURNING seq, bytes'),
      bury: p('INSERT INTO graves (key, seq) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET seq = excluded.seq'),
      unbury: p('DELETE FROM graves WHERE key = ?'),
      forget: p(`DELETE FROM graves WHERE n <= (SELECT max(n) FROM graves) - ${REMEMBERED_CURSORS}`),
      nextRevision: p('UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision'),
      expiredKey: p('SELECT 1 FROM entries WHERE key = ? AND expires_at <= ?'),
      expiredRows: p('SELECT key FROM entries WHERE expires_at <= ? ORDER BY expires_at LIMIT ?'),
      earliest: p('SELECT expires_at FROM entries WHERE expires_at IS NOT NULL ORDER BY expires_at LIMIT 1'),
    };
    this.rev = Number(p('SELECT revision FROM meta WHERE id = 1').get()!.revision);
    this.changes = new ChangeFeed(options.feedLimits ?? DEFAULT_FEED_LIMITS, options.logger);
    this.changes.reset(this.rev);
    const usage = p('SELECT count(*) AS keys, coalesce(sum(bytes), 0) AS bytes FROM entries').get()!;
    this.keys = Number(usage.keys);
    this.dataBytes = Number(usage.bytes);
    // rows that expired while the file was closed are hidden from now on and removed by the first sweep
    this.nextExpiry = this.earliestExpiry();
    this.scheduleSweep();
  }

  /**
   * Opens (or creates) the database file; refuses a file another process holds. A file from before
   * versions is given them, in place, in one transaction (see ADD_VERSIONS), and that is logged.
   */
  static open(sqlite: SqliteModule, options: SqliteStoreOptions): SqliteStore {
    const db = new sqlite.DatabaseSync(options.file, { timeout: 0 });
    try {
      db.exec('PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
      // a write at open takes the exclusive lock now, not at the first request
      db.exec('BEGIN IMMEDIATE');
      let migrated: number | undefined;
      let expiryAdded: number | undefined;
      try {
        db.exec(SCHEMA);
        const columns = db.prepare('SELECT name FROM pragma_table_info(?)').all('entries');
        if (!columns.some((c) => c.name === 'version')) {
          db.exec(ADD_VERSIONS);
          migrated = Number(db.prepare('SELECT count(*) AS n FROM entries').get()!.n);
        }
        if (!columns.some((c) => c.name === 'expires_at')) {
          db.exec(ADD_EXPIRY);
          expiryAdded = Number(db.prepare('SELECT count(*) AS n FROM entries').get()!.n);
        }
        db.exec(EXPIRY_INDEX);
        // a new file, or one from before versions: the counter starts after every version a row holds
        db.exec('INSERT INTO meta (id, revision) SELECT 1, (SELECT coalesce(max(version), 0) FROM entries) WHERE NOT EXISTS (SELECT 1 FROM meta)');
        db.exec('COMMIT');
      } catch (error) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // a failed COMMIT may have rolled back already
        }
        throw error;
      }
      if (migrated !== undefined) options.logger?.warn({ file: options.file, keys: migrated }, 'SQLite file from before versions migrated in place: every key has a version now (1, 2, … in insertion order)');
      if (expiryAdded !== undefined) options.logger?.warn({ file: options.file, keys: expiryAdded }, 'SQLite file from before expiry: column expires_at added in place (its keys never expire unless written again with a TTL)');
      return new SqliteStore(db, options);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  get revision(): number {
    return this.rev;
  }

  listing(): ListingSnapshot {
    const now = Date.now();
    // a listing holds until the next write or the next expiry, whichever comes first
    if (this.snapshot?.revision === this.rev && now < this.snapshot.validUntil) return this.snapshot.listing;
    const rows = this.read(() => this.sql.all.all(now));
    const lines = rows.map((r) => `\n${r.key as string}:${r.value as string}`);
    const wire = Buffer.from(lines.join(''), 'utf8');
    const listing: ListingSnapshot = { count: rows.length, slices: wire.length ? [wire] : [], bytes: wire.length };
    this.snapshot = { revision: this.rev, validUntil: this.nextExpiry, listing };
    return listing;
  }

  get(key: string): string | undefined {
    return this.read(() => this.sql.get.get(key, Date.now())?.value as string | undefined);
  }

  getVersioned(key: string): Versioned | undefined {
    const row = this.read(() => this.sql.get.get(key, Date.now()));
    if (row === undefined) return undefined;
    const expiresAt = expiryOf(row);
    return expiresAt === undefined ? { value: row.value as string, version: versionOf(row) } : { value: row.value as string, version: versionOf(row), expiresAt };
  }

  page({ prefix, after, limit }: PageRequest): Page {
    return this.read(() => {
      let from = 0;
      if (after !== undefined) {
        const place = this.sql.place.get(after) ?? this.sql.grave.get(after);
        if (place === undefined) throw new UnknownCursorError(after);
        from = Number(place.seq);
      }
      const prefixBytes = Buffer.from(prefix, 'utf8');
      const now = Date.now();
      const rows = prefix === '' ? this.sql.pageAll.all(from, now, limit + 1) : this.sql.pagePrefix.all(from, now, prefixBytes.length, prefixBytes, limit + 1);
      const shown = rows.slice(0, limit);
      const items = shown.map((r): Pair => [r.key as string, r.value as string]);
      return { items, versions: shown.map(versionOf), next: rows.length > limit ? items[items.length - 1]![0] : undefined };
    });
  }

  createAll(pairs: readonly Pair[]): CreateResult {
    const repeated = repeatedKey(pairs);
    if (repeated !== undefined) return { ok: false, existingKey: repeated };
    this.expireDue(pairs.map(([key]) => key), Date.now());
    for (const [key] of pairs) if (this.sql.place.get(key) !== undefined) return { ok: false, existingKey: key };
    let added = 0;
    for (const [key, value] of pairs) added += utf8(key) + utf8(value);
    this.checkGrowth(pairs.length, added);
    this.write(() => {
      const version = this.takeRevision();
      for (const [key, value] of pairs) {
        this.sql.insert.run(key, value, utf8(key) + utf8(value), version, null);
        this.sql.unbury.run(key);
        this.noted.push([key, value]);
      }
    });
    this.keys += pairs.length;
    this.dataBytes += added;
    return CREATED;
  }

  upsertAll(pairs: readonly Pair[]): UpsertResult {
    // per distinct key, in the order of first appearance: what it held, and its last value
    const before = new Map<string, { value: string; bytes: number } | undefined>();
    const last = new Map<string, string>();
    const now = Date.now();
    this.expireDue(pairs.map(([key]) => key), now);
    for (const [key, value] of pairs) {
      if (!before.has(key)) {
        const row = this.read(() => this.sql.get.get(key, now));
        before.set(key, row === undefined ? undefined : { value: row.value as string, bytes: Number(row.bytes) });
      }
      last.set(key, value);
    }
    let newKeys = 0;
    let added = 0;
    for (const [key, value] of last) {
      const old = before.get(key);
      if (old === undefined) newKeys++;
      added += utf8(key) + utf8(value) - (old?.bytes ?? 0);
    }
    this.checkGrowth(newKeys, added);
    this.write(() => {
      const version = this.takeRevision();
      for (const [key, value] of last) {
        const bytes = utf8(key) + utf8(value);
        if (before.get(key) === undefined) {
          this.sql.insert.run(key, value, bytes, version, null);
          this.sql.unbury.run(key);
        } else {
          this.sql.update.run(value, bytes, version, null, key);
        }
        this.noted.push([key, value]);
      }
    });
    this.keys += newKeys;
    this.dataBytes += added;
    return { previous: pairs.map(([key]) => before.get(key)?.value) };
  }

  delete(key: string): boolean {
    this.expireDue([key], Date.now());
    const removed = this.write(() => this.removeRow(key));
    if (removed === undefined) return false;
    this.keys -= 1;
    this.dataBytes -= removed.bytes;
    return true;
  }

  putKey(key: string, value: string, condition: Condition, ttlMs?: number): KeyPutResult {
    const bytes = utf8(key) + utf8(value);
    const now = Date.now();
    const expiresAt = ttlMs === undefined ? null : now + ttlMs;
    this.expireDue([key], now);
    // the condition, the limits and the write are decided in one transaction
    const outcome = this.write((): { result: KeyPutResult; addedBytes: number } => {
      const row = this.sql.get.get(key, now);
      const current = row === undefined ? undefined : versionOf(row);
      if (!conditionHolds(condition, current)) return { result: { ok: false, current }, addedBytes: 0 };
      const addedBytes = bytes - (row === undefined ? 0 : Number(row.bytes));
      this.checkGrowth(row === undefined ? 1 : 0, addedBytes);
      const version = this.takeRevision();
      if (row === undefined) {
        this.sql.insert.run(key, value, bytes, version, expiresAt);
        this.sql.unbury.run(key);
      } else {
        this.sql.update.run(value, bytes, version, expiresAt, key);
      }
      this.noted.push([key, value]);
      return { result: { ok: true, version, created: row === undefined }, addedBytes };
    });
    if (outcome.result.ok) {
      if (outcome.result.created) this.keys += 1;
      this.dataBytes += outcome.addedBytes;
      if (expiresAt !== null) this.expiryAdded(expiresAt);
    }
    return outcome.result;
  }

  deleteKey(key: string, condition: Condition): KeyDeleteResult {
    const now = Date.now();
    this.expireDue([key], now);
    const outcome = this.write((): { result: KeyDeleteResult; bytes: number } => {
      const row = this.sql.get.get(key, now);
      if (row === undefined) return { result: { ok: false, current: undefined }, bytes: 0 };
      const current = versionOf(row);
      if (!conditionHolds(condition, current)) return { result: { ok: false, current }, bytes: 0 };
      const removed = this.removeRow(key)!;
      return { result: { ok: true, version: removed.version }, bytes: removed.bytes };
    });
    if (outcome.result.ok) {
      this.keys -= 1;
      this.dataBytes -= outcome.bytes;
    }
    return outcome.result;
  }

  usage(): StoreUsage {
    return { keys: this.keys, dataBytes: this.dataBytes };
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      clearTimeout(this.sweepTimer);
      this.sweepTimer = undefined;
      this.db.close();
    }
    return Promise.resolve();
  }

  private checkGrowth(addedKeys: number, addedBytes: number): void {
    let limit: string | undefined;
    if (addedKeys > 0 && this.keys + addedKeys > this.limits.maxKeys) limit = `TCPKV_MAX_KEYS=${this.limits.maxKeys}`;
    else if (addedBytes > 0 && this.dataBytes + addedBytes > this.limits.maxDataBytes) limit = `TCPKV_MAX_DATA_BYTES=${this.limits.maxDataBytes}`;
    if (limit === undefined) return;
    const now = Date.now();
    if (now - this.lastFullWarning >= FULL_WARNING_EVERY_MS) {
      this.lastFullWarning = now;
      this.logger?.warn({ limit, keys: this.keys, dataBytes: this.dataBytes, addedKeys, addedBytes }, 'limit hit: storage is full; writes that grow the store answer 507 (logged at most once a minute)');
    }
    throw new StoreFullError(limit);
  }

  private read<T>(call: () => T): T {
    try {
      return call();
    } catch (error) {
      throw this.storeError(error);
    }
  }

  /** Inside a write's transaction: the row removed (its place kept as a cursor) with the delete's revision. */
  private removeRow(key: string): { bytes: number; version: number } | undefined {
    const bytes = this.dropRow(key);
    if (bytes === undefined) return undefined;
    this.sql.forget.run();
    return { bytes, version: this.takeRevision() };
  }

  /** Inside a write's transaction: the row removed, its place kept, noted for `changes`; its bytes. */
  private dropRow(key: string): number | undefined {
    const removed = this.sql.remove.get(key);
    if (removed === undefined) return undefined;
    this.sql.bury.run(key, removed.seq);
    this.noted.push([key, undefined]);
    return Number(removed.bytes);
  }

  /**
   * Before a write of `keys`: those whose rows have expired by `now` are removed in a transaction of
   * their own (one revision, their deletions in `changes`), so the write finds them gone.
   */
  private expireDue(keys: readonly string[], now: number): void {
    if (now < this.nextExpiry) return;
    const due = [...new Set(keys)].filter((key) => this.read(() => this.sql.expiredKey.get(key, now)) !== undefined);
    if (due.length === 0) return;
    const bytes = this.write(() => {
      let removed = 0;
      for (const key of due) removed += this.dropRow(key)!;
      this.sql.forget.run();
      this.takeRevision();
      return removed;
    });
    this.keys -= due.length;
    this.dataBytes -= bytes;
  }

  /** The earliest expiry a row holds (Infinity: none). */
  private earliestExpiry(): number {
    const row = this.read(() => this.sql.earliest.get());
    return row === undefined ? Infinity : Number(row.expires_at);
  }

  /** A write set an expiry: the sweeper wakes for it if it is the earliest. */
  private expiryAdded(at: number): void {
    if (at >= this.nextExpiry) return;
    this.nextExpiry = at;
    this.scheduleSweep();
  }

  /** Sets the one sweep timer for the earliest expiry (none while a sweep runs: it sets it when it ends). */
  private scheduleSweep(): void {
    if (this.closed || this.sweeping || this.nextExpiry === Infinity) return;
    if (this.sweepTimer !== undefined && this.sweepAt <= this.nextExpiry) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = this.nextExpiry;
    // a timer fires at most MAX_TIMER_MS on: one for a later expiry finds nothing due and is set again
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweepAt = Infinity;
      this.sweep();
    }, Math.min(MAX_TIMER_MS, Math.max(0, this.nextExpiry - Date.now(), this.lastSweepEnd + SWEEP_PAUSE_MS - performance.now())));
    this.sweepTimer.unref();
  }

  /**
   * Removes the expired rows, a slice at a time: each slice one transaction (one revision, its
   * deletions in `changes`) that stops after SWEEP_SLICE_ROWS rows or DEFAULT_SLICE_MS, then the event
   * loop runs before the next. A slice that fails (I/O) is tried again SWEEP_RETRY_MS later; reads
   * hide the expired rows meanwhile.
   */
  private sweep(): void {
    if (this.closed) return;
    this.sweeping = true;
    let more: boolean;
    try {
      more = this.sweepSlice();
    } catch (error) {
      this.sweeping = false;
      this.logger?.error({ err: error, retryMs: SWEEP_RETRY_MS }, 'SQLite: expired keys could not be removed (they stay hidden from reads); trying again');
      clearTimeout(this.sweepTimer);
      this.sweepAt = Date.now() + SWEEP_RETRY_MS;
      this.sweepTimer = setTimeout(() => {
        this.sweepTimer = undefined;
        this.sweepAt = Infinity;
        this.sweep();
      }, SWEEP_RETRY_MS);
      this.sweepTimer.unref();
      return;
    }
    if (more) {
      setImmediate(() => this.sweep()).unref();
      return;
    }
    this.sweeping = false;
    this.lastSweepEnd = performance.now();
    this.nextExpiry = this.earliestExpiry();
    this.scheduleSweep();
  }

  /** One slice of a sweep; whether expired rows may remain. */
  private sweepSlice(): boolean {
    const now = Date.now();
    const started = performance.now();
    let more = false;
    const removed = this.write(() => {
      const rows = this.sql.expiredRows.all(now, SWEEP_SLICE_ROWS);
      let keys = 0;
      let bytes = 0;
      for (const row of rows) {
        bytes += this.dropRow(row.key as string)!;
        keys++;
        if (keys % 64 === 0 && keys < rows.length && performance.now() - started >= DEFAULT_SLICE_MS) break;
      }
      more = keys < rows.length || rows.length === SWEEP_SLICE_ROWS;
      if (keys > 0) {
        this.sql.forget.run();
        this.takeRevision();
      }
      return { keys, bytes };
    });
    this.keys -= removed.keys;
    this.dataBytes -= removed.bytes;
    return more;
  }

  /** Inside a write's transaction: the next revision, for the write that changes something (once each). */
  private takeRevision(): number {
    this.takenRevision = Number(this.sql.nextRevision.get()!.revision);
    return this.takenRevision;
  }

  /**
   * One transaction: committed whole before it returns, or rolled back and thrown as a store error
   * (a typed store error thrown by `apply`, such as StoreFullError, as it is). The revision it took,
   * if any, becomes the store's once committed.
   */
  private write<T>(apply: () => T): T {
    let answer: T;
    this.takenRevision = undefined;
    this.noted = [];
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        answer = apply();
        this.db.exec('COMMIT');
      } catch (error) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // a failed COMMIT may have rolled back already
        }
        throw error;
      }
    } catch (error) {
      throw this.storeError(error);
    }
    if (this.takenRevision !== undefined) {
      this.rev = this.takenRevision;
      this.changes.record(this.rev, this.noted);
    }
    this.noted = [];
    return answer;
  }

  private storeError(error: unknown): Error {
    if (error instanceof UnknownCursorError || error instanceof StoreFullError) return error;
    const message = (error as Error).message;
    if (/too big|too large/i.test(message)) return new ValueTooLargeError(`SQLite cannot hold it: ${message}`);
    return new StoreUnavailableError(`SQLite: ${message}`);
  }
}

export const sqliteDriver = storeDriver({
  name: 'sqlite',
  settings: {
    sqliteFile: setting({ ...SERVER_SETTING_NAMES.sqliteFile, flag: 'sqlite-file', valueName: 'file', describe: 'the SQLite database file of the sqlite store (created if missing; needs Node 22.13 or later); set = data kept there', parse: path }),
  },
  impliedBy: (config) => config.sqliteFile !== undefined,
  settingsProblem: (config) => (config.sqliteFile === undefined ? 'TCPKV_STORE=sqlite needs TCPKV_SQLITE_FILE: the database file' : undefined),
  async open(config, { limits, logger, feedLimits }) {
    const file = config.sqliteFile!;
    if (config.dataDir !== undefined) logger.warn({ dataDir: config.dataDir }, 'TCPKV_DATA_DIR is ignored: with TCPKV_SQLITE_FILE the data lives in that file');
    const moduleName = 'node:sqlite';
    let sqlite: SqliteModule;
    try {
      sqlite = (await import(moduleName)) as SqliteModule;
    } catch (error) {
      throw new ConfigError(`TCPKV_STORE=sqlite needs Node's built-in node:sqlite (Node 22.13 or later); this is Node ${process.version}`, 'TCPKV_STORE', { cause: error });
    }
    try {
      return SqliteStore.open(sqlite, { file, limits, logger, feedLimits });
    } catch (error) {
      const message = (error as Error).message;
      const why = /locked|busy/i.test(message) ? 'the file is in use by another process' : message;
      throw new ConfigError(`TCPKV_SQLITE_FILE=${file}: ${why}`, 'TCPKV_SQLITE_FILE', { cause: error });
    }
  },
  location: (config) => `in TCPKV_SQLITE_FILE=${config.sqliteFile}`,
});
