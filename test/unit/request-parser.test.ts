import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRequest } from '../../services/client/client.js';
import { splitSeedUrl, SCENARIO } from '../../services/client/scenario.js';
import { ProtocolError, type ProtocolErrorCode } from '../../services/protocol/errors.js';
import { DEFAULT_PARSER_LIMITS, EXPECT_CONTINUE, NEED_MORE, RequestParser, type ParsedRequest, type ParserLimits, type ParseResult } from '../../services/protocol/request-parser.js';
import { seedRequestBytes } from '../support/net.js';

/** Feeds chunks and collects every result until the parser needs more. */
function feed(chunks: (Buffer | string)[], limits: ParserLimits = DEFAULT_PARSER_LIMITS): ParseResult[] {
  const parser = new RequestParser(limits);
  const out: ParseResult[] = [];
  for (const chunk of chunks) {
    parser.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
    for (;;) {
      const r = parser.next();
      if (r === NEED_MORE) break;
      out.push(r);
      if (r instanceof ProtocolError) return out;
    }
  }
  return out;
}

function one(text: string | Buffer, limits?: ParserLimits): ParsedRequest {
  const [r, ...rest] = feed([text], limits).filter((x) => x !== EXPECT_CONTINUE);
  expect(rest).toEqual([]);
  if (!r || r instanceof ProtocolError || typeof r === 'symbol') throw new Error(`expected a request, got ${String(r)}`);
  return r;
}

function errorOf(chunks: string | (string | Buffer)[], limits?: ParserLimits): ProtocolErrorCode | undefined {
  const results = feed(typeof chunks === 'string' ? [chunks] : chunks, limits);
  const last = results[results.length - 1];
  return last instanceof ProtocolError ? last.code : undefined;
}

const plain = (r: ParseResult) => (r instanceof ProtocolError || typeof r === 'symbol' ? r : { ...r, body: r.body.toString('latin1') });

describe('RequestParser: the seed dialect', () => {
  it('parses the seed client’s exact bytes, `\\r\\n\\n` and all', () => {
    const r = one(seedRequestBytes('POST', '127.0.0.1/create', 'ID: 20182793&Subject: Computer_Network&Grade: A'));
    expect(r).toMatchObject({ method: 'POST', target: '/', version: '1.1', host: '127.0.0.1/create', keepAlive: true, lineEnding: 'crlf' });
    expect(r.body.toString()).toBe('ID: 20182793&Subject: Computer_Network&Grade: A');
    expect(r.headers).toEqual(['host', '127.0.0.1/create', 'content-type', 'text/html', 'connection', 'keep-alive', 'content-length', '47']);
  });

  it('every scenario request, split at every byte offset, parses exactly as whole', () => {
    for (const c of SCENARIO) {
      const { host, path } = splitSeedUrl(c.url, '127.0.0.1');
      for (const dialect of ['seed', 'standard'] as const) {
        const bytes = buildRequest({ method: c.method, path, body: c.body }, dialect, host, 10000);
        const whole = feed([bytes]).map(plain);
        expect(whole).toHaveLength(1);
        for (let cut = 1; cut < bytes.length; cut++) {
          expect(feed([bytes.subarray(0, cut), bytes.subarray(cut)]).map(plain), `case ${c.n} ${dialect} cut at ${cut}`).toEqual(whole);
        }
        // and byte by byte
        expect(feed([...bytes].map((b) => Buffer.from([b]))).map(plain)).toEqual(whole);
      }
    }
  });

  it('accepts a request typed into nc: bare LF everywhere', () => {
    const r = one('GET / HTTP/1.1\nHost: 127.0.0.1/\n\n');
    expect(r).toMatchObject({ method: 'GET', host: '127.0.0.1/', lineEnding: 'lf' });
  });
});

describe('RequestParser: standard HTTP/1.1', () => {
  it('parses origin-form with a body and keep-alive', () => {
    const r = one('POST /create?x=1 HTTP/1.1\r\nHost: 127.0.0.1:10000\r\nContent-Length: 4\r\n\r\na: 1');
    expect(r).toMatchObject({ method: 'POST', target: '/create?x=1', host: '127.0.0.1:10000', keepAlive: true });
    expect(r.body.toString()).toBe('a: 1');
  });

  it('decodes chunked bodies, with extensions and trailers', () => {
    const r = one('PUT /update HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\na: 1\r\n6\r\n&b: 22\r\n0\r\nX-Trailer: t\r\n\r\n');
    expect(r.body.toString()).toBe('a: 1&b: 22');
  });

  it('chunked split at every offset gives the same body', () => {
    const text = 'POST /create HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nk: \r\nA\r\n0123456789\r\n0\r\n\r\n';
    for (let cut = 1; cut < text.length; cut++) {
      const rs = feed([text.slice(0, cut), text.slice(cut)]);
      expect(rs).toHaveLength(1);
      expect((rs[0] as ParsedRequest).body.toString()).toBe('k: 0123456789');
    }
  });

  it('pipelined requests in one segment come out in order', () => {
    const one = 'GET /a HTTP/1.1\r\nHost: h\r\n\r\n';
    const two = 'POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz';
    const rs = feed([one + two + one]) as ParsedRequest[];
    expect(rs.map((r) => r.target)).toEqual(['/a', '/b', '/a']);
    expect(rs[1]!.body.toString()).toBe('xyz');
  });

  it('keep-alive rules: HTTP/1.1 unless close; HTTP/1.0 only with keep-alive', () => {
    expect(one('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n').keepAlive).toBe(false);
    expect(one('GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, Upgrade\r\n\r\n').keepAlive).toBe(true);
    expect(one('GET / HTTP/1.0\r\n\r\n').keepAlive).toBe(false);
    expect(one('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n').keepAlive).toBe(true);
  });

  it('HTTP/1.0 needs no Host', () => {
    expect(one('GET / HTTP/1.0\r\n\r\n').host).toBeUndefined();
  });

  it('tolerates empty lines before the request line', () => {
    expect(one('\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n').method).toBe('GET');
  });

  it('signals Expect: 100-continue before the body', () => {
    const parser = new RequestParser();
    parser.push(Buffer.from('POST /create HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n'));
    expect(parser.next()).toBe(EXPECT_CONTINUE);
    expect(parser.next()).toBe(NEED_MORE);
    parser.push(Buffer.from('a: 1'));
    expect((parser.next() as ParsedRequest).body.toString()).toBe('a: 1');
  });

  it('keeps obs-text and tabs in header values', () => {
    const r = one(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: h\r\nX-A: \tv\xe9\t \r\n\r\n', 'latin1')]));
    expect(r.headers.slice(2)).toEqual(['x-a', 'v\xe9']);
  });
});

describe('RequestParser: refusals (smuggling defence and syntax)', () => {
  const cases: [string, string | (string | Buffer)[], ProtocolErrorCode][] = [
    ['Content-Length and Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'TCPKV_ERR_CL_AND_TE'],
    ['differing Content-Lengths', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 'TCPKV_ERR_DUPLICATE_CONTENT_LENGTH'],
    ['the same Content-Length twice', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', 'TCPKV_ERR_DUPLICATE_CONTENT_LENGTH'],
    ['Content-Length with a sign', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc', 'TCPKV_ERR_BAD_CONTENT_LENGTH'],
    ['Content-Length as a list', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc', 'TCPKV_ERR_BAD_CONTENT_LENGTH'],
    ['Content-Length empty', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n', 'TCPKV_ERR_BAD_CONTENT_LENGTH'],
    ['Content-Length huge', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n', 'TCPKV_ERR_BAD_CONTENT_LENGTH'],
    ['chunked not last', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'TCPKV_ERR_TE_NOT_CHUNKED'],
    ['unknown coding', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n', 'TCPKV_ERR_TE_NOT_CHUNKED'],
    ['gzip, chunked is not implemented', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'TCPKV_ERR_TE_NOT_IMPLEMENTED'],
    ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'TCPKV_ERR_TE_NOT_CHUNKED'],
    ['bad chunk size', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'TCPKV_ERR_BAD_CHUNK'],
    ['chunk data too long', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n', 'TCPKV_ERR_BAD_CHUNK'],
    ['chunk size overflow', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n', 'TCPKV_ERR_BODY_TOO_LARGE'],
    ['missing Host in HTTP/1.1', 'GET / HTTP/1.1\r\n\r\n', 'TCPKV_ERR_MISSING_HOST'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'TCPKV_ERR_DUPLICATE_HOST'],
    ['space before the colon', 'GET / HTTP/1.1\r\nHost : h\r\n\r\n', 'TCPKV_ERR_BAD_HEADER'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n', 'TCPKV_ERR_OBS_FOLD'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n', 'TCPKV_ERR_BAD_HEADER'],
    ['bare CR in a value', 'GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n', 'TCPKV_ERR_MIXED_LINE_ENDINGS'],
    ['LF header line after a CRLF request line', 'GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n', 'TCPKV_ERR_MIXED_LINE_ENDINGS'],
    ['CRLF header line after an LF request line', 'GET / HTTP/1.1\nHost: h\r\n\n', 'TCPKV_ERR_MIXED_LINE_ENDINGS'],
    ['CRLF closing line after LF lines', 'GET / HTTP/1.1\nHost: h\n\r\n', 'TCPKV_ERR_MIXED_LINE_ENDINGS'],
    ['no version', 'GET /\r\n\r\n', 'TCPKV_ERR_BAD_REQUEST_LINE'],
    ['lower-case version', 'GET / http/1.1\r\nHost: h\r\n\r\n', 'TCPKV_ERR_BAD_VERSION'],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: h\r\n\r\n', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['two spaces', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 'TCPKV_ERR_BAD_TARGET'],
    ['control byte in the method', 'G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n', 'TCPKV_ERR_BAD_METHOD'],
    ['non-ASCII in the target', 'GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n', 'TCPKV_ERR_BAD_TARGET'],
    ['junk', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n', 'TCPKV_ERR_BAD_METHOD'],
    ['empty header name', 'GET / HTTP/1.1\r\n: v\r\nHost: h\r\n\r\n', 'TCPKV_ERR_BAD_HEADER'],
  ];
  for (const [name, input, code] of cases) {
    it(name, () => expect(errorOf(input)).toBe(code));
  }

  it('after an error the parser yields nothing more', () => {
    const parser = new RequestParser();
    parser.push(Buffer.from('GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n'));
    expect(parser.next()).toBeInstanceOf(ProtocolError);
    expect(parser.next()).toBe(NEED_MORE);
  });
});

describe('RequestParser: lines remembered from the last request', () => {
  const request = (host: string, extra: string) => `GET /a HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n\r\n`;

  it('a line of the same length with other bytes is parsed anew', () => {
    const results = feed([request('127.0.0.1', 'X-A: 1'), request('127.0.0.2', 'X-A: 2'), 'GET /b HTTP/1.1\r\nHost: 127.0.0.2\r\nX-A: 2\r\n\r\n']);
    expect(results.map((r) => [(r as ParsedRequest).target, (r as ParsedRequest).host, (r as ParsedRequest).headers[3]])).toEqual([
      ['/a', '127.0.0.1', '1'],
      ['/a', '127.0.0.2', '2'],
      ['/b', '127.0.0.2', '2'],
    ]);
  });

  it('a remembered line that comes back with a bad byte is refused', () => {
    expect(errorOf([request('127.0.0.1', 'X-A: 1'), request('127.0.0.1', 'X-A:\x011')])).toBe('TCPKV_ERR_BAD_HEADER');
    expect(errorOf([request('127.0.0.1', 'X-A: 1'), request('127.0.0.1', 'X\x01A: 1')])).toBe('TCPKV_ERR_BAD_HEADER');
  });

  it('the header count limit still counts remembered lines', () => {
    const limits = { ...DEFAULT_PARSER_LIMITS, maxHeaderCount: 2 };
    expect(errorOf([request('h', 'X-A: 1'), request('h', 'X-A: 1\r\nX-B: 2')], limits)).toBe('TCPKV_ERR_TOO_MANY_HEADERS');
  });
});

describe('RequestParser: limits', () => {
  const small: ParserLimits = { maxHeaderBytes: 256, maxHeaderCount: 5, maxTargetBytes: 64, maxBodyBytes: 16 };

  it('header block over the limit → 431, even when it never ends', () => {
    expect(errorOf(`GET / HTTP/1.1\r\nHost: h\r\nX: ${'a'.repeat(300)}\r\n\r\n`, small)).toBe('TCPKV_ERR_HEADERS_TOO_LARGE');
    expect(errorOf(['GET / HTTP/1.1\r\nHost: h\r\nX: ', 'a'.repeat(300)], small)).toBe('TCPKV_ERR_HEADERS_TOO_LARGE');
  });
  it('too many header lines → 431', () => {
    expect(errorOf(`GET / HTTP/1.1\r\nHost: h\r\n${'A: 1\r\n'.repeat(5)}\r\n`, small)).toBe('TCPKV_ERR_TOO_MANY_HEADERS');
  });
  it('target too long → 414, even before the line ends', () => {
    expect(errorOf(`GET /${'a'.repeat(100)} HTTP/1.1\r\nHost: h\r\n\r\n`, small)).toBe('TCPKV_ERR_TARGET_TOO_LONG');
    expect(errorOf([`GET /${'a'.repeat(200)}`], small)).toBe('TCPKV_ERR_TARGET_TOO_LONG');
  });
  it('body over the limit → 413 from the Content-Length alone', () => {
    expect(errorOf('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n', small)).toBe('TCPKV_ERR_BODY_TOO_LARGE');
  });
  it('chunked body over the limit → 413', () => {
    expect(errorOf('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nx\r\n', small)).toBe('TCPKV_ERR_BODY_TOO_LARGE');
  });
  it('a body exactly at the limit is fine', () => {
    expect(one('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n0123456789abcdef', small).body.length).toBe(16);
  });
  it('reports what it buffers and its stage', () => {
    const parser = new RequestParser();
    expect(parser.stage).toBe('idle');
    parser.push(Buffer.from('GET / HT'));
    expect(parser.next()).toBe(NEED_MORE);
    expect(parser.stage).toBe('headers');
    parser.push(Buffer.from('TP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab'));
    expect(parser.next()).toBe(NEED_MORE);
    expect(parser.stage).toBe('body');
    parser.push(Buffer.from('cde'));
    expect(parser.next()).toMatchObject({ method: 'GET' });
    expect(parser.stage).toBe('idle');
  });
});

describe('RequestParser: properties (fast-check)', () => {
  const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
  const value = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?$/);
  const requestArb = fc.record({
    method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'END', 'PRRT'),
    target: fc.stringMatching(/^\/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]{0,40}$/),
    headers: fc.array(fc.tuple(token, value), { maxLength: 8 }),
    body: fc.uint8Array({ maxLength: 200 }),
    chunked: fc.boolean(),
    lf: fc.boolean(),
    seedEnding: fc.boolean(),
  });

  function render(r: fc.RecordValue<typeof requestArb> extends infer T ? T : never): Buffer {
    const eol = r.lf ? '\n' : '\r\n';
    const headers = r.headers.filter(([n]) => !/^(host|content-length|transfer-encoding|expect)$/i.test(n));
    let head = `${r.method} ${r.target} HTTP/1.1${eol}Host: 127.0.0.1${eol}`;
    for (const [n, v] of headers) head += `${n}: ${v}${eol}`;
    const body = Buffer.from(r.body);
    if (r.chunked && !r.lf) {
      head += `Transfer-Encoding: chunked${eol}${eol}`;
      const mid = Math.floor(body.length / 2);
      const parts = [body.subarray(0, mid), body.subarray(mid)].filter((p) => p.length > 0);
      const chunks = parts.map((p) => Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
      return Buffer.concat([Buffer.from(head, 'latin1'), ...chunks, Buffer.from('0\r\n\r\n')]);
    }
    head += `Content-Length: ${body.length}${eol}${r.seedEnding || r.lf ? '\n' : '\r\n'}`;
    return Buffer.concat([Buffer.from(head, 'latin1'), body]);
  }

  it('random valid requests split at random points parse exactly as whole', () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 6 }), (requests, cutSeeds) => {
        const bytes = Buffer.concat(requests.map(render));
        const whole = feed([bytes]).map(plain);
        expect(whole).toHaveLength(requests.length);
        const cuts = [...new Set(cutSeeds.map((s) => s % bytes.length))].sort((a, b) => a - b);
        const pieces: Buffer[] = [];
        let at = 0;
        for (const cut of cuts) {
          pieces.push(bytes.subarray(at, cut));
          at = cut;
        }
        pieces.push(bytes.subarray(at));
        expect(feed(pieces).map(plain)).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('one parser for many requests (it reuses lines identical to the last request\'s) gives what a fresh parser gives', () => {
    const outcome = (r: ParseResult) => (r instanceof ProtocolError ? { error: r.code, message: r.message } : plain(r));
    fc.assert(
      fc.property(
        fc.array(requestArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
        (pool, picks, edits) => {
          const sequence = picks.map((p) => render(pool[p % pool.length]!));
          // the last one may be mutated in place: a line of the same length with one changed byte
          // must be parsed (and refused, if it is now bad), not taken for the remembered one
          const last = Buffer.from(sequence[sequence.length - 1]!);
          for (const [i, b] of edits) last[i % last.length] = b;
          sequence[sequence.length - 1] = last;
          const shared = new RequestParser();
          for (const bytes of sequence) {
            const expected = feed([bytes]).map(outcome);
            shared.push(bytes);
            const got: unknown[] = [];
            for (let r = shared.next(); r !== NEED_MORE; r = shared.next()) {
              got.push(outcome(r));
              if (r instanceof ProtocolError) break;
            }
            expect(got).toEqual(expected);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('random bytes never throw: every result is a request, an error, or a wait', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), (chunks) => {
        const results = feed(chunks.map((c) => Buffer.from(c)), { maxHeaderBytes: 512, maxHeaderCount: 10, maxTargetBytes: 128, maxBodyBytes: 256 });
        for (const r of results) expect(r instanceof ProtocolError || r === EXPECT_CONTINUE || typeof (r as ParsedRequest).method === 'string').toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('random mutations of a valid request never throw', () => {
    const base = Buffer.from(seedRequestBytes('POST', '127.0.0.1/create', 'ID: 1&Name: x'));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (edits) => {
        const mutated = Buffer.from(base);
        for (const [i, b] of edits) mutated[i] = b;
        expect(() => feed([mutated])).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });
});

describe('RequestParser: seed-shaped bodies are counted in characters', () => {
  // what the seed client sends: Content-Length is Python's len(str), in code points
  const seedBytes = (body: string, host = '127.0.0.1/create', ending = '\r\n\n') =>
    Buffer.from(`POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Type: text/html\r\nConnection: keep-alive\r\nContent-Length: ${[...body].length}\r\n${ending.slice(2)}${body}`);
  const NEXT = 'GET / HTTP/1.1\r\nHost: h\r\n\r\n';

  it.each([
    ['ASCII', 'ID: 20182793&Grade: A'],
    ['2-byte characters', 'Name: Grüße&Ville: Genève'],
    ['3-byte characters', 'Subject: 컴퓨터네트워크&이름: 김민식'],
    ['4-byte characters', 'Emoji: 😀🎉&Rare: 𠜎𝄞'],
    ['all of them mixed', 'a: é컴😀z'],
  ])('%s: the whole body, and the next request intact after it', (_name, body) => {
    const rs = feed([Buffer.concat([seedBytes(body), Buffer.from(NEXT)])]) as ParsedRequest[];
    expect(rs).toHaveLength(2);
    expect(rs[0]!.body.toString('utf8')).toBe(body);
    expect(rs[1]!.method).toBe('GET');
  });

  it('a character split across segments at every byte offset gives the same result', () => {
    const bytes = Buffer.concat([seedBytes('k: 김😀é&x: 컴퓨터'), Buffer.from(NEXT)]);
    const whole = feed([bytes]).map(plain);
    expect(whole).toHaveLength(2);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(feed([bytes.subarray(0, cut), bytes.subarray(cut)]).map(plain), `cut at ${cut}`).toEqual(whole);
    }
    expect(feed([...bytes].map((b) => Buffer.from([b]))).map(plain)).toEqual(whole);
  });

  it.each([
    ['a lone continuation byte', [0x6b, 0x3a, 0x80]],
    ['an overlong slash', [0xc0, 0xaf, 0x61]],
    ['an overlong 3-byte form', [0xe0, 0x80, 0xaf]],
    ['a surrogate', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['a byte that never starts UTF-8', [0xff, 0x61, 0x62]],
    ['a 3-byte character cut short by ASCII', [0xea, 0xb9, 0x61]],
  ])('invalid UTF-8 (%s) → TCPKV_ERR_BODY_NOT_UTF8', (_name, bytes) => {
    const head = Buffer.from('POST / HTTP/1.1\r\nHost: 127.0.0.1/create\r\nContent-Length: 3\r\n\n');
    expect(errorOf([Buffer.concat([head, Buffer.from(bytes)])])).toBe('TCPKV_ERR_BODY_NOT_UTF8');
    // and the same, one byte per segment
    expect(errorOf([head, ...bytes.map((b) => Buffer.from([b]))])).toBe('TCPKV_ERR_BODY_NOT_UTF8');
  });

  it('the body limit still counts bytes: 10 characters of 3 bytes under a 16-byte limit → 413', () => {
    const limits = { ...DEFAULT_PARSER_LIMITS, maxBodyBytes: 16 };
    expect(errorOf([seedBytes('가나다라마바사아자차')], limits)).toBe('TCPKV_ERR_BODY_TOO_LARGE');
    expect(one(seedBytes('가나다라마'), limits).body.toString()).toBe('가나다라마');
    // a Content-Length in characters over the limit is refused at once
    expect(errorOf(['POST / HTTP/1.1\r\nHost: h/create\r\nContent-Length: 17\r\n\n'], limits)).toBe('TCPKV_ERR_BODY_TOO_LARGE');
  });

  describe('every other request counts bytes', () => {
    const body = 'Subject: 컴퓨터네트워크'; // 16 characters, 30 bytes
    const chars = [...body].length;
    const firstBytes = Buffer.from(body).subarray(0, chars).toString('latin1');
    const cases: [string, string][] = [
      ['a standard request with the same bytes', `POST /create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${chars}\r\n\r\n`],
      ['target / and Host with / but closed by CRLF CRLF', `POST / HTTP/1.1\r\nHost: 127.0.0.1/create\r\nContent-Length: ${chars}\r\n\r\n`],
      ['closed by \\r\\n\\n but a Host without /', `POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${chars}\r\n\n`],
      ['closed by \\r\\n\\n, Host with /, but target /create', `POST /create HTTP/1.1\r\nHost: 127.0.0.1/create\r\nContent-Length: ${chars}\r\n\n`],
      ['all bare LF (typed into nc), target / and Host with /', `POST / HTTP/1.1\nHost: 127.0.0.1/create\nContent-Length: ${chars}\n\n`],
    ];
    it.each(cases)('%s', (_name, head) => {
      const results = feed([Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(body)])]);
      const first = results[0] as ParsedRequest;
      expect(first.body.toString('latin1')).toBe(firstBytes);
      // the 14 bytes left over are not a request
      expect(results[1]).toBeInstanceOf(ProtocolError);
    });

    it('a seed-shaped chunked body: chunk sizes are bytes', () => {
      const b = Buffer.from(body);
      const text = Buffer.concat([
        Buffer.from(`POST / HTTP/1.1\r\nHost: 127.0.0.1/create\r\nTransfer-Encoding: chunked\r\n\n${b.length.toString(16)}\r\n`),
        b,
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
      expect(one(text).body.toString()).toBe(body);
    });
  });
});

describe('RequestParser: chunk extensions (RFC 9112 §7.1.1)', () => {
  const chunked = (sizeLine: string) => `POST /create HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${sizeLine}\r\nab\r\n0\r\n\r\n`;

  it.each([
    ['a name', '2;a'],
    ['a name and a token value', '2;name=value'],
    ['several', '2;a;b=c;d="e"'],
    ['a quoted-string with spaces and an escaped quote', '2;a="x y \\" z"'],
    ['a quoted-string with obs-text', '2;a="\xe9"'],
    ['an empty quoted-string', '2;a=""'],
    ['BWS around ; and =', '2 ; a = b ;\tc'],
  ])('accepted: %s', (_name, line) => {
    expect(one(chunked(line)).body.toString()).toBe('ab');
  });

  it.each([
    ['a bare ;', '2;'],
    ['a ; after an extension', '2;a;'],
    ['no name before =', '2;=b'],
    ['= without a value', '2;a='],
    ['an unbalanced quote', '2;a="x'],
    ['an unbalanced quote ending in a backslash', '2;a="x\\'],
    ['bytes after a quoted-string', '2;a="x"y'],
    ['a space inside a token value', '2;a=b c'],
    ['a space inside a name', '2;a b'],
    ['whitespace at the end of the line', '2;a=b '],
    ['whitespace after the size alone', '2 '],
    ['a separator in a name', '2;a@b'],
    ['a control byte inside quotes', '2;a="\x01"'],
  ])('refused: %s', (_name, line) => {
    expect(errorOf(chunked(line))).toBe('TCPKV_ERR_BAD_CHUNK');
  });

  it('an unbalanced quote is refused even when the line arrives in pieces', () => {
    expect(errorOf(['POST /create HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext="val', 'ue\r\nhello\r\n0\r\n\r\n'])).toBe('TCPKV_ERR_BAD_CHUNK');
  });
});

describe('RequestParser: request lines of other protocols', () => {
  it.each([
    ['OPTIONS * RTSP/1.0', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['DESCRIBE rtsp://h/stream RTSP/1.0', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['SOURCE /mount ICE/1.0', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['INVITE sip:a@b SIP/2.0', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['PRI * HTTP/2.0', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['GET / HTTP/2.0', 'TCPKV_ERR_VERSION_NOT_SUPPORTED'],
    ['GET / HTTP/11', 'TCPKV_ERR_BAD_VERSION'],
    ['GET / http/1.1', 'TCPKV_ERR_BAD_VERSION'],
    ['GET / rtsp/1.0', 'TCPKV_ERR_BAD_VERSION'],
    ['GET / RTSP/1.0x', 'TCPKV_ERR_BAD_VERSION'],
  ] as const)('%s → %s', (line, code) => {
    const results = feed([`${line}\r\nHost: h\r\n\r\n`]);
    const last = results[results.length - 1];
    expect(last).toBeInstanceOf(ProtocolError);
    expect((last as ProtocolError).code).toBe(code);
    if (code === 'TCPKV_ERR_VERSION_NOT_SUPPORTED') expect((last as ProtocolError).status).toBe(505);
  });
});

describe('RequestParser: a chunked body is one buffer, not a piece per chunk', () => {
  it('100,000 one-byte chunks give the right body', () => {
    const n = 100_000;
    const text = `POST /create HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n${'1\r\nx\r\n'.repeat(n)}0\r\n\r\n`;
    const bytes = Buffer.from(text);
    // in 64 KiB segments, as a socket would hand them over
    const segments: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 65536) segments.push(bytes.subarray(at, at + 65536));
    const [r] = feed(segments) as ParsedRequest[];
    expect(r!.body.length).toBe(n);
    expect(r!.body.every((b) => b === 0x78)).toBe(true);
    // the body does not keep the segments alive: it lives in a buffer of its own, at most twice its size
    expect(r!.body.buffer.byteLength).toBeLessThanOrEqual(2 * n);
  });
});
