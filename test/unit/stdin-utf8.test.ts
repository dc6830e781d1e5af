// `put KEY -` refuses stdin that is not UTF-8 and names the first byte that is not: that finder
// against Node's own UTF-8 check, on random bytes and on the classic ill-formed sequences.

import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstNonUtf8Byte } from '../../services/client/commands.js';

describe('firstNonUtf8Byte', () => {
  it('-1 exactly when the bytes are UTF-8; otherwise the bytes before it are UTF-8 and the byte there begins none (fast-check)', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 24 }),
      fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => new Uint8Array(Buffer.from(s))),
      // valid text with one byte changed
      fc.tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([s, at, b]) => {
        const out = Buffer.from(s);
        out[at % out.length] = b;
        return new Uint8Array(out);
      }),
    );
    fc.assert(
      fc.property(bytes, (raw) => {
        const buf = Buffer.from(raw);
        const at = firstNonUtf8Byte(buf);
        expect(at === -1).toBe(isUtf8(buf));
        if (at >= 0) {
          expect(isUtf8(buf.subarray(0, at))).toBe(true);
          // no well-formed character starts there, whatever follows
          for (let width = 1; width <= 4; width++) expect(at + width <= buf.length && isUtf8(buf.subarray(at, at + width))).toBe(false);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('overlong forms, surrogates, code points past U+10FFFF, stray continuation bytes and cut characters', () => {
    for (const [hex, at] of [
      ['61c0af', 1], // overlong '/'
      ['e080af', 0], // overlong, three bytes
      ['eda080', 0], // U+D800, a surrogate
      ['f4908080', 0], // past U+10FFFF
      ['6180', 1], // a stray continuation byte
      ['61eab0', 1], // a character cut at the end
      ['ea b0 80'.replaceAll(' ', ''), -1], // 가
    ] as const) {
      expect([hex, firstNonUtf8Byte(Buffer.from(hex, 'hex'))]).toEqual([hex, at]);
    }
  });
});
