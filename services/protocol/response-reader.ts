// Client side: bytes in, one response out. Reads standard HTTP/1.1 answers and the seed server's
// habits: `\r\n\n` after the headers, Content-Length counted in characters (Python's len() of a str),
// a connection the server never closes (so the body's end comes from Content-Length, not EOF).

export interface ParsedResponse {
  readonly version: string;
  readonly status: number;
  readonly reason: string;
  /** names lower-cased, in order */
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
  /** the header block ended with `\r\n\n`, as the seed's Python server writes it */
  readonly seedFraming: boolean;
}

export class ResponseFormatError extends Error {
  override readonly name = 'ResponseFormatError';
}

const LF = 0x0a;
const CR = 0x0d;

/** Bytes taken by `chars` UTF-8 characters from `from`, or -1 if they have not all arrived. */
function bytesForChars(buf: Buffer, from: number, chars: number): number {
  let pos = from;
  for (let k = 0; k < chars; k++) {
    if (pos >= buf.length) return -1;
    const lead = buf[pos]!;
    pos += lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  }
  return pos > buf.length ? -1 : pos - from;
}

export class ResponseReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly headRequest: boolean;

  /** `headRequest`: the request was HEAD, so the response has no body whatever Content-Length says. */
  constructor(headRequest: boolean) {
    this.headRequest = headRequest;
  }

  /** Adds bytes; returns the response once it is complete. Throws ResponseFormatError on junk. */
  push(chunk: Buffer): ParsedResponse | undefined {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return this.tryParse(false);
  }

  /** The server closed the connection: whatever is complete, or undefined if nothing arrived. */
  end(): ParsedResponse | undefined {
    if (this.buf.length === 0) return undefined;
    const r = this.tryParse(true);
    if (r === undefined) throw new ResponseFormatError('connection closed in the middle of a response');
    return r;
  }

  private tryParse(atEof: boolean): ParsedResponse | undefined {
    const buf = this.buf;
    // the header block ends at the first LF followed by LF (`\n\n`, `\r\n\n`) or by CRLF (`\r\n\r\n`)
    let headEnd = -1;
    let bodyStart = -1;
    let seedFraming = false;
    for (let i = buf.indexOf(LF); i >= 0; i = buf.indexOf(LF, i + 1)) {
      if (buf[i + 1] === LF) {
        headEnd = i;
        bodyStart = i + 2;
        seedFraming = i > 0 && buf[i - 1] === CR;
        break;
      }
      if (buf[i + 1] === CR && buf[i + 2] === LF) {
        headEnd = i;
        bodyStart = i + 3;
        break;
      }
      if (i + 2 >= buf.length && !atEof) break;
    }
    if (headEnd < 0) {
      if (buf.length > 64 * 1024) throw new ResponseFormatError('response header block too large');
      if (atEof) throw new ResponseFormatError('connection closed before the response headers ended');
      return undefined;
    }
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
    const base = { version: statusLine[1]!, status, reason: statusLine[3] ?? '', headers, seedFraming };

    if (this.headRequest || status === 204 || status === 304 || (status >= 100 && status < 200 && !seedFraming)) {
      return { ...base, body: '' };
    }
    const cl = headers.find(([n]) => n === 'content-length')?.[1];
    if (cl !== undefined) {
      if (!/^\d+$/.test(cl)) throw new ResponseFormatError(`bad Content-Length: ${cl}`);
      const n = Number(cl);
      // The seed server counts characters; a standard server counts bytes.
      const bytes = seedFraming ? bytesForChars(buf, bodyStart, n) : buf.length - bodyStart >= n ? n : -1;
      if (bytes < 0) {
        if (atEof) throw new ResponseFormatError('connection closed before the body was complete');
        return undefined;
      }
      return { ...base, body: buf.toString('utf8', bodyStart, bodyStart + bytes) };
    }
    // no Content-Length: the body runs to the end of the connection
    if (!atEof) return undefined;
    return { ...base, body: buf.toString('utf8', bodyStart) };
  }
}
