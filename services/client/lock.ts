// A lock (a lease on one key) built from the store's one-key pieces only (docs/locks.md):
//
//   acquire  PUT /kv/<key>?ttl=T, If-None-Match: * — the body a token unique to this acquisition
//   renew    PUT /kv/<key>?ttl=T, If-Match: "<version>" — every T/3, same token
//   release  DELETE /kv/<key>, If-Match: "<version>"
//   wait     a watch on the key from the version a 412 named, until the key changes
//
// The holder's own end, `validUntil`, is the time a successful write was SENT plus T: the server
// counts the TTL from when it applied the write, which is later, so the holder's end never comes
// after the server's. An answer that never came (a timeout, a lost connection, a 5xx) may hide an
// applied write: the next attempt keeps the same token, and when a 412 follows, a GET that finds our
// token means the earlier attempt did apply — the lock is ours, counted from the earliest send that
// may have applied it.

import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyRefusal } from '../protocol/key-grammar.js';
import { ClientError, TcpkvClient, type Answer, type KvRequest } from './client.js';
import { watchOnce, WatchAnswerError } from './watch.js';

/** The server's bounds for `?ttl=` (whole seconds). */
export const MIN_LOCK_TTL_SECONDS = 1;
export const MAX_LOCK_TTL_SECONDS = 365 * 24 * 3600;
/** The longest one wait for the holder's key to change lasts before the acquirer tries again. */
const MAX_WAIT_MS = 30_000;
/** Back-off after an answer that never came, while acquiring: random, doubling, up to this. */
const ACQUIRE_BACKOFF_MS = { first: 100, max: 2_000 } as const;
/** Back-off between renewal attempts (random up to this; never past validUntil). */
const RENEW_BACKOFF_MS = 200;
/** How long release keeps trying when the server does not answer; the key expires on its own after. */
const RELEASE_TRY_MS = 3_000;

export interface LockOptions {
  /** the key that is the lock */
  readonly key: string;
  /** the lease: the key expires this many whole seconds after each write (1 to a year) */
  readonly ttlSeconds: number;
  /** who holds it, for people reading the key; default `<hostname>/<pid>` */
  readonly owner?: string | undefined;
  /** stops waiting for the lock (acquireLock rejects with LockAbortedError) */
  readonly signal?: AbortSignal | undefined;
  /** give up waiting after this many ms (LockTimeoutError); default: wait as long as it takes */
  readonly timeoutMs?: number | undefined;
  /** sees what the lock does: contention, retries, adoption, renewals, loss, release */
  readonly onEvent?: ((event: LockEvent) => void) | undefined;
}

export type LockEvent =
  /** a 412: another holder has it at `version`; the acquirer waits for the key to change */
  | { readonly kind: 'contended'; readonly version: number | undefined }
  /** no answer or a 5xx: the write may have applied; tried again with the same token */
  | { readonly kind: 'retry'; readonly phase: 'acquire' | 'renew' | 'release'; readonly reason: string }
  /** a 412 after such an answer, and the key holds our token: the earlier write applied */
  | { readonly kind: 'adopted'; readonly phase: 'acquire' | 'renew'; readonly version: number }
  | { readonly kind: 'acquired'; readonly version: number; readonly validUntil: number }
  | { readonly kind: 'renewed'; readonly version: number; readonly validUntil: number }
  | { readonly kind: 'lost'; readonly reason: string }
  /** `deleted`: false when the key was no longer ours, or the server could not be reached */
  | { readonly kind: 'released'; readonly deleted: boolean };

export interface LockLost {
  readonly reason: string;
  /** performance.now() when the loss was found */
  readonly at: number;
}

/** A lock held: use the protected resource only while performance.now() < validUntil and `lost` has not resolved. */
export interface HeldLock {
  readonly key: string;
  /** the value the key holds while it is ours */
  readonly token: string;
  /** the key's version now: a fencing token (it only grows, and every new holder's is larger) */
  readonly version: number;
  /** performance.now() ms until which the lock is ours for certain (moved on by each renewal) */
  readonly validUntil: number;
  /** resolves when the lock is lost (renewals failed until validUntil, or the key was taken); the holder must stop */
  readonly lost: Promise<LockLost>;
  /** stops renewing and deletes the key if it is still ours; never throws (a key it cannot delete expires) */
  release(): Promise<void>;
}

/** acquireLock gave up waiting (options.timeoutMs). */
export class LockTimeoutError extends Error {
  override readonly name = 'LockTimeoutError';
}

/** acquireLock was stopped by options.signal. */
export class LockAbortedError extends Error {
  override readonly name = 'LockAbortedError';
}

/** An answer the recipe cannot go on from (a 4xx other than 412 and 404: a bad key, a refusal). */
export class LockRefusedError extends Error {
  override readonly name = 'LockRefusedError';
  constructor(
    message: string,
    readonly answer: Answer,
  ) {
    super(message);
  }
}

const now = () => performance.now();

function etagVersion(answer: Answer): number | undefined {
  if (answer.kind !== 'response') return undefined;
  const etag = answer.response.headers.find(([name]) => name.toLowerCase() === 'etag')?.[1];
  const m = etag === undefined ? null : /^"([0-9]+)"$/.exec(etag);
  return m ? Number(m[1]) : undefined;
}

type Response = Extract<Answer, { kind: 'response' }>;

/** An answer that may hide an applied write: none, a close, or a 5xx. */
function unknownOutcome(answer: Answer): boolean {
  return answer.kind === 'closed' || answer.response.status >= 500;
}

/** An answer that says what happened: not a close, not a 5xx. */
function known(answer: Answer | undefined): answer is Response {
  return answer !== undefined && !unknownOutcome(answer);
}

function describe(answer: Answer): string {
  return answer.kind === 'closed' ? 'closed without an answer' : `${answer.response.status} ${answer.response.reason}`;
}

/**
 * Sends to the servers in an order that moves on after a failure (the client itself moves on only
 * when it cannot connect), each request bounded by `timeoutMs`.
 */
class Sender {
  private first = 0;
  constructor(private readonly client: TcpkvClient) {}

  /** The client with the servers in this order, each request bounded by `timeoutMs` as well. */
  current(timeoutMs = this.client.options.timeoutMs): TcpkvClient {
    const servers = this.client.options.servers;
    const ordered = [...servers.slice(this.first), ...servers.slice(0, this.first)];
    const ms = Math.max(1, Math.min(this.client.options.timeoutMs, Math.floor(timeoutMs)));
    return new TcpkvClient({ ...this.client.options, servers: ordered, timeoutMs: ms });
  }

  send(request: KvRequest, timeoutMs?: number): Promise<Answer> {
    return this.current(timeoutMs).send(request);
  }

  /** the next request starts at the next server */
  failed(): void {
    this.first = (this.first + 1) % this.client.options.servers.length;
  }

  /** a failure the caller goes past: an answer, or undefined with the ClientError's text in `reason` */
  async trySend(request: KvRequest, timeoutMs?: number): Promise<{ answer?: Answer; reason?: string }> {
    try {
      const answer = await this.send(request, timeoutMs);
      if (unknownOutcome(answer)) this.failed();
      return { answer };
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      this.failed();
      return { reason: error.message };
    }
  }
}

function checkOptions(options: LockOptions): void {
  const refusal = keyRefusal(options.key, Infinity);
  if (refusal !== undefined) throw new RangeError(`lock key ${JSON.stringify(options.key)}: ${refusal.text}`);
  const t = options.ttlSeconds;
  if (!Number.isInteger(t) || t < MIN_LOCK_TTL_SECONDS || t > MAX_LOCK_TTL_SECONDS) throw new RangeError(`ttlSeconds must be a whole number from ${MIN_LOCK_TTL_SECONDS} to ${MAX_LOCK_TTL_SECONDS}, not ${t}`);
  if (options.timeoutMs !== undefined && !(options.timeoutMs >= 0)) throw new RangeError(`timeoutMs must be 0 or more, not ${options.timeoutMs}`);
}

const kvTarget = (key: string) => `/kv/${encodeURIComponent(key)}`;

/** GET the key: its value and version, null when there is none, undefined when no answer came. */
async function readKey(sender: Sender, key: string, timeoutMs?: number): Promise<{ value: string; version: number | undefined } | null | undefined> {
  const { answer } = await sender.trySend({ method: 'GET', path: '', target: kvTarget(key) }, timeoutMs);
  if (answer === undefined || answer.kind !== 'response') return undefined;
  if (answer.response.status === 404) return null;
  if (answer.response.status !== 200) return undefined;
  return { value: answer.response.body, version: etagVersion(answer) };
}

/**
 * Waits until `key` is removed after `version` (deleted or expired) or `waitMs` passes. Every
 * failure just ends the wait: the caller tries the PUT again, which is always safe.
 */
async function waitForChange(sender: Sender, key: string, version: number | undefined, waitMs: number, signal: AbortSignal): Promise<void> {
  const until = now() + waitMs;
  let since = version;
  while (!signal.aborted) {
    const left = until - now();
    if (left <= 0) return;
    try {
      // the prefix is the key itself: changes of longer keys under it are skipped here
      const batch = await raceAbort(watchOnce(sender.current(), { prefix: key, since, waitMs: Math.ceil(left), limit: 100 }), signal);
      if (batch === undefined) return;
      // a renewal by the holder is no reason to try: only the key's removal (release, expiry) is
      if (batch.changes.some((c) => c.key === key && c.deleted === true)) return;
      since = batch.revision;
    } catch (error) {
      if (error instanceof ClientError || error instanceof WatchAnswerError) {
        // a server that cannot watch now: a short pause, then the caller's PUT
        sender.failed();
        await sleep(Math.min(left, 200 + Math.random() * 300), undefined, { signal }).catch(() => undefined);
        return;
      }
      throw error;
    }
  }
}

/** The promise's value, or undefined as soon as `signal` aborts (the promise is left to end on its own). */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * Waits for the lock and takes it: a held lock, renewing itself every ttlSeconds/3 until released
 * or lost. Rejects with LockTimeoutError, LockAbortedError, or LockRefusedError (a 4xx the recipe
 * has no answer for); RangeError for a bad key or TTL.
 */
export async function acquireLock(client: TcpkvClient, options: LockOptions): Promise<HeldLock> {
  checkOptions(options);
  const sender = new Sender(client);
  const ttlMs = options.ttlSeconds * 1000;
  const deadline = options.timeoutMs === undefined ? Infinity : now() + options.timeoutMs;
  const owner = options.owner ?? `${hostname()}/${process.pid}`;
  const emit = options.onEvent ?? (() => undefined);
  // stops waits and back-offs at the deadline or on the caller's signal
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const deadlineTimer = Number.isFinite(deadline) ? setTimeout(onAbort, Math.max(0, deadline - now())) : undefined;
  const target = `${kvTarget(options.key)}?ttl=${options.ttlSeconds}`;
  try {
    let token = `${owner}/${randomUUID()}`;
    /** the send time of the first attempt with this token whose outcome is unknown (it may have applied) */
    let firstUnknown: number | undefined;
    let backoff: number = ACQUIRE_BACKOFF_MS.first;
    for (;;) {
      if (stop.signal.aborted) {
        if (firstUnknown !== undefined) await dropIfOurs(sender, options.key, token);
        if (options.signal?.aborted === true) throw new LockAbortedError(`stopped waiting for lock ${JSON.stringify(options.key)}`);
        throw new LockTimeoutError(`lock ${JSON.stringify(options.key)} not acquired within ${options.timeoutMs} ms`);
      }
      const sentAt = now();
      const { answer, reason } = await sender.trySend({ method: 'PUT', path: '', target, body: token, headers: [['If-None-Match', '*']] }, Math.max(1, deadline - sentAt));
      if (!known(answer)) {
        firstUnknown ??= sentAt;
        emit({ kind: 'retry', phase: 'acquire', reason: reason ?? (answer ? describe(answer) : 'no answer') });
        await sleep(backoff * (0.5 + Math.random()), undefined, { signal: stop.signal }).catch(() => undefined);
        backoff = Math.min(ACQUIRE_BACKOFF_MS.max, backoff * 2);
        continue;
      }
      backoff = ACQUIRE_BACKOFF_MS.first;
      const status = answer.response.status;
      let held: { version: number; validUntil: number } | undefined;
      if (status >= 200 && status < 300) {
        const version = etagVersion(answer);
        if (version === undefined) throw new LockRefusedError(`the server answered the lock's PUT without an ETag: is it a tcpkv with versions?`, answer);
        held = { version, validUntil: sentAt + ttlMs };
      } else if (status === 412) {
        const holder = etagVersion(answer);
        if (firstUnknown !== undefined) {
          const found = await readKey(sender, options.key);
          // gone meanwhile (or, in the etcd store, past its expiry but not yet removed), or no answer
          if (found === null || found === undefined) {
            await sleep(backoff * Math.random(), undefined, { signal: stop.signal }).catch(() => undefined);
            continue;
          }
          if (found.value === token && found.version !== undefined) {
            emit({ kind: 'adopted', phase: 'acquire', version: found.version });
            held = { version: found.version, validUntil: firstUnknown + ttlMs };
          }
        }
        if (held === undefined) {
          emit({ kind: 'contended', version: holder });
          await waitForChange(sender, options.key, holder, Math.min(ttlMs, MAX_WAIT_MS, deadline - now()), stop.signal);
          continue;
        }
      } else {
        throw new LockRefusedError(`the lock's PUT was answered ${describe(answer)}: ${answer.response.body.trim()}`, answer);
      }
      // the caller hears of renewals and losses only once the lock is handed over
      let handedOver = false;
      const lockEmit = (event: LockEvent) => {
        if (handedOver || (event.kind !== 'lost' && event.kind !== 'renewed')) emit(event);
      };
      const lock = new Lock(sender, options.key, token, ttlMs, held.version, held.validUntil, lockEmit);
      // an adopted write, or an answer that took most of the TTL: renew before handing it over
      if (held.validUntil - now() < ttlMs / 3) {
        if (!(await lock.renewNow())) {
          // not ours for certain any more: start again with a new token (the old one, if it is still
          // there, expires on its own)
          token = `${owner}/${randomUUID()}`;
          firstUnknown = undefined;
          continue;
        }
      }
      handedOver = true;
      lock.start();
      emit({ kind: 'acquired', version: lock.version, validUntil: lock.validUntil });
      return lock;
    }
  } finally {
    clearTimeout(deadlineTimer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** Giving up while an attempt's outcome is unknown: delete the key if that attempt applied it. */
async function dropIfOurs(sender: Sender, key: string, token: string): Promise<void> {
  const found = await readKey(sender, key, 2_000);
  if (found && found.value === token && found.version !== undefined) {
    await sender.trySend({ method: 'DELETE', path: '', target: kvTarget(key), headers: [['If-Match', `"${found.version}"`]] }, 2_000);
  }
}

class Lock implements HeldLock {
  version: number;
  validUntil: number;
  readonly lost: Promise<LockLost>;
  private resolveLost!: (lost: LockLost) => void;
  /** set once lost or released: no more renewals */
  private stopped = false;
  private isLost = false;
  private readonly stop = new AbortController();
  private watchdog: NodeJS.Timeout | undefined;
  /** the renewal in flight, if any (release waits for it, so it deletes the version it left) */
  private round: Promise<boolean> | undefined;
  private releasing: Promise<void> | undefined;

  constructor(
    private readonly sender: Sender,
    readonly key: string,
    readonly token: string,
    private readonly ttlMs: number,
    version: number,
    validUntil: number,
    private readonly emit: (event: LockEvent) => void,
  ) {
    this.version = version;
    this.validUntil = validUntil;
    this.lost = new Promise((resolve) => (this.resolveLost = resolve));
    this.armWatchdog();
  }

  private get target(): string {
    return `${kvTarget(this.key)}?ttl=${this.ttlMs / 1000}`;
  }

  /** Loses the lock at validUntil unless a renewal moves it first. */
  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.lose('renewals did not succeed before the lock ran out'), Math.max(0, this.validUntil - now()));
  }

  private lose(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.isLost = true;
    this.stop.abort();
    clearTimeout(this.watchdog);
    this.emit({ kind: 'lost', reason });
    this.resolveLost({ reason, at: now() });
  }

  /** The renewal loop: a round every T/3 after the last successful write's send. */
  start(): void {
    void (async () => {
      while (!this.stopped) {
        // validUntil = send + T, so this is T/3 after the send
        const at = this.validUntil - (2 * this.ttlMs) / 3;
        await sleep(Math.max(0, at - now()), undefined, { signal: this.stop.signal }).catch(() => undefined);
        if (this.stopped) return;
        await this.renewNow();
      }
    })();
  }

  /** One renewal round: true when it moved validUntil on; false when the lock was lost. */
  renewNow(): Promise<boolean> {
    this.round = this.renewRound().finally(() => (this.round = undefined));
    return this.round;
  }

  private async renewRound(): Promise<boolean> {
    let firstSend: number | undefined;
    // a release or a loss ends the round after the request in flight (a release waits for it)
    while (!this.stopped) {
      const sentAt = now();
      const left = this.validUntil - sentAt;
      if (left <= 0) {
        this.lose('renewals did not succeed before the lock ran out');
        return false;
      }
      firstSend ??= sentAt;
      const { answer, reason } = await this.sender.trySend({ method: 'PUT', path: '', target: this.target, body: this.token, headers: [['If-Match', `"${this.version}"`]] }, left);
      if (this.isLost) return false;
      if (known(answer)) {
        const status = answer.response.status;
        const version = etagVersion(answer);
        if (status >= 200 && status < 300 && version !== undefined) {
          this.moveOn(version, sentAt + this.ttlMs);
          return true;
        }
        if (status === 412) {
          const found = await readKey(this.sender, this.key, Math.max(1, this.validUntil - now()));
          if (this.isLost) return false;
          if (found === null || (found !== undefined && found.value !== this.token)) {
            this.lose(found === null ? 'the key is gone (it expired or was deleted)' : `the key was taken (now at version ${found.version ?? '?'})`);
            return false;
          }
          if (found !== undefined && found.version !== undefined && found.version !== this.version) {
            // an earlier renewal of this round applied though its answer never came
            this.emit({ kind: 'adopted', phase: 'renew', version: found.version });
            this.moveOn(found.version, firstSend + this.ttlMs);
            return true;
          }
        } else if (status < 500) {
          this.lose(`the renewal was answered ${describe(answer)}`);
          return false;
        }
      }
      this.emit({ kind: 'retry', phase: 'renew', reason: reason ?? (answer ? describe(answer) : 'no answer') });
      await sleep(Math.min(Math.random() * RENEW_BACKOFF_MS, Math.max(0, this.validUntil - now())), undefined, { signal: this.stop.signal }).catch(() => undefined);
    }
    return false;
  }

  private moveOn(version: number, validUntil: number): void {
    this.version = version;
    // an adopted round can name an earlier send than the last success's: never move backwards
    this.validUntil = Math.max(this.validUntil, validUntil);
    if (this.stopped) return;
    this.armWatchdog();
    this.emit({ kind: 'renewed', version, validUntil: this.validUntil });
  }

  release(): Promise<void> {
    this.releasing ??= this.doRelease();
    return this.releasing;
  }

  private async doRelease(): Promise<void> {
    this.stopped = true;
    this.stop.abort();
    clearTimeout(this.watchdog);
    await this.round;
    const until = now() + RELEASE_TRY_MS;
    let deleted = false;
    while (now() < until) {
      const { answer, reason } = await this.sender.trySend({ method: 'DELETE', path: '', target: kvTarget(this.key), headers: [['If-Match', `"${this.version}"`]] }, until - now());
      if (known(answer)) {
        const status = answer.response.status;
        if (status >= 200 && status < 300) deleted = true;
        else if (status === 412) {
          // a renewal whose answer never came may have applied: its version is ours to delete too
          const found = await readKey(this.sender, this.key, Math.max(1, until - now()));
          if (found?.value === this.token && found.version !== undefined && found.version !== this.version) {
            this.version = found.version;
            continue;
          }
          if (found === undefined) continue;
        }
        // 404, or a 412 for a key no longer ours: nothing of ours is left
        break;
      }
      this.emit({ kind: 'retry', phase: 'release', reason: reason ?? (answer ? describe(answer) : 'no answer') });
      await sleep(Math.min(Math.random() * RENEW_BACKOFF_MS * 2, Math.max(0, until - now())));
    }
    this.emit({ kind: 'released', deleted });
  }
}
