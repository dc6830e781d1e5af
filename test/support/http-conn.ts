// One keep-alive HTTP/1.1 connection for tests that move a lot of data: requests in order, answers
// read by Content-Length straight off the socket, with large bodies handed over chunk by chunk (hashed
// or counted) rather than joined, so the test process stays small while the server is measured.

import { createHash } from 'node:crypto';
import type { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { openSocket } from './net.js';

export interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** the body, unless `sink` took it */
  readonly body: Buffer;
  readonly bodyBytes: number;
  /** sha256 of the body, when asked for */
  readonly sha256?: string;
}

interface Waiting {
  readonly head: boolean;
  readonly hash: boolean;
  readonly keep: boolean;
  resolve(answer: Answer): void;
  reject(error: Error): void;
}

export class HttpConn {
  readonly socket: Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly waiting: Waiting[] = [];
  // the answer being read
  private current: { status: number; headers: Record<string, string>; left: number; parts: Buffer[]; bytes: number; hash: ReturnType<typeof createHash> | undefined } | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const fail = (error: Error) => {
      for (const w of this.waiting.splice(0)) w.reject(error);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static async open(port: number): Promise<HttpConn> {
    return new HttpConn(await openSocket(port));
  }

  /** Sends one request; resolves with its answer. `hash`: keep only a sha256 of the body. */
  request(method: string, target: string, body: Buffer | string = '', options: { hash?: boolean; close?: boolean } = {}): Promise<Answer> {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const head = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${bytes.length}\r\n${options.close ? 'Connection: close\r\n' : ''}\r\n`;
    return new Promise((resolve, reject) => {
      this.waiting.push({ head: method === 'HEAD', hash: options.hash ?? false, keep: !(options.hash ?? false), resolve, reject });
      this.socket.write(bytes.length > 0 ? Buffer.concat([Buffer.from(head, 'latin1'), bytes]) : head);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.current === undefined) {
        const end = this.buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
        this.buffer = this.buffer.subarray(end + 4);
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
        }
        const w = this.waiting[0]!;
        const length = w.head ? 0 : Number(headers['content-length'] ?? 0);
        this.current = { status: Number(lines[0]!.split(' ')[1]), headers, left: length, parts: [], bytes: 0, hash: w.hash ? createHash('sha256') : undefined };
      }
      const c = this.current;
      const take = Math.min(c.left, this.buffer.length);
      if (take > 0) {
        const piece = this.buffer.subarray(0, take);
        if (c.hash !== undefined) c.hash.update(piece);
        else c.parts.push(piece);
        c.bytes += take;
        c.left -= take;
        this.buffer = this.buffer.subarray(take);
      }
      if (c.left > 0) return;
      this.current = undefined;
      const w = this.waiting.shift()!;
      w.resolve({ status: c.status, headers: c.headers, body: Buffer.concat(c.parts), bodyBytes: c.bytes, ...(c.hash ? { sha256: c.hash.digest('hex') } : {}) });
    }
  }
}

/** `count` keys of `keyOf(i)` / `valueOf(i)` through POST /create bodies of up to `bodyBytes` and `maxPairs` pairs. */
export async function loadKeys(conn: HttpConn, count: number, keyOf: (i: number) => string, valueOf: (i: number) => string, bodyBytes = 1_000_000, maxPairs = 10_000): Promise<void> {
  let parts: string[] = [];
  let size = 0;
  const send = async () => {
    const answer = await conn.request('POST', '/create', parts.join('&'));
    if (answer.status !== 200) throw new Error(`POST /create → ${answer.status}: ${answer.body.toString().slice(0, 200)}`);
    parts = [];
    size = 0;
  };
  for (let i = 0; i < count; i++) {
    const pair = `${keyOf(i)}: ${valueOf(i)}`;
    if ((size + pair.length + 1 > bodyBytes || parts.length === maxPairs) && parts.length > 0) await send();
    parts.push(pair);
    size += pair.length + 1;
  }
  if (parts.length > 0) await send();
}

/** Percentile of samples (0..100). */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * A HEAD probe every `everyMs` on a connection of its own, until stopped: the latencies measure how
 * long the server's event loop keeps a small request waiting.
 */
export function startProbe(conn: HttpConn, everyMs = 10): { stop(): Promise<number[]> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      await conn.request('HEAD', '/');
      samples.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

// The probe in a thread of its own: what the test process does meanwhile (reading and hashing a
// 100 MB answer) does not delay it, so the latencies are the server's.
const PROBE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
// one HEAD loop per port, all on this one thread: a stall of the thread shows in every series
const series = workerData.ports.map(() => []);
let running = true;
let open = workerData.ports.length;
parentPort.on('message', () => { running = false; });
workerData.ports.forEach((port, i) => {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => {
    let sentAt = 0;
    let buffer = '';
    const send = () => {
      if (!running) {
        socket.destroy();
        if (--open === 0) parentPort.postMessage(series);
        return;
      }
      sentAt = performance.now();
      socket.write('HEAD / HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n');
    };
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      const end = buffer.indexOf('\\r\\n\\r\\n');
      if (end < 0) return;
      buffer = buffer.slice(end + 4);
      series[i].push(performance.now() - sentAt);
      setTimeout(send, workerData.everyMs);
    });
    send();
  });
});
`;

/**
 * HEAD probes every `everyMs` from one worker thread, one connection per port; `stop()` resolves with
 * each port's latencies (ms). Probing a busy server and an idle one together separates what the busy
 * server does from what the machine does to both at the same moments.
 */
export function startThreadProbes(ports: readonly number[], everyMs = 10): { stop(): Promise<number[][]> } {
  const worker = new Worker(PROBE_WORKER, { eval: true, workerData: { ports, everyMs } });
  const result = new Promise<number[][]>((resolve, reject) => {
    worker.once('message', (series: number[][]) => resolve(series));
    worker.once('error', reject);
  });
  return {
    async stop() {
      worker.postMessage('stop');
      const series = await result;
      await worker.terminate();
      return series;
    },
  };
}

/** A HEAD probe every `everyMs` from a worker thread; `stop()` resolves with the latencies (ms). */
export function startThreadProbe(port: number, everyMs = 10): { stop(): Promise<number[]> } {
  const probes = startThreadProbes([port], everyMs);
  return { stop: async () => (await probes.stop())[0]! };
}
