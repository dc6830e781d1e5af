// Incremental HTTP/1.1 request parser: bytes in, whole requests out, in any segmentation.
//
// The narrow interface (after undici's `execute`): `push(chunk)` hands bytes over, `next()` returns one
// result at a time — a request, NEED_MORE, EXPECT_CONTINUE, or a ProtocolError after which the parser
// is dead and the connection must answer and close. No sockets and no timers here: the connection
// layer owns time, the parser owns syntax. Because the caller pulls, it also decides how many
// pipelined requests to take at once: bytes it does not pull stay here (see `bufferedBytes`).
//
// Line endings (docs/protocol.md, Framing): the request line decides. CRLF request line → every header line must
// end in CRLF and only the closing empty line may be a bare LF (the seed client's `\r\n\n`); bare-LF
// request line (a person typing into nc) → every line ends in a bare LF. Anything else is 400: parsers
// that disagree about where a header ends are how requests get smuggled.
//
// Bodies are counted in bytes, with one exception: the seed client computes Content-Length with
// Python's `len(str)`, in characters. A request seed-shaped on every count — target `/`, a Host holding
// `/`, CRLF lines and a header block closed by a bare LF — has a body of Content-Length UTF-8 code
// points (decoded as they arrive; invalid UTF-8 is refused). No request an RFC 9112 intermediary may
// forward has that shape (a Host holding `/` must be refused; a sender must close the block with CRLF),
// so the exception cannot frame a forwarded request differently from the intermediary. docs/protocol.md
// has the whole argument.

import { seedAddressed } from './dialect.js';
import { ProtocolError } from './errors.js';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../common/setting-names.js';

export interface ParserLimits {
  /** request line + header lines + the closing empty line, in bytes (431) */
  readonly maxHeaderBytes: number;
  /** number of header lines (431) */
  readonly maxHeaderCount: number;
  /** request-target length in bytes (414) */
  readonly maxTargetBytes: number;
  /** decoded body size in bytes (413) */
  readonly maxBodyBytes: number;
}

export const DEFAULT_PARSER_LIMITS: ParserLimits = Object.freeze({
  maxHeaderBytes: numericDefault(S.maxHeaderBytes),
  maxHeaderCount: numericDefault(S.maxHeaderCount),
  maxTargetBytes: numericDefault(S.maxTargetBytes),
  maxBodyBytes: numericDefault(S.maxBodyBytes),
});

export interface ParsedRequest {
  readonly method: string;
  readonly target: string;
  readonly version: '1.0' | '1.1';
  /** Header names lower-cased, in arrival order, flattened: [name0, value0, name1, value1, ...]. */
  readonly headers: readonly string[];
  readonly host: string | undefined;
  readonly authorization: string | undefined;
  /** What the client asked for: HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with keep-alive. */
  readonly keepAlive: boolean;
  readonly lineEnding: 'crlf' | 'lf';
  readonly body: Buffer;
}

/** `next()` has nothing more to give until more bytes are pushed. */
export const NEED_MORE = Symbol('NEED_MORE');
/** The headers asked for `Expect: 100-continue` and the body has not arrived yet: send `100 Continue`. */
export const EXPECT_CONTINUE = Symbol('EXPECT_CONTINUE');

export type ParseResult = ParsedRequest | ProtocolError | typeof NEED_MORE | typeof EXPECT_CONTINUE;

const enum State {
  RequestLine,
  Headers,
  BodyLength,
  /** a seed-shaped body: `remaining` counts UTF-8 code points, not bytes */
  BodyChars,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  Dead,
}

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

// tchar (RFC 9110 §5.6.2): what method and header-name bytes may be.
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;

// field-value bytes: HTAB, visible ASCII, SP and obs-text; never NUL, CR, LF, other controls or DEL.
const FIELD_VALUE = new Uint8Array(256);
FIELD_VALUE[HT] = 1;
for (let c = 0x20; c <= 0x7e; c++) FIELD_VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VALUE[c] = 1;

// request-target bytes: visible ASCII only (RFC 3986 characters plus what lenient clients leave
// unescaped); no controls, no SP, no DEL, no raw non-ASCII.
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;

const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c <= 9; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

/** A protocol name and version other than HTTP's in a request line (`RTSP/1.0`, `ICE/1.0`, `SIP/2.0`). */
const OTHER_PROTOCOL = /^(?!HTTP\/)[A-Z]{1,16}\/\d{1,3}(\.\d{1,3})?$/;

/** Longest chunk-size line (size + extensions) accepted. */
const MAX_CHUNK_LINE = 4096;
/** Empty lines tolerated before a request line (RFC 9112 §2.2: SHOULD ignore at least one). */
const MAX_LEADING_EMPTY_LINES = 4;

const EMPTY = Buffer.alloc(0);

/**
 * Lines remembered per connection for reuse (see `memoFields`): how many, and how long at most. Enough
 * for what curl, fetch and load tools send; small enough that an idle connection keeps at most ~2 KiB
 * of them (each line twice: its text, and its name and value).
 */
const MEMO_HEADER_LINES = 8;
const MEMO_LINE_BYTES = 128;

/** Whether buf[from, to) holds exactly the characters of `text` (a latin1 string; undefined: no). */
function sameBytes(buf: Buffer, from: number, to: number, text: string | undefined): boolean {
  if (text === undefined || text.length !== to - from) return false;
  for (let k = 0; k < text.length; k++) if (buf[from + k] !== text.charCodeAt(k)) return false;
  return true;
}

// qdtext (RFC 9110 §5.6.4): what may stand unescaped inside a quoted-string.
const QDTEXT = new Uint8Array(256);
QDTEXT[HT] = 1;
QDTEXT[SP] = 1;
QDTEXT[0x21] = 1;
for (let c = 0x23; c <= 0x5b; c++) QDTEXT[c] = 1;
for (let c = 0x5d; c <= 0x7e; c++) QDTEXT[c] = 1;
for (let c = 0x80; c <= 0xff; c++) QDTEXT[c] = 1;

const isBWS = (c: number | undefined) => c === SP || c === HT;

/**
 * Checks buf[i, le) — what follows a chunk size — against RFC 9112 §7.1.1:
 * `*( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, a name being a token and a value a
 * token or a quoted-string. Returns what is wrong, or undefined. Extensions are then ignored.
 */
function chunkExtensionProblem(buf: Buffer, i: number, le: number): string | undefined {
  while (i < le) {
    while (i < le && isBWS(buf[i])) i++;
    if (i === le) return 'whitespace at the end of a chunk-size line';
    if (buf[i] !== SEMICOLON) return 'invalid chunk size';
    i++;
    while (i < le && isBWS(buf[i])) i++;
    const name = i;
    while (i < le && TOKEN[buf[i]!] === 1) i++;
    if (i === name) return 'chunk extension without a name';
    let j = i;
    while (j < le && isBWS(buf[j])) j++;
    if (j === le) return j > i ? 'whitespace at the end of a chunk-size line' : undefined;
    if (buf[j] === SEMICOLON) {
      i = j;
      continue;
    }
    if (buf[j] !== EQUALS) return 'invalid byte in chunk extension';
    j++;
    while (j < le && isBWS(buf[j])) j++;
    if (buf[j] === DQUOTE && j < le) {
      j++;
      for (;;) {
        if (j >= le) return 'unbalanced quote in chunk extension';
        const c = buf[j]!;
        if (c === DQUOTE) break;
        if (c === BACKSLASH) {
          j++;
          if (j >= le) return 'unbalanced quote in chunk extension';
          if (FIELD_VALUE[buf[j]!] !== 1) return 'invalid byte in chunk extension';
        } else if (QDTEXT[c] !== 1) return 'invalid byte in chunk extension';
        j++;
      }
      i = j + 1;
    } else {
      const value = j;
      while (j < le && TOKEN[buf[j]!] === 1) j++;
      if (j === value) return 'chunk extension value missing';
      i = j;
    }
    if (i < le && buf[i] !== SEMICOLON && !isBWS(buf[i])) return 'invalid byte in chunk extension';
  }
  return undefined;
}

export class RequestParser {
  private readonly limits: ParserLimits;

  // Unconsumed bytes are buf[start, end). While a single pushed chunk is being parsed, buf IS that
  // chunk (no copy). Only an incomplete tail is copied, into a buffer we own that grows by doubling,
  // so a request trickling in byte by byte costs amortised O(n), not O(n²).
  private buf: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  private owned = false;

  private state = State.RequestLine;
  /** where to resume the LF search in the current line, so a trickle is not rescanned */
  private scanFrom = 0;
  private headerBytes = 0;
  private leadingEmptyLines = 0;
  /** where the request line being read starts in `buf` (for failedOnHead) */
  private lineStart = 0;
  /** the request that failed was a HEAD (its error answer then carries no body) */
  failedOnHead = false;

  // the request being assembled
  private method = '';
  private target = '';
  private version: '1.0' | '1.1' = '1.1';
  private crlf = true;
  private headers: string[] = [];
  private host: string | undefined;
  private hostCount = 0;
  private authorization: string | undefined;
  private contentLength = -1;
  private transferEncoding: string | undefined;
  private connectionClose = false;
  private connectionKeepAlive = false;
  private expectContinue = false;
  /** the header block was closed by a bare LF after CRLF lines: the seed client's `\r\n\n` */
  private closedByBareLF = false;
  // The body: a view of the pushed chunk when it arrived whole in one (no copy), otherwise copied into
  // one buffer of ours that grows by doubling as bytes arrive — never a piece per chunk (a body of
  // one-byte chunks would otherwise cost a Buffer object per byte), never sized by what is announced.
  private bodyView: Buffer | undefined;
  private bodyBuf: Buffer = EMPTY;
  private bodyBytes = 0;
  /** bytes (or, in BodyChars, code points) of the body or chunk still expected */
  private remaining = 0;
  // UTF-8 decoding state of a character-counted body, kept across pushes: continuation bytes still
  // expected for the current code point, and the range the next one must fall in (RFC 3629 §4).
  private utf8Need = 0;
  private utf8Lower = 0x80;
  private utf8Upper = 0xbf;

  // The last request's request line and header lines, as text, with what was parsed from them: a
  // client sends the same lines on every request of a connection, and an identical line needs neither
  // validating nor new strings. Per position, so `Host` is compared with the last `Host` line.
  private memoRequestLine = '';
  private memoMethod = '';
  private memoTarget = '';
  private memoVersion: '1.0' | '1.1' = '1.1';
  /** header line i at [3i] (its text), [3i+1] (name), [3i+2] (value): one array, for idle memory's sake */
  private readonly memoFields: string[] = [];

  constructor(limits: ParserLimits = DEFAULT_PARSER_LIMITS) {
    this.limits = limits;
  }

  /** Bytes received and not yet turned into requests. */
  get bufferedBytes(): number {
    return this.end - this.start + this.bodyBytes;
  }

  /** 'idle' between requests, 'headers' while a request line or headers are arriving, 'body' after. */
  get stage(): 'idle' | 'headers' | 'body' | 'dead' {
    switch (this.state) {
      case State.RequestLine:
        return this.end > this.start ? 'headers' : 'idle';
      case State.Headers:
        return 'headers';
      case State.Dead:
        return 'dead';
      default:
        return 'body';
    }
  }

  push(chunk: Buffer): void {
    if (this.state === State.Dead || chunk.length === 0) return;
    const pending = this.end - this.start;
    if (pending === 0) {
      this.buf = chunk;
      this.scanFrom = 0;
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
      return;
    }
    if (this.owned && this.buf.length - this.end >= chunk.length) {
      chunk.copy(this.buf, this.end);
      this.end += chunk.length;
      return;
    }
    const size = Math.max(2 * (pending + chunk.length), 1024);
    const grown = Buffer.alloc(size);
    this.buf.copy(grown, 0, this.start, this.end);
    chunk.copy(grown, pending);
    this.scanFrom -= this.start;
    this.buf = grown;
    this.start = 0;
    this.end = pending + chunk.length;
    this.owned = true;
  }

  /** The next complete request, or what stands in its way. */
  next(): ParseResult {
    for (;;) {
      switch (this.state) {
        case State.RequestLine: {
          this.lineStart = this.start;
          const r = this.parseRequestLine();
          if (r !== undefined) return r;
          break;
        }
        case State.Headers: {
          const r = this.parseHeaderLine();
          if (r !== undefined) return r;
          break;
        }
        case State.BodyLength:
          if (!this.takeArrivedBody()) return NEED_MORE;
          return this.finish();
        case State.BodyChars: {
          const r = this.takeArrivedCharacters();
          if (r !== true) return r;
          return this.finish();
        }
        case State.ChunkSize: {
          const r = this.parseChunkSize();
          if (r !== undefined) return r;
          break;
        }
        case State.ChunkData:
          if (!this.takeArrivedBody()) return NEED_MORE;
          this.state = State.ChunkDataEnd;
          break;
        case State.ChunkDataEnd: {
          const r = this.parseChunkDataEnd();
          if (r !== undefined) return r;
          break;
        }
        case State.Trailers: {
          const r = this.parseTrailerLine();
          if (r !== undefined) return r;
          break;
        }
        case State.Dead:
          return NEED_MORE;
      }
    }
  }

  // ---- lines -------------------------------------------------------------------------------------

  /**
   * Index of the next LF in the unconsumed bytes, or -1. Resumes where the last search stopped. A plain
   * loop: header lines are short, and a call into Buffer#indexOf costs more than scanning them here.
   */
  private findLF(): number {
    const buf = this.buf;
    const end = this.end;
    let i = this.scanFrom > this.start ? this.scanFrom : this.start;
    while (i < end && buf[i] !== LF) i++;
    if (i === end) {
      this.scanFrom = end;
      return -1;
    }
    this.scanFrom = 0;
    return i;
  }

  private fail(error: ProtocolError): ProtocolError {
    this.failedOnHead = this.state === State.RequestLine ? startsWithHead(this.buf, this.lineStart, this.end) : this.method === 'HEAD';
    this.state = State.Dead;
    this.buf = EMPTY;
    this.start = this.end = 0;
    this.bodyView = undefined;
    this.bodyBuf = EMPTY;
    this.bodyBytes = 0;
    return error;
  }

  private parseRequestLine(): ParseResult | undefined {
    const lf = this.findLF();
    if (lf < 0) {
      const pending = this.end - this.start;
      // Refuse junk (a TLS hello, binary) now rather than when a line end or the timeout comes.
      if (!this.methodPrefixValid()) return this.fail(new ProtocolError('TCPKV_ERR_BAD_METHOD'));
      if (pending > this.limits.maxTargetBytes + 64) {
        return this.fail(new ProtocolError('TCPKV_ERR_TARGET_TOO_LONG'));
      }
      if (pending > this.limits.maxHeaderBytes) return this.fail(new ProtocolError('TCPKV_ERR_HEADERS_TOO_LARGE'));
      return NEED_MORE;
    }
    const buf = this.buf;
    const ls = this.start;
    this.start = lf + 1;
    this.headerBytes = lf + 1 - ls;
    const crlf = lf > ls && buf[lf - 1] === CR;
    const le = crlf ? lf - 1 : lf;
    if (le === ls) {
      // An empty line before the request line: tolerated a few times, as RFC 9112 §2.2 suggests.
      if (++this.leadingEmptyLines > MAX_LEADING_EMPTY_LINES) {
        return this.fail(new ProtocolError('TCPKV_ERR_BAD_REQUEST_LINE', 'too many empty lines'));
      }
      return undefined;
    }
    if (this.headerBytes > this.limits.maxHeaderBytes) return this.fail(new ProtocolError('TCPKV_ERR_HEADERS_TOO_LARGE'));
    if (sameBytes(buf, ls, le, this.memoRequestLine)) {
      // the very line the last request had: already validated, its parts already strings
      this.method = this.memoMethod;
      this.target = this.memoTarget;
      this.version = this.memoVersion;
      this.crlf = crlf;
      this.state = State.Headers;
      return undefined;
    }

    // method
    let i = ls;
    while (i < le && TOKEN[buf[i]!] === 1) i++;
    if (i === ls || i === le || buf[i] !== SP) return this.fail(new ProtocolError('TCPKV_ERR_BAD_METHOD'));
    const method = buf.toString('latin1', ls, i);
    // target
    const ts = ++i;
    while (i < le && TARGET[buf[i]!] === 1) i++;
    if (i === ts || i === le || buf[i] !== SP) {
      if (i === le && i > ts) return this.fail(new ProtocolError('TCPKV_ERR_BAD_REQUEST_LINE', 'no HTTP version'));
      if (buf[i] === CR) return this.fail(new ProtocolError('TCPKV_ERR_MIXED_LINE_ENDINGS'));
      return this.fail(new ProtocolError('TCPKV_ERR_BAD_TARGET'));
    }
    if (i - ts > this.limits.maxTargetBytes) return this.fail(new ProtocolError('TCPKV_ERR_TARGET_TOO_LONG'));
    const target = buf.toString('latin1', ts, i);
    // version: exactly HTTP/d.d, then the end of the line
    const vs = i + 1;
    if (
      le - vs !== 8 ||
      buf[vs] !== 0x48 || buf[vs + 1] !== 0x54 || buf[vs + 2] !== 0x54 || buf[vs + 3] !== 0x50 ||
      buf[vs + 4] !== 0x2f || buf[vs + 6] !== 0x2e
    ) {
      const cr = buf.indexOf(CR, vs);
      if (cr >= 0 && cr < le) return this.fail(new ProtocolError('TCPKV_ERR_MIXED_LINE_ENDINGS'));
      const protocol = buf.toString('latin1', vs, le);
      // A well-formed request line of another protocol (RTSP/1.0, ICE/1.0, ...): say what is wrong.
      if (OTHER_PROTOCOL.test(protocol)) return this.fail(new ProtocolError('TCPKV_ERR_VERSION_NOT_SUPPORTED', protocol));
      return this.fail(new ProtocolError('TCPKV_ERR_BAD_VERSION'));
    }
    const major = buf[vs + 5]! - 0x30;
    const minor = buf[vs + 7]! - 0x30;
    if (major < 0 || major > 9 || minor < 0 || minor > 9) return this.fail(new ProtocolError('TCPKV_ERR_BAD_VERSION'));
    if (major !== 1 || minor > 1) return this.fail(new ProtocolError('TCPKV_ERR_VERSION_NOT_SUPPORTED', `HTTP/${major}.${minor}`));

    this.method = method;
    this.target = target;
    this.version = minor === 1 ? '1.1' : '1.0';
    this.crlf = crlf;
    this.state = State.Headers;
    if (le - ls <= MEMO_LINE_BYTES) {
      this.memoRequestLine = buf.toString('latin1', ls, le);
      this.memoMethod = method;
      this.memoTarget = target;
      this.memoVersion = this.version;
    }
    return undefined;
  }

  /** Whether the incomplete request line so far could still start with a method (or is blank lines). */
  private methodPrefixValid(): boolean {
    const buf = this.buf;
    let i = this.start;
    while (i < this.end && (buf[i] === CR || buf[i] === LF)) i++;
    const from = i;
    while (i < this.end && TOKEN[buf[i]!] === 1) i++;
    return i === this.end || (buf[i] === SP && i > from);
  }

  private parseHeaderLine(): ParseResult | undefined {
    const lf = this.findLF();
    if (lf < 0) {
      if (this.headerBytes + (this.end - this.start) > this.limits.maxHeaderBytes) {
        return this.fail(new ProtocolError('TCPKV_ERR_HEADERS_TOO_LARGE'));
      }
      return NEED_MORE;
    }
    const buf = this.buf;
    const ls = this.start;
    this.start = lf + 1;
    this.headerBytes += lf + 1 - ls;
    if (this.headerBytes > this.limits.maxHeaderBytes) return this.fail(new ProtocolError('TCPKV_ERR_HEADERS_TOO_LARGE'));
    const hasCR = lf > ls && buf[lf - 1] === CR;
    const le = hasCR ? lf - 1 : lf;

    if (le === ls) {
      // The empty line that closes the header block: CRLF or bare LF after a CRLF request line (the seed
      // client's `\r\n\n`), bare LF only after a bare-LF request line.
      if (hasCR && !this.crlf) return this.fail(new ProtocolError('TCPKV_ERR_MIXED_LINE_ENDINGS'));
      this.closedByBareLF = this.crlf && !hasCR;
      return this.endOfHeaders();
    }
    if (hasCR !== this.crlf) return this.fail(new ProtocolError('TCPKV_ERR_MIXED_LINE_ENDINGS'));
    return this.readField(ls, le, true);
  }

  /** Validates one `name: value` line in buf[ls, le); records it when `record` (headers, not trailers). */
  private readField(ls: number, le: number, record: boolean): ProtocolError | undefined {
    const buf = this.buf;
    if (record) {
      const index = this.headers.length / 2;
      if (index < MEMO_HEADER_LINES && sameBytes(buf, ls, le, this.memoFields[3 * index])) {
        // the same line as at this position in the last request: validated then, reused now
        return this.addHeader(this.memoFields[3 * index + 1]!, this.memoFields[3 * index + 2]!);
      }
    }
    const first = buf[ls]!;
    if (first === SP || first === HT) return this.fail(new ProtocolError('TCPKV_ERR_OBS_FOLD'));
    let i = ls;
    while (i < le && TOKEN[buf[i]!] === 1) i++;
    if (i === le || buf[i] !== COLON) {
      if (i < le && buf[i] === CR) return this.fail(new ProtocolError('TCPKV_ERR_MIXED_LINE_ENDINGS'));
      return this.fail(new ProtocolError('TCPKV_ERR_BAD_HEADER', i === ls ? 'empty name' : 'invalid byte in name'));
    }
    if (i === ls) return this.fail(new ProtocolError('TCPKV_ERR_BAD_HEADER', 'empty name'));
    const ne = i;
    i++;
    while (i < le && (buf[i] === SP || buf[i] === HT)) i++;
    const vs = i;
    let ve = vs;
    for (; i < le; i++) {
      const c = buf[i]!;
      if (FIELD_VALUE[c] !== 1) {
        if (c === CR) return this.fail(new ProtocolError('TCPKV_ERR_MIXED_LINE_ENDINGS'));
        return this.fail(new ProtocolError('TCPKV_ERR_BAD_HEADER', 'invalid byte in value'));
      }
      if (c !== SP && c !== HT) ve = i + 1;
    }
    if (!record) return undefined;
    const index = this.headers.length / 2;
    const name = buf.toString('latin1', ls, ne).toLowerCase();
    const value = buf.toString('latin1', vs, ve);
    if (index < MEMO_HEADER_LINES && le - ls <= MEMO_LINE_BYTES && 3 * index <= this.memoFields.length) {
      this.memoFields[3 * index] = buf.toString('latin1', ls, le);
      this.memoFields[3 * index + 1] = name;
      this.memoFields[3 * index + 2] = value;
    }
    return this.addHeader(name, value);
  }

  /** Records a header (within the count limit) and picks out what framing and the rules need. */
  private addHeader(name: string, value: string): ProtocolError | undefined {
    if (this.headers.length / 2 >= this.limits.maxHeaderCount) return this.fail(new ProtocolError('TCPKV_ERR_TOO_MANY_HEADERS'));
    this.headers.push(name, value);
    return this.noteHeader(name, value);
  }

  /** Picks out the headers that framing and the rules need, once, as they arrive. */
  private noteHeader(name: string, value: string): ProtocolError | undefined {
    switch (name) {
      case 'host':
        this.host = value;
        this.hostCount++;
        return undefined;
      case 'content-length': {
        if (value.length === 0 || value.length > 15) return this.fail(new ProtocolError('TCPKV_ERR_BAD_CONTENT_LENGTH', value));
        let n = 0;
        for (let k = 0; k < value.length; k++) {
          const d = value.charCodeAt(k) - 0x30;
          if (d < 0 || d > 9) return this.fail(new ProtocolError('TCPKV_ERR_BAD_CONTENT_LENGTH', value));
          n = n * 10 + d;
        }
        // Even identical repeats are refused (RFC 9112 §6.3 allows either; llhttp refuses too): a
        // front end that picks the other copy is how bodies get smuggled.
        if (this.contentLength >= 0) return this.fail(new ProtocolError('TCPKV_ERR_DUPLICATE_CONTENT_LENGTH'));
        this.contentLength = n;
        return undefined;
      }
      case 'transfer-encoding':
        this.transferEncoding = this.transferEncoding === undefined ? value : `${this.transferEncoding}, ${value}`;
        return undefined;
      case 'connection':
        // the two values nearly every client sends, without splitting a new list each time
        if (value === 'keep-alive') {
          this.connectionKeepAlive = true;
          return undefined;
        }
        if (value === 'close') {
          this.connectionClose = true;
          return undefined;
        }
        for (const token of value.split(',')) {
          const t = token.trim().toLowerCase();
          if (t === 'close') this.connectionClose = true;
          else if (t === 'keep-alive') this.connectionKeepAlive = true;
        }
        return undefined;
      case 'authorization':
        this.authorization = value;
        return undefined;
      case 'expect':
        if (value.toLowerCase() === '100-continue') this.expectContinue = true;
        return undefined;
      default:
        return undefined;
    }
  }

  private endOfHeaders(): ParseResult | undefined {
    if (this.hostCount > 1) return this.fail(new ProtocolError('TCPKV_ERR_DUPLICATE_HOST'));
    if (this.hostCount === 0 && this.version === '1.1') return this.fail(new ProtocolError('TCPKV_ERR_MISSING_HOST'));
    if (this.transferEncoding !== undefined) {
      if (this.contentLength >= 0) return this.fail(new ProtocolError('TCPKV_ERR_CL_AND_TE'));
      if (this.version === '1.0') return this.fail(new ProtocolError('TCPKV_ERR_TE_NOT_CHUNKED', 'Transfer-Encoding in HTTP/1.0'));
      const codings = this.transferEncoding.split(',').map((c) => c.trim().toLowerCase());
      const last = codings[codings.length - 1];
      if (last !== 'chunked') return this.fail(new ProtocolError('TCPKV_ERR_TE_NOT_CHUNKED'));
      if (codings.length > 1) return this.fail(new ProtocolError('TCPKV_ERR_TE_NOT_IMPLEMENTED', this.transferEncoding));
      this.state = State.ChunkSize;
      return this.expectContinue && this.version === '1.1' ? EXPECT_CONTINUE : undefined;
    }
    if (this.contentLength > 0) {
      if (this.contentLength > this.limits.maxBodyBytes) return this.fail(new ProtocolError('TCPKV_ERR_BODY_TOO_LARGE'));
      this.remaining = this.contentLength;
      // seed-shaped on every count (see the top of this file): Content-Length counts characters
      const seedShaped = this.closedByBareLF && seedAddressed(this.target, this.host);
      this.state = seedShaped ? State.BodyChars : State.BodyLength;
      if (this.expectContinue && this.version === '1.1' && this.end === this.start) return EXPECT_CONTINUE;
      return undefined;
    }
    return this.finish();
  }

  // ---- chunked -----------------------------------------------------------------------------------

  /** Checks a chunked-framing line ending; returns the index where its content ends, or an error. */
  private chunkLineEnd(ls: number, lf: number): number | ProtocolError {
    const hasCR = lf > ls && this.buf[lf - 1] === CR;
    if (hasCR !== this.crlf) return this.fail(new ProtocolError('TCPKV_ERR_BAD_CHUNK', 'line ending'));
    return hasCR ? lf - 1 : lf;
  }

  private parseChunkSize(): ParseResult | undefined {
    const lf = this.findLF();
    if (lf < 0) {
      if (this.end - this.start > MAX_CHUNK_LINE) return this.fail(new ProtocolError('TCPKV_ERR_BAD_CHUNK', 'chunk-size line too long'));
      return NEED_MORE;
    }
    const ls = this.start;
    if (lf - ls > MAX_CHUNK_LINE) return this.fail(new ProtocolError('TCPKV_ERR_BAD_CHUNK', 'chunk-size line too long'));
    const le = this.chunkLineEnd(ls, lf);
    if (typeof le !== 'number') return le;
    this.start = lf + 1;
    const buf = this.buf;
    let i = ls;
    let size = 0;
    while (i < le && HEX[buf[i]!]! >= 0) {
      size = size * 16 + HEX[buf[i]!]!;
      // Past the body limit already: stop before the number can lose precision.
      if (size > this.limits.maxBodyBytes) return this.fail(new ProtocolError('TCPKV_ERR_BODY_TOO_LARGE'));
      i++;
    }
    if (i === ls) return this.fail(new ProtocolError('TCPKV_ERR_BAD_CHUNK', 'no chunk size'));
    if (i < le) {
      const problem = chunkExtensionProblem(buf, i, le);
      if (problem !== undefined) return this.fail(new ProtocolError('TCPKV_ERR_BAD_CHUNK', problem));
    }
    if (this.bodyBytes + size > this.limits.maxBodyBytes) return this.fail(new ProtocolError('TCPKV_ERR_BODY_TOO_LARGE'));
    if (size === 0) {
      this.state = State.Trailers;
    } else {
      this.remaining = size;
      this.state = State.ChunkData;
    }
    return undefined;
  }

  private parseChunkDataEnd(): ParseResult | undefined {
    const need = this.crlf ? 2 : 1;
    if (this.end - this.start < need) return NEED_MORE;
    const buf = this.buf;
    if (this.crlf ? buf[this.start] !== CR || buf[this.start + 1] !== LF : buf[this.start] !== LF) {
      return this.fail(new ProtocolError('TCPKV_ERR_BAD_CHUNK', 'chunk data not followed by a line end'));
    }
    this.start += need;
    this.state = State.ChunkSize;
    return undefined;
  }

  private parseTrailerLine(): ParseResult | undefined {
    const lf = this.findLF();
    if (lf < 0) {
      if (this.headerBytes + (this.end - this.start) > this.limits.maxHeaderBytes) {
        return this.fail(new ProtocolError('TCPKV_ERR_HEADERS_TOO_LARGE', 'trailers'));
      }
      return NEED_MORE;
    }
    const ls = this.start;
    this.headerBytes += lf + 1 - ls;
    if (this.headerBytes > this.limits.maxHeaderBytes) return this.fail(new ProtocolError('TCPKV_ERR_HEADERS_TOO_LARGE', 'trailers'));
    const le = this.chunkLineEnd(ls, lf);
    if (typeof le !== 'number') return le;
    this.start = lf + 1;
    if (le === ls) return this.finish();
    // Trailer fields are validated like headers and then ignored: nothing in tcpkv reads them.
    return this.readField(ls, le, false);
  }

  // ---- body and completion -----------------------------------------------------------------------

  /** Takes what has arrived of the body (or chunk) still expected; true once all of it is in. */
  private takeArrivedBody(): boolean {
    const n = Math.min(this.end - this.start, this.remaining);
    if (n > 0) {
      if (this.bodyBytes === 0 && n === this.remaining) {
        // the whole body (or first chunk) in the segment at hand: a view of it, no copy; a second
        // chunk moves it into a buffer of ours (appendBody)
        this.bodyView = this.buf.subarray(this.start, this.start + n);
        this.bodyBytes = n;
      } else {
        this.appendBody(this.start, this.start + n, this.state === State.BodyLength ? this.contentLength : this.limits.maxBodyBytes);
      }
      this.start += n;
      this.remaining -= n;
    }
    return this.remaining === 0;
  }

  /**
   * Takes what has arrived of a character-counted body: decodes UTF-8 as it goes (a character may be
   * split across pushes), counting code points until Content-Length of them are in. True when done,
   * NEED_MORE, or an error (invalid UTF-8: 400; more bytes than the body limit: 413).
   */
  private takeArrivedCharacters(): true | typeof NEED_MORE | ProtocolError {
    const buf = this.buf;
    const from = this.start;
    const end = this.end;
    let i = from;
    let remaining = this.remaining;
    let need = this.utf8Need;
    let lower = this.utf8Lower;
    let upper = this.utf8Upper;
    while (i < end && remaining > 0) {
      const b = buf[i]!;
      if (need === 0) {
        if (b < 0x80) remaining--;
        else if (b >= 0xc2 && b <= 0xdf) need = 1;
        else if (b >= 0xe0 && b <= 0xef) {
          need = 2;
          if (b === 0xe0) lower = 0xa0; // no overlong forms
          else if (b === 0xed) upper = 0x9f; // no surrogates
        } else if (b >= 0xf0 && b <= 0xf4) {
          need = 3;
          if (b === 0xf0) lower = 0x90; // no overlong forms
          else if (b === 0xf4) upper = 0x8f; // nothing above U+10FFFF
        } else return this.fail(new ProtocolError('TCPKV_ERR_BODY_NOT_UTF8'));
      } else {
        if (b < lower || b > upper) return this.fail(new ProtocolError('TCPKV_ERR_BODY_NOT_UTF8'));
        lower = 0x80;
        upper = 0xbf;
        if (--need === 0) remaining--;
      }
      i++;
    }
    const n = i - from;
    if (this.bodyBytes + n > this.limits.maxBodyBytes) return this.fail(new ProtocolError('TCPKV_ERR_BODY_TOO_LARGE', 'counted in bytes'));
    if (remaining === 0 && this.bodyBytes === 0) {
      this.bodyView = buf.subarray(from, i);
      this.bodyBytes = n;
    } else if (n > 0) {
      this.appendBody(from, i, this.limits.maxBodyBytes);
    }
    this.start = i;
    this.remaining = remaining;
    this.utf8Need = need;
    this.utf8Lower = lower;
    this.utf8Upper = upper;
    return remaining === 0 ? true : NEED_MORE;
  }

  /** Copies buf[from, to) onto the end of the body; the buffer grows by doubling, up to `cap` bytes. */
  private appendBody(from: number, to: number, cap: number): void {
    const view = this.bodyView;
    if (view !== undefined) {
      this.bodyView = undefined;
      this.bodyBytes = 0;
      this.copyIntoBody(view, 0, view.length, cap);
    }
    this.copyIntoBody(this.buf, from, to, cap);
  }

  private copyIntoBody(source: Buffer, from: number, to: number, cap: number): void {
    const total = this.bodyBytes + (to - from);
    if (total > this.bodyBuf.length) {
      let size = Math.max(2 * this.bodyBuf.length, 1024);
      if (size > cap) size = cap;
      if (size < total) size = total;
      const grown = Buffer.allocUnsafe(size);
      this.bodyBuf.copy(grown, 0, 0, this.bodyBytes);
      this.bodyBuf = grown;
    }
    source.copy(this.bodyBuf, this.bodyBytes, from, to);
    this.bodyBytes = total;
  }

  private finish(): ParsedRequest {
    const body = this.bodyView ?? (this.bodyBytes === 0 ? EMPTY : this.bodyBuf.subarray(0, this.bodyBytes));
    const keepAlive = this.version === '1.1' ? !this.connectionClose : this.connectionKeepAlive && !this.connectionClose;
    const request: ParsedRequest = {
      method: this.method,
      target: this.target,
      version: this.version,
      headers: this.headers,
      host: this.host,
      authorization: this.authorization,
      keepAlive,
      lineEnding: this.crlf ? 'crlf' : 'lf',
      body,
    };
    this.reset();
    return request;
  }

  private reset(): void {
    this.state = State.RequestLine;
    this.headerBytes = 0;
    this.leadingEmptyLines = 0;
    this.headers = [];
    this.host = undefined;
    this.hostCount = 0;
    this.authorization = undefined;
    this.contentLength = -1;
    this.transferEncoding = undefined;
    this.connectionClose = false;
    this.connectionKeepAlive = false;
    this.expectContinue = false;
    this.closedByBareLF = false;
    this.bodyView = undefined;
    this.bodyBuf = EMPTY; // handed out with the request: never reused
    this.bodyBytes = 0;
    this.remaining = 0;
    this.utf8Need = 0;
    this.utf8Lower = 0x80;
    this.utf8Upper = 0xbf;
    if (this.start === this.end) {
      // Nothing pending: drop our reference to the last chunk so it can be collected.
      this.buf = EMPTY;
      this.start = this.end = 0;
      this.owned = false;
    }
  }
}

/** Whether buf[from, end) starts with `HEAD ` (the method of a request line that failed later on). */
function startsWithHead(buf: Buffer, from: number, end: number): boolean {
  return end - from >= 5 && buf[from] === 0x48 && buf[from + 1] === 0x45 && buf[from + 2] === 0x41 && buf[from + 3] === 0x44 && buf[from + 4] === 0x20;
}
