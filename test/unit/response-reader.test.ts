import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResponseFormatError, ResponseReader } from '../../services/protocol/response-reader.js';
import { wireBuffer, writeResponse } from '../../services/protocol/response-writer.js';

const feedAll = (reader: ResponseReader, text: string | Buffer, step = 1) => {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text;
  for (let i = 0; i < bytes.length; i += step) {
    const r = reader.push(bytes.subarray(i, i + step));
    if (r) return { r, at: i + step };
  }
  return undefined;
};

describe('ResponseReader', () => {
  it('reads what the writer writes, byte by byte, and not one byte early', () => {
    const bytes = wireBuffer(writeResponse({ status: 200, body: '키: 값\nmore' }, true));
    const got = feedAll(new ResponseReader(false), bytes)!;
    expect(got.r).toMatchObject({ status: 200, reason: 'OK', body: '키: 값\nmore', seedFraming: false });
    expect(got.at).toBe(bytes.length);
  });
  it('seed framing: `\\r\\n\\n` and a Content-Length in characters', () => {
    const text = 'HTTP/1.1 200 OK\r\nHost: 127.0.0.1/\r\nContent-Length: 4\r\n\n가나다라';
    const got = feedAll(new ResponseReader(false), text)!;
    expect(got.r).toMatchObject({ body: '가나다라', seedFraming: true });
    expect(got.at).toBe(Buffer.byteLength(text));
  });
  it('HEAD answers have no body whatever Content-Length says; so have seed 100s with CL 0', () => {
    expect(new ResponseReader(true).push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n'))).toMatchObject({ status: 200, body: '' });
    expect(new ResponseReader(true).push(Buffer.from('HTTP/1.1 100 CONTINUE\r\nContent-Length: 0\r\n\n'))).toMatchObject({ status: 100, body: '' });
  });
  it('no Content-Length: the body runs to EOF', () => {
    const reader = new ResponseReader(false);
    expect(reader.push(Buffer.from('HTTP/1.0 200 OK\r\n\r\nabc'))).toBeUndefined();
    expect(reader.end()).toMatchObject({ body: 'abc' });
  });
  it('nothing at all before EOF → undefined (a server that closed without answering)', () => {
    expect(new ResponseReader(false).end()).toBeUndefined();
  });
  it('junk and truncation are errors, not hangs', () => {
    expect(() => new ResponseReader(false).push(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'))).toThrow(ResponseFormatError);
    const r = new ResponseReader(false);
    r.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    expect(() => r.end()).toThrow(/before the body was complete/);
  });
  it('any split of the bytes gives the answer the bytes in one piece give (fast-check)', () => {
    const answer = fc.record({
      body: fc.string({ unit: 'grapheme', maxLength: 40 }),
      framing: fc.constantFrom('standard', 'seed', 'eof', 'head'),
      trailing: fc.constantFrom('', 'HTTP/1.1 200 OK\r\n'),
    });
    fc.assert(
      fc.property(answer, fc.array(fc.nat(), { maxLength: 12 }), ({ body, framing, trailing }, cuts) => {
        const bytes = Buffer.from(
          framing === 'seed'
            ? `HTTP/1.1 200 OK\r\nContent-Length: ${[...body].length}\r\n\n${body}${trailing}`
            : framing === 'eof'
              ? `HTTP/1.0 200 OK\r\nX: y\r\n\r\n${body}`
              : `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}${trailing}`,
        );
        const head = framing === 'head';
        const whole = new ResponseReader(head);
        const expected = whole.push(bytes) ?? whole.end();
        expect(expected?.body).toBe(head ? '' : body);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const reader = new ResponseReader(head);
        let got: ReturnType<ResponseReader['push']>;
        let from = 0;
        for (const to of [...points, bytes.length]) {
          got ??= reader.push(bytes.subarray(from, to));
          from = to;
        }
        expect(got ?? reader.end()).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it('reading is linear: 8 MiB in 1,024 chunks of 8 KiB costs about what it costs in 8 chunks of 1 MiB (CPU time, both framings)', () => {
    // Same bytes, same strings, same garbage: only the number of chunks differs. A reader that joins
    // what it holds on every chunk copies 1,024 times as much in small chunks (4 GiB instead of 32 MiB).
    const cpuMs = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const body = 'value 0123456789 가나다 é\n'.repeat(8 * 2 ** 20 / 32);
    const answers = {
      standard: Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
      seed: Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${[...body].length}\r\n\n${body}`),
    };
    const read = (bytes: Buffer, chunk: number) => {
      const pieces: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += chunk) pieces.push(bytes.subarray(at, at + chunk));
      const t0 = cpuMs();
      const reader = new ResponseReader(false);
      let response: ReturnType<ResponseReader['push']>;
      for (const piece of pieces) response ??= reader.push(piece);
      const ms = cpuMs() - t0;
      expect(response?.body.length).toBe(body.length);
      return ms;
    };
    const figures: string[] = [];
    for (const [framing, bytes] of Object.entries(answers)) {
      let small = Infinity;
      let large = Infinity;
      // best of three, alternating: CPU time is not stretched by other processes, but GC varies
      for (let round = 0; round < 3; round++) {
        small = Math.min(small, read(bytes, 8 * 1024));
        large = Math.min(large, read(bytes, 2 ** 20));
      }
      figures.push(`${framing} ${small.toFixed(0)} / ${large.toFixed(0)} ms`);
      expect(small / Math.max(large, 1), `${framing}: ${figures.at(-1)}`).toBeLessThan(3);
    }
    console.log(`8 MiB in 8 KiB / 1 MiB chunks: ${figures.join(', ')}`);
  }, 120_000);
});
