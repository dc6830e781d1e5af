// A watch as a stream (`GET /kv?watch&stream`): the changes under a prefix as newline-delimited
// JSON, one object a line, for as long as the client stays — the body of a chunked answer the
// connection pulls as its socket takes it (services/server/connection.ts). NDJSON rather than
// server-sent events: every line is a JSON document any tool reads as it comes (curl, jq, a line
// reader), with no event framing to parse; browsers, the one client SSE is made for, are not ours.
//
//   {"key":"a","value":"1","version":42}     a change (or "deleted":true instead of "value")
//   {"revision":43}                          after each batch, and every HEARTBEAT_MS while quiet:
//                                            the revision to resume from (and proof of life)
//   {"error":…,"code":"TCPKV_ERR_WATCH_GONE","oldest":N}   the history it needed is gone: the last line
//
// A client that reads too slowly never makes the server hold more than the socket's buffer: the
// stream reads the feed only as the socket takes bytes, so a slow reader falls behind in the
// feed's history, and once that history is dropped it gets the error line and the end. A client that
// takes nothing at all is cut by the send timeout (TCPKV_SEND_TIMEOUT_MS).

import type { BodyStream } from '../protocol/response-writer.js';
import { Texts } from '../protocol/texts.js';
import type { DrainSignal } from './drain-signal.js';
import { changeJson } from './render.js';
import type { ChangeFeed } from './store/change-feed.js';
import type { WatchRequest } from './targets.js';

/** A quiet stream sends its revision this often, so proxies and clients see it is alive. */
export const HEARTBEAT_MS = 15_000;
/** Bytes of changes one take() renders at most (one write's changes come whole). */
const BATCH_BYTES = 256 * 1024;

export class WatchStream implements BodyStream {
  private since: number;
  private lastSent = performance.now();
  private ended = false;
  private finished = false;
  private cancelled = false;
  private ready: (() => void) | undefined;

  /** `since`: the revision the stream starts after (the request's, or the feed's when it named none) */
  constructor(
    private readonly feed: ChangeFeed,
    private readonly query: WatchRequest,
    since: number,
    private readonly draining: DrainSignal | undefined,
    private readonly heartbeatMs = HEARTBEAT_MS,
  ) {
    this.since = since;
  }

  take(): Buffer | undefined | null {
    if (this.finished || this.cancelled) return null;
    if (this.ended) {
      this.finished = true;
      return null;
    }
    const read = this.feed.read(this.since, this.query.prefix, this.query.limit, BATCH_BYTES);
    if ('gone' in read) {
      this.ended = true;
      return line({ error: Texts.watchGone(this.since, read.gone), code: 'TCPKV_ERR_WATCH_GONE', oldest: read.gone });
    }
    this.since = read.next;
    if (read.changes.length > 0) {
      let text = '';
      for (const c of read.changes) text += changeJson(c) + '\n';
      return this.sent(text + `{"revision":${this.since}}\n`);
    }
    if (this.draining?.done === true) {
      // the server is shutting down: where to resume, then the end
      this.ended = true;
      return this.sent(`{"revision":${this.since}}\n`);
    }
    if (performance.now() - this.lastSent >= this.heartbeatMs) return this.sent(`{"revision":${this.since}}\n`);
    return undefined;
  }

  onReady(ready: () => void): void {
    if (this.cancelled) return;
    const first = this.ready === undefined;
    this.ready = ready;
    if (!first) return;
    const left = Math.max(1, this.heartbeatMs - (performance.now() - this.lastSent));
    const woken = this.feed.changed(left);
    void (this.draining === undefined ? woken : Promise.race([woken, this.draining.promise])).then(() => {
      const callback = this.ready;
      this.ready = undefined;
      if (!this.cancelled) callback?.();
    });
  }

  cancel(): void {
    this.cancelled = true;
    this.ready = undefined;
  }

  private sent(text: string): Buffer {
    this.lastSent = performance.now();
    return Buffer.from(text, 'utf8');
  }
}

function line(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value) + '\n', 'utf8');
}
