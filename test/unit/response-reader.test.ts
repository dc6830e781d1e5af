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
});
