// The durable store: the memory store, plus an append-only log that every accepted write reaches
// before it is answered (after Redis's AOF).
//
// Writes are batched (group commit): requests that arrive while a write (and, with `always`, an
// fsync) is under way are validated together and written as one block after it. A batch is checked
// against memory plus the batch's own earlier writes (existing keys, versions for conditions, store
// limits), written, and only then applied to memory and answered — so a failed write (disk full)
// answers 503 and changes nothing, and a reader never sees a value that is not in the log.
//
// Versions: each accepted request is one record and takes the next revision, the i-th record of a
// batch memory's revision + i; replay numbers the records the same way (log-format.ts), and a
// compaction writes the counter and every key's version, so versions survive restarts and compactions.
//
//   always    fdatasync before answering (one per batch)
//   everysec  fdatasync once a second: a process crash loses nothing answered (the write() is done),
//             a power loss at most about a second
//   no        the OS decides
//
// Compaction rewrites the log as a snapshot of the live data when it has grown `compactFactor` times
// larger than that (UTF-8 bytes as the log encodes them, and past `compactMinBytes`): the snapshot is
// written to a temporary file in the background while writes go on to the old log; then, between two
// batches, the old log's bytes written since the snapshot are copied over, the new file is fsynced
// and renamed over the log, and the directory is fsynced. The new file's handle is the one the rest
// was written through, so once the rename has happened there is no other file writes could go to;
// a failure before the rename leaves the old log in use, unchanged.
//
// Expiry: a putKey with a TTL is a SET_EXPIRING record holding the key's expiry as a wall-clock time
// (Date.now() ms), and a compaction's SNAPSHOT entries carry it. In memory the deadline runs on the
// monotonic clock from the moment the record is applied (or replayed). Removing expired keys is a
// write like any other: the memory store's sweeper hands each slice of due keys to the batch, which
// decides them again there (a key rewritten since is no longer due), writes one EXPIRE record for those
// still due, and only then removes them (one revision, deletions in `changes`). A write in a batch that
// touches a key expired but not yet swept is preceded by an EXPIRE record of it. At open, the keys whose
// expiry passed while the store was closed are expired at once, by one EXPIRE record per slice, before
// any request is served (deletions in the watch history, after the replayed changes); a crash before
// that record is written leaves them to the next open, which expires them again. A jump of the wall
// clock while the store is closed (or between a write and a restart) moves the expiries replay
// computes by as much: a key may expire early or late by the jump.
// While the store runs, deadlines are monotonic and a wall-clock jump changes nothing.
//
// Watches: replay feeds the watch history (`changes`) the records after the last snapshot, as their
// writes fed it when applied and within the same bounds, so a watcher that comes back after a restart
// with the last revision it saw goes on from it. A snapshot is where the history starts again: a
// watcher from before it (or from before what the bounds keep) is answered 410 with the oldest.
//
// A failure that leaves the log in doubt (a failed write whose partial bytes could not be cut off,
// a rename whose directory fsync failed) makes writes answer 503 until a retry of the repair works.

import { constants, closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { StartupError } from '../../common/errors.js';
import { NO_STORE_EVENTS, type StoreEvents } from '../events.js';
import { lockDirectory, type DirectoryLock } from './dir-lock.js';
import { DEFAULT_RECORD_LIMIT, encodeDelete, encodeExpire, encodeExpiringRecord, encodeRecord, encodeSnapshot, fileSource, FORMAT_VERSION, MAGIC, MAX_RECORD_BYTES, pairRecordBytes, RECORD_HEADER_BYTES, replay, surveyDamage, type FormatVersion, type LogSource, type ReplayResult } from './log-format.js';
import { ChangeFeed, DEFAULT_FEED_LIMITS, type ChangeFeedLimits } from './change-feed.js';
import { MemoryStore, type ExpiringPair, type FrozenPairs, type VersionedPair } from './memory-store.js';
import {
  conditionHolds,
  repeatedKey,
  StoreUnavailableError,
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
  type StoreGauges,
  type StoreLimits,
  type StoreUsage,
  type UpsertResult,
  type Versioned,
} from './store.js';

export const LOG_NAME = 'tcpkv.log';
export const REWRITE_NAME = 'tcpkv.log.rewrite';
/** owner only, like PostgreSQL's data directory */
export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;
const APPEND_FLAGS = constants.O_RDWR | constants.O_APPEND | constants.O_CREAT;
const REWRITE_FLAGS = APPEND_FLAGS | constants.O_TRUNC;
/** after a failed compaction, wait this long before the next automatic one */
const COMPACT_RETRY_MS = 5000;
const COPY_CHUNK_BYTES = 1024 * 1024;
const RECORD_WARNING_EVERY_MS = 60_000;
/** Keys one EXPIRE record written at open holds at most. */
const OPEN_EXPIRE_KEYS = 10_000;

export type FsyncPolicy = 'always' | 'everysec' | 'no';

/**
 * Every file operation the store makes after start-up, in one place: the real ones by default; tests
 * wrap them to make a chosen step fail (EMFILE, ENOSPC, EIO) on real files.
 */
export interface LogFileOps {
  open(path: string, flags: number, mode: number): Promise<FileHandle>;
  write(handle: FileHandle, data: Buffer, path: string): Promise<void>;
  read(handle: FileHandle, into: Buffer, position: number, path: string): Promise<number>;
  datasync(handle: FileHandle, path: string): Promise<void>;
  truncate(handle: FileHandle, bytes: number, path: string): Promise<void>;
  close(handle: FileHandle, path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  syncDirectory(dir: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

export const REAL_FILE_OPS: LogFileOps = Object.freeze({
  open: (path: string, flags: number, mode: number) => open(path, flags, mode),
  async write(handle: FileHandle, data: Buffer) {
    let at = 0;
    while (at < data.length) {
      const { bytesWritten } = await handle.write(data, at, data.length - at);
      at += bytesWritten;
    }
  },
  read: async (handle: FileHandle, into: Buffer, position: number) => (await handle.read(into, 0, into.length, position)).bytesRead,
  datasync: (handle: FileHandle) => handle.datasync(),
  truncate: (handle: FileHandle, bytes: number) => handle.truncate(bytes),
  close: (handle: FileHandle) => handle.close(),
  rename: (from: string, to: string) => rename(from, to),
  async syncDirectory(dir: string) {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  unlink: (path: string) => unlink(path),
});

export interface LogStoreOptions {
  readonly dir: string;
  readonly fsync: FsyncPolicy;
  /** compact when the log is this many times the size of the live data… */
  readonly compactFactor: number;
  /** …and at least this large */
  readonly compactMinBytes: number;
  /** on a damaged record in the middle of the log: refuse to start, or cut the log there */
  readonly repair: 'off' | 'truncate';
  readonly logger: Logger;
  /** the largest record payload the writer accepts (≤ MAX_RECORD_BYTES); a request needing more is refused (413) */
  readonly maxRecordBytes?: number;
  /** store limits (507; docs/store.md, Limits); unset = derived from the heap */
  readonly limits?: StoreLimits;
  readonly events?: StoreEvents;
  /** the file operations (tests inject failures here) */
  readonly fileOps?: LogFileOps;
  /** the bounds of its watch history (`changes`) */
  readonly feedLimits?: ChangeFeedLimits | undefined;
}

/** Start-up refused: the log is damaged or not a log. The message names the file and the offset. */
export class LogOpenError extends StartupError {
  readonly file: string;
  readonly offset: number | undefined;
  constructor(message: string, file: string, offset?: number) {
    super('TCPKV_ERR_LOG_DAMAGED', message, 'TCPKV_DATA_DIR');
    this.file = file;
    this.offset = offset;
  }
}

type WriteResult = CreateResult | UpsertResult | boolean | KeyPutResult | KeyDeleteResult;

/** A write as a request asks it, before its record is encoded. */
type WriteRequest =
  | { readonly kind: 'create' | 'upsert'; readonly pairs: readonly Pair[] }
  | { readonly kind: 'delete'; readonly key: string }
  | { readonly kind: 'putKey'; readonly key: string; readonly value: string; readonly condition: Condition; readonly expiresAt: number | undefined }
  | { readonly kind: 'deleteKey'; readonly key: string; readonly condition: Condition }
  /** keys the sweeper found expired: removed if they still are when the batch decides */
  | { readonly kind: 'expire'; readonly keys: readonly string[] };

type PendingWrite = WriteRequest & { readonly record: Buffer; resolve(result: WriteResult): void; reject(error: Error): void };

/** A key as a batch's earlier writes left it: its value and the revision it will have; null = deleted. */
type OverlayEntry = { readonly value: string; readonly version: number } | null;

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');

/**
 * Where the last `capacity` records of a replay start, and the revision before each: at most as many
 * as the watch history can hold changes (each record is at least one), cleared at a snapshot.
 */
class ReplayTail {
  private offsets = new Float64Array(64);
  private revisions = new Float64Array(64);
  private next = 0;
  private count = 0;

  constructor(private readonly capacity: number) {}

  note(offset: number, revisionBefore: number): void {
    if (this.count === this.offsets.length && this.count < this.capacity) {
      const size = Math.min(this.capacity, this.count * 2);
      const offsets = new Float64Array(size);
      const revisions = new Float64Array(size);
      offsets.set(this.offsets);
      revisions.set(this.revisions);
      this.offsets = offsets;
      this.revisions = revisions;
      this.next = this.count;
    }
    this.offsets[this.next] = offset;
    this.revisions[this.next] = revisionBefore;
    this.next = (this.next + 1) % this.offsets.length;
    if (this.count < this.offsets.length) this.count++;
  }

  clear(): void {
    this.next = 0;
    this.count = 0;
  }

  private get oldest(): number {
    return this.count < this.offsets.length ? 0 : this.next;
  }

  /** Where the oldest record kept starts; undefined = none since the last snapshot. */
  get from(): number | undefined {
    return this.count === 0 ? undefined : this.offsets[this.oldest];
  }

  /** The revision before that record. */
  get revisionBefore(): number {
    return this.revisions[this.oldest]!;
  }
}

export class LogStore implements Store {
  readonly kind = 'log';
  private readonly memory: MemoryStore;
  /** what the store applied, for watches: from replay on (the records after the last snapshot), within its bounds */
  readonly changes: ChangeFeed;
  private readonly options: LogStoreOptions;
  private readonly logger: Logger;
  private readonly events: StoreEvents;
  private readonly ops: LogFileOps;
  private readonly path: string;
  private readonly rewritePath: string;
  private readonly maxRecordBytes: number;
  private handle!: FileHandle;
  private lock!: DirectoryLock;
  /** bytes of the log known good: every write goes right after them */
  private size = 0;
  /** UTF-8 bytes a snapshot of the live data would take (pairs as the log encodes them, versions aside) */
  private liveBytes = 0;

  private queue: PendingWrite[] = [];
  private flushScheduled = false;
  /** serialises every use of the file: batches, syncs, the compaction switch, close */
  private chain: Promise<void> = Promise.resolve();
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private rewriting = false;
  private rewriteDone: Promise<void> = Promise.resolve();
  private compactNotBefore = 0;
  /** a failed write left bytes after `size` that could not be cut off yet */
  private tailDirty = false;
  /** the compacted file was renamed into place but the directory fsync failed */
  private dirSyncPending = false;
  /** why the last write or fsync failed, until one succeeds (readiness) */
  private lastFailure: string | undefined;
  private closed = false;
  private lastRecordWarning = -Infinity;
  /** counters for tests and the durability notes */
  private readonly counts = { compactions: 0, failedCompactions: 0, bytesWritten: 0 };
  /** what the store has done since it opened (a copy: for tests and diagnostics) */
  get stats(): Readonly<{ compactions: number; failedCompactions: number; bytesWritten: number }> {
    return { ...this.counts };
  }

  private constructor(options: LogStoreOptions) {
    this.options = options;
    this.logger = options.logger;
    this.events = options.events ?? NO_STORE_EVENTS;
    this.ops = options.fileOps ?? REAL_FILE_OPS;
    this.path = join(options.dir, LOG_NAME);
    this.rewritePath = join(options.dir, REWRITE_NAME);
    this.maxRecordBytes = Math.min(options.maxRecordBytes ?? DEFAULT_RECORD_LIMIT, MAX_RECORD_BYTES);
    // replay does not check the limits: a log loaded over them starts, and then only shrinks
    this.memory = new MemoryStore({ logger: options.logger, expire: (keys) => this.expireKeys(keys), ...(options.limits ? { limits: options.limits } : {}) });
    this.changes = new ChangeFeed(options.feedLimits ?? DEFAULT_FEED_LIMITS, options.logger);
  }

  /** Locks the directory, replays the log, and opens it for appending. */
  static async open(options: LogStoreOptions): Promise<LogStore> {
    const store = new LogStore(options);
    mkdirSync(options.dir, { recursive: true, mode: DIR_MODE });
    store.warnIfOpen(options.dir, 'data directory', 0o700);
    store.lock = await lockDirectory(options.dir);
    try {
      const version = store.load();
      store.handle = await store.ops.open(store.path, APPEND_FLAGS, FILE_MODE);
      store.warnIfOpen(store.path, 'log file', 0o600);
      if (version !== FORMAT_VERSION) await store.upgradeFormat(version);
      // recorded in the watch history after the replayed changes, as any expiry
      await store.expireReplayed();
    } catch (error) {
      const handle = store.handle as FileHandle | undefined;
      if (handle) await store.ops.close(handle, store.path).catch(() => undefined);
      await store.lock.release();
      throw error;
    }
    if (options.fsync === 'everysec') {
      store.syncTimer = setInterval(() => store.syncIfDirty(), 1000);
      store.syncTimer.unref();
    }
    store.memory.startSweeper();
    return store;
  }

  get revision(): number {
    return this.memory.revision;
  }

  /** bytes in the log file now */
  get logBytes(): number {
    return this.size;
  }

  get limits(): StoreLimits {
    return this.memory.limits;
  }

  gauges(): StoreGauges {
    return { logBytes: this.size };
  }

  /**
   * UTF-8 bytes a compaction would write for the live data now (without record headers), at most: each
   * pair's version is counted with as many digits as the revision has.
   */
  get liveDataBytes(): number {
    return this.liveBytes + this.memory.size * (1 + String(this.memory.revision).length);
  }

  listing(): ListingSnapshot {
    return this.memory.listing();
  }

  get(key: string): string | undefined {
    return this.memory.get(key);
  }

  getVersioned(key: string): Versioned | undefined {
    return this.memory.getVersioned(key);
  }

  page(request: PageRequest): Page {
    return this.memory.page(request);
  }

  usage(): StoreUsage {
    return this.memory.usage();
  }

  readiness(): string | undefined {
    if (this.closed) return 'the log is closed';
    if (this.tailDirty) return `a write to ${this.path} failed and its bytes could not be cut off yet: writes are refused until that works`;
    if (this.dirSyncPending) return `the compacted log was renamed into place but ${this.options.dir} could not be fsynced yet: writes are refused until that works`;
    return this.lastFailure;
  }

  createAll(pairs: readonly Pair[]): Promise<CreateResult> {
    // a key given twice counts as existing (store.ts); that needs no look at the store
    const repeated = repeatedKey(pairs);
    if (repeated !== undefined) return Promise.resolve({ ok: false, existingKey: repeated });
    return this.enqueue({ kind: 'create', pairs }, () => encodeRecord(pairs)) as Promise<CreateResult>;
  }

  upsertAll(pairs: readonly Pair[]): Promise<UpsertResult> {
    return this.enqueue({ kind: 'upsert', pairs }, () => encodeRecord(pairs)) as Promise<UpsertResult>;
  }

  delete(key: string): Promise<boolean> {
    return this.enqueue({ kind: 'delete', key }, () => encodeDelete([key])) as Promise<boolean>;
  }

  putKey(key: string, value: string, condition: Condition, ttlMs?: number): Promise<KeyPutResult> {
    const expiresAt = ttlMs === undefined ? undefined : Date.now() + ttlMs;
    const encode = expiresAt === undefined ? () => encodeRecord([[key, value]]) : () => encodeExpiringRecord(key, value, expiresAt);
    return this.enqueue({ kind: 'putKey', key, value, condition, expiresAt }, encode) as Promise<KeyPutResult>;
  }

  /** Writes the removal of these keys if they are still expired when their batch decides, then applies it. */
  private async expireKeys(keys: readonly string[]): Promise<void> {
    // the record is encoded when the batch decides which keys are still due
    await this.enqueue({ kind: 'expire', keys }, () => Buffer.alloc(0));
  }

  /** At open: keys whose expiry passed while the store was closed are removed, on the log first. */
  private async expireReplayed(): Promise<void> {
    for (;;) {
      const due = this.memory.dueKeys(OPEN_EXPIRE_KEYS);
      if (due.length === 0) return;
      await this.expireKeys(due);
    }
  }

  deleteKey(key: string, condition: Condition): Promise<KeyDeleteResult> {
    return this.enqueue({ kind: 'deleteKey', key, condition }, () => encodeDelete([key])) as Promise<KeyDeleteResult>;
  }

  /** Waits for every accepted write, fsyncs, and releases the file and the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    await this.memory.close();
    await this.rewriteDone;
    // a batch accepted before close may still wait for its turn (setImmediate): let it join the chain
    await new Promise((resolve) => setImmediate(resolve));
    await this.chain;
    if (this.dirSyncPending) await this.ops.syncDirectory(this.options.dir).catch((e: Error) => this.logger.error({ err: e.message }, 'final directory fsync failed'));
    await this.timedSync().catch((e: Error) => this.logger.error({ err: e.message }, 'final fsync failed'));
    await this.ops.close(this.handle, this.path).catch((e: Error) => this.logger.error({ err: e.message }, 'closing the log failed'));
    await this.lock.release();
    this.logger.info({ file: this.path, bytes: this.size }, 'log flushed and closed');
  }

  // ---- start-up ------------------------------------------------------------------------------------

  private warnIfOpen(path: string, what: string, wanted: number): void {
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      this.logger.warn({ path, mode: mode.toString(8) }, `${what} ${path} is accessible by other users (mode ${mode.toString(8)}); ${wanted.toString(8)} is recommended`);
    }
  }

  /** Replays the log into memory, cutting a torn tail (and damage, if told to); returns its format version. */
  private load(): FormatVersion {
    // a rewrite that was under way when the last process died is incomplete: the log is the truth
    rmSync(this.rewritePath, { force: true });

    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      this.writeFreshHeader(0);
      return FORMAT_VERSION;
    }
    const started = Date.now();
    let result: ReplayResult;
    let fileBytes: number;
    try {
      fileBytes = statSync(this.path).size;
      const source = fileSource(fd, fileBytes);
      // where the last records after the snapshot start: they feed the watch history once memory is
      // loaded (building the history during replay would make and drop the changes of every record)
      const tail = new ReplayTail(this.changes.capacity);
      result = replay(source, {
        set: (pairs) => this.apply(pairs),
        setExpiring: (entries) => this.applyExpiring(entries),
        delete: (keys) => this.applyDelete(keys),
        expire: (keys) => this.applyDelete(keys),
        snapshot: (entries) => {
          this.applySnapshot(entries);
          tail.clear();
        },
        revision: (revision) => {
          this.memory.raiseRevision(revision);
          tail.clear();
        },
        at: (offset) => tail.note(offset, this.memory.revision),
      });
      this.feedHistory(source, tail);
      if (result.kind === 'corrupt') {
        if (this.options.repair !== 'truncate') {
          throw new LogOpenError(
            `${this.path} is damaged at offset ${result.offset} (${result.reason}) after ${result.records} good records; nothing was changed. ` +
              `Run tcpkv-server --check-log ${this.path} to see what cutting it there would lose, copy the file, then start with TCPKV_LOG_REPAIR=truncate`,
            this.path,
            result.offset,
          );
        }
        // what the cut drops, said before it is made
        const lost = surveyDamage(source, result.offset);
        this.logger.warn(
          { file: this.path, offset: result.offset, reason: result.reason, recordsKept: result.records, bytesCut: lost.bytes, recordsDropped: lost.readableRecords, keysDropped: lost.keys.size },
          `TCPKV_LOG_REPAIR=truncate: cutting ${this.path} at offset ${result.offset} (${result.reason}): ${lost.bytes} bytes dropped — the damaged record and ` +
            `${lost.readableRecords} readable records after it, which write or delete ${lost.keys.size} keys; ${result.records} records before it are kept`,
        );
      }
    } finally {
      closeSync(fd);
    }
    switch (result.kind) {
      case 'empty':
        this.writeFreshHeader(fileBytes);
        return FORMAT_VERSION;
      case 'ok':
        this.size = result.bytes;
        this.logger.info({ file: this.path, format: result.version, records: result.records, bytes: result.bytes, keys: this.memory.size, revision: this.memory.revision, ms: Date.now() - started }, 'log replayed');
        return result.version;
      case 'truncated':
        this.logger.warn(
          { file: this.path, offset: result.goodBytes, fileBytes: result.fileBytes, records: result.records },
          `torn last record in ${this.path} at offset ${result.goodBytes}: its ${result.fileBytes - result.goodBytes} bytes are dropped (a write cut short by a crash or a full disk); the file is cut there`,
        );
        if (result.goodBytes < MAGIC.length) {
          this.writeFreshHeader(fileBytes);
          return FORMAT_VERSION;
        }
        this.truncateTo(result.goodBytes);
        return result.version;
      case 'corrupt':
        // only with TCPKV_LOG_REPAIR=truncate (refused above otherwise)
        this.truncateTo(result.offset);
        return result.version;
      case 'failed':
        throw new LogOpenError(`${this.path}: ${result.reason}`, this.path);
    }
  }

  /** Rewrites a log of an older format in the current one, before any write (a compaction of it). */
  private async upgradeFormat(from: FormatVersion): Promise<void> {
    this.logger.warn({ file: this.path, from, to: FORMAT_VERSION }, `${this.path} is in log format v${from}: rewriting it in v${FORMAT_VERSION} (a tcpkv-server older than format v${FORMAT_VERSION} cannot read it)`);
    const failed = this.counts.failedCompactions;
    await this.compact();
    if (this.counts.failedCompactions !== failed) throw new LogOpenError(`${this.path}: could not rewrite it in log format v${FORMAT_VERSION} (see the error logged above); the log stays in format v${from}`, this.path);
    this.compactNotBefore = 0;
  }

  private writeFreshHeader(oldBytes: number): void {
    const fd = openSync(this.path, 'w', FILE_MODE);
    try {
      if (oldBytes > 0) this.logger.warn({ file: this.path }, 'log had no complete header: starting it afresh');
      // the header alone: no data can be lost here
      writeSync(fd, MAGIC);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.size = MAGIC.length;
  }

  private truncateTo(bytes: number): void {
    const fd = openSync(this.path, 'r+');
    try {
      ftruncateSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.size = bytes;
  }

  /** Applies a SET record to memory (one revision) and keeps the live-size estimate. */
  private apply(pairs: readonly Pair[]): void {
    this.countSet(pairs);
    this.memory.restore(pairs);
  }

  /** The live-size estimate for keys about to be set (before memory applies them). */
  private countSet(pairs: readonly (Pair | VersionedPair | ExpiringPair)[]): void {
    for (const [key, value] of pairs) {
      const old = this.memory.heldValue(key);
      this.liveBytes += pairRecordBytes(key, value) - (old === undefined ? 0 : pairRecordBytes(key, old));
    }
  }

  /** Applies a SET_EXPIRING record (one revision). */
  private applyExpiring(entries: readonly ExpiringPair[]): void {
    this.countSet(entries);
    this.memory.restoreExpiring(entries);
  }

  /** Applies a DELETE record: one revision, whatever it finds (replay numbers records alike). */
  private applyDelete(keys: readonly string[]): void {
    for (const key of keys) {
      const old = this.memory.heldValue(key);
      if (old !== undefined) this.liveBytes -= pairRecordBytes(key, old);
    }
    this.memory.restoreDeletes(keys);
  }

  /**
   * The watch history after replay: the changes of the tail's records, read again, as their writes
   * recorded them when applied (a DELETE or EXPIRE record names only keys that were there when it was
   * written); the history's bounds drop the oldest. Starts at the snapshot when the tail reaches it.
   */
  private feedHistory(source: LogSource, tail: ReplayTail): void {
    if (tail.from === undefined) {
      this.changes.reset(this.memory.revision);
      return;
    }
    this.changes.reset(tail.revisionBefore);
    let revision = tail.revisionBefore;
    const removed = (keys: readonly string[]) => keys.map((key) => [key, undefined] as const);
    replay(
      source,
      {
        // a key given twice changed once, to its last value
        set: (pairs) => this.changes.record(++revision, pairs.length > 1 ? [...new Map(pairs)] : pairs),
        setExpiring: (entries) => this.changes.record(++revision, entries.map(([key, value]) => [key, value] as const)),
        delete: (keys) => this.changes.record(++revision, removed(keys)),
        expire: (keys) => this.changes.record(++revision, removed(keys)),
      },
      tail.from,
    );
    // each record after a snapshot takes one revision; should the count differ, no history is better than a wrong one
    if (revision !== this.memory.revision) {
      this.logger.warn({ file: this.path, fed: revision, revision: this.memory.revision }, 'the watch history could not be rebuilt from the log: it starts at this revision');
      this.changes.reset(this.memory.revision);
    }
  }

  /** Applies a SNAPSHOT record: keys at their own versions, no revision taken. */
  private applySnapshot(entries: readonly VersionedPair[]): void {
    this.countSet(entries);
    this.memory.restoreVersioned(entries);
  }

  // ---- writes ----------------------------------------------------------------------------------------

  private enqueue(op: WriteRequest, encode: () => Buffer): Promise<WriteResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('store is closed'));
    // encoded here, at the request, so that a record replay could not load is never written
    const record = encode();
    if (record.length - RECORD_HEADER_BYTES > this.maxRecordBytes) {
      const now = Date.now();
      if (now - this.lastRecordWarning >= RECORD_WARNING_EVERY_MS) {
        this.lastRecordWarning = now;
        this.logger.warn({ bytes: record.length - RECORD_HEADER_BYTES, limit: this.maxRecordBytes }, 'limit hit: a write needs a log record over TCPKV_MAX_LOG_RECORD_BYTES; refused with 413 (logged at most once a minute)');
      }
      return Promise.reject(new ValueTooLargeError(`the write needs a log record of ${record.length - RECORD_HEADER_BYTES} bytes, over TCPKV_MAX_LOG_RECORD_BYTES=${this.maxRecordBytes}`));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ ...op, record, resolve, reject } as PendingWrite);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate: let every request already read in this turn join the batch
        setImmediate(() => void this.runLogged(() => this.flushBatch()));
      }
    });
  }

  /** Runs a task after every earlier one; its own result (or error) comes back, the chain goes on. */
  private run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.chain.then(task);
    this.chain = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private runLogged(task: () => Promise<void>): Promise<void> {
    return this.run(task).catch((error: unknown) => this.logger.error({ err: (error as Error)?.stack }, 'log task failed'));
  }

  /** Cuts off what a failed write left and redoes a failed directory fsync; throws while it cannot. */
  private async heal(): Promise<void> {
    if (this.tailDirty) {
      await this.ops.truncate(this.handle, this.size, this.path);
      this.tailDirty = false;
      this.logger.warn({ file: this.path, bytes: this.size }, 'the failed write was cut off the log: writes are accepted again');
    }
    if (this.dirSyncPending) {
      await this.ops.syncDirectory(this.options.dir);
      this.dirSyncPending = false;
      this.logger.warn({ dir: this.options.dir }, 'directory fsync done: writes are accepted again');
    }
  }

  private async flushBatch(): Promise<void> {
    this.flushScheduled = false;
    const ops = this.queue;
    this.queue = [];
    try {
      await this.heal();
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      this.logger.error({ file: this.path, code: e.code, err: e.message, requests: ops.length }, 'the log is still in doubt: requests answered 503');
      for (const op of ops) op.reject(new StoreUnavailableError(`the log cannot take writes: ${e.code ?? e.message}`));
      return;
    }
    // decide every write against memory plus this batch's earlier writes (null = deleted in the batch);
    // the i-th record written takes revision base + i, as replay will number it
    const overlay = new Map<string, OverlayEntry>();
    const current = (key: string) => {
      const v = overlay.get(key);
      return v === undefined ? this.memory.get(key) : v === null ? undefined : v.value;
    };
    const currentVersion = (key: string) => {
      const v = overlay.get(key);
      return v === undefined ? this.memory.versionOf(key) : v === null ? undefined : v.version;
    };
    const base = this.memory.revision;
    let addedKeys = 0;
    let addedBytes = 0;
    // every request's answer, in order; a refusal may depend on an earlier write of this batch
    // ("already exists" after a create in it, 507 after growth in it, a version it set), so nothing is
    // answered before the batch is written and applied
    const decided: ({ op: PendingWrite; result: WriteResult } | { op: PendingWrite; refusal: () => void } | { expired: string[] })[] = [];
    const records: Buffer[] = [];
    const now = performance.now();
    // keys held in memory but expired, and not yet touched by this batch, are removed by an EXPIRE
    // record of their own, before the write that touches them (or as the sweeper's request)
    const expireFirst = (keys: readonly string[]): void => {
      let due: string[] = [];
      // JSON bytes of the record so far: a record never passes the writer's limit (each is a revision)
      let bytes = 2;
      const seal = () => {
        decided.push({ expired: due });
        records.push(encodeExpire(due));
        due = [];
        bytes = 2;
      };
      for (const key of keys) {
        if (overlay.has(key) || !this.memory.isDue(key, now)) continue;
        const keyBytes = utf8(JSON.stringify(key)) + 1;
        if (due.length > 0 && bytes + keyBytes > this.maxRecordBytes) seal();
        overlay.set(key, null);
        addedKeys--;
        addedBytes -= this.memory.heldBytes(key);
        due.push(key);
        bytes += keyBytes;
      }
      if (due.length > 0) seal();
    };
    // the store limits for a write adding `keys` and `bytes` to memory plus the batch so far
    const admitted = (op: PendingWrite, keys: number, bytes: number): boolean => {
      const full = this.memory.checkGrowth(addedKeys + keys, addedBytes + bytes);
      if (full) {
        decided.push({ op, refusal: () => op.reject(full) });
        return false;
      }
      addedKeys += keys;
      addedBytes += bytes;
      return true;
    };
    for (const op of ops) {
      if (op.kind === 'expire') {
        expireFirst(op.keys);
        decided.push({ op, result: true });
        continue;
      }
      if (this.memory.expiringKeys > 0) expireFirst('pairs' in op ? op.pairs.map(([key]) => key) : [op.key]);
      let result: WriteResult;
      // the revision this request takes if it is written
      const version = base + records.length + 1;
      if (op.kind === 'delete' || op.kind === 'deleteKey') {
        const found = currentVersion(op.key);
        if (found === undefined || (op.kind === 'deleteKey' && !conditionHolds(op.condition, found))) {
          decided.push({ op, refusal: op.kind === 'delete' ? () => op.resolve(false) : () => op.resolve({ ok: false, current: found }) });
          continue;
        }
        const old = current(op.key)!;
        overlay.set(op.key, null);
        addedKeys--;
        addedBytes -= utf8(op.key) + utf8(old);
        result = op.kind === 'delete' ? true : { ok: true, version };
      } else if (op.kind === 'putKey') {
        const found = currentVersion(op.key);
        if (!conditionHolds(op.condition, found)) {
          decided.push({ op, refusal: () => op.resolve({ ok: false, current: found }) });
          continue;
        }
        const old = found === undefined ? undefined : current(op.key)!;
        const keys = old === undefined ? 1 : 0;
        const bytes = old === undefined ? utf8(op.key) + utf8(op.value) : utf8(op.value) - utf8(old);
        if (!admitted(op, keys, bytes)) continue;
        overlay.set(op.key, { value: op.value, version });
        result = { ok: true, version, created: old === undefined };
      } else {
        if (op.kind === 'create') {
          const existing = op.pairs.find(([key]) => current(key) !== undefined);
          if (existing) {
            decided.push({ op, refusal: () => op.resolve({ ok: false, existingKey: existing[0] }) });
            continue;
          }
        }
        // what the request adds, counting a key repeated in it once
        const previous = op.pairs.map(([key]) => current(key));
        const within = new Map<string, string | undefined>();
        let keys = 0;
        let bytes = 0;
        for (const [key, value] of op.pairs) {
          const before = within.has(key) ? within.get(key) : current(key);
          if (before === undefined) keys++;
          bytes += before === undefined ? utf8(key) + utf8(value) : utf8(value) - utf8(before);
          within.set(key, value);
        }
        if (!admitted(op, keys, bytes)) continue;
        for (const [key, value] of op.pairs) overlay.set(key, { value, version });
        result = op.kind === 'create' ? { ok: true } : { previous };
      }
      decided.push({ op, result });
      records.push(op.record);
    }
    if (records.length === 0) {
      // refusals (and expiries already done) alone: decided against memory, which holds only written batches
      for (const d of decided) {
        if ('refusal' in d) d.refusal();
        else if ('op' in d) d.op.resolve(d.result);
      }
      return;
    }

    const block = records.length === 1 ? records[0]! : Buffer.concat(records);
    try {
      await this.ops.write(this.handle, block, this.path);
      if (this.options.fsync === 'always') await this.timedSync();
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      this.logger.error({ file: this.path, code: e.code, err: e.message, requests: decided.length }, 'log write failed: requests answered 503, nothing applied');
      this.lastFailure = `the last write to ${this.path} failed (${e.code ?? e.message}): writes answer 503 until one succeeds`;
      // the refusals too: they were decided against this batch, which never happened
      for (const d of decided) if ('op' in d) d.op.reject(new StoreUnavailableError(`log write failed: ${e.code ?? e.message}`));
      // cut any partial record off, so the next write does not follow garbage; until that works,
      // writes are refused (heal)
      this.tailDirty = true;
      await this.heal().catch((t: NodeJS.ErrnoException) => this.logger.error({ file: this.path, code: t.code, err: t.message }, 'could not cut the failed write off the log: writes are refused until it can'));
      return;
    }
    this.size += block.length;
    this.counts.bytesWritten += block.length;
    this.lastFailure = undefined;
    this.dirty = this.options.fsync !== 'always';
    for (const d of decided) {
      if ('refusal' in d) continue;
      if ('expired' in d) {
        this.applyDelete(d.expired);
        this.changes.record(this.memory.revision, d.expired.map((key) => [key, undefined] as const));
        continue;
      }
      const op = d.op;
      if (op.kind === 'expire') continue;
      if (op.kind === 'delete' || op.kind === 'deleteKey') {
        this.applyDelete([op.key]);
        this.changes.record(this.memory.revision, [[op.key, undefined]]);
      } else if (op.kind === 'putKey') {
        if (op.expiresAt === undefined) this.apply([[op.key, op.value]]);
        else this.applyExpiring([[op.key, op.value, op.expiresAt]]);
        this.changes.record(this.memory.revision, [[op.key, op.value]]);
      } else {
        this.apply(op.pairs);
        // a key given twice changed once, to its last value
        this.changes.record(this.memory.revision, op.pairs.length > 1 ? [...new Map(op.pairs)] : op.pairs);
      }
    }
    for (const d of decided) {
      if ('refusal' in d) d.refusal();
      else if ('op' in d) d.op.resolve(d.result);
    }
    await this.maybeCompact();
  }

  private async timedSync(): Promise<void> {
    const started = performance.now();
    try {
      await this.ops.datasync(this.handle, this.path);
      this.events.logFsync((performance.now() - started) / 1000, true);
    } catch (error) {
      this.events.logFsync((performance.now() - started) / 1000, false);
      throw error;
    }
  }

  private syncIfDirty(): void {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    void this.runLogged(async () => {
      try {
        await this.timedSync();
        this.lastFailure = undefined;
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        this.dirty = true;
        this.lastFailure = `fsync of ${this.path} failed (${e.code ?? e.message}): retried every second`;
        this.logger.error({ file: this.path, code: e.code, err: e.message }, 'everysec fsync failed');
      }
    });
  }

  // ---- compaction --------------------------------------------------------------------------------------

  /** Called only from inside the chain: the next batch waits until the snapshot is taken. */
  private async maybeCompact(): Promise<void> {
    if (this.rewriting || this.closed || Date.now() < this.compactNotBefore) return;
    if (this.size < this.options.compactMinBytes || this.size < this.options.compactFactor * (this.liveDataBytes + MAGIC.length)) return;
    await this.startRewrite();
  }

  /** Starts a rewrite now (tests and operators may want one); resolves when it is done (ok or not). */
  async compact(): Promise<void> {
    // the snapshot must be taken between two batches, so no write is half way to memory
    await this.run(async () => {
      if (!this.rewriting) await this.startRewrite();
    });
    await this.rewriteDone;
  }

  /**
   * Called only from inside the chain, which it holds until the snapshot is taken (no batch can change
   * memory while the copy of the keys gives the event loop back); the rewrite itself runs after.
   */
  private async startRewrite(): Promise<void> {
    this.rewriting = true;
    const started = performance.now();
    const coveredBytes = this.size;
    let snapshot: FrozenPairs;
    try {
      // the pairs as of now, decoded only as the rewrite writes them, between its writes
      snapshot = await this.memory.frozenPairs();
    } catch (error) {
      this.rewriting = false;
      throw error;
    }
    const tmp = this.rewritePath;
    this.rewriteDone = (async () => {
      let out: FileHandle | undefined;
      let ok = false;
      try {
        out = await this.ops.open(tmp, REWRITE_FLAGS, FILE_MODE);
        await this.ops.write(out, MAGIC, tmp);
        let bytes = MAGIC.length;
        for (const record of encodeSnapshot(snapshot.revision, snapshot.versioned(), this.maxRecordBytes)) {
          await this.ops.write(out, record, tmp);
          bytes += record.length;
        }
        await this.ops.datasync(out, tmp);
        const snapshotBytes = bytes;
        const file = out;
        // the switch happens between two batches: nothing is written meanwhile
        await this.run(async () => {
          // what was written since the snapshot: the old log's bytes after `coveredBytes`
          bytes += await this.copyRange(this.handle, file, coveredBytes, this.size, tmp);
          await this.ops.datasync(file, tmp);
          try {
            await this.ops.rename(tmp, this.path);
          } catch (error) {
            if (!(await this.renameHappened(file))) throw error;
            this.logger.warn({ err: (error as Error).message }, 'rename reported a failure but the compacted log is in place: using it');
          }
          // The log's name is now the new file, and `file` is its handle: switch at once, so that no
          // write can go to the old, unlinked file.
          const old = this.handle;
          this.handle = file;
          out = undefined;
          this.size = bytes;
          this.tailDirty = false;
          this.dirty = this.options.fsync !== 'always';
          ok = true;
          await this.ops.close(old, this.path).catch((e: Error) => this.logger.warn({ err: e.message }, 'closing the old log failed'));
          try {
            await this.ops.syncDirectory(this.options.dir);
          } catch (error) {
            // a power loss now could bring the old name back without the writes that follow: refuse
            // writes until the directory fsync works (each batch retries it)
            this.dirSyncPending = true;
            this.logger.error({ dir: this.options.dir, err: (error as Error).message }, 'directory fsync after compaction failed: writes are refused until it works');
          }
          this.counts.compactions++;
          // `after` includes the writes that arrived during the rewrite; `snapshot` is the live data alone
          this.logger.info({ file: this.path, before: coveredBytes, snapshot: snapshotBytes, after: bytes, keys: snapshot.count, ms: Math.round(performance.now() - started) }, 'log compacted');
        });
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        if (ok) {
          this.logger.error({ err: e.message }, 'after the compacted log was in place');
          return;
        }
        this.counts.failedCompactions++;
        this.compactNotBefore = Date.now() + COMPACT_RETRY_MS;
        this.logger.error({ file: tmp, code: e.code, err: e.message }, 'log compaction failed; the log is unchanged and stays in use');
        if (out) await this.ops.close(out, tmp).catch(() => undefined);
        await this.ops.unlink(tmp).catch(() => undefined);
      } finally {
        this.events.logCompaction((performance.now() - started) / 1000, ok);
        this.rewriting = false;
      }
    })();
  }

  /** Appends `from`'s bytes [start, end) to `to`; returns how many. */
  private async copyRange(from: FileHandle, to: FileHandle, start: number, end: number, toPath: string): Promise<number> {
    const chunk = Buffer.allocUnsafe(Math.min(COPY_CHUNK_BYTES, Math.max(1, end - start)));
    for (let at = start; at < end; ) {
      const want = Math.min(chunk.length, end - at);
      const got = await this.ops.read(from, chunk.subarray(0, want), at, this.path);
      if (got <= 0) throw new Error(`${this.path} ended at ${at}, expected ${end} bytes`);
      await this.ops.write(to, chunk.subarray(0, got), toPath);
      at += got;
    }
    return end - start;
  }

  /** After a rename that reported failure: is the log's name already the new file? */
  private async renameHappened(file: FileHandle): Promise<boolean> {
    try {
      const [named, ours] = await Promise.all([stat(this.path), file.stat()]);
      return named.ino === ours.ino && named.dev === ours.dev;
    } catch {
      return false;
    }
  }
}
