// If-Match / If-None-Match as the one-key routes read them (services/server/conditions.ts), against
// RFC 9110 §13.1.1–2: `*` alone, lists of strong and weak tags, empty list elements, several header
// lines, tags that are not versions, and what is malformed.

import { describe, expect, it } from 'vitest';
import { etagOf, readOutcome, readPreconditions, writeCondition, type Preconditions } from '../../services/server/conditions.js';

const read = (...headers: string[]) => readPreconditions(headers);
const ok = (...headers: string[]): Preconditions => {
  const p = read(...headers);
  if ('bad' in p) throw new Error(`refused: ${p.bad}`);
  return p;
};

describe('preconditions', () => {
  it('no header: no condition, and reads read', () => {
    expect(writeCondition(ok())).toEqual({ kind: 'any' });
    expect(writeCondition(ok('host', 'x', 'if-modified-since', 'y'))).toEqual({ kind: 'any' });
    expect(readOutcome(ok(), 3)).toBe('read');
    expect(readPreconditions(undefined)).toEqual({ ifMatch: undefined, ifNoneMatch: undefined });
  });

  it('If-Match: * → exists; a list → versions (strong tags only); several lines join', () => {
    expect(writeCondition(ok('if-match', '*'))).toEqual({ kind: 'exists' });
    expect(writeCondition(ok('if-match', '"7", W/"8",, "9"'))).toEqual({ kind: 'versions', versions: [7, 9] });
    expect(writeCondition(ok('if-match', '"7"', 'if-match', '"12"'))).toEqual({ kind: 'versions', versions: [7, 12] });
    // tags that are not versions of ours are valid and match nothing
    expect(writeCondition(ok('if-match', '"nope", "007", ""'))).toEqual({ kind: 'versions', versions: [] });
  });

  it('If-None-Match: * → absent; with tags, or with If-Match, a write is refused', () => {
    expect(writeCondition(ok('if-none-match', '*'))).toEqual({ kind: 'absent' });
    expect(writeCondition(ok('if-none-match', '"7"'))).toEqual({ refusal: 'none-match-tags' });
    expect(writeCondition(ok('if-match', '"7"', 'if-none-match', '*'))).toEqual({ refusal: 'both' });
  });

  it('malformed values are refused, naming the header', () => {
    expect(read('if-match', '7')).toEqual({ bad: 'If-Match' });
    expect(read('if-match', '"7", *')).toEqual({ bad: 'If-Match' });
    expect(read('if-match', '')).toEqual({ bad: 'If-Match' });
    expect(read('if-match', '"7')).toEqual({ bad: 'If-Match' });
    expect(read('if-none-match', 'w/"7"')).toEqual({ bad: 'If-None-Match' });
    expect(read('if-none-match', '"a b"')).toEqual({ bad: 'If-None-Match' });
  });

  it('reads: If-Match fails → 412 (missing key too); If-None-Match matches (weakly) → 304', () => {
    expect(readOutcome(ok('if-match', '"3"'), 3)).toBe('read');
    expect(readOutcome(ok('if-match', '"3"'), 4)).toBe('precondition-failed');
    expect(readOutcome(ok('if-match', '*'), undefined)).toBe('precondition-failed');
    expect(readOutcome(ok('if-match', 'W/"3"'), 3)).toBe('precondition-failed');
    expect(readOutcome(ok('if-none-match', 'W/"3"'), 3)).toBe('not-modified');
    expect(readOutcome(ok('if-none-match', '"2", "3"'), 3)).toBe('not-modified');
    expect(readOutcome(ok('if-none-match', '*'), 3)).toBe('not-modified');
    expect(readOutcome(ok('if-none-match', '*'), undefined)).toBe('read');
    expect(readOutcome(ok('if-none-match', '"2"'), 3)).toBe('read');
  });

  it('a version is its number in quotes', () => {
    expect(etagOf(42)).toBe('"42"');
    expect(writeCondition(ok('if-match', etagOf(9_007_199_254_740)))).toEqual({ kind: 'versions', versions: [9_007_199_254_740] });
  });
});
