// The key grammar (services/protocol/key-grammar.ts) as properties: every key it admits is carried
// unchanged by every route — a `key: value` body (unless it holds `&`, the pair separator), a
// `/kv/<key>` target, a page's prefix and after —
// within the target size the grammar promises; every key it refuses is refused by the rules with the
// same text.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keyBytesForTarget, keyRefusal, targetBytesForKeys } from '../../services/protocol/key-grammar.js';
import { parsePairs } from '../../services/server/pairs.js';
import { percentDecode } from '../../services/server/targets.js';

const keyChar = fc.oneof(
  fc.constantFrom('a', 'Z', '/', '&', '%', '+', '?', '#', '=', ' ', ':', '\t', '\n', '\u3000', '\u00a0', '가', '🚀', '\u2028', '\u0085'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const key = fc.array(keyChar, { minLength: 0, maxLength: 40 }).map((cs) => cs.join(''));

describe('key grammar', () => {
  it('an admitted key survives a body pair, a /kv/<key> target and a page query, within targetBytesForKeys', () => {
    const max = 64;
    fc.assert(
      fc.property(key, (k) => {
        if (keyRefusal(k, max) !== undefined) return;
        // `&` separates a body's pairs: such a key is written and named through /kv/<key> only
        if (!k.includes('&')) expect(parsePairs(Buffer.from(`${k}: v&other: w`), Infinity, max)).toEqual({ pairs: [[k, 'v'], ['other', 'w']] });
        const path = `/kv/${encodeURIComponent(k)}`;
        expect(percentDecode(path, 4)).toBe(k);
        const query = `/kv?prefix=${encodeURIComponent(k)}&after=${encodeURIComponent(k)}&limit=1000`;
        expect(query.length).toBeLessThanOrEqual(targetBytesForKeys(max));
        expect(path.length).toBeLessThanOrEqual(targetBytesForKeys(max));
      }),
      { numRuns: 3000 },
    );
  });

  it('a refused key is refused by the body route too, with the same text (or cannot be written in a body at all)', () => {
    fc.assert(
      fc.property(key, (k) => {
        const refusal = keyRefusal(k, 16);
        if (refusal === undefined || k.includes(':') || k.includes('&') || k.trim() !== k) return; // a body cannot even spell those keys
        const parsed = parsePairs(Buffer.from(`${k}: v`), Infinity, 16);
        expect(parsed).toMatchObject({ error: refusal.text });
      }),
      { numRuns: 3000 },
    );
  });

  it('the longest key a target limit carries, and its round trip', () => {
    expect(keyBytesForTarget(8192)).toBe(1024);
    expect(keyBytesForTarget(4096)).toBe(677);
    expect(keyBytesForTarget(16)).toBe(1);
    for (const target of [64, 1000, 4096, 6173]) expect(targetBytesForKeys(keyBytesForTarget(target))).toBeLessThanOrEqual(target);
  });
});
