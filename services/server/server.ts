// The listening socket and the set of connections: accept (client allow-list, connection limit),
// one sweeper for every connection's timers, and graceful shutdown.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { listenOn } from '../common/listen.js';
import type { ClientAllowList } from './access.js';
import { Connection, type ConnectionHost, type ConnectionLimits } from './connection.js';
import { NO_EVENTS, type EndOutcome, type ServerEvents } from './events.js';
import { DrainSignal } from './drain-signal.js';
import { Texts, type Policy } from './rules.js';
import type { Store } from './store/store.js';
import type { TlsCredentials, TlsEvents } from './tls.js';
import { TlsListener } from './tls-listener.js';

/** A refused END is logged at most this often per peer… */
const REFUSED_END_LOG_EVERY_MS = 60_000;
/** …for at most this many peers at once (then the tally starts over: bounded memory). */
const REFUSED_END_PEERS = 10_000;

/** The TLS port (TCPKV_TLS_*), beside the plain one. */
export interface TlsPortOptions {
  readonly bind: string;
  readonly port: number;
  readonly credentials: TlsCredentials;
  readonly handshakeTimeoutMs: number;
  /** handshake and certificate counters (the admin port's metrics); default: none */
  readonly events?: TlsEvents | undefined;
}

export interface TcpkvServerOptions {
  readonly bind: string;
  /** the plain port; 'off' = none (TLS only) */
  readonly port: number | 'off';
  /** unset = no TLS port */
  readonly tls?: TlsPortOptions | undefined;
  readonly limits: ConnectionLimits;
  readonly maxConnections: number;
  readonly allowedClients: ClientAllowList;
  readonly policy: Policy;
  readonly store: Store;
  readonly logger: Logger;
  /** how long shutdown waits for in-flight requests before closing connections anyway */
  readonly shutdownTimeoutMs: number;
  /** counters (the admin port's metrics); default: none */
  readonly events?: ServerEvents;
  /** one info line per answered request (TCPKV_ACCESS_LOG); at log level debug there is one anyway */
  readonly accessLog?: boolean;
}

export class TcpkvServer implements ConnectionHost {
  readonly limits: ConnectionLimits;
  readonly store: Store;
  readonly policy: Policy;
  readonly logger: Logger;
  readonly accessLog: 'info' | 'debug' | undefined;
  readonly events: ServerEvents;
  readonly counting: boolean;
  draining = false;
  private readonly drainSignal = new DrainSignal();

  private readonly options: TcpkvServerOptions;
  private readonly server: Server;
  private readonly tlsListener: TlsListener | undefined;
  /** where the TLS port listens, once it does */
  tlsAddress: AddressInfo | undefined;
  private readonly connections = new Set<Connection>();
  private sweeper: NodeJS.Timeout | undefined;
  private shutdownPromise: Promise<void> | undefined;
  private shutdownListeners: ((reason: string) => void)[] = [];
  private connectionIds = 0;
  private readonly refusedEnds = new Map<string, { since: number; suppressed: number }>();

  constructor(options: TcpkvServerOptions) {
    this.options = options;
    this.limits = options.limits;
    this.store = options.store;
    // watches waiting for a change answer at once when the server starts draining
    this.policy = { ...options.policy, draining: this.drainSignal };
    this.logger = options.logger;
    this.accessLog = options.accessLog === true ? 'info' : options.logger.isLevelEnabled('debug') ? 'debug' : undefined;
    this.events = options.events ?? NO_EVENTS;
    this.counting = this.events !== NO_EVENTS;
    // allowHalfOpen: a peer that sends its requests and then FIN still gets every answer; the
    // connection closes our side itself once they are sent
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
    // a failure to listen rejects listen() and is reported once by the caller; later errors are logged
    this.server.on('error', (error) => {
      if (this.server.listening) this.logger.error({ err: error.message }, 'listener error');
    });
    const tls = options.tls;
    this.tlsListener = tls === undefined ? undefined : new TlsListener(this.tlsHost(), tls);
  }

  /**
   * Starts listening (the plain port, then the TLS port); resolves with the plain port's address
   * actually bound (port 0 picks a free one), or the TLS port's when the plain one is off.
   * A failure names the port that failed in the error's `port` field.
   */
  async listen(): Promise<AddressInfo> {
    let address: AddressInfo | undefined;
    if (this.options.port !== 'off') address = await listenOn(this.server, this.options.bind, this.options.port);
    if (this.tlsListener !== undefined) {
      try {
        this.tlsAddress = await this.tlsListener.listen();
      } catch (error) {
        if (address !== undefined) this.server.close();
        throw Object.assign(error as Error, { tlsPort: true });
      }
      address ??= this.tlsAddress;
    }
    if (address === undefined) throw new Error('no port to listen on: TCPKV_PORT=off and no TCPKV_TLS_PORT');
    const { headersTimeoutMs, bodyTimeoutMs, idleTimeoutMs } = this.limits;
    const handshakeTimeoutMs = this.options.tls?.handshakeTimeoutMs ?? idleTimeoutMs;
    // Timers are checked a few times per shortest timeout: precise enough, and one timer for all.
    const every = Math.max(10, Math.min(1000, Math.floor(Math.min(headersTimeoutMs, bodyTimeoutMs, idleTimeoutMs, handshakeTimeoutMs) / 4)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
    return address;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** TLS handshakes in progress (they count against TCPKV_MAX_CONNECTIONS). */
  get handshakesInProgress(): number {
    return this.tlsListener?.handshakesInProgress ?? 0;
  }

  /** What the TLS listener may ask of the server: admission, and serving a secured socket. */
  private tlsHost() {
    return {
      logger: this.logger,
      admit: (socket: Socket, pending: number): boolean => {
        if (this.draining) {
          this.events.connectionRefused('draining');
          socket.destroy();
          return false;
        }
        if (this.connections.size + pending >= this.options.maxConnections) {
          this.logger.warn({ peer: socket.remoteAddress, limit: 'maxConnections', value: this.options.maxConnections, handshakes: pending }, 'limit hit: connection refused');
          this.events.connectionRefused('max-connections');
          socket.destroy();
          return false;
        }
        const peer = socket.remoteAddress ?? 'unknown';
        if (!this.options.allowedClients.allows(peer)) {
          // before the handshake: a peer outside the allow-list costs no TLS work and sees no certificate
          this.events.connectionRefused('allow-list');
          this.logger.warn({ peer, allowed: this.options.allowedClients.text, port: 'tls' }, 'client not allowed');
          socket.destroy();
          return false;
        }
        return true;
      },
      adopt: (socket: TLSSocket, logger: Logger | undefined): void => {
        if (this.draining) {
          socket.destroy();
          return;
        }
        const connection = new Connection(socket, this, performance.now(), logger);
        this.connections.add(connection);
        this.events.connectionOpened();
      },
    };
  }

  /** Called with the reason when an authorised END (or a signal, via `shutdown`) starts shutdown. */
  onShutdown(listener: (reason: string) => void): void {
    this.shutdownListeners.push(listener);
  }

  private accept(socket: Socket): void {
    const now = performance.now();
    if (this.draining) {
      this.events.connectionRefused('draining');
      socket.destroy();
      return;
    }
    if (this.connections.size + this.handshakesInProgress >= this.options.maxConnections) {
      this.logger.warn({ peer: socket.remoteAddress, limit: 'maxConnections', value: this.options.maxConnections }, 'limit hit: connection refused');
      this.events.connectionRefused('max-connections');
      socket.destroy();
      return;
    }
    const connection = new Connection(socket, this, now);
    this.connections.add(connection);
    this.events.connectionOpened();
    const peer = connection.peer;
    if (!this.options.allowedClients.allows(peer)) {
      this.events.connectionRefused('allow-list');
      this.logger.warn({ peer, allowed: this.options.allowedClients.text }, 'client not allowed');
      connection.refuse({ status: 403, body: Texts.clientNotAllowed(peer), close: true });
    }
  }

  nextConnectionId(): number {
    return ++this.connectionIds;
  }

  /**
   * A refused END, logged at warn — but at most once a minute per peer, with the count since the last
   * line, so that a client trying tokens cannot flood the log (each try also costs it a connection:
   * the rules close after a refused END). The tally holds at most REFUSED_END_PEERS peers.
   */
  noteRefusedEnd(peer: string, outcome: EndOutcome, requestId: string): void {
    const now = performance.now();
    const tally = this.refusedEnds.get(peer);
    if (tally !== undefined && now - tally.since < REFUSED_END_LOG_EVERY_MS) {
      tally.suppressed++;
      return;
    }
    if (tally === undefined && this.refusedEnds.size >= REFUSED_END_PEERS) this.refusedEnds.clear();
    this.logger.warn({ req: requestId, peer, outcome, suppressedSinceLastLine: tally?.suppressed ?? 0 }, 'END refused');
    this.refusedEnds.set(peer, { since: now, suppressed: 0 });
  }

  forget(connection: Connection): void {
    if (this.connections.delete(connection)) this.events.connectionClosed();
  }

  requestShutdown(peer: string): void {
    this.logger.info({ peer }, 'END accepted: shutting down');
    for (const listener of this.shutdownListeners) listener(`END from ${peer}`);
  }

  private sweep(): void {
    const now = performance.now();
    for (const connection of this.connections) connection.checkTimers(now);
    this.tlsListener?.checkHandshakes(now, (peer) => {
      // cut like a slow client: a line and the limit counter
      this.logger.warn({ peer, code: 'TCPKV_ERR_TLS_HANDSHAKE_TIMEOUT', value: this.options.tls?.handshakeTimeoutMs }, 'limit hit: TLS handshake not finished in time; connection closed');
      this.events.limitHit('TCPKV_ERR_TLS_HANDSHAKE_TIMEOUT');
    });
  }

  /**
   * Graceful shutdown: stop accepting, let in-flight requests finish (up to shutdownTimeoutMs), close
   * every connection, then close the store (which flushes it). Idempotent.
   */
  shutdown(reason: string, options: { keepStore?: boolean } = {}): Promise<void> {
    if (this.shutdownPromise) return this.shutdownPromise;
    this.draining = true;
    this.drainSignal.begin();
    this.logger.info({ reason, connections: this.connections.size }, 'shutting down');
    this.shutdownPromise = (async () => {
      const closed = Promise.all([
        this.server.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : undefined,
        this.tlsListener?.close(),
      ]);
      for (const connection of this.connections) connection.drain();
      const deadline = performance.now() + this.options.shutdownTimeoutMs;
      while (this.connections.size > 0 && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        for (const connection of this.connections) if (connection.idle) connection.drain();
      }
      if (this.connections.size > 0) this.logger.warn({ connections: this.connections.size }, 'shutdown timeout: closing the rest');
      for (const connection of this.connections) connection.socket.destroy();
      await closed;
      if (this.sweeper) clearInterval(this.sweeper);
      // keepStore: the store outlives this server (tests run several servers over one store)
      if (!options.keepStore) await this.store.close();
      this.logger.info('stopped');
    })();
    return this.shutdownPromise;
  }
}
