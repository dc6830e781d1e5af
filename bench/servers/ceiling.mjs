// The ceiling for Node on this machine: a node:net server that parses nothing. It counts the ends of
// header blocks (`\r\n\r\n`) in what arrives and writes that many copies of one fixed, valid HTTP/1.1
// 200 answer (with Content-Length), in one write per chunk read — so pipelining and wrk work. Bodies
// are not framed: the requests sent to it must not contain `\r\n\r\n` in a body (the bench's do not).
//
//   node bench/servers/ceiling.mjs [--port 0] [--bind 127.0.0.1] [--body-bytes N] [--store]
// --body-bytes: size of the answer's body (default: tcpkv's empty-DB answer, `No data in DB`), so the
// ceiling can write as many bytes per answer as the server it is compared with.
// --store: the POST reference ("ceiling + Map"): also take what follows each header block up to the
// next `POST ` (or the end of the chunk) as a `key: value` body and insert it into a Map unless the
// key is there — the least work a server that stores must do, to compare POST throughput against.
// Prints one JSON line {"server":"ceiling","port":N,"pid":P,"answerBytes":B} once listening.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    bind: { type: 'string', default: '127.0.0.1' },
    'body-bytes': { type: 'string' },
    store: { type: 'boolean', default: false },
    // TLS (the TLS ceiling): the same no-parse answers behind node:tls with this certificate and key
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
  },
});

function makeBody() {
  if (opts['body-bytes'] === undefined) return Buffer.from('No data in DB', 'latin1');
  const n = Number(opts['body-bytes']);
  const line = Buffer.from('The data in DB is as follows.\n', 'latin1');
  const body = Buffer.alloc(n, 'x');
  line.copy(body, 0, 0, Math.min(line.length, n));
  return body;
}

const body = makeBody();
// A fixed Date (the start time): the bytes never change, which is the point.
const head =
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n' +
  `Content-Length: ${body.length}\r\nDate: ${new Date().toUTCString()}\r\nConnection: keep-alive\r\n\r\n`;
const ANSWER = Buffer.concat([Buffer.from(head, 'latin1'), body]);

const batches = [ANSWER];
/** `n` answers in one buffer (cached: wrk pipelines the same depth over and over). */
function answers(n) {
  let b = batches[n - 1];
  if (b === undefined) {
    b = Buffer.alloc(ANSWER.length * n);
    for (let i = 0; i < n; i++) ANSWER.copy(b, i * ANSWER.length);
    if (n <= 256) batches[n - 1] = b;
  }
  return b;
}

const CR = 13;
const LF = 10;
const END = Buffer.from('\r\n\r\n', 'latin1');

/** Counts `\r\n\r\n` in a stream, including ones split across chunks. */
class EndCounter {
  matched = 0; // bytes of END matched at the end of the previous chunk

  count(chunk) {
    let n = 0;
    let from = 0;
    if (this.matched > 0) {
      // finish a match that straddles the previous chunk
      let m = this.matched;
      let i = 0;
      while (m < 4 && i < chunk.length && chunk[i] === END[m]) {
        m++;
        i++;
      }
      if (m === 4) {
        n++;
        from = i;
        this.matched = 0;
      } else if (i === chunk.length) {
        this.matched = m; // the chunk was all part of the match, still incomplete
        return 0;
      } else {
        this.matched = 0;
      }
    }
    let lastEnd = from;
    for (let at = chunk.indexOf(END, from); at >= 0; at = chunk.indexOf(END, at + 4)) {
      n++;
      lastEnd = at + 4;
    }
    // a proper prefix of END at the very end of the chunk (not inside a counted match)
    const len = chunk.length;
    let m = 0;
    if (len - 3 >= lastEnd && chunk[len - 3] === CR && chunk[len - 2] === LF && chunk[len - 1] === CR) m = 3;
    else if (len - 2 >= lastEnd && chunk[len - 2] === CR && chunk[len - 1] === LF) m = 2;
    else if (len - 1 >= lastEnd && chunk[len - 1] === CR) m = 1;
    this.matched = m;
    return n;
  }
}

const store = new Map();
const NEXT_POST = Buffer.from('POST ', 'latin1');

/** --store: every body in the chunk (as the bench's POSTs send them: whole, one request per write) into the Map. */
function storeBodies(chunk) {
  for (let at = chunk.indexOf(END); at >= 0; at = chunk.indexOf(END, at + 4)) {
    const next = chunk.indexOf(NEXT_POST, at + 4);
    const body = chunk.toString('latin1', at + 4, next < 0 ? chunk.length : next);
    const colon = body.indexOf(':');
    if (colon < 0) continue;
    const key = body.slice(0, colon).trim();
    if (!store.has(key)) store.set(key, body.slice(colon + 1).trim());
  }
}

const onSocket = (socket) => {
  const counter = new EndCounter();
  socket.on('data', (chunk) => {
    const n = counter.count(chunk);
    if (opts.store) storeBodies(chunk);
    if (n > 0) socket.write(answers(n));
  });
  socket.on('error', () => socket.destroy());
};
const server =
  opts['tls-cert'] !== undefined
    ? tls.createServer({ cert: readFileSync(opts['tls-cert']), key: readFileSync(opts['tls-key']), noDelay: true, ALPNProtocols: ['http/1.1'] }, onSocket)
    : net.createServer({ noDelay: true }, onSocket);

server.listen(Number(opts.port), opts.bind, () => {
  const address = server.address();
  const name = opts.store ? 'ceiling+Map' : 'ceiling';
  process.stdout.write(JSON.stringify({ server: name, port: address.port, pid: process.pid, answerBytes: ANSWER.length }) + '\n');
});

process.once('SIGTERM', () => process.exit(0));
process.once('SIGINT', () => process.exit(0));
