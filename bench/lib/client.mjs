// A minimal HTTP/1.1 client for the bench's own requests (preloading keys, checking answers): raw
// bytes out, answers framed by Content-Length (every server here sends one), pipelined.

import net from 'node:net';

const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');

/** Frames answers out of a byte stream. */
class AnswerReader {
  constructor(headersOnly = false) {
    this.headersOnly = headersOnly; // answers to HEAD: a Content-Length, but no body
  }

  chunks = [];
  size = 0;
  head = undefined; // { status, headers, bodyBytes, headBytes } of the answer being read

  push(chunk, onAnswer) {
    this.chunks.push(chunk);
    this.size += chunk.length;
    for (;;) {
      if (this.head === undefined) {
        const buf = this.flat();
        const end = buf.indexOf(HEADER_END);
        if (end < 0) return;
        const lines = buf.toString('latin1', 0, end).split('\r\n');
        const status = Number(lines[0].split(' ')[1]);
        const headers = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        const bodyBytes = this.headersOnly ? 0 : Number(headers['content-length'] ?? 0);
        this.head = { status, headers, bodyBytes, headBytes: end + 4 };
      }
      const need = this.head.headBytes + this.head.bodyBytes;
      if (this.size < need) return;
      const buf = this.flat();
      const answer = { status: this.head.status, headers: this.head.headers, body: buf.subarray(this.head.headBytes, need) };
      this.head = undefined;
      const rest = buf.subarray(need);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.size = rest.length;
      onAnswer(answer);
    }
  }

  flat() {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}

function connect(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Standard HTTP request bytes. */
export function httpRequest(method, path, body = '', extraHeaders = '') {
  const bytes = Buffer.from(body, 'utf8');
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extraHeaders}` +
    (method === 'GET' || method === 'HEAD' ? '' : `Content-Type: text/plain\r\nContent-Length: ${bytes.length}\r\n`) +
    '\r\n';
  return bytes.length > 0 ? Buffer.concat([Buffer.from(head, 'latin1'), bytes]) : Buffer.from(head, 'latin1');
}

/** One request on its own connection; resolves with { status, headers, body } (body as a string). */
export async function exchange(port, raw, timeoutMs = 30_000) {
  const socket = await connect(port);
  try {
    return await new Promise((resolve, reject) => {
      const reader = new AnswerReader(raw.subarray(0, 5).toString('latin1') === 'HEAD ');
      const timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
      socket.on('data', (chunk) =>
        reader.push(chunk, (a) => {
          clearTimeout(timer);
          resolve({ ...a, body: a.body.toString('utf8') });
        }),
      );
      socket.on('error', reject);
      socket.on('close', () => reject(new Error('connection closed before an answer')));
      socket.write(raw);
    });
  } finally {
    socket.destroy();
  }
}

/**
 * Sends `count` requests (`make(i)` → bytes) over `connections` keep-alive connections, up to
 * `depth` in flight on each. Resolves with a count of answers per status.
 */
export async function sendMany(port, count, make, { connections = 4, depth = 16, timeoutMs = 120_000 } = {}) {
  let next = 0;
  const statuses = {};
  const one = async () => {
    const socket = await connect(port);
    try {
      await new Promise((resolve, reject) => {
        const reader = new AnswerReader();
        let inflight = 0;
        const timer = setTimeout(() => reject(new Error(`sendMany: not done in ${timeoutMs} ms`)), timeoutMs);
        const fill = () => {
          const batch = [];
          while (inflight < depth && next < count) {
            batch.push(make(next++));
            inflight++;
          }
          if (batch.length > 0) socket.write(batch.length === 1 ? batch[0] : Buffer.concat(batch));
          if (inflight === 0) {
            clearTimeout(timer);
            resolve();
          }
        };
        socket.on('data', (chunk) =>
          reader.push(chunk, (a) => {
            statuses[a.status] = (statuses[a.status] ?? 0) + 1;
            inflight--;
            if (inflight === 0 || inflight < depth / 2) fill();
          }),
        );
        socket.on('error', reject);
        socket.on('close', () => inflight > 0 && reject(new Error('connection closed with requests in flight')));
        fill();
      });
    } finally {
      socket.destroy();
    }
  };
  await Promise.all(Array.from({ length: connections }, one));
  return statuses;
}
