// The admin port, for operators and their tools (probes, Prometheus): GET /healthz, /readyz and
// /metrics, nothing else. It is a separate listener from the data port, so node:http is used here —
// the data port keeps its own parser. It holds no data and answers no key, so it never touches the
// store beyond usage(), readiness() and the log's size.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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
}

/** Probes and scrapers are few; anything more is refused at accept. */
const MAX_ADMIN_CONNECTIONS = 32;
const TIMEOUT_MS = 10_000;

export class AdminServer {
  private readonly server: Server;
  private readonly options: AdminOptions;

  constructor(options: AdminOptions) {
    this.options = options;
    this.server = createServer((request, response) => {
      this.answer(request, response).catch((error: unknown) => {
        options.logger.error({ err: (error as Error)?.message, path: request.url }, 'admin port: answer failed');
        if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else response.destroy();
      });
    });
    this.server.maxConnections = MAX_ADMIN_CONNECTIONS;
    this.server.headersTimeout = TIMEOUT_MS;
    this.server.requestTimeout = TIMEOUT_MS;
    this.server.keepAliveTimeout = 5_000;
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
