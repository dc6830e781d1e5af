// Client side: bytes in, one response out. Reads standard HTTP/1.1 answers and the seed server's
// habits: `\r\n\n` after the headers, Content-Length counted in characters (Python's len() of a str),
// a connection the server never closes (so the body's end comes from Content-Length, not EOF).
//
// Linear in the answer's size: the header block is looked for only in the bytes that are new, and the
// body is copied once into a buffer sized by its Content-Length (doubling where the length is not
// known in bytes). An answer of tens of MiB arrives in hundreds of chunks; joining what has come on
// every chunk would copy it hundreds of times. The reader copies what it keeps, so a caller may hand
// it the same read buffer again and again.
import { ClientSideError } from './errors.js';


export interface ParsedResponse {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  /** names lower-cased, in order */
  readonly headers: readonly (readonly [string, string])[];
  /** the body as text: its bytes decoded as UTF-8 when first read */
  readonly body: string;
  /** the body's bytes as they came */
  readonly bodyBytes: Buffer;
  /** the header block ended with `\r\n\n`, as the seed's Python server writes it */
  readonly seedFraming: boolean;
}

/** An answer that is not HTTP as tcpkv speaks it: the client reports it as BAD_RESPONSE. */
export class ResponseFormatError extends ClientSideError {
  override readonly name = 'ResponseFormatError';
  constructor(message: string) {
    super('BAD_RESPONSE', message);
  }
}

const LF = 0x0a;
const CR = 0x0d;
/** The most header bytes awaited before the answer counts as junk. */
const MAX_HEAD_BYTES = 64 * 1024;

/** Bytes a UTF-8 character takes, from its first byte (a stray byte counts as one character). */
const charBytes = (lead: number) => (lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1);

type Head = Omit<ParsedResponse, 'body' | 'bodyBytes'>;

/** How the body ends: at a byte count, at a character count (the seed's Content-Length), or at EOF. */
type Framing = { readonly kind: 'bytes'; readonly bytes: number } | { readonly kind: 'chars'; readonly chars: number } | { readonly kind: 'eof' };

/** The most body bytes set aside at once for a Content-Length not yet seen arriving. */
const FIRST_BODY_BUFFER_MAX = 64 * 1024 * 1024;

export class ResponseReader {
  private readonly headRequest: boolean;
  // Before the header block ends: its bytes (a buffer that doubles when full), and where the search
  // for its end goes on.
  private headBuf: Buffer = Buffer.alloc(0);
  private headLen = 0;
  private scanFrom = 0;
  // After: the parsed head, the body's bytes so far and (for a count in characters) how far the count
  // has got.
  private head: Head | undefined;
  private framing: Framing | undefined;
  private body: Buffer = Buffer.alloc(0);
  private bodyLength = 0;
  private charsSeen = 0;
  private charBytesLeft = 0;
  /** body bytes of the answer once its end is known */
  private bodyEnd = -1;
  private result: ParsedResponse | undefined;

  /** `headRequest`: the request was HEAD, so the response has no body whatever Content-Length says. */
  constructor(headRequest: boolean) {
    this.headRequest = headRequest;
  }

  /**
   * Adds bytes; returns the response once it is complete (bytes after its end are ignored). Throws
   * ResponseFormatError on junk. `chunk` is copied: the caller may reuse it once this returns.
   */
  push(chunk: Buffer): ParsedResponse | undefined {
    if (this.result) return this.result;
    if (chunk.length === 0) return undefined;
    if (this.head !== undefined) this.addBody(chunk);
    else if (this.headLen === 0 && this.findHead(chunk, false)) {
      // the usual case: the whole header block in the first chunk, read where it is
    } else {
      this.headBuf = grow(this.headBuf, this.headLen, this.headLen + chunk.length, Infinity);
      chunk.copy(this.headBuf, this.headLen);
      this.headLen += chunk.length;
      if (!this.findHead(this.headBuf.subarray(0, this.headLen), false)) return undefined;
    }
    return this.finishIfComplete();
  }

  /** The server closed the connection: whatever is complete, or undefined if nothing arrived. */
  end(): ParsedResponse | undefined {
    if (this.result) return this.result;
    if (this.head === undefined) {
      if (this.headLen === 0) return undefined;
      if (!this.findHead(this.headBuf.subarray(0, this.headLen), true)) throw new ResponseFormatError('connection closed before the response headers ended');
      const done = this.finishIfComplete();
      if (done) return done;
    }
    if (this.framing?.kind === 'eof') return this.complete(this.bodyLength);
    throw new ResponseFormatError('connection closed before the body was complete');
  }

  /**
   * Looks for the end of the header block in `buf` (the header bytes so far) from where the last look
   * stopped; parses the head there.
   */
  private findHead(buf: Buffer, atEof: boolean): boolean {
    // the header block ends at the first LF followed by LF (`\n\n`, `\r\n\n`) or by CRLF (`\r\n\r\n`)
    for (let i = buf.indexOf(LF, this.scanFrom); i >= 0; i = buf.indexOf(LF, i + 1)) {
      if (buf[i + 1] === LF) {
        this.parseHead(buf, i, i + 2, i > 0 && buf[i - 1] === CR);
        return true;
      }
      if (buf[i + 1] === CR && buf[i + 2] === LF) {
        this.parseHead(buf, i, i + 3, false);
        return true;
      }
      if (i + 2 >= buf.length && !atEof) {
        // too near the end to tell: look at this LF again when more bytes come
        this.scanFrom = i;
        return false;
      }
    }
    this.scanFrom = buf.length;
    if (buf.length > MAX_HEAD_BYTES) throw new ResponseFormatError('response header block too large');
    return false;
  }

  private parseHead(buf: Buffer, headEnd: number, bodyStart: number, seedFraming: boolean): void {
    const lines = buf.toString('latin1', 0, headEnd).split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    const statusLine = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
    if (!statusLine) throw new ResponseFormatError(`not an HTTP status line: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
    const headers: [string, string][] = [];
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new ResponseFormatError(`malformed response header: ${JSON.stringify(line.slice(0, 80))}`);
      headers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
    }
    const status = Number(statusLine[2]);
    this.head = { version: statusLine[1]!, status, reason: statusLine[3] ?? '', headers, seedFraming };

    if (this.headRequest || status === 204 || status === 304 || (status >= 100 && status < 200 && !seedFraming)) {
      this.framing = { kind: 'bytes', bytes: 0 };
    } else {
      const cl = headers.find(([n]) => n === 'content-length')?.[1];
      if (cl === undefined) this.framing = { kind: 'eof' };
      else {
        if (!/^\d+$/.test(cl)) throw new ResponseFormatError(`bad Content-Length: ${cl}`);
        // The seed server counts characters; a standard server counts bytes.
        this.framing = seedFraming ? { kind: 'chars', chars: Number(cl) } : { kind: 'bytes', bytes: Number(cl) };
      }
    }
    if (this.framing.kind === 'chars' && this.framing.chars === 0) this.bodyEnd = 0;
    if (this.framing.kind === 'bytes') this.body = Buffer.allocUnsafe(Math.min(this.framing.bytes, FIRST_BODY_BUFFER_MAX));
    if (bodyStart < buf.length) this.addBody(buf.subarray(bodyStart));
    this.headBuf = Buffer.alloc(0);
  }

  private addBody(chunk: Buffer): void {
    const framing = this.framing!;
    if (framing.kind === 'chars' && this.bodyEnd < 0) this.countChars(chunk, framing.chars);
    // a byte count says where the body ends: what comes after it is not kept
    const take = framing.kind === 'bytes' ? Math.min(chunk.length, framing.bytes - this.bodyLength) : chunk.length;
    if (take <= 0) return;
    this.body = grow(this.body, this.bodyLength, this.bodyLength + take, framing.kind === 'bytes' ? framing.bytes : Infinity);
    chunk.copy(this.body, this.bodyLength, 0, take);
    this.bodyLength += take;
  }

  /** Counts characters through `chunk` (which follows the body bytes so far) until `chars` are whole. */
  private countChars(chunk: Buffer, chars: number): void {
    const length = chunk.length;
    // the rest of a character that began in an earlier chunk
    let i = Math.min(this.charBytesLeft, length);
    this.charBytesLeft -= i;
    if (this.charBytesLeft > 0) return;
    let seen = this.charsSeen;
    while (seen < chars && i < length) {
      i += charBytes(chunk[i]!);
      seen += 1;
    }
    this.charsSeen = seen;
    if (i > length) this.charBytesLeft = i - length;
    else if (seen === chars) this.bodyEnd = this.bodyLength + i;
  }

  private finishIfComplete(): ParsedResponse | undefined {
    const framing = this.framing!;
    if (framing.kind === 'bytes') return this.bodyLength >= framing.bytes ? this.complete(framing.bytes) : undefined;
    if (framing.kind === 'chars') return this.bodyEnd >= 0 ? this.complete(this.bodyEnd) : undefined;
    return undefined;
  }

  /** The response with the first `bytes` body bytes, decoded only if asked. */
  private complete(bytes: number): ParsedResponse {
    this.result = withBody(this.head!, this.body.subarray(0, bytes));
    this.body = Buffer.alloc(0);
    return this.result;
  }
}

/** `buf` with room for `need` bytes (its first `used` kept): itself, or a copy twice as large, at most `max`. */
function grow(buf: Buffer, used: number, need: number, max: number): Buffer {
  if (need <= buf.length) return buf;
  const grown = Buffer.allocUnsafe(Math.min(max, Math.max(need, buf.length * 2, 4096)));
  buf.copy(grown, 0, 0, used);
  return grown;
}

/**
 * A response whose `body` is decoded on first use: a client that prints the bytes (or only looks at
 * the status) never pays for turning tens of MiB into a string and back.
 */
function withBody(head: Head, bodyBytes: Buffer): ParsedResponse {
  let text: string | undefined;
  const response = { ...head, bodyBytes } as ParsedResponse;
  Object.defineProperty(response, 'body', { enumerable: true, get: () => (text ??= bodyBytes.toString('utf8')) });
  return response;
}
