// The client library: builds a request in either dialect, sends it on its own connection (as the
// seed's client does), and reads one typed answer. With several server addresses it moves to the next
// when a connection cannot be made — before anything was sent, so nothing can be applied twice —
// and never retries once a request may have reached a server.

import { X509Certificate } from 'node:crypto';
import { connect, isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { checkServerIdentity, connect as connectTls, type TLSSocket } from 'node:tls';
import { ClientSideError } from '../protocol/errors.js';
import { ResponseFormatError, ResponseReader, type ParsedResponse } from '../protocol/response-reader.js';

export type Dialect = 'seed' | 'standard';

export interface ServerAddress {
  readonly host: string;
  readonly port: number;
}

/** TLS to the server's TLS port (its certificate checked against `ca` and the server's name). */
export interface ClientTlsOptions {
  /** PEM: the CAs the server's certificate must chain to; unset = Node's bundled CAs */
  readonly ca?: string | Buffer | undefined;
  /** PEM: a client certificate (and chain) for a server that requires one */
  readonly cert?: string | Buffer | undefined;
  /** PEM: the client certificate's key */
  readonly key?: string | Buffer | undefined;
  /** the name the server's certificate must carry; default: the server address's host */
  readonly servername?: string | undefined;
}

export interface ClientOptions {
  /** tried in order when a connection cannot be made */
  readonly servers: readonly ServerAddress[];
  /** the host named in requests; default: the server's host */
  readonly targetHost?: string | undefined;
  readonly dialect: Dialect;
  /** sent as `Authorization: Bearer <token>` with END */
  readonly token?: string | undefined;
  /**
   * For each server tried: connecting, sending and the whole answer, to its last byte (not the gaps
   * between bytes: a server that dribbles its answer cannot hold the client longer).
   */
  readonly timeoutMs: number;
  /** set = every connection speaks TLS */
  readonly tls?: ClientTlsOptions | undefined;
  /** sees each request head, response head and move to the next server (the CLI's --verbose) */
  readonly trace?: ((event: TraceEvent) => void) | undefined;
}

export type TraceEvent =
  | { readonly kind: 'request'; readonly server: ServerAddress; readonly head: string }
  | { readonly kind: 'response'; readonly server: ServerAddress; readonly head: string }
  | { readonly kind: 'failover'; readonly from: ServerAddress; readonly to: ServerAddress; readonly reason: string };

export interface KvRequest {
  readonly method: string;
  /** '' for the root, 'create', 'update'; undefined = an address the client could not parse (`?/?`) */
  readonly path: string | undefined;
  readonly body?: string | Buffer;
  /** overrides the target host for this request (the scenario's `127.0.5.1/` case) */
  readonly targetHost?: string;
  /** standard dialect only: the request target as sent (e.g. `/kv/a%20b`), instead of `/<path>` */
  readonly target?: string;
  /** standard dialect only: header lines to add (e.g. If-Match); names and values must be one line each */
  readonly headers?: readonly (readonly [name: string, value: string])[];
  /** how long the server may hold the answer on purpose (a watch's wait), on top of the timeout */
  readonly waitMs?: number;
}

export type Answer =
  | { readonly kind: 'response'; readonly response: ParsedResponse; readonly server: ServerAddress }
  /** the server closed the connection without answering (the seed server's reaction to END) */
  | { readonly kind: 'closed'; readonly server: ServerAddress };

/** An answer as a person reads it: `200 OK` and the body, or that the server closed without one. */
export function formatAnswer(answer: Answer): string {
  if (answer.kind === 'closed') return 'connection closed by the server without an answer\n';
  const { status, reason, body } = answer.response;
  return `${status} ${reason}\n${body}${body && !body.endsWith('\n') ? '\n' : ''}`;
}

/**
 * The client's exit status for an answer: 0 a 2xx (and the seed dialect's 100 to HEAD; for END also a
 * connection closed without an answer, which is how the seed's server stops), 1 a 4xx, 3 no answer,
 * 4 a 5xx. Anything else (3xx, another 1xx) is not a success either: 1.
 */
export function exitStatus(answer: Answer, method: string): number {
  if (answer.kind === 'closed') return method === 'END' ? 0 : 3;
  const { status } = answer.response;
  if (status >= 200 && status < 300) return 0;
  if (status === 100 && method === 'HEAD') return 0;
  if (status >= 500) return 4;
  return 1;
}

/** `HTTP/1.1 200 OK` and the header lines, as received (for --verbose). */
export function responseHead(response: ParsedResponse): string {
  return [`${response.version} ${response.status} ${response.reason}`, ...response.headers.map(([n, v]) => `${n}: ${v}`)].join('\n');
}

export function formatAddress(server: ServerAddress): string {
  return hostForHeader(server.host, server.port);
}

export type ClientErrorCode = 'CONNECT_FAILED' | 'TLS_FAILED' | 'TIMEOUT' | 'CONNECTION_LOST' | 'BAD_RESPONSE';

/** The subject's CN (or the whole subject) of a PEM certificate, for messages; undefined if unreadable. */
function certificateName(pem: string | Buffer | undefined): string | undefined {
  if (pem === undefined) return undefined;
  try {
    const subject = new X509Certificate(pem).subject;
    return /(?:^|\n)CN=([^\n]*)/.exec(subject)?.[1] ?? subject.replace(/\n/g, ', ');
  } catch {
    return undefined;
  }
}

/**
 * A TLS failure as one line naming its cause, or undefined when `error` is not about TLS. Each
 * cause a person can fix gets its own words: the CA, the name, the dates, the client certificate,
 * or a plain server where TLS was expected.
 */
export function describeTlsFailure(error: NodeJS.ErrnoException & { cert?: { subjectaltname?: string } }, where: string, tls: ClientTlsOptions, host: string): string | undefined {
  const code = error.code ?? '';
  const caHint = tls.ca !== undefined ? 'the CA in --ca-file (TCPKV_CLIENT_CA_FILE)' : "the system's CAs (give the server's CA with --ca-file)";
  switch (code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return `${where}: TLS: unknown CA: the server's certificate is not signed by ${caHint} (${code})`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID': {
      const names = error.cert?.subjectaltname;
      return `${where}: TLS: name mismatch: the server's certificate is not for "${tls.servername ?? host}"${names ? ` (it names ${names})` : ''}; connect by one of its names or set --servername (TCPKV_CLIENT_SERVERNAME)`;
    }
    case 'CERT_HAS_EXPIRED':
      return `${where}: TLS: expired certificate: the server's certificate has expired; the server must be given a new one (${code})`;
    case 'CERT_NOT_YET_VALID':
      return `${where}: TLS: the server's certificate is not valid yet (check both clocks) (${code})`;
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
    case 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE':
      if (tls.cert === undefined) return `${where}: TLS: the server requires a client certificate: give one with --cert-file and --key-file (TCPKV_CLIENT_CERT_FILE, TCPKV_CLIENT_KEY_FILE)`;
      return `${where}: TLS: the server refused the handshake (${code})`;
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED':
    case 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN':
      return `${where}: TLS: the server refused the client certificate ${JSON.stringify(certificateName(tls.cert) ?? '')}: it must be signed by the CA the server trusts and not expired (${code})`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_PACKET_LENGTH_TOO_LONG':
    case 'ERR_SSL_HTTP_REQUEST':
      return `${where}: TLS: a plain server on a TLS address: it answered without TLS (is this the plain port? use the TLS port, or drop --tls)`;
    case 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION':
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
    case 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL':
      return `${where}: TLS: no protocol in common with the server (${code})`;
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /^[A-Z_]+_CERT/.test(code)) return `${where}: TLS: ${error.message.split('\n')[0]} (${code})`;
  return undefined;
}

/** No answer from the server (exit 3): connecting, TLS, a timeout, a lost connection, or junk. */
export class ClientError extends ClientSideError {
  override readonly name = 'ClientError';
  declare readonly code: ClientErrorCode;
  /** true when the request may have reached the server (so it must not be retried blindly) */
  readonly maybeApplied: boolean;
  constructor(code: ClientErrorCode, message: string, maybeApplied: boolean) {
    super(code, message);
    this.maybeApplied = maybeApplied;
  }
}

/** `host:port`, `[v6]:port`, or `host` (port 10000); comma-separated lists give several servers. */
export function parseServerList(spec: string): ServerAddress[] {
  const out: ServerAddress[] = [];
  for (const raw of spec.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    let host: string;
    let portText: string | undefined;
    const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(item);
    if (v6) {
      host = v6[1]!;
      portText = v6[2];
    } else if (isIP(item) === 6) {
      host = item;
    } else {
      const colon = item.lastIndexOf(':');
      host = colon < 0 ? item : item.slice(0, colon);
      portText = colon < 0 ? undefined : item.slice(colon + 1);
    }
    if (host === '' || /[\s/]/.test(host)) throw new Error(`"${item}" is not host:port`);
    const port = portText === undefined ? 10000 : /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(port >= 1 && port <= 65535)) throw new Error(`"${item}" has no valid port (1-65535)`);
    out.push({ host, port });
  }
  if (out.length === 0) throw new Error('no server address given');
  return out;
}

function hostForHeader(host: string, port: number | undefined): string {
  const h = isIP(host) === 6 ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}

/**
 * The request's bytes. The seed dialect is byte for byte what the seed's client sends, its
 * Content-Length in characters included; the standard dialect counts bytes.
 */
export function buildRequest(request: KvRequest, dialect: Dialect, targetHost: string, port: number, token?: string): Buffer {
  const body = typeof request.body === 'string' ? Buffer.from(request.body, 'utf8') : (request.body ?? Buffer.alloc(0));
  const bodyBytes = body.length;
  const auth = token !== undefined && request.method === 'END' ? `Authorization: Bearer ${token}\r\n` : '';
  let head: string;
  if (dialect === 'seed') {
    const host = request.path === undefined ? '?/?' : `${hostForHeader(targetHost, undefined)}/${request.path}`;
    head =
      `${request.method} / HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/html\r\nConnection: keep-alive\r\n` +
      // the seed's client counts characters (Python's len() of a str), and so does a server reading
      // a seed-shaped request (docs/protocol.md); for ASCII the two counts agree
      `${auth}Content-Length: ${[...body.toString('utf8')].length}\r\n\n`;
  } else {
    const target = request.target ?? (request.path === undefined ? '?' : `/${request.path}`);
    let extra = '';
    for (const [name, value] of request.headers ?? []) {
      if (/[\r\n]/.test(name + value)) throw new RangeError(`header ${JSON.stringify(name)} holds a line break`);
      extra += `${name}: ${value}\r\n`;
    }
    head =
      `${request.method} ${target} HTTP/1.1\r\nHost: ${hostForHeader(targetHost, port)}\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n${auth}${extra}Content-Length: ${bodyBytes}\r\n\r\n`;
  }
  return Buffer.concat([Buffer.from(head, 'utf8'), body]);
}

/**
 * Where a connection's reads go. Each view is valid only during the call (the buffer is read into
 * again); bytes that come before a reader is attached (a server that speaks first) are kept for it.
 */
class ByteSink {
  private early: Buffer[] | undefined = [];
  private reader: ((bytes: Buffer) => void) | undefined;

  take(bytes: Buffer): void {
    if (this.reader) this.reader(bytes);
    else this.early!.push(Buffer.from(bytes));
  }

  attach(reader: (bytes: Buffer) => void): void {
    this.reader = reader;
    for (const bytes of this.early!) reader(bytes);
    this.early = undefined;
  }
}

const READ_BUFFER_BYTES = 64 * 1024;

export class TcpkvClient {
  readonly options: ClientOptions;

  constructor(options: ClientOptions) {
    if (options.servers.length === 0) throw new Error('no server address given');
    this.options = options;
  }

  /** Sends one request and reads its answer, trying the next server only when connecting fails. */
  async send(request: KvRequest): Promise<Answer> {
    const errors: ClientError[] = [];
    const servers = this.options.servers;
    for (const [i, server] of servers.entries()) {
      try {
        return await this.sendTo(server, request);
      } catch (error) {
        if (error instanceof ClientError && !error.maybeApplied) {
          errors.push(error);
          const next = servers[i + 1];
          if (next) this.options.trace?.({ kind: 'failover', from: server, to: next, reason: error.message });
          continue;
        }
        throw error;
      }
    }
    if (errors.length === 1) throw errors[0]!;
    // every address failed: one error that names them all
    throw new ClientError(errors[errors.length - 1]!.code, errors.map((e) => e.message).join('; '), false);
  }

  /**
   * Sends bytes as they are and collects everything the server writes until it closes, goes quiet
   * for `quietMs`, or the timeout (from connecting) is up.
   */
  async raw(bytes: Buffer, quietMs = 300): Promise<Buffer> {
    const server = this.options.servers[0]!;
    const deadline = performance.now() + this.options.timeoutMs;
    const sink = new ByteSink();
    const socket = await this.open(server, deadline, sink);
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let quiet: NodeJS.Timeout | undefined;
      const finish = () => {
        clearTimeout(quiet);
        clearTimeout(overall);
        socket.destroy();
        resolve(Buffer.concat(parts));
      };
      const overall = setTimeout(finish, Math.max(0, deadline - performance.now()));
      sink.attach((chunk) => {
        parts.push(Buffer.from(chunk));
        clearTimeout(quiet);
        quiet = setTimeout(finish, quietMs);
      });
      socket.on('end', finish);
      socket.on('error', (e) => {
        clearTimeout(quiet);
        clearTimeout(overall);
        reject(new ClientError('CONNECTION_LOST', e.message, true));
      });
      socket.write(bytes);
    });
  }

  /**
   * A connection to `server`, made before `deadline` (a performance.now() time) or not at all. What
   * it reads goes to `sink`, from one buffer reused for every read (no allocation per read).
   */
  private open(server: ServerAddress, deadline: number, sink: ByteSink): Promise<Socket> {
    if (this.options.tls !== undefined) return this.openTls(server, this.options.tls, deadline, sink);
    return new Promise((resolve, reject) => {
      const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
      const onread = (bytes: number) => {
        sink.take(readBuffer.subarray(0, bytes));
        return true;
      };
      const socket = connect({ host: server.host, port: server.port, noDelay: true, onread: { buffer: readBuffer, callback: onread } });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ClientError('CONNECT_FAILED', `cannot connect to ${hostForHeader(server.host, server.port)}: timed out after ${this.options.timeoutMs} ms`, false));
      }, Math.max(0, deadline - performance.now()));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new ClientError('CONNECT_FAILED', `cannot connect to ${hostForHeader(server.host, server.port)}: ${e.code ?? e.message}`, false));
      });
    });
  }

  /** A TLS connection, handshake done; every failure before that is one ClientError naming its cause. */
  private openTls(server: ServerAddress, tls: ClientTlsOptions, deadline: number, sink: ByteSink): Promise<TLSSocket> {
    const where = hostForHeader(server.host, server.port);
    const name = tls.servername ?? server.host;
    return new Promise((resolve, reject) => {
      const socket = connectTls({
        host: server.host,
        port: server.port,
        // the certificate is checked against this name (or address); a name is also sent as SNI
        ...(isIP(name) === 0 ? { servername: name } : {}),
        checkServerIdentity: (_host, certificate) => checkServerIdentity(name, certificate),
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        minVersion: 'TLSv1.2',
        ALPNProtocols: ['http/1.1'],
      });
      socket.setNoDelay(true);
      // decrypted bytes arrive as 'data' (a TLS socket has no onread); bytes read before the caller
      // attaches are kept by the sink
      socket.on('data', (chunk: Buffer) => sink.take(chunk));
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ClientError('CONNECT_FAILED', `cannot connect to ${where}: timed out after ${this.options.timeoutMs} ms (TCP or TLS handshake)`, false));
      }, Math.max(0, deadline - performance.now()));
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const tlsText = describeTlsFailure(e, where, tls, server.host);
        if (tlsText !== undefined) return reject(new ClientError('TLS_FAILED', tlsText, false));
        if (e.code === 'ECONNRESET' || /disconnected before secure/.test(e.message)) {
          return reject(new ClientError('TLS_FAILED', `${where}: TLS: the server closed the connection during the handshake (is this its TLS port, and this address in its TCPKV_ALLOWED_CLIENTS?)`, false));
        }
        reject(new ClientError('CONNECT_FAILED', `cannot connect to ${where}: ${e.code ?? e.message}`, false));
      });
    });
  }

  private async sendTo(server: ServerAddress, request: KvRequest): Promise<Answer> {
    // a monotonic clock: a change of the wall clock neither shortens nor stretches the wait
    const deadline = performance.now() + this.options.timeoutMs + (request.waitMs ?? 0);
    const sink = new ByteSink();
    const socket = await this.open(server, deadline, sink);
    const targetHost = request.targetHost ?? this.options.targetHost ?? server.host;
    const bytes = buildRequest(request, this.options.dialect, targetHost, server.port, this.options.token);
    const reader = new ResponseReader(request.method === 'HEAD');
    const where = hostForHeader(server.host, server.port);
    const trace = this.options.trace;
    if (trace) {
      const headEnd = bytes.indexOf('\n\n') >= 0 ? bytes.indexOf('\n\n') : bytes.indexOf('\r\n\r\n');
      trace({ kind: 'request', server, head: bytes.toString('utf8', 0, headEnd).replace(/\r/g, '').trimEnd() });
    }
    const answered = (response: ParsedResponse): Answer => {
      trace?.({ kind: 'response', server, head: responseHead(response) });
      return { kind: 'response', response, server };
    };
    return new Promise<Answer>((resolve, reject) => {
      let settled = false;
      let received = 0;
      const done = (result: Answer | ClientError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (result instanceof ClientError) reject(result);
        else resolve(result);
      };
      const timer = setTimeout(() => {
        const ms = this.options.timeoutMs + (request.waitMs ?? 0);
        done(new ClientError('TIMEOUT', received === 0 ? `no answer from ${where} within ${ms} ms` : `no complete answer from ${where} within ${ms} ms (${received} bytes received)`, true));
      }, Math.max(0, deadline - performance.now()));
      sink.attach((chunk) => {
        received += chunk.length;
        try {
          const response = reader.push(chunk);
          if (response) done(answered(response));
        } catch (error) {
          done(new ClientError('BAD_RESPONSE', `${where}: ${(error as Error).message}`, true));
        }
      });
      socket.on('end', () => {
        // tcpkv's TLS port closes at once when it does not accept the client certificate: with TLS
        // 1.3 the client only learns it now, as a close without a byte of answer
        if (received === 0 && this.options.tls?.cert !== undefined) {
          done(new ClientError('TLS_FAILED', `${where}: TLS: the server closed the connection right after the handshake without answering: it did not accept the client certificate ${JSON.stringify(certificateName(this.options.tls.cert) ?? '')} (it must be signed by the CA the server trusts, and not expired)`, false));
          return;
        }
        try {
          const response = reader.end();
          done(response ? answered(response) : { kind: 'closed', server });
        } catch (error) {
          done(new ClientError(error instanceof ResponseFormatError ? 'BAD_RESPONSE' : 'CONNECTION_LOST', `${where}: ${(error as Error).message}`, true));
        }
      });
      socket.on('error', (e: NodeJS.ErrnoException) => {
        // the server's verdict on the client certificate arrives after the handshake (TLS 1.3)
        const tlsText = this.options.tls !== undefined && received === 0 ? describeTlsFailure(e, where, this.options.tls, server.host) : undefined;
        if (tlsText !== undefined) return done(new ClientError('TLS_FAILED', tlsText, false));
        // A reset right after END is how some servers stop; before any byte of an answer it is a loss.
        done(new ClientError('CONNECTION_LOST', `${where}: ${e.code ?? e.message}`, true));
      });
      socket.write(bytes);
    });
  }
}
