// One TCP connection: socket bytes ↔ parser ↔ rules ↔ response bytes. Everything with time or memory
// in it lives here: keep-alive, pipelining with answers in order, backpressure, and the limits the
// parser cannot see (timeouts, requests per connection, output held per connection). The server's
// sweeper calls `checkTimers`.
//
// Output is bounded in bytes, not only in answers: while the answers queued here plus what the socket
// holds exceed `maxOutputBytes`, no further request is parsed (and reading stops once the unparsed
// input piles up). A listing is written slice by slice (the store's shared strings) as the socket
// takes them, so a reader that never reads costs the socket's high-water mark, not a copy of the
// store. A reader that takes nothing for `sendTimeoutMs` is cut off, logged and counted — never a
// silent truncation. After the last answer the linger (draining unread input, so the peer sees the
// answer rather than a reset) starts when the answer has been handed to the kernel ('finish'). A peer
// that half-closes (a request, then FIN) gets every answer before we close.

//
// What is logged and counted about each request (access line, limits, END, metrics) is the request
// observer's (request-observer.ts): this file says when, the observer says what.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ProtocolError, ProtocolErrors, type ProtocolErrorCode } from '../protocol/errors.js';
import { EXPECT_CONTINUE, NEED_MORE, RequestParser, type ParsedRequest, type ParserLimits } from '../protocol/request-parser.js';
import { chunkFrame, CONTINUE_BYTES, LAST_CHUNK, streamHead, writeResponse, type BodyStream, type Response, type WireBytes } from '../protocol/response-writer.js';
import type { RouteLabel } from './events.js';
import type { Answer } from './render.js';
import { RequestObserver, type ObserverHost, type RequestRecord } from './request-observer.js';
import { matchRoute, runRoute } from './routes.js';
import type { Policy } from './rules.js';
import { isPromise, type Store } from './store/store.js';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../common/setting-names.js';

export interface ConnectionLimits extends ParserLimits {
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxPipelined: number;
  readonly maxRequestsPerConnection: number;
  /** answers queued plus bytes the socket holds, past which no further request is parsed */
  readonly maxOutputBytes?: number;
  /** a peer that takes none of our pending output for this long is cut off */
  readonly sendTimeoutMs?: number;
}

export const DEFAULT_MAX_OUTPUT_BYTES = numericDefault(S.maxOutputBytes);
export const DEFAULT_SEND_TIMEOUT_MS = numericDefault(S.sendTimeoutMs);

/** What a connection needs from its server (and its request observer from it). */
export interface ConnectionHost extends ObserverHost {
  readonly limits: ConnectionLimits;
  readonly store: Store;
  readonly policy: Policy;
  /** true once the server is shutting down: answer what is in flight, then close */
  readonly draining: boolean;
  /** a number for each new connection: with the request's sequence it makes the request id in log lines */
  nextConnectionId(): number;
  /** an authorised END was answered */
  requestShutdown(peer: string): void;
  /** the connection is gone (closed or destroyed) */
  forget(connection: Connection): void;
}

/** A response waiting for its turn: pipelined answers leave in request order. */
interface Slot extends RequestRecord {
  bytes: WireBytes | undefined;
  /** slices written after `bytes` (a listing), from `next` on */
  more: readonly Buffer[] | undefined;
  next: number;
  /** head and body written */
  started: boolean;
  close: boolean;
  shutdown: boolean;
  /** a `100 Continue` waiting for the answers before it: no answer of its own, not counted */
  interim: boolean;
  /** a body produced over time (a watch stream), sent chunked after `bytes`; the last answer */
  stream: BodyStream | undefined;
  /** the stream had nothing: its onReady is set */
  streamWaiting: boolean;
}

/** After we close our side, how long unread input is drained before the socket is destroyed. */
const LINGER_MS = 2000;
/** A listing up to this size is joined to its head and written at once; larger ones are streamed. */
const SMALL_ANSWER_BYTES = 32 * 1024;
/** Unparsed input kept while we are not pulling requests; beyond it the socket is paused. */
const MAX_UNPARSED_BYTES = 64 * 1024;
/**
 * Listing bytes one connection hands to its socket per turn of the event loop. A socket that takes
 * each write at once (loopback, a fast reader) drains synchronously, and the next slices would follow
 * within the same turn until the whole listing is written: every other request waits meanwhile.
 */
const LISTING_BYTES_PER_TURN = 1024 * 1024;

export class Connection {
  readonly socket: Socket;
  readonly peer: string;
  /** the connection's number in log lines (`conn`, and the first part of each request id) */
  readonly id: number;
  private readonly host: ConnectionHost;
  private readonly logger: Logger;
  private readonly parser: RequestParser;
  private readonly observer: RequestObserver;

  private readonly slots: Slot[] = [];
  /** no further requests are read: an error, Connection: close, a limit, or shutdown */
  private closing = false;
  /** our side is closed; input is drained until the peer closes or LINGER_MS passes */
  private lingerUntil = 0;
  private writeBlocked = false;
  private paused = false;
  /** the parser said NEED_MORE last time: it is waiting for bytes, so reading must go on */
  private parserWaiting = true;
  private requests = 0;
  /** bytes of the answers in `slots` not yet handed to the socket */
  private queuedBytes = 0;
  /** the peer sent FIN: answer what was asked, then close */
  private peerEnded = false;
  /** socket.end() was called; the linger starts at 'finish' */
  private ending = false;
  /** progress of pending output, for the send timeout */
  private lastProgress: number;
  private lastWritable = 0;
  /** listing bytes written in this turn of the event loop (reset by a setImmediate) */
  private turnBytes = 0;

  // timers, checked by the server's sweeper rather than one setTimeout per connection
  private stage: 'idle' | 'headers' | 'body' | 'dead' = 'idle';
  private stageSince: number;
  private lastActivity: number;

  /** `logger`: the connection's own, when its lines must say more than the host's (a TLS client's name) */
  constructor(socket: Socket, host: ConnectionHost, now: number, logger: Logger = host.logger) {
    this.socket = socket;
    this.host = host;
    this.logger = logger;
    this.peer = socket.remoteAddress ?? 'unknown';
    this.id = host.nextConnectionId();
    this.parser = new RequestParser(host.limits);
    this.observer = new RequestObserver(host, this.peer, logger);
    this.stageSince = this.lastActivity = this.lastProgress = now;

    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('end', () => this.onEnd());
    socket.on('finish', () => {
      // our last byte is with the kernel: from now on only unread input is drained, for LINGER_MS
      this.lingerUntil = performance.now() + LINGER_MS;
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // resets and broken pipes are the peer's business; anything else is worth a line
      const level = error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'debug' : 'warn';
      logger[level]({ conn: this.id, peer: this.peer, err: error.message, code: error.code }, 'connection error');
    });
    socket.on('close', () => {
      for (const slot of this.slots) slot.stream?.cancel();
      host.forget(this);
    });
  }

  /** Answers 403 to a peer outside the client allow-list (TCPKV_ALLOWED_CLIENTS) and closes. */
  refuse(response: Response): void {
    this.closing = true;
    this.socket.write(writeResponse(response, false), 'latin1');
    this.closeOurSide(performance.now());
  }

  /** Server shutdown: idle connections close now, busy ones after their last answer. */
  drain(): void {
    if (this.slots.length === 0 && this.parser.stage === 'idle') {
      this.closing = true;
      this.closeOurSide(performance.now());
    }
  }

  get idle(): boolean {
    return this.slots.length === 0 && this.parser.stage === 'idle';
  }

  // ---- input --------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    const now = performance.now();
    this.lastActivity = now;
    if (this.closing) return; // lingering or refusing: input is read and dropped
    try {
      this.parser.push(chunk);
      this.pump(now);
    } catch (error) {
      this.crash(error);
    }
  }

  /** The peer half-closed: requests already received are still answered, then our side closes. */
  private onEnd(): void {
    this.peerEnded = true;
    this.lastActivity = performance.now();
    if (this.ending || this.socket.destroyed) return;
    try {
      this.pump(this.lastActivity);
    } catch (error) {
      this.crash(error);
    }
  }

  private onDrain(): void {
    this.writeBlocked = false;
    this.lastActivity = this.lastProgress = performance.now();
    try {
      this.pump(this.lastActivity);
    } catch (error) {
      this.crash(error);
    }
  }

  /** Pulls requests from the parser while answers may be queued, then writes what is ready. */
  private pump(now: number): void {
    const limits = this.host.limits;
    let parsedAny = false;
    this.parserWaiting = false;
    const maxOutput = limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    while (!this.closing && !this.writeBlocked) {
      if (this.slots.length >= limits.maxPipelined || this.queuedBytes + this.socket.writableLength > maxOutput) {
        // the queue is full (in answers or in bytes): write what is ready, and go on only if that made room
        this.flush();
        if (this.closing || this.writeBlocked || this.slots.length >= limits.maxPipelined || this.queuedBytes + this.socket.writableLength > maxOutput) break;
      }
      // One connection's requests run in order: while the store is still answering the last one, the
      // next waits (a pipelined GET after a PUT must see the PUT, whatever the store's latency).
      const slots = this.slots;
      if (slots.length > 0 && slots[slots.length - 1]!.bytes === undefined) break;
      const result = this.parser.next();
      if (result === NEED_MORE) {
        this.parserWaiting = true;
        break;
      }
      if (result === EXPECT_CONTINUE) {
        // A 100 must not overtake an earlier request's answer: behind one, it waits its turn in the queue.
        if (this.slots.length === 0) this.socket.write(CONTINUE_BYTES);
        else {
          this.slots.push(interimSlot(this.requestId()));
          this.queuedBytes += CONTINUE_BYTES.length;
        }
        continue;
      }
      if (result instanceof ProtocolError) {
        this.limitHit(result.code, result.message);
        this.enqueue({ status: result.status, body: result.message, close: true }, false, undefined, undefined, this.parser.failedOnHead);
        break;
      }
      parsedAny = true;
      this.serve(result);
    }
    this.flush();
    this.updateStage(now, parsedAny);
    this.applyBackpressure();
    // half-closed by the peer, every request it sent answered: our side closes too (a request cut
    // short by the FIN can never complete)
    if (this.peerEnded && !this.ending && this.slots.length === 0 && (this.parserWaiting || this.closing)) {
      this.closing = true;
      this.closeOurSide(now);
    }
  }

  private serve(request: ParsedRequest): void {
    const host = this.host;
    this.requests++;
    const max = host.limits.maxRequestsPerConnection;
    let keepAlive = request.keepAlive && !host.draining;
    if (max > 0 && this.requests >= max) {
      if (keepAlive) this.observer.lastRequest(this.requestId(this.requests), max);
      keepAlive = false;
    }
    if (!keepAlive) this.closing = true;

    const call = matchRoute(request, host.store, host.policy, this.peer);
    let answer;
    try {
      answer = runRoute(call);
    } catch (error) {
      // a store's synchronous unknown failure is answered like its asynchronous one
      this.observer.failed(this.requestId(this.requests), error);
      answer = INTERNAL_ERROR;
    }
    if (isPromise(answer)) {
      const slot = this.newSlot(request, call.row.label);
      slot.close = !keepAlive;
      this.slots.push(slot);
      answer.then(
        (response) => this.complete(slot, request, response, keepAlive),
        (error: unknown) => {
          this.observer.failed(slot.id, error);
          this.complete(slot, request, INTERNAL_ERROR, false);
        },
      );
    } else {
      this.enqueue(answer, keepAlive, request, call.row.label);
    }
  }

  /** `<connection>.<sequence>`; a request still being read is number `requests + 1` */
  private requestId(sequence = this.requests + 1): string {
    return `${this.id}.${sequence}`;
  }

  private newSlot(request: ParsedRequest | undefined, route: RouteLabel = 'other'): Slot {
    return {
      bytes: undefined,
      more: undefined,
      next: 0,
      started: false,
      size: 0,
      close: false,
      shutdown: false,
      method: request?.method ?? '',
      route,
      status: 0,
      startedAt: request !== undefined ? this.observer.startTime() : 0,
      bytesIn: request?.body.length ?? 0,
      id: request !== undefined ? this.requestId(this.requests) : this.requestId(),
      target: request?.target,
      interim: false,
      stream: undefined,
      streamWaiting: false,
    };
  }

  private enqueue(response: Answer, keepAlive: boolean, request?: ParsedRequest, route?: RouteLabel, head = request?.method === 'HEAD'): void {
    const slot = this.newSlot(request, route);
    this.slots.push(slot);
    this.fill(slot, response, keepAlive, request, head);
  }

  /**
   * Makes an answer's bytes. A closing answer stops the reading of requests at once (RFC 9112 §9.6):
   * nothing pipelined behind it is parsed, run or counted. A HEAD answer never has a body, whatever
   * path produced it (RFC 9110 §9.3.2).
   */
  private fill(slot: Slot, response: Answer, keepAlive: boolean, request: ParsedRequest | undefined, head = request?.method === 'HEAD'): void {
    const close = !keepAlive || response.close === true || response.stream !== undefined;
    if (close) this.closing = true;
    if (response.stream !== undefined && !head) {
      // a streamed body: the head now, the chunks as the stream makes them (writeReady)
      const bytes = streamHead(response);
      slot.bytes = bytes;
      slot.more = undefined;
      slot.stream = response.stream;
      slot.size = bytes.length;
      this.queuedBytes += slot.size;
      slot.close = true;
      slot.status = response.status;
      if (request !== undefined) this.observer.answered(slot, response);
      return;
    }
    response.stream?.cancel();
    let bytes = writeResponse(response, !close, head);
    const more = response.more !== undefined && !response.headersOnly && !head ? response.more : undefined;
    if (more !== undefined && more.bytes <= SMALL_ANSWER_BYTES) {
      // a small listing leaves in one write (the seed's client reads its answer with one recv)
      bytes = joinAnswer(bytes, more.slices, more.bytes);
      slot.more = undefined;
      slot.size = bytes.length;
    } else {
      slot.more = more?.slices;
      slot.size = bytes.length + (more !== undefined ? more.bytes : 0);
    }
    slot.bytes = bytes;
    this.queuedBytes += slot.size;
    slot.close = close;
    slot.shutdown = response.shutdown === true;
    slot.status = response.status;
    if (request !== undefined) this.observer.answered(slot, response);
  }

  /** An asynchronous answer arrived: queue it, and carry on if the connection was waiting on it. */
  private complete(slot: Slot, request: ParsedRequest, response: Answer, keepAlive: boolean): void {
    try {
      this.fill(slot, response, keepAlive, request);
      if (this.socket.destroyed) return;
      this.pump(performance.now()); // writes what is ready (this answer and any behind it), then reads on
    } catch (error) {
      this.crash(error);
    }
  }

  // ---- output -------------------------------------------------------------------------------------

  /**
   * Writes every answer that is ready and whose predecessors are all written — several pipelined
   * answers corked into one writev, a single one written directly (corking it costs more than it saves).
   */
  private flush(): void {
    const slots = this.slots;
    const several = slots.length > 1 && slots[1]!.bytes !== undefined && slots[0]!.bytes !== undefined;
    if (several) this.socket.cork();
    try {
      this.writeReady();
    } finally {
      if (several) this.socket.uncork();
    }
  }

  private writeReady(): void {
    const slots = this.slots;
    const socket = this.socket;
    while (!this.writeBlocked && slots.length > 0 && slots[0]!.bytes !== undefined) {
      const slot = slots[0]!;
      let flushed = true;
      if (!slot.started) {
        slot.started = true;
        flushed = socket.write(slot.bytes!, 'latin1');
      }
      const more = slot.more;
      if (more !== undefined) {
        // the store's slices, as the socket takes them: at most one past the high-water mark, corked
        // so that each high-water mark's worth leaves in one writev rather than a write per slice
        socket.cork();
        while (slot.next < more.length && flushed && this.turnBytes < LISTING_BYTES_PER_TURN) {
          const slice = more[slot.next++]!;
          this.spendTurn(slice.length);
          flushed = socket.write(slice);
        }
        socket.uncork();
        if (slot.next < more.length) {
          this.waitForNextTurn(flushed);
          return;
        }
      }
      if (slot.stream !== undefined && !this.pullStream(slot, slot.stream, flushed)) return;
      slots.shift();
      this.queuedBytes -= slot.size;
      if (slot.interim) {
        if (!flushed) this.writeBlocked = true;
        continue;
      }
      this.observer.done(slot);
      if (slot.shutdown) {
        this.host.requestShutdown(this.peer);
      }
      if (slot.close) {
        this.closing = true;
        slots.length = 0; // nothing after a closing answer is sent
        this.queuedBytes = 0;
        this.closeOurSide(performance.now());
        return;
      }
      if (!flushed) this.writeBlocked = true;
    }
    if (slots.length === 0 && this.host.draining && this.closing === false && this.parser.stage === 'idle') {
      this.closing = true;
      this.closeOurSide(performance.now());
    }
  }

  /**
   * Writes what a stream has, as the socket takes it: true once its body is complete (the last chunk
   * written), false while it goes on — waiting for the stream (onReady), for the socket (drain), or
   * for the next turn (a turn's share of bytes written, as for a listing).
   */
  private pullStream(slot: Slot, stream: BodyStream, flushed: boolean): boolean {
    const socket = this.socket;
    let taking = flushed;
    while (taking && this.turnBytes < LISTING_BYTES_PER_TURN) {
      const data = stream.take();
      if (data === null) {
        socket.write(LAST_CHUNK);
        return true;
      }
      if (data === undefined) {
        if (!slot.streamWaiting) {
          slot.streamWaiting = true;
          stream.onReady(() => {
            slot.streamWaiting = false;
            if (socket.destroyed) return;
            try {
              this.pump(performance.now());
            } catch (error) {
              this.crash(error);
            }
          });
        }
        return false;
      }
      this.spendTurn(data.length);
      taking = socket.write(chunkFrame(data));
    }
    this.waitForNextTurn(taking);
    return false;
  }

  /** Counts bytes of a long answer handed to the socket in this turn of the event loop (reset at the next). */
  private spendTurn(bytes: number): void {
    if (this.turnBytes === 0) setImmediate(() => (this.turnBytes = 0));
    this.turnBytes += bytes;
  }

  /**
   * A long answer stops writing: until the socket drains, or — when it still takes more but this
   * turn's share is written — until the next turn, so that other connections' work runs between.
   */
  private waitForNextTurn(socketTakesMore: boolean): void {
    this.writeBlocked = true;
    if (socketTakesMore) setImmediate(() => !this.socket.destroyed && this.onDrain());
  }

  /** Stops reading while answers cannot be written or queued, so a client that never reads is bounded. */
  private applyBackpressure(): void {
    if (this.closing) return;
    // Reading stops while answers cannot be written, or while input we chose not to parse yet (the
    // queue of answers is full) piles up; either way what one client makes us hold is bounded. A
    // parser waiting for the rest of a request (a large body) is never starved.
    const stop = this.writeBlocked || (!this.parserWaiting && this.parser.bufferedBytes > MAX_UNPARSED_BYTES);
    if (stop && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!stop && this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /**
   * Half-closes after the last answer; unread input is drained, so the peer sees the answer, not a
   * reset. The linger clock starts at 'finish' (everything handed to the kernel), not here: a large
   * answer to a slow reader is not cut short; the send timeout bounds how long it may take.
   */
  private closeOurSide(now: number): void {
    if (this.ending) return;
    this.ending = true;
    this.lastProgress = now;
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    this.socket.end();
  }

  // ---- time ---------------------------------------------------------------------------------------

  private updateStage(now: number, parsedAny: boolean): void {
    const stage = this.parser.stage;
    if (stage !== this.stage || parsedAny) {
      this.stage = stage;
      this.stageSince = now;
    }
  }

  /** Called by the server's sweeper. */
  checkTimers(now: number): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (this.lingerUntil !== 0) {
      if (now >= this.lingerUntil) socket.destroy();
      return;
    }
    const limits = this.host.limits;
    // Output pending: only the send timeout applies — progress is the socket's backlog shrinking.
    const pending = socket.writableLength;
    if (this.writeBlocked || this.ending || pending > 0) {
      if (pending < this.lastWritable) this.lastProgress = now;
      this.lastWritable = pending;
      const sendTimeoutMs = limits.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS;
      if (now - this.lastProgress > sendTimeoutMs) {
        this.limitHit('TCPKV_ERR_SEND_TIMEOUT', `${ProtocolErrors.TCPKV_ERR_SEND_TIMEOUT.message} (${sendTimeoutMs} ms, ${pending + this.queuedBytes} bytes not sent)`);
        this.closing = true;
        socket.destroy();
      }
      return;
    }
    this.lastWritable = 0;
    this.lastProgress = now;
    // Our own backpressure is not the client's slowness: then only the idle timeout (no progress) applies.
    if (!this.paused && this.slots.length === 0) {
      if (this.stage === 'headers' && now - this.stageSince > limits.headersTimeoutMs) return this.timeout('TCPKV_ERR_HEADERS_TIMEOUT', limits.headersTimeoutMs);
      if (this.stage === 'body' && now - this.stageSince > limits.bodyTimeoutMs) return this.timeout('TCPKV_ERR_BODY_TIMEOUT', limits.bodyTimeoutMs);
    }
    if (this.slots.length > 0) {
      // the store has not answered yet: waiting for it is not the client's idleness (its answer may
      // say whether a write was applied), and the idle time counts from the answer on
      this.lastActivity = now;
      return;
    }
    if (now - this.lastActivity > limits.idleTimeoutMs) {
      this.logger.debug({ conn: this.id, peer: this.peer, idleMs: now - this.lastActivity }, 'idle connection closed');
      this.closing = true;
      this.socket.destroy();
    }
  }

  private timeout(code: ProtocolErrorCode, ms: number): void {
    const error = new ProtocolError(code);
    this.limitHit(code, `${error.message} (${ms} ms)`);
    this.closing = true;
    this.socket.write(writeResponse({ status: error.status, body: error.message, close: true }, false), 'latin1');
    this.closeOurSide(performance.now());
  }

  private limitHit(code: ProtocolErrorCode, message: string): void {
    this.observer.limitHit(code, message, this.requestId());
  }

  private crash(error: unknown): void {
    // One connection's failure stays that connection's: log it and close it, nothing else.
    this.logger.error({ conn: this.id, peer: this.peer, err: (error as Error)?.stack ?? String(error) }, 'connection failed; closed');
    this.closing = true;
    this.socket.destroy();
  }
}

const INTERNAL_ERROR: Answer = Object.freeze({ status: 500, body: 'Internal error', close: true });

/** `100 Continue` for a request whose turn has not come yet; written when the answers before it are. */
function interimSlot(id: string): Slot {
  const size = CONTINUE_BYTES.length;
  return { bytes: CONTINUE_BYTES, more: undefined, next: 0, started: false, size, close: false, shutdown: false, method: '', route: 'other', status: 100, startedAt: 0, bytesIn: 0, id, target: undefined, interim: true, stream: undefined, streamWaiting: false };
}

/** The head (latin1 characters, one per byte) and the slices as one Buffer. */
function joinAnswer(head: WireBytes, slices: readonly Buffer[], bytes: number): Buffer {
  const headBytes = head.length;
  const out = Buffer.allocUnsafe(headBytes + bytes);
  if (typeof head === 'string') out.write(head, 0, 'latin1');
  else head.copy(out, 0);
  let at = headBytes;
  for (const slice of slices) at += slice.copy(out, at);
  return out;
}
