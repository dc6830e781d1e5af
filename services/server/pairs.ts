// The body grammar of POST /create and PUT /update: `key: value&key2: value2`. Pure decoding: bytes
// in, pairs or the first refusal out; the rules decide what a refusal is answered with. Keys follow
// the key grammar (services/protocol/key-grammar.ts); values are text without line breaks or other
// control characters (a value holding a newline could fake an entry in the listing).

import { isUtf8 } from 'node:buffer';
import type { ProtocolErrorCode } from '../protocol/errors.js';
import { DEFAULT_MAX_KEY_BYTES, hasControlCharacters, keyLengthRefusal, type KeyRefusal } from '../protocol/key-grammar.js';
import { Texts } from '../protocol/texts.js';
import type { Pair } from './store/store.js';

/** A refusal: its text and, for a limit, its code (the status comes from the code; 400 without one). */
export interface Refusal {
  readonly error: string;
  readonly code?: ProtocolErrorCode;
}

export type PairsResult = { readonly pairs: Pair[] } | Refusal;

/** A key refused by the grammar: the length rule is a limit, logged when hit. */
export function keyRefused(refusal: KeyRefusal): Refusal {
  return refusal.rule === 'length' ? { error: refusal.text, code: 'TCPKV_ERR_KEY_TOO_LONG' } : { error: refusal.text };
}

/** The ASCII whitespace String.prototype.trim removes: TAB, LF, VT, FF, CR, SP. */
function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** Whether body[from, to) holds a byte ≥ 0x80. */
export function nonAscii(body: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (body[i]! >= 0x80) return true;
  return false;
}

/**
 * body[from, to) trimmed, as a string of its own: decoded from those bytes alone (never a slice of a
 * larger string, which would keep the whole body alive as long as the key or value is stored).
 */
function trimmedText(body: Buffer, from: number, to: number): string {
  while (from < to && isAsciiSpace(body[from]!)) from++;
  while (to > from && isAsciiSpace(body[to - 1]!)) to--;
  if (from === to) return '';
  if (!nonAscii(body, from, to)) return body.toString('latin1', from, to);
  const text = body.toString('utf8', from, to);
  const trimmed = text.trim(); // Unicode spaces too (U+3000, U+00A0, …), as the seed's strip() did
  if (trimmed.length === text.length) return text;
  // a slice of `text` would keep its trimmed-off spaces alive: copy it
  return Buffer.from(trimmed, 'utf8').toString('utf8');
}

/**
 * Splits a body into pairs: `&` between pairs, each split at its FIRST `:` (values may contain `:`),
 * key and value trimmed. The first bad pair decides the error, as in the seed. One pass over the
 * bytes; every key and value is decoded from its own bytes.
 */
export function parsePairs(body: Buffer, maxPairs = Infinity, maxKeyBytes = DEFAULT_MAX_KEY_BYTES): PairsResult {
  if (!isUtf8(body)) return { error: Texts.badUtf8 };
  const pairs: Pair[] = [];
  const n = body.length;
  for (let from = 0; ; ) {
    let end = from;
    let colon = -1;
    for (; end < n; end++) {
      const c = body[end]!;
      if (c === 0x26 /* & */) break;
      if (c === 0x3a /* : */ && colon < 0) colon = end;
    }
    if (colon < 0) {
      // a blank body has no colon at all: say so rather than "not valid"
      return { error: pairs.length === 0 && body.toString('utf8').trim() === '' ? Texts.noContent : Texts.badFormat };
    }
    const key = trimmedText(body, from, colon);
    if (key === '') return { error: Texts.blankKey };
    const value = trimmedText(body, colon + 1, end);
    if (hasControlCharacters(key, false) || hasControlCharacters(value, true)) return { error: Texts.controlCharacters };
    // the rest of the key grammar holds by the body's format (split at the first `:`, trimmed)
    const refusal = keyLengthRefusal(key, maxKeyBytes);
    if (refusal !== undefined) return keyRefused(refusal);
    pairs.push([key, value]);
    if (end === n) return { pairs };
    if (pairs.length === maxPairs) return { error: Texts.tooManyPairs(maxPairs), code: 'TCPKV_ERR_TOO_MANY_PAIRS' };
    from = end + 1;
  }
}
