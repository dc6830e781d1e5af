// The durable store: the memory store, plus an append-only log that every accepted write reaches
// before it is answered (after Redis's AOF).
//
// Writes are batched (group commit): requests that arrive while a write (and, with `always`, an
// fsync) is under way are validated together and written as one block after it. A batch is checked
// against memory plus the batch's own earlier writes, written, and only then applied to memory and
// answered — so a failed write (disk full) answers 503 and changes nothing, and a reader never sees
// a value that is not in the log.
//
//   always    fdatasync before answering (one per batch)
//   everysec  fdatasync once a second: a process crash loses nothing answered (the write() is done),
//             a power loss at most about a second
//   no        the OS decides
//
// Compaction rewrites the log as a snapshot of the live data when it has grown `compactFactor` times
// larger than that (and past `compactMinBytes`): the snapshot is written to a temporary file in the
// background while writes go on to the old log and are also kept in memory; then, between two
// batches, those writes are appended to the new file, it is fsynced, renamed over the log, and the
// directory is fsynced.

import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { lockDirectory, type DirectoryLock } from './dir-lock.js';
import { encodeRecord, MAGIC, replay, type ReplayResult } from './log-format.js';
import { MemoryStore } from './memory-store.js';
import { StoreUnavailableError, type CreateResult, type ListingSnapshot, type Page, type PageRequest, type Pair, type Store, type StoreUsage, type UpsertResult } from './store.js';

export const LOG_NAME = 'tcpkv.log';
const REWRITE_NAME = 'tcpkv.log.rewrite';
/** pairs per snapshot record: keeps records small enough to replay and check one at a time */
const SNAPSHOT_PAIRS_PER_RECORD = 1000;

export type FsyncPolicy = 'always' | 'everysec' | 'no';

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
}

/** Start-up refused: the log is damaged or the directory is in use. The message names the file and offset. */
export class LogOpenError extends Error {
  override readonly name = 'LogOpenError';
}

interface PendingWrite {
  readonly kind: 'create' | 'upsert';
  readonly pairs: readonly Pair[];
  resolve(result: CreateResult | UpsertResult): void;
  reject(error: Error): void;
}

export class LogStore implements Store {
  private readonly memory = new MemoryStore();
  private readonly options: LogStoreOptions;
  private readonly logger: Logger;
  private readonly path: string;
  private handle!: FileHandle;
  private lock!: DirectoryLock;
  private size = 0;
  /** rough size of the live data as a snapshot would write it */
  private liveBytes = 0;

  private queue: PendingWrite[] = [];
  private flushScheduled = false;
  /** serialises every use of the file: batches, syncs, the compaction switch, close */
  private chain: Promise<void> = Promise.resolve();
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private rewrite: { buffered: Buffer[] } | undefined;
  private rewriteDone: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(options: LogStoreOptions) {
    this.options = options;
    this.logger = options.logger;
    this.path = join(options.dir, LOG_NAME);
  }

  /** Locks the directory, replays the log, and opens it for appending. */
  static async open(options: LogStoreOptions): Promise<LogStore> {
    const store = new LogStore(options);
    mkdirSync(options.dir, { recursive: true });
    store.lock = await lockDirectory(options.dir);
    try {
      store.load();
      store.handle = await open(store.path, 'a');
    } catch (error) {
      await store.lock.release();
      throw error;
    }
    if (options.fsync === 'everysec') {
      store.syncTimer = setInterval(() => store.syncIfDirty(), 1000);
      store.syncTimer.unref();
    }
    return store;
  }

  get revision(): number {
    return this.memory.revision;
  }

  /** bytes in the log file now */
  get logBytes(): number {
    return this.size;
  }

  list(): readonly Pair[] {
    return this.memory.list();
  }

  listing(): ListingSnapshot {
    return this.memory.listing();
  }

  get(key: string): string | undefined {
    return this.memory.get(key);
  }

  page(request: PageRequest): Page {
    return this.memory.page(request);
  }

  usage(): StoreUsage {
    return this.memory.usage();
  }

  // SCAFFOLD: DELETE needs a log record type of its own (issue 13/15, log store).
  delete(_key: string): Promise<boolean> {
    return Promise.reject(new StoreUnavailableError('DELETE is not implemented in the log store yet'));
  }

  createAll(pairs: readonly Pair[]): Promise<CreateResult> {
    return this.enqueue('create', pairs) as Promise<CreateResult>;
  }

  upsertAll(pairs: readonly Pair[]): Promise<UpsertResult> {
    return this.enqueue('upsert', pairs) as Promise<UpsertResult>;
  }

  /** Waits for every accepted write, fsyncs, and releases the file and the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    await this.rewriteDone;
    await this.chain;
    await this.handle.datasync().catch((e: Error) => this.logger.error({ err: e.message }, 'final fsync failed'));
    await this.handle.close();
    await this.lock.release();
    this.logger.info({ file: this.path, bytes: this.size }, 'log flushed and closed');
  }

  // ---- start-up ------------------------------------------------------------------------------------

  private load(): void {
    // a rewrite that was under way when the last process died is incomplete: the log is the truth
    rmSync(join(this.options.dir, REWRITE_NAME), { force: true });

    let buf: Buffer;
    try {
      buf = readFileSync(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      buf = Buffer.alloc(0);
    }
    const started = Date.now();
    const result: ReplayResult = replay(buf, (pairs) => this.apply(pairs));
    switch (result.kind) {
      case 'empty':
        this.writeFreshHeader(buf.length);
        break;
      case 'ok':
        this.size = result.bytes;
        this.logger.info({ file: this.path, records: result.records, bytes: result.bytes, keys: this.memory.size, ms: Date.now() - started }, 'log replayed');
        break;
      case 'truncated':
        this.logger.warn(
          { file: this.path, offset: result.goodBytes, fileBytes: result.fileBytes, records: result.records },
          `torn last record in ${this.path} at offset ${result.goodBytes}: dropped (a crash in the middle of a write); the file is cut there`,
        );
        if (result.goodBytes < MAGIC.length) this.writeFreshHeader(buf.length);
        else this.truncateTo(result.goodBytes);
        break;
      case 'corrupt':
        if (this.options.repair !== 'truncate') {
          throw new LogOpenError(
            `${this.path} is damaged at offset ${result.offset} (${result.reason}) after ${result.records} good records; ` +
              'start with TCPKV_LOG_REPAIR=truncate to cut the log there and lose what follows',
          );
        }
        this.logger.warn({ file: this.path, offset: result.offset, reason: result.reason, records: result.records }, `TCPKV_LOG_REPAIR=truncate: cutting ${this.path} at offset ${result.offset}`);
        this.truncateTo(result.offset);
        break;
      case 'failed':
        throw new LogOpenError(`${this.path}: ${result.reason}`);
    }
  }

  private writeFreshHeader(oldBytes: number): void {
    const fd = openSync(this.path, 'w');
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

  /** Applies a batch to memory and keeps the live-size estimate. */
  private apply(pairs: readonly Pair[]): void {
    for (const [key, value] of pairs) {
      const old = this.memory.get(key);
      this.liveBytes += old === undefined ? key.length + value.length + 8 : value.length - old.length;
    }
    this.memory.restore(pairs);
  }

  // ---- writes ----------------------------------------------------------------------------------------

  private enqueue(kind: 'create' | 'upsert', pairs: readonly Pair[]): Promise<CreateResult | UpsertResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('store is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ kind, pairs, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate: let every request already read in this turn join the batch
        setImmediate(() => this.run(() => this.flushBatch()));
      }
    });
  }

  private run(task: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(task).catch((error: unknown) => {
      this.logger.error({ err: (error as Error)?.stack }, 'log task failed');
    });
    return this.chain;
  }

  private async flushBatch(): Promise<void> {
    this.flushScheduled = false;
    const ops = this.queue;
    this.queue = [];
    // decide every write against memory plus this batch's earlier writes
    const overlay = new Map<string, string>();
    const current = (key: string) => (overlay.has(key) ? overlay.get(key) : this.memory.get(key));
    const accepted: { op: PendingWrite; result: CreateResult | UpsertResult }[] = [];
    const records: Buffer[] = [];
    for (const op of ops) {
      if (op.kind === 'create') {
        const existing = op.pairs.find(([key]) => current(key) !== undefined);
        if (existing) {
          op.resolve({ ok: false, existingKey: existing[0] });
          continue;
        }
        for (const [key, value] of op.pairs) overlay.set(key, value);
        accepted.push({ op, result: { ok: true } });
      } else {
        const previous = op.pairs.map(([key]) => current(key));
        for (const [key, value] of op.pairs) overlay.set(key, value);
        accepted.push({ op, result: { previous } });
      }
      records.push(encodeRecord(op.pairs));
    }
    if (accepted.length === 0) return;

    const block = records.length === 1 ? records[0]! : Buffer.concat(records);
    try {
      await writeAll(this.handle, block);
      if (this.options.fsync === 'always') await this.handle.datasync();
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      this.logger.error({ file: this.path, code: e.code, err: e.message, requests: accepted.length }, 'log write failed: requests answered 503, nothing applied');
      // cut any partial record off, so the next write does not follow garbage
      await this.handle.truncate(this.size).catch((t: Error) => this.logger.error({ err: t.message }, 'could not cut the failed write off the log'));
      for (const { op } of accepted) op.reject(new StoreUnavailableError(`log write failed: ${e.code ?? e.message}`));
      return;
    }
    this.size += block.length;
    this.dirty = this.options.fsync !== 'always';
    this.rewrite?.buffered.push(block);
    for (const { op, result } of accepted) {
      this.apply(op.pairs);
      op.resolve(result);
    }
    this.maybeCompact();
  }

  private syncIfDirty(): void {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    void this.run(async () => {
      try {
        await this.handle.datasync();
      } catch (error) {
        this.dirty = true;
        this.logger.error({ file: this.path, err: (error as Error).message }, 'everysec fsync failed');
      }
    });
  }

  // ---- compaction --------------------------------------------------------------------------------------

  private maybeCompact(): void {
    if (this.rewrite || this.closed) return;
    if (this.size < this.options.compactMinBytes || this.size < this.options.compactFactor * (this.liveBytes + MAGIC.length)) return;
    this.startRewrite();
  }

  /** Starts a rewrite now (tests and operators may want one); resolves when it is done. */
  async compact(): Promise<void> {
    // the snapshot must be taken between two batches, so no write is half way to memory
    await this.run(async () => {
      if (!this.rewrite) this.startRewrite();
    });
    await this.rewriteDone;
  }

  /** Called only from inside the chain. */
  private startRewrite(): void {
    const snapshot = this.memory.list();
    const rewrite = { buffered: [] as Buffer[] };
    this.rewrite = rewrite;
    const startedBytes = this.size;
    const started = Date.now();
    const tmp = join(this.options.dir, REWRITE_NAME);
    this.rewriteDone = (async () => {
      let out: FileHandle | undefined;
      try {
        out = await open(tmp, 'w');
        await writeAll(out, MAGIC);
        let bytes = MAGIC.length;
        for (let i = 0; i < snapshot.length; i += SNAPSHOT_PAIRS_PER_RECORD) {
          const record = encodeRecord(snapshot.slice(i, i + SNAPSHOT_PAIRS_PER_RECORD));
          await writeAll(out, record);
          bytes += record.length;
        }
        await out.datasync();
        const snapshotBytes = bytes;
        const file = out;
        // the switch happens between two batches: nothing is written meanwhile
        await this.run(async () => {
          for (const block of rewrite.buffered) {
            await writeAll(file, block);
            bytes += block.length;
          }
          await file.datasync();
          await file.close();
          await rename(tmp, this.path);
          syncDirectory(this.options.dir);
          const old = this.handle;
          this.handle = await open(this.path, 'a');
          await old.close();
          this.size = bytes;
          this.dirty = false;
          // `after` includes the writes that arrived during the rewrite; `snapshot` is the live data alone
          this.logger.info({ file: this.path, before: startedBytes, snapshot: snapshotBytes, after: bytes, keys: snapshot.length, ms: Date.now() - started }, 'log compacted');
        });
      } catch (error) {
        this.logger.error({ file: tmp, err: (error as Error).message }, 'log compaction failed; the log is unchanged');
        await out?.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
      } finally {
        this.rewrite = undefined;
      }
    })();
  }
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let at = 0;
  while (at < data.length) {
    const { bytesWritten } = await handle.write(data, at, data.length - at);
    at += bytesWritten;
  }
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

