// Helpers for tests over real loopback sockets: tcpkv servers in-process and as child processes, raw
// exchanges, and the seed client's exact request bytes.

import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { parseClientAllowList, parseHostAllowList } from '../../services/server/access.js';
import type { ConnectionLimits } from '../../services/server/connection.js';
import type { ServerEvents } from '../../services/server/events.js';
import { TcpkvServer } from '../../services/server/server.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import type { Store } from '../../services/server/store/store.js';
import { ResponseReader, type ParsedResponse } from '../../services/protocol/response-reader.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const SERVER_BIN = `${ROOT}dist/services/server/main.js`;
export const CLIENT_BIN = `${ROOT}dist/services/client/cli.js`;

export const TEST_LIMITS: ConnectionLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 100,
  maxTargetBytes: 8 * 1024,
  maxBodyBytes: 1024 * 1024,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxPipelined: 64,
  maxRequestsPerConnection: 0,
});

export interface InProcessServer {
  readonly port: number;
  readonly server: TcpkvServer;
  readonly store: Store;
  /** parsed pino lines written so far */
  readonly logs: Record<string, unknown>[];
  shutdownRequests: string[];
  close(): Promise<void>;
}

export interface InProcessOptions {
  limits?: Partial<ConnectionLimits>;
  allowedHosts?: string;
  allowedClients?: string;
  token?: string;
  shutdownEnabled?: boolean;
  maxConnections?: number;
  store?: Store;
  bind?: string;
  /** counters the server reports to (default: none) */
  events?: ServerEvents;
  /** TCPKV_WATCH_MAX_WAIT_MS */
  watchMaxWaitMs?: number;
}

/** A TcpkvServer on 127.0.0.1 and a free port, logging into memory. */
export async function startServer(options: InProcessOptions = {}): Promise<InProcessServer> {
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const store = options.store ?? new MemoryStore();
  const server = new TcpkvServer({
    bind: options.bind ?? '127.0.0.1',
    port: 0,
    limits: { ...TEST_LIMITS, ...options.limits },
    maxConnections: options.maxConnections ?? 10_000,
    allowedClients: parseClientAllowList(options.allowedClients ?? '*'),
    policy: {
      allowedHosts: parseHostAllowList(options.allowedHosts ?? '127.0.0.1,localhost'),
      shutdown: { enabled: options.shutdownEnabled ?? true, token: options.token },
      ...(options.watchMaxWaitMs !== undefined ? { watchMaxWaitMs: options.watchMaxWaitMs } : {}),
    },
    store,
    logger: pino({ level: 'debug' }, sink),
    shutdownTimeoutMs: 2000,
    ...(options.events ? { events: options.events } : {}),
  });
  const address = await server.listen();
  const result: InProcessServer = {
    port: address.port,
    server,
    store,
    logs,
    shutdownRequests: [],
    close: () => server.shutdown('test done'),
  };
  server.onShutdown((reason) => result.shutdownRequests.push(reason));
  return result;
}

export interface ChildServer {
  readonly port: number;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
  kill(signal?: NodeJS.Signals): void;
}

/** Runs `tcpkv-server` as a real process on a free port; resolves once it logs that it listens. */
export async function spawnServer(env: Record<string, string> = {}, args: string[] = [], wrap: string[] = []): Promise<ChildServer> {
  // `wrap` runs the server under another command (e.g. unshare for a private tmpfs); it must exec it
  const command = [...wrap, process.execPath, SERVER_BIN, '--port', '0', ...args];
  const proc = spawn(command[0]!, command.slice(1), {
    env: { PATH: process.env.PATH ?? '', TCPKV_LOG_LEVEL: 'info', ...env },
    cwd: ROOT + 'test',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const m = /"port":(\d+)[^\n]*"msg":"listening"/.exec(out);
      if (m) resolve(Number(m[1]));
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    void exited.then((code) => reject(new Error(`server exited with ${code} before listening:\n${out}`)));
  });
  return { port, proc, exited, output: () => out, kill: (signal = 'SIGTERM') => proc.kill(signal) };
}

/** Runs `tcpkv-client` to completion; returns its exit code and output. */
export function runClient(args: string[], env: Record<string, string> = {}, input?: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CLIENT_BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      cwd: ROOT + 'test',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // decoded once at the end: a chunk can end inside a multi-byte character
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => stdout.push(c));
    proc.stderr.on('data', (c: Buffer) => stderr.push(c));
    proc.on('close', (code) => resolve({ code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') }));
    proc.stdin.end(input ?? Buffer.alloc(0));
  });
}

export function openSocket(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * The seed client's way: one connection, the request's bytes, ONE read (its `recv(4096)`), close.
 * Returns the text of that single read ('' if the server closed without answering).
 */
export async function seedExchange(port: number, bytes: Buffer | string, localAddress?: string): Promise<string> {
  const socket = await openSocket(port, localAddress);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 5 s'));
    }, 5000);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(chunk.toString('utf8'));
    });
    socket.once('end', () => {
      clearTimeout(timer);
      resolve('');
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.write(bytes);
  });
}

export interface Exchange {
  readonly responses: ParsedResponse[];
  /** the server closed the connection */
  readonly closed: boolean;
}

/**
 * Writes bytes (optionally in several writes), then reads responses in order until `count` have
 * arrived, or the server closes, or `waitMs` passes. `heads` marks which responses answer HEAD.
 */
export async function exchange(
  port: number,
  writes: (Buffer | string)[] | Buffer | string,
  count: number,
  opts: { waitMs?: number; heads?: boolean[]; localAddress?: string; gapMs?: number } = {},
): Promise<Exchange> {
  const socket = await openSocket(port, opts.localAddress);
  const responses: ParsedResponse[] = [];
  let closed = false;
  let pending = Buffer.alloc(0);
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, opts.waitMs ?? 5000);
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    const drainResponses = () => {
      // responses are delimited by Content-Length: feed a fresh reader per response
      for (;;) {
        if (responses.length >= count || pending.length === 0) break;
        const reader = new ResponseReader(opts.heads?.[responses.length] ?? false);
        const r = readOne(reader, pending);
        if (!r) break;
        responses.push(r.response);
        pending = pending.subarray(r.used);
      }
      if (responses.length >= count) finish();
    };
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      drainResponses();
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('error', () => {
      closed = true;
      finish();
    });
  });
  const list = Array.isArray(writes) ? writes : [writes];
  for (const w of list) {
    socket.write(w);
    if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
  }
  await done;
  // a closing server sends FIN right after its last answer: give it a moment to arrive
  if (!closed) await new Promise((r) => setTimeout(r, 50));
  closed = closed || socket.readableEnded;
  socket.destroy();
  return { responses, closed };
}

/** Parses one response off the front of `buf`; returns it and how many bytes it used. */
function readOne(reader: ResponseReader, buf: Buffer): { response: ParsedResponse; used: number } | undefined {
  // find the smallest prefix that makes a complete response
  const head = buf.indexOf('\r\n\r\n');
  const headSeed = buf.indexOf('\r\n\n');
  const ends = [head >= 0 ? head + 4 : -1, headSeed >= 0 ? headSeed + 3 : -1].filter((e) => e >= 0);
  if (ends.length === 0) return undefined;
  const headerEnd = Math.min(...ends);
  const response = reader.push(buf.subarray(0, buf.length));
  if (!response) return undefined;
  const body = Buffer.byteLength(response.body, 'utf8');
  return { response, used: headerEnd + body };
}

export { sleep } from './sleep.js';

/** The seed client's request bytes (`request_formate` in the report): `\r\n\n` before the body. */
export function seedRequestBytes(method: string, hostPath: string, body = ''): string {
  return `${method} / HTTP/1.1\r\nHost: ${hostPath}\r\nContent-Type: text/html\r\nConnection: keep-alive\r\nContent-Length: ${body.length}\r\n\n${body}`;
}

/** A TCP port free on 127.0.0.1 right now (for programs that need a port number before they start). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A free loopback port below the kernel's ephemeral range, for a server stopped and started again on
 * the same port (a test etcd member). Meanwhile its clients keep reconnecting, and a connect to a
 * loopback port in the ephemeral range can pick that very port as its source and connect to itself
 * (TCP simultaneous open), which then holds the port so the server cannot bind it again (seen once
 * in CI). A port below the range is never any connection's source port.
 */
export async function portOutsideEphemeralRange(): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the usual start of the range
  }
  const floor = 10_000;
  for (;;) {
    const port = floor + Math.floor(Math.random() * Math.max(1, low - floor));
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** A loopback TCP server that does what `onSocket` says with each connection. */
export async function tinyServer(onSocket: (socket: Socket) => void): Promise<{ port: number; server: Server; close(): void }> {
  const sockets = new Set<Socket>();
  const s = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as AddressInfo).port,
    server: s,
    close: () => {
      for (const c of sockets) c.destroy();
      s.close();
    },
  };
}
