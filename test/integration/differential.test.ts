// Differential test against llhttp, node:http's parser in its default strict mode (issue 6): on
// generated and mutated requests, wherever llhttp refuses a request as malformed, tcpkv's parser
// refuses it too. node:http is used here only as the reference; the product never loads it.
//
// Deliberate differences (docs/protocol.md, "Compared with llhttp"), filtered out below and counted:
//  - bare-LF line endings: tcpkv accepts a request written entirely with bare LF (someone typing
//    into nc) and the seed client's `\r\n\n` before the body; llhttp refuses both;
//  - methods: llhttp knows a fixed list of methods and refuses any other token; tcpkv accepts every
//    token so that the seed's rule 2 can answer 405 (and END can exist);
//  - whitespace (BWS) around `;` and `=` in a chunk extension: RFC 9112 §7.1.1 allows it and RFC 9110
//    §5.6.3 says a recipient must parse it; llhttp refuses it. The extension is ignored either way, and
//    the chunk size ends at the first byte that is not a hex digit, so no size is read differently.

import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProtocolError } from '../../services/protocol/errors.js';
import { resolveAddress } from '../../services/protocol/dialect.js';
import { EXPECT_CONTINUE, NEED_MORE, RequestParser } from '../../services/protocol/request-parser.js';

type Verdict = 'accepted' | 'refused' | 'incomplete';

let llhttp: Server;
let port = 0;
// a second llhttp server that answers only once the whole body has been parsed: the verdict on a
// chunked body (its chunk-size lines and extensions), not just on the headers
let llhttpWholeBody: Server;
let wholeBodyPort = 0;

beforeAll(async () => {
  // answer as soon as the headers are parsed: the first answer then tells whether llhttp accepted the
  // FIRST request, before it goes on to parse whatever follows it
  llhttp = createServer((req, res) => {
    req.resume();
    req.on('error', () => undefined);
    res.end('ok');
  });
  llhttp.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((r) => llhttp.listen(0, '127.0.0.1', r));
  port = (llhttp.address() as { port: number }).port;
  llhttpWholeBody = createServer((req, res) => {
    req.on('error', () => undefined);
    req.on('end', () => res.end('ok'));
    req.resume();
  });
  llhttpWholeBody.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((r) => llhttpWholeBody.listen(0, '127.0.0.1', r));
  wholeBodyPort = (llhttpWholeBody.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise<void>((r) => llhttp.close(() => r()));
  await new Promise<void>((r) => llhttpWholeBody.close(() => r()));
});

/** llhttp's verdict on the first request in `bytes` (with `wholeBody`, on its body too). */
function llhttpVerdict(bytes: Buffer, wholeBody = false): Promise<Verdict> {
  return new Promise((resolve) => {
    const socket = connect(wholeBody ? wholeBodyPort : port, '127.0.0.1');
    let data = '';
    const done = (v: Verdict) => {
      socket.destroy();
      resolve(v);
    };
    socket.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      if (data.includes('\r\n')) done(data.startsWith('HTTP/1.1 400') ? 'refused' : 'accepted');
    });
    socket.on('error', () => done(data ? 'accepted' : 'incomplete'));
    socket.on('close', () => done(data.startsWith('HTTP/1.1 400') ? 'refused' : data ? 'accepted' : 'incomplete'));
    socket.write(bytes);
    setTimeout(() => done(data ? 'accepted' : 'incomplete'), 300);
  });
}

/**
 * tcpkv's verdict on the first request in `bytes`: refused by the parser, or — for a target that is
 * neither origin- nor absolute-form, which tcpkv's parser passes on to the rules — refused by the
 * seed's first rule (404 Invalid Address, services/server/rules.ts).
 */
function tcpkvVerdict(bytes: Buffer): Verdict {
  const parser = new RequestParser();
  parser.push(bytes);
  for (;;) {
    const r = parser.next();
    if (r === EXPECT_CONTINUE) continue;
    if (r === NEED_MORE) return 'incomplete';
    if (r instanceof ProtocolError) return 'refused';
    return resolveAddress(r.target, r.host).valid ? 'accepted' : 'refused';
  }
}

const LLHTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE']);

function deliberateDifference(bytes: Buffer): string | undefined {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a && bytes[i - 1] !== 0x0d) return 'bare LF';
  const method = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?= )/.exec(bytes.toString('latin1'))?.[0];
  if (method !== undefined && !LLHTTP_METHODS.has(method)) return 'method outside llhttp’s list';
  const head = bytes.indexOf('\r\n\r\n');
  if (head >= 0 && /(^|\r\n)[0-9a-fA-F]+[^\r\n]*([ \t][;=]|[;=][ \t])/.test(bytes.subarray(head + 4).toString('latin1'))) return 'BWS in a chunk extension';
  return undefined;
}

const base = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD'),
  path: fc.constantFrom('/', '/create', '/update?x=1', '/a/b'),
  headers: fc.array(fc.tuple(fc.constantFrom('X-A', 'Accept', 'User-Agent', 'X-Long-Name'), fc.constantFrom('1', 'text/plain', 'a b c', 'v;q=0.5')), { maxLength: 4 }),
  body: fc.constantFrom('', 'a: 1', 'ID: 20182793&Grade: A'),
  chunked: fc.boolean(),
  // the first chunk-size line's extensions: well-formed, and malformed as in llhttp's request corpus
  chunkExt: fc.constantFrom('', ';a', ';a=b', ';a="x y"', ';a="q\\"r"', ';a;b=c', ';', ';a;', ';a="x', ';=b', ';a=', ' ;a=b', '; a = b', ';a="x"y', ';a b', ';a="\x01"'),
});

const mutation = fc.oneof(
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.constantFrom(0x0d, 0x0a, 0x00, 0x20, 0x09, 0x3a, 0x7f, 0x01, 0xe9, 0x2c, 0x3b) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('duplicate-line' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('add-header' as const), line: fc.constantFrom('Content-Length: 4', 'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip', 'Host: other', ' folded', 'Bad Name: x', 'X:\x00', 'Content-Length: +4', 'Content-Length: 4 ') }),
);

function render(r: { method: string; path: string; headers: [string, string][]; body: string; chunked: boolean; chunkExt: string }): string {
  let head = `${r.method} ${r.path} HTTP/1.1\r\nHost: localhost\r\n`;
  for (const [n, v] of r.headers) head += `${n}: ${v}\r\n`;
  if (r.chunked && r.body) return `${head}Transfer-Encoding: chunked\r\n\r\n${r.body.length.toString(16)}${r.chunkExt}\r\n${r.body}\r\n0\r\n\r\n`;
  return `${head}Content-Length: ${r.body.length}\r\n\r\n${r.body}`;
}

function mutate(text: string, ms: fc.RecordValue<never>[] | unknown[]): Buffer {
  let bytes = Buffer.from(text, 'latin1');
  for (const m of ms as { op: string; at?: number; byte?: number; line?: string }[]) {
    const headEnd = bytes.indexOf('\r\n\r\n');
    const limit = headEnd > 0 ? headEnd + 2 : bytes.length;
    const at = (m.at ?? 0) % Math.max(1, limit);
    if (m.op === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([m.byte!]), bytes.subarray(at)]);
    else if (m.op === 'delete') bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    else if (m.op === 'duplicate-line') {
      const start = bytes.lastIndexOf('\r\n', at) + 2;
      const end = bytes.indexOf('\r\n', start);
      if (start > 1 && end > start && end <= limit) bytes = Buffer.concat([bytes.subarray(0, end + 2), bytes.subarray(start, end + 2), bytes.subarray(end + 2)]);
    } else if (m.op === 'add-header') {
      const firstLineEnd = bytes.indexOf('\r\n') + 2;
      bytes = Buffer.concat([bytes.subarray(0, firstLineEnd), Buffer.from(`${m.line}\r\n`, 'latin1'), bytes.subarray(firstLineEnd)]);
    }
  }
  return bytes;
}

describe('differential: tcpkv vs llhttp (node:http, strict)', () => {
  it('wherever llhttp refuses a request as malformed, tcpkv refuses it too', async () => {
    const samples = fc.sample(fc.tuple(base, fc.array(mutation, { minLength: 0, maxLength: 3 })), { numRuns: 800, seed: 20261127 });
    const tally = { compared: 0, bothRefused: 0, bothAccepted: 0, tcpkvStricter: 0, deliberate: new Map<string, number>(), incomplete: 0 };
    const disagreements: string[] = [];
    for (const [request, mutations] of samples) {
      const bytes = mutate(render(request as Parameters<typeof render>[0]), mutations);
      const ours = tcpkvVerdict(bytes);
      // a chunk extension is only seen once the body is parsed (when the mutations left the request
      // chunked: otherwise the "body" is a second request, which must not decide the first's verdict)
      const stillChunked = request.chunked && request.chunkExt !== '' && bytes.includes('\r\nTransfer-Encoding: chunked\r\n');
      const theirs = await llhttpVerdict(bytes, stillChunked);
      if (ours === 'incomplete' || theirs === 'incomplete') {
        tally.incomplete++;
        continue;
      }
      tally.compared++;
      if (theirs === 'refused' && ours === 'accepted') {
        const why = deliberateDifference(bytes);
        if (why) tally.deliberate.set(why, (tally.deliberate.get(why) ?? 0) + 1);
        else disagreements.push(JSON.stringify(bytes.toString('latin1')));
      } else if (theirs === 'refused') tally.bothRefused++;
      else if (ours === 'refused') tally.tcpkvStricter++;
      else tally.bothAccepted++;
    }
    console.log('differential tally', { ...tally, deliberate: Object.fromEntries(tally.deliberate) });
    expect(disagreements).toEqual([]);
    // the generator must really exercise both sides
    expect(tally.bothRefused).toBeGreaterThan(100);
    expect(tally.bothAccepted).toBeGreaterThan(50);
  });
});

describe('differential: cases from llhttp’s own request corpus (chunk extensions, other protocols)', () => {
  const chunked = (sizeLine: string) => `POST /create HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${sizeLine}\r\nhello\r\n0\r\n\r\n`;
  // [name, bytes, tcpkv's verdict, llhttp's verdict]; every row where llhttp refuses, tcpkv refuses too
  const rows: [string, string, Verdict, Verdict][] = [
    ['chunk extension without a name (5;)', chunked('5;'), 'refused', 'refused'],
    ['chunk extension with an unbalanced quote', chunked('5;ext="value'), 'refused', 'refused'],
    ['chunk extension, quoted value with an escaped quote', chunked('5;ext="va\\"lue"'), 'accepted', 'accepted'],
    ['chunk extensions, several', chunked('5;a;b=c;d="e f"'), 'accepted', 'accepted'],
    ['chunk extension, = without a value (RFC: a value is required)', chunked('5;a='), 'refused', 'accepted'],
    ['chunk extension, BWS (RFC 9112 allows it)', chunked('5 ; a = b'), 'accepted', 'refused'],
    ['chunk extension, a control byte in quotes', chunked('5;a="\x01"'), 'refused', 'refused'],
    ['RTSP request line', 'OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n', 'refused', 'accepted'],
    ['RTSP request line with an rtsp:// target', 'DESCRIBE rtsp://localhost/s RTSP/1.0\r\nCSeq: 2\r\n\r\n', 'refused', 'accepted'],
    ['ICE request line', 'SOURCE /mount ICE/1.0\r\nHost: localhost\r\n\r\n', 'refused', 'accepted'],
    ['ICE request line with another method', 'GET / ICE/1.0\r\nHost: localhost\r\n\r\n', 'refused', 'refused'],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'refused', 'refused'],
  ];
  it.each(rows)('%s', async (_name, text, ours, theirs) => {
    const bytes = Buffer.from(text, 'latin1');
    expect(tcpkvVerdict(bytes)).toBe(ours);
    expect(await llhttpVerdict(bytes, true)).toBe(theirs);
    if (theirs === 'refused' && ours === 'accepted') expect(deliberateDifference(bytes)).toBeDefined();
  });
});
