// What the outside learns about each request: the access line, the limit lines and counters, END's
// bookkeeping and the per-request metrics. The connection (the transport) says when a request starts,
// when its answer is decided and when it has been handed to the socket; this decides what is logged
// and counted, from the answer's typed code and END outcome (never from its text).

import type { Logger } from 'pino';
import { isLimit, type ProtocolErrorCode } from '../protocol/errors.js';
import type { EndOutcome, RouteLabel, ServerEvents } from './events.js';
import type { Answer } from './render.js';

/** What the observer needs from the server (a ConnectionHost fits). */
export interface ObserverHost {
  readonly logger: Logger;
  /** counters of the admin port (NO_EVENTS when off) */
  readonly events: ServerEvents;
  /** false when `events` is NO_EVENTS: the per-request measuring is skipped */
  readonly counting: boolean;
  /** one access line per answered request, at this level; undefined = none (fixed at start) */
  readonly accessLog: 'info' | 'debug' | undefined;
  /** a refused END: logged at warn, at most once a minute per peer (the server keeps the tally) */
  noteRefusedEnd(peer: string, outcome: EndOutcome, requestId: string): void;
}

/** What is known of one request for its access line and metrics; the connection's queue entry holds it. */
export interface RequestRecord {
  method: string;
  route: RouteLabel;
  status: number;
  /** performance.now() when the request was taken (0 when nothing measures it) */
  startedAt: number;
  bytesIn: number;
  /** all bytes of the answer */
  size: number;
  /** `<connection>.<sequence>`: in every log line about this request */
  id: string;
  /** for the access line; undefined for an answer that no request asked for (a parser error) */
  target: string | undefined;
}

/** One connection's observer. */
export class RequestObserver {
  private readonly host: ObserverHost;
  private readonly peer: string;
  /** the host's logger, or the connection's own (a TLS client's lines name its certificate) */
  private readonly logger: Logger;
  /** requests are timed: for the metrics or the access line */
  private readonly timing: boolean;

  constructor(host: ObserverHost, peer: string, logger: Logger = host.logger) {
    this.host = host;
    this.peer = peer;
    this.logger = logger;
    this.timing = host.counting || host.accessLog !== undefined;
  }

  /** The clock reading a request starts at (0 when nothing will read it). */
  startTime(): number {
    return this.timing ? performance.now() : 0;
  }

  /** A request's answer is decided: its limit and its END outcome are logged and counted. */
  answered(record: RequestRecord, answer: Answer): void {
    const code = answer.code;
    if (code !== undefined && isLimit(code)) this.ruleLimit(code, answer.body, record.id);
    const end = answer.end;
    if (end !== undefined) {
      if (this.host.counting) this.host.events.endAttempt(end);
      if (end !== 'accepted') this.host.noteRefusedEnd(this.peer, end, record.id);
    }
  }

  /** A request's answer has been handed to the socket. */
  done(record: RequestRecord): void {
    const host = this.host;
    if (host.counting) host.events.requestDone(record.method, record.route, record.status, (performance.now() - record.startedAt) / 1000, record.bytesIn, record.size);
    if (host.accessLog !== undefined && record.target !== undefined) {
      const ms = Math.round((performance.now() - record.startedAt) * 1000) / 1000;
      this.logger[host.accessLog]({ req: record.id, peer: this.peer, method: record.method, target: record.target, status: record.status, ms, bytesIn: record.bytesIn, bytesOut: record.size }, 'request');
    }
  }

  /** A limit of the parser or the connection stopped a request or the connection. */
  limitHit(code: ProtocolErrorCode, message: string, requestId: string): void {
    this.logger.warn({ req: requestId, peer: this.peer, code }, message);
    this.host.events.limitHit(code);
  }

  /** TCPKV_MAX_REQUESTS_PER_CONNECTION reached: this request is the connection's last. */
  lastRequest(requestId: string, max: number): void {
    this.logger.info({ req: requestId, peer: this.peer, limit: 'maxRequestsPerConnection', value: max }, 'limit hit: closing after this request');
  }

  /** A request failed in a way no rule answers (answered 500). */
  failed(requestId: string, error: unknown): void {
    this.logger.error({ req: requestId, peer: this.peer, err: (error as Error)?.message }, 'request failed');
  }

  /**
   * A limit the rules applied. The store logs a full store itself (at most once a minute); the others
   * are logged here, like every limit the connection applies.
   */
  private ruleLimit(code: ProtocolErrorCode, message: string, requestId: string): void {
    if (code !== 'TCPKV_ERR_STORE_FULL') this.logger.warn({ req: requestId, peer: this.peer, code }, `limit hit: ${message}`);
    this.host.events.limitHit(code);
  }
}
