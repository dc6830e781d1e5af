// The admin port, for operators and their tools (probes, Prometheus): GET /healthz, /readyz and
// /metrics, nothing else. It is a separate listener from the data port, so node:http is used here —
// the data port keeps its own parser. It holds no data and answers no key, so it never touches the
// store beyond usage(), readiness() and the log's size.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { listenOn } from '../common/listen.js';
import type { TcpkvMetrics } from './metrics.js';

export interface AdminOptions {
  readonly bind: string;
  readonly port: number;
  readonly metrics: TcpkvMetrics;
  readonly logger: Logger;
  /** true once the data port is shutting down: /readyz answers 503 from then on */
  readonly draining: () => boolean;
  /** a readiness check that takes longer than this counts as not ready */
  readonly readinessTimeoutMs?: number;
  /** a connection silent this long, or still sending its request after it, is closed (default 10 s) */
  readonly timeoutMs?: number;
}

/**
 * Probes and scrapers are few: connections past this many push out the oldest one not being answered
 * (idle, or still sending its request), so connections left open, or opened and left silent, cannot
 * lock a probe out. Only connections whose requests are being answered are never pushed out.
 */
export const MAX_ADMIN_CONNECTIONS = 32;
export const ADMIN_TIMEOUT_MS = 10_000;

export class AdminServer {
  private readonly server: Server;
  private readonly options: AdminOptions;
  /** open connections, oldest first, with how many of their requests are being answered */
  private readonly sockets = new Map<Socket, { answering: number }>();
  private lastLimitLine = -Infinity;
  private limitHitsSuppressed = 0;

  constructor(options: AdminOptions) {
    this.options = options;
    const timeoutMs = options.timeoutMs ?? ADMIN_TIMEOUT_MS;
    // the headers timeout is checked at this interval: a second keeps it close to what it says
    this.server = createServer({ connectionsCheckingInterval: Math.min(1000, timeoutMs) }, (request, response) => {
      const entry = this.sockets.get(request.socket);
      if (entry !== undefined) {
        entry.answering++;
        response.once('close', () => entry.answering--);
      }
      this.answer(request, response).catch((error: unknown) => {
        options.logger.error({ err: (error as Error)?.message, path: request.url }, 'admin port: answer failed');
        if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else response.destroy();
      });
    });
    this.server.on('connection', (socket: Socket) => this.admit(socket));
    this.server.headersTimeout = timeoutMs;
    this.server.requestTimeout = timeoutMs;
    // a socket silent this long is closed, whatever it is waiting for
    this.server.timeout = timeoutMs;
    this.server.keepAliveTimeout = Math.min(5_000, timeoutMs);
    this.server.on('error', (error) => options.logger.error({ err: error.message }, 'admin listener error'));
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.server, this.options.bind, this.options.port);
  }

  /** Stops listening and closes every admin connection (probes hold none for long). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private admit(socket: Socket): void {
    this.sockets.set(socket, { answering: 0 });
    socket.once('close', () => this.sockets.delete(socket));
    if (this.sockets.size <= MAX_ADMIN_CONNECTIONS) return;
    for (const [oldest, entry] of this.sockets) {
      if (entry.answering === 0 && oldest !== socket) {
        this.limitHit('oldest idle connection closed', oldest.remoteAddress);
        this.sockets.delete(oldest);
        oldest.destroy();
        return;
      }
    }
    // every other connection is being answered (each for at most the timeout): this one is refused
    this.limitHit('connection refused', socket.remoteAddress);
    this.sockets.delete(socket);
    socket.destroy();
  }

  /** At most one line a minute, with the count since the last one: a flood of connections is not a flood of lines. */
  private limitHit(what: string, peer: string | undefined): void {
    const now = performance.now();
    if (now - this.lastLimitLine < 60_000) {
      this.limitHitsSuppressed++;
      return;
    }
    this.options.logger.warn({ limit: 'admin connections', value: MAX_ADMIN_CONNECTIONS, peer, suppressedSinceLastLine: this.limitHitsSuppressed }, `limit hit: admin port: ${what}`);
    this.lastLimitLine = now;
    this.limitHitsSuppressed = 0;
  }

  private async answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '').split('?', 1)[0];
    const method = request.method;
    if (method !== 'GET' && method !== 'HEAD') return send(response, 404, 'text/plain; charset=utf-8', 'not found\n');
    switch (path) {
      case '/healthz':
        return send(response, 200, 'text/plain; charset=utf-8', 'ok\n');
      case '/readyz': {
        const reason = await this.notReadyReason();
        if (reason === undefined) return send(response, 200, 'text/plain; charset=utf-8', 'ready\n');
        return send(response, 503, 'text/plain; charset=utf-8', `not ready: ${reason}\n`);
      }
      case '/metrics': {
        const { contentType, body } = await this.options.metrics.render();
        return send(response, 200, contentType, body);
      }
      default:
        return send(response, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  }

  /** undefined = ready; a store that does not answer within the timeout is not ready. */
  private async notReadyReason(): Promise<string | undefined> {
    if (this.options.draining()) return 'shutting down';
    const timeoutMs = this.options.readinessTimeoutMs ?? 2_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`the store did not answer within ${timeoutMs} ms`), timeoutMs);
    });
    try {
      return await Promise.race([this.options.metrics.readiness(), late]);
    } catch (error) {
      return `readiness check failed: ${(error as Error)?.message ?? String(error)}`;
    } finally {
      clearTimeout(timer);
    }
  }
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}
