// Watching changes from a program: one long poll (`watchOnce`), or every change from a revision on,
// across failures (`watchChanges`). A watch is a read, so asking again is always safe: after a
// connection failure, a timeout or a 5xx the watcher asks the next server for the changes after the
// last revision it has seen, and so neither misses nor repeats a change. A 410 (the server no longer
// keeps those changes) sends it to the next server too: a replica that started (or listed its data
// again) after that revision has no history before it, while the others may. Only when every server
// has answered 410 in turn does the watch end: the caller lists again and watches from the listing's
// revision.

import { setTimeout as sleep } from 'node:timers/promises';
import { ClientError, TcpkvClient, type Answer } from './client.js';

/** One change as the server reports it: a put (with its value) or a deletion, at its version. */
export interface WatchChange {
  readonly key: string;
  readonly value?: string;
  readonly deleted?: true;
  readonly version: number;
}

/** One long poll's answer: its changes, and the revision to ask from next. */
export interface WatchBatch {
  readonly changes: readonly WatchChange[];
  readonly revision: number;
}

export interface WatchOnceOptions {
  /** only keys starting with this ('' = every key) */
  readonly prefix: string;
  /** changes after this revision; undefined = from now */
  readonly since?: number | undefined;
  /** how long the server may wait for a first change (ms; the server caps it) */
  readonly waitMs: number;
  /** at most this many changes in one answer (the server's default when unset) */
  readonly limit?: number | undefined;
}

/** An answer a watch cannot go on from by asking again (a 4xx, or a body that is not a watch's). */
export class WatchAnswerError extends Error {
  constructor(
    message: string,
    readonly answer: Answer,
  ) {
    super(message);
  }
}

/** 410: the changes after `since` are no longer kept; list again and watch from the listing's revision. */
export class WatchGoneError extends WatchAnswerError {
  constructor(
    readonly since: number | undefined,
    /** the oldest revision the server can still watch from */
    readonly oldest: number | undefined,
    answer: Answer,
  ) {
    super(`the server no longer keeps the changes after revision ${since}${oldest === undefined ? '' : ` (the oldest it can watch from is ${oldest})`}: list again`, answer);
  }
}

/** The request target of one long poll. */
export function watchTarget(options: WatchOnceOptions): string {
  const seconds = Math.max(0, options.waitMs) / 1000;
  let query = `watch&prefix=${encodeURIComponent(options.prefix)}&wait=${Number(seconds.toFixed(3))}`;
  if (options.since !== undefined) query += `&since=${options.since}`;
  if (options.limit !== undefined) query += `&limit=${options.limit}`;
  return `/kv?${query}`;
}

/** A 5xx: the server (or its store) could not answer now; another try, or another server, may. */
function passing(answer: Answer): boolean {
  return answer.kind === 'closed' || answer.response.status >= 500;
}

/**
 * One long poll: the changes after `since`, or none once the wait is over. Throws WatchGoneError on
 * 410, WatchAnswerError on any other answer but 200, and the client's ClientError when no answer came.
 */
export async function watchOnce(client: TcpkvClient, options: WatchOnceOptions): Promise<WatchBatch> {
  const answer = await client.send({ method: 'GET', path: '', target: watchTarget(options), waitMs: options.waitMs });
  return readBatch(answer, options.since);
}

function readBatch(answer: Answer, since: number | undefined): WatchBatch {
  if (answer.kind === 'closed') throw new WatchAnswerError('the server closed the connection without answering the watch', answer);
  const { status, body } = answer.response;
  if (status === 410) {
    let oldest: number | undefined;
    try {
      const parsed = JSON.parse(body) as { oldest?: unknown };
      if (typeof parsed.oldest === 'number') oldest = parsed.oldest;
    } catch {
      // the 410 says enough without its body
    }
    throw new WatchGoneError(since, oldest, answer);
  }
  if (status !== 200) throw new WatchAnswerError(`the watch was answered ${status} ${answer.response.reason}: ${body.trim()}`, answer);
  try {
    const batch = JSON.parse(body) as WatchBatch;
    if (Array.isArray(batch.changes) && typeof batch.revision === 'number') return batch;
  } catch {
    // reported below
  }
  throw new WatchAnswerError('the watch answer is not the JSON {"changes":[…],"revision":…}', answer);
}

export interface WatchChangesOptions extends WatchOnceOptions {
  /** pause before asking again after a failure (ms; default 200) */
  readonly retryDelayMs?: number;
  /** stops the watch (the generator returns) */
  readonly signal?: AbortSignal;
  /** told about each failure the watch goes past (for logs) */
  readonly onRetry?: (reason: string) => void;
}

/**
 * Every change after `since` (from now when unset), in order, for as long as the caller reads.
 * Failures are gone past by asking the next server from the last revision seen; 410 from every
 * server in turn ends the watch with WatchGoneError, another refusal with WatchAnswerError.
 */
export async function* watchChanges(client: TcpkvClient, options: WatchChangesOptions): AsyncGenerator<WatchChange, void, undefined> {
  const servers = client.options.servers;
  let first = 0;
  let since = options.since;
  const retryDelayMs = options.retryDelayMs ?? 200;
  /** servers that answered 410 in a row */
  let gone = 0;
  while (options.signal?.aborted !== true) {
    // the server that failed last goes to the end of the list; connect failures move on by themselves
    const rotated = first === 0 ? client : new TcpkvClient({ ...client.options, servers: [...servers.slice(first), ...servers.slice(0, first)] });
    let batch: WatchBatch;
    try {
      const answer = await rotated.send({ method: 'GET', path: '', target: watchTarget({ ...options, since }), waitMs: options.waitMs });
      if (passing(answer)) throw new ClientError('CONNECTION_LOST', answer.kind === 'closed' ? 'closed without answering' : `${answer.response.status} ${answer.response.reason}`, false);
      batch = readBatch(answer, since);
    } catch (error) {
      if (error instanceof WatchGoneError && error.answer.kind === 'response' && ++gone < servers.length) {
        options.onRetry?.(error.message);
        // the server after the one that answered (servers it connected past are down)
        const { host, port } = error.answer.server;
        first = (servers.findIndex((s) => s.host === host && s.port === port) + 1) % servers.length;
        continue;
      }
      if (!(error instanceof ClientError)) throw error;
      options.onRetry?.(error.message);
      first = (first + 1) % servers.length;
      await sleep(retryDelayMs, undefined, { signal: options.signal }).catch(() => undefined);
      continue;
    }
    gone = 0;
    for (const change of batch.changes) yield change;
    since = batch.revision;
  }
}
