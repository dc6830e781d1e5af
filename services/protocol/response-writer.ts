// Response → bytes: status line, Content-Type, Content-Length in bytes, Date as an IMF-fixdate,
// Connection, every line CRLF, a CRLF blank line, the body. Status lines are precomputed and the Date
// header is rendered at most once a second: this runs once per request.

/**
 * More of a body, as shared immutable UTF-8 buffers (the store's rendered listing): sent after `body`,
 * one slice at a time as the socket takes them, never joined. `bytes` is their total length.
 */
export interface BodySlices {
  readonly slices: readonly Buffer[];
  readonly bytes: number;
}

/** What the rules decide; the connection layer adds framing (keep-alive, HEAD). */
export interface Response {
  readonly status: number;
  /** UTF-8 text; '' for none. */
  readonly body: string;
  /** The rest of the body, streamed by the connection after `body` (Content-Length counts both). */
  readonly more?: BodySlices;
  /** Content-Type when not `text/plain; charset=utf-8` */
  readonly contentType?: string;
  /** Extra header lines, e.g. `Allow` on a 405. */
  readonly headers?: readonly (readonly [string, string])[];
  /** The connection must close after this response. */
  readonly close?: boolean;
  /** An authorised END: the server shuts down after sending this. */
  readonly shutdown?: boolean;
  /** Send headers only (HEAD answers, 1xx). Content-Length still describes `body`. */
  readonly headersOnly?: boolean;
  /** The rules will hand out this same object again: worth keeping its bytes (per second, for Date). */
  readonly reusable?: boolean;
  /**
   * A body of unknown length produced over time (a watch stream), sent chunked after the head
   * (streamHead) instead of `body`; the connection closes after it.
   */
  readonly stream?: BodyStream;
}

/** A body produced over time; the connection pulls it as the socket takes it. */
export interface BodyStream {
  /** the next bytes to send; undefined: nothing now (wait for onReady); null: the body is complete */
  take(): Buffer | undefined | null;
  /** `ready` is called once, when take() has something again (or the end) */
  onReady(ready: () => void): void;
  /** the connection is gone: stop producing (idempotent) */
  cancel(): void;
}

/** The head of a streamed answer: chunked, closing the connection after the body (RFC 9112 §7.1). */
export function streamHead(response: Response, now = Date.now()): string {
  let head = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? `STATUS_${response.status}`}\r\n`;
  head += `Content-Type: ${response.contentType ?? 'text/plain; charset=utf-8'}\r\nTransfer-Encoding: chunked\r\n` + currentDateLine(now);
  for (const [name, value] of response.headers ?? []) head += name + ': ' + value + '\r\n';
  return head + CLOSE;
}

/** One chunk of a chunked body: its size in hex, the bytes, CRLF (one buffer: one write). */
export function chunkFrame(data: Buffer): Buffer {
  const size = data.length.toString(16) + '\r\n';
  const out = Buffer.allocUnsafe(size.length + data.length + 2);
  out.write(size, 0, 'latin1');
  data.copy(out, size.length);
  out.write('\r\n', size.length + data.length, 'latin1');
  return out;
}

/** The last chunk of a chunked body, without trailers. */
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

/** Reason phrases: the seed's upper-case style (`BAD_REQUEST`), extended to the codes tcpkv adds. */
export const REASONS: Readonly<Record<number, string>> = Object.freeze({
  100: 'CONTINUE',
  200: 'OK',
  304: 'NOT_MODIFIED',
  400: 'BAD_REQUEST',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  408: 'REQUEST_TIMEOUT',
  410: 'GONE',
  412: 'PRECONDITION_FAILED',
  413: 'CONTENT_TOO_LARGE',
  414: 'URI_TOO_LONG',
  431: 'REQUEST_HEADER_FIELDS_TOO_LARGE',
  500: 'INTERNAL_SERVER_ERROR',
  501: 'NOT_IMPLEMENTED',
  503: 'SERVICE_UNAVAILABLE',
  505: 'HTTP_VERSION_NOT_SUPPORTED',
  507: 'INSUFFICIENT_STORAGE',
});

const CONTENT_TYPE = 'Content-Type: text/plain; charset=utf-8\r\n';
const KEEP_ALIVE = 'Connection: keep-alive\r\n\r\n';
const CLOSE = 'Connection: close\r\n\r\n';

// Everything before the Content-Length value, per status: `HTTP/1.1 200 OK\r\nContent-Type: ...Content-Length: `.
const prefixOf = (status: number, reason: string) => `HTTP/1.1 ${status} ${reason}\r\n${CONTENT_TYPE}Content-Length: `;
const HEAD_PREFIXES = new Map<number, string>();
for (const [code, reason] of Object.entries(REASONS)) HEAD_PREFIXES.set(Number(code), prefixOf(Number(code), reason));

function headPrefix(status: number, contentType: string | undefined): string {
  if (contentType !== undefined) return `HTTP/1.1 ${status} ${REASONS[status] ?? `STATUS_${status}`}\r\nContent-Type: ${contentType}\r\nContent-Length: `;
  return HEAD_PREFIXES.get(status) ?? prefixOf(status, `STATUS_${status}`);
}

let dateSecond = -1;
let dateLine = '';
// What follows the Content-Length value when there are no extra headers, for this second.
let tailKeepAlive = '';
let tailClose = '';
/** `Date: <IMF-fixdate>\r\n`, recomputed when the second changes. */
export function currentDateLine(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateLine = `Date: ${new Date(second * 1000).toUTCString()}\r\n`;
    tailKeepAlive = '\r\n' + dateLine + KEEP_ALIVE;
    tailClose = '\r\n' + dateLine + CLOSE;
  }
  return dateLine;
}

/** The interim answer to `Expect: 100-continue` (standard HTTP, not the seed's final `100 CONTINUE`). */
export const CONTINUE_BYTES = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');

/**
 * The bytes of an answer: a Buffer, or a string of latin1 characters, one per byte. A string goes to
 * `socket.write(bytes, 'latin1')` as it is (Node copies it straight into the send), which saves making
 * a Buffer for every small answer; `socket.write(buffer, 'latin1')` ignores the encoding.
 */
export type WireBytes = Buffer | string;

/** The bytes as a Buffer (for readers that want one). */
export function wireBuffer(bytes: WireBytes): Buffer {
  return typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
}

/**
 * Serialises a response. `keepAlive` decides the Connection header; `headOnly` (a HEAD request)
 * leaves the body out but keeps its Content-Length, as RFC 9110 §9.3.2 allows. For a response with
 * `more`, these are the head and `body` only: the caller sends the slices after them.
 */
export function writeResponse(response: Response, keepAlive: boolean, headOnly = false): WireBytes {
  // The same Response object answered again within the same second (a GET on unchanged data, a
  // seed HEAD) gets the very same bytes: no string building, no copy.
  const now = Date.now();
  if (!response.reusable) return serialize(response, keepAlive, headOnly, now);
  const second = Math.floor(now / 1000);
  // the answer given last is usually the one given again (a GET on unchanged data): checked first
  let memo = last;
  if (memo === undefined || memo.response !== response) memo = memos.get(response);
  if (memo !== undefined && memo.second === second && memo.keepAlive === keepAlive && memo.headOnly === headOnly) {
    last = memo;
    return memo.bytes;
  }
  // kept as a Buffer: a large listing written many times is copied once, here
  const bytes = wireBuffer(serialize(response, keepAlive, headOnly, now));
  memo = { response, second, keepAlive, headOnly, bytes };
  memos.set(response, memo);
  last = memo;
  return bytes;
}

interface Memo {
  readonly response: Response;
  readonly second: number;
  readonly keepAlive: boolean;
  readonly headOnly: boolean;
  readonly bytes: Buffer;
}

const memos = new WeakMap<Response, Memo>();
/** The memo used last (it holds its response; a reusable response lives as long as its rules anyway). */
let last: Memo | undefined;

function serialize(response: Response, keepAlive: boolean, headOnly: boolean, now: number): WireBytes {
  const body = response.body;
  const bodyBytes = body.length === 0 ? 0 : Buffer.byteLength(body, 'utf8');
  const dateLine = currentDateLine(now);
  const connection = keepAlive && !response.close;
  let head = headPrefix(response.status, response.contentType) + (response.more === undefined ? bodyBytes : bodyBytes + response.more.bytes);
  if (response.headers) {
    head += '\r\n' + dateLine;
    for (const [name, value] of response.headers) head += name + ': ' + value + '\r\n';
    head += connection ? KEEP_ALIVE : CLOSE;
  } else {
    head += connection ? tailKeepAlive : tailClose;
  }
  if (headOnly || response.headersOnly || bodyBytes === 0) return head;
  // As many bytes as characters: the body is ASCII, so head + body is already its own latin1 bytes.
  if (bodyBytes === body.length) return head + body;
  const headBytes = head.length; // head is ASCII: one byte per character
  const out = Buffer.allocUnsafe(headBytes + bodyBytes);
  out.write(head, 0, 'latin1');
  out.write(body, headBytes, 'utf8');
  return out;
}
