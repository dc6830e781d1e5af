// The TLS port: accepts TCP, looks at the first byte, runs the handshake (node:tls) and hands the
// secured socket to the server, which serves it with the same Connection, parser, rules and limits
// as the plain port. Until the handshake is done the connection is "in handshake": it counts against
// the connection limit and is cut after TCPKV_TLS_HANDSHAKE_TIMEOUT_MS, however it stalls (silent
// after connecting, or halfway through the handshake). Plain HTTP sent here gets a one-line 400 and
// never reaches the rules. Every handshake is counted by how it ended (TlsHandshakeOutcome).

import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { listenOn } from '../common/listen.js';
import { writeResponse } from '../protocol/response-writer.js';
import type { TlsCredentials, TlsEvents, TlsHandshakeOutcome } from './tls.js';
import { NO_TLS_EVENTS } from './tls.js';

/** What a client that sent plain HTTP to the TLS port reads (as nginx does it, in one line). */
export const PLAIN_HTTP_ON_TLS_PORT = 'The plain HTTP request was sent to the TLS port: connect with TLS (https://, tcpkv-client --tls)';

/** After answering plain HTTP, its further input is read and dropped this long, so the peer sees the answer, not a reset. */
const PLAIN_HTTP_LINGER_MS = 1000;

/** The first byte of a TLS handshake record, and of an SSLv2-style hello (refused by OpenSSL, with a reason). */
const TLS_HANDSHAKE_RECORD = 0x16;
const SSL2_HELLO = 0x80;

export interface TlsListenerHost {
  readonly logger: Logger;
  /**
   * May one more connection open now (draining, connection limit, client allow-list)? `pending`:
   * handshakes in progress, which count against the limit. A refusal is logged and counted by the
   * host, and the socket destroyed.
   */
  admit(socket: Socket, pending: number): boolean;
  /** A finished handshake: serve the socket; `logger` names the client certificate (undefined: none). */
  adopt(socket: TLSSocket, logger: Logger | undefined): void;
}

export interface TlsListenerOptions {
  readonly bind: string;
  readonly port: number;
  readonly credentials: TlsCredentials;
  readonly handshakeTimeoutMs: number;
  readonly events?: TlsEvents | undefined;
}

interface Handshake {
  readonly raw: Socket;
  /** the peer's address, kept: a destroyed socket no longer knows it */
  readonly peer: string | undefined;
  readonly since: number;
  /** counted: the outcome is known (the socket may still be closing) */
  ended: boolean;
  /** plain HTTP answered: dropped silently at this time */
  lingerUntil: number;
  tls: TLSSocket | undefined;
  /** handed to node:tls, which reports the outcome (secureConnection or tlsClientError) */
  wrapped: boolean;
}

/** Maps an error from a failed handshake to its outcome. */
export function handshakeOutcome(error: NodeJS.ErrnoException, authorizationError: string | undefined): TlsHandshakeOutcome {
  if (authorizationError !== undefined) return 'client-certificate-rejected';
  const code = error.code ?? '';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no-client-certificate';
  if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|UNSUPPORTED_CERTIFICATE|DECRYPT_ERROR)/.test(code)) return 'server-certificate-refused';
  if (/(UNSUPPORTED_PROTOCOL|VERSION|NO_SHARED_CIPHER|NO_APPLICATION_PROTOCOL|NO_SUITABLE|NO_PROTOCOLS|INAPPROPRIATE_FALLBACK|HANDSHAKE_FAILURE)/.test(code)) return 'protocol';
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || /hang up|disconnected/.test(error.message)) return 'closed';
  if (code.startsWith('ERR_SSL_')) return 'malformed';
  return 'other';
}

export class TlsListener {
  private readonly server: Server;
  private readonly tlsServer: TlsServer;
  private readonly handshakes = new Map<Socket, Handshake>();
  private readonly events: TlsEvents;

  constructor(
    private readonly host: TlsListenerHost,
    private readonly options: TlsListenerOptions,
  ) {
    this.events = options.events ?? NO_TLS_EVENTS;
    const credentials = options.credentials;
    // never listens: it runs the handshake of the sockets this listener passes it
    this.tlsServer = createTlsServer({
      ...credentials.current.options,
      requestCert: credentials.requireClientCertificate,
      rejectUnauthorized: credentials.requireClientCertificate,
      ALPNProtocols: ['http/1.1'],
      // our own sweeper cuts slow handshakes first (counted as timeouts); this is the backstop
      handshakeTimeout: options.handshakeTimeoutMs * 2,
      allowHalfOpen: true,
    });
    credentials.onReload((loaded) => this.tlsServer.setSecureContext(loaded.options));
    this.tlsServer.on('secureConnection', (socket: TLSSocket) => this.secured(socket));
    this.tlsServer.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => this.failed(error, socket));
    this.server = createNetServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    this.server.on('error', (error) => {
      if (this.server.listening) host.logger.error({ err: error.message }, 'TLS listener error');
    });
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.server, this.options.bind, this.options.port);
  }

  /** Connections accepted whose handshake has not finished (they count against the connection limit). */
  get handshakesInProgress(): number {
    return this.handshakes.size;
  }

  /** Stops accepting; handshakes in progress are cut. Resolves once the listener is closed. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const handshake of this.handshakes.values()) (handshake.tls ?? handshake.raw).destroy();
    this.options.credentials.stop();
    return closed;
  }

  private accept(raw: Socket): void {
    if (!this.host.admit(raw, this.handshakes.size)) return;
    const handshake: Handshake = { raw, peer: raw.remoteAddress, since: performance.now(), ended: false, lingerUntil: 0, tls: undefined, wrapped: false };
    this.handshakes.set(raw, handshake);
    this.events.tlsHandshakeStarted();
    const ignore = () => {};
    raw.on('error', ignore); // before the first byte a reset is counted as closed below; after it node:tls reports errors
    raw.on('close', () => {
      if (!handshake.wrapped) {
        this.end(handshake, 'closed');
        this.handshakes.delete(raw);
        return;
      }
      // node:tls reports a failed handshake when its socket closes, after this one: let it name the reason
      setImmediate(() => {
        this.end(handshake, 'closed');
        this.handshakes.delete(raw);
      });
    });
    raw.once('data', (chunk: Buffer) => {
      raw.pause();
      if (handshake.ended) return;
      const first = chunk[0]!;
      if (first === TLS_HANDSHAKE_RECORD || first === SSL2_HELLO) {
        // node:tls reads what is buffered here before reading on
        raw.unshift(chunk);
        handshake.wrapped = true;
        this.tlsServer.emit('connection', raw);
      } else if (first >= 0x41 && first <= 0x5a) {
        // an upper-case letter: a method, so plain HTTP (or the seed dialect)
        this.end(handshake, 'plain-http');
        this.host.logger.info({ peer: handshake.peer }, 'plain HTTP request on the TLS port: answered 400 and closed');
        handshake.lingerUntil = performance.now() + PLAIN_HTTP_LINGER_MS;
        raw.end(writeResponse({ status: 400, body: PLAIN_HTTP_ON_TLS_PORT + '\n', close: true }, false), 'latin1');
        raw.on('data', ignore);
        raw.resume();
      } else {
        this.end(handshake, 'not-tls');
        this.host.logger.debug({ peer: handshake.peer, firstByte: first }, 'TLS port: neither TLS nor HTTP; closed');
        raw.destroy();
      }
    });
  }

  private end(handshake: Handshake, outcome: TlsHandshakeOutcome): void {
    if (handshake.ended) return;
    handshake.ended = true;
    this.events.tlsHandshakeEnded(outcome);
  }

  /** The raw socket a TLSSocket wraps (node:tls keeps it as `_parent`). */
  private handshakeOf(socket: TLSSocket): Handshake | undefined {
    const raw = (socket as unknown as { _parent?: Socket })._parent;
    const handshake = raw !== undefined ? this.handshakes.get(raw) : undefined;
    if (handshake !== undefined) handshake.tls = socket;
    return handshake;
  }

  private secured(socket: TLSSocket): void {
    const handshake = this.handshakeOf(socket);
    if (handshake === undefined || handshake.ended) {
      socket.destroy();
      return;
    }
    this.end(handshake, 'ok');
    this.handshakes.delete(handshake.raw);
    // a client with a certificate: every line of its connection names the certificate's subject
    let logger: Logger | undefined;
    if (this.options.credentials.requireClientCertificate) {
      const subject = socket.getPeerCertificate().subject;
      const name = subject ? Object.entries(subject).map(([k, v]) => `${k}=${String(v)}`).join(', ') : 'unknown';
      logger = this.host.logger.child({ tlsClient: name });
    }
    this.host.adopt(socket, logger);
  }

  private failed(error: NodeJS.ErrnoException, socket: TLSSocket): void {
    const handshake = this.handshakeOf(socket);
    socket.destroy();
    if (handshake === undefined || handshake.ended) return;
    // (typed as an Error, it is the verification's error code, or null)
    const authorizationError = socket.authorizationError as unknown;
    const outcome = handshakeOutcome(error, typeof authorizationError === 'string' ? authorizationError : undefined);
    this.end(handshake, outcome);
    const level = outcome === 'closed' || outcome === 'malformed' || outcome === 'other' ? 'debug' : 'info';
    this.host.logger[level]({ peer: handshake.peer, outcome, err: error.code ?? error.message, ...(typeof authorizationError === 'string' ? { clientCertificate: authorizationError } : {}) }, 'TLS handshake failed');
  }

  /** Called by the server's sweeper: cuts handshakes that took too long, drops answered plain HTTP. */
  checkHandshakes(now: number, onTimeout: (peer: string | undefined) => void): void {
    const limit = this.options.handshakeTimeoutMs;
    for (const handshake of this.handshakes.values()) {
      if (handshake.lingerUntil !== 0) {
        if (now >= handshake.lingerUntil) handshake.raw.destroy();
      } else if (!handshake.ended && now - handshake.since > limit) {
        this.end(handshake, 'timeout');
        onTimeout(handshake.peer);
        (handshake.tls ?? handshake.raw).destroy();
      }
    }
  }
}
