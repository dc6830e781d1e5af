// The key grammar: what a key may hold, one definition for every write route (`PUT /kv/<key>`,
// `POST /create`, `PUT /update`), both dialects, the client's checks before it sends, and
// docs/store.md. Each refusal names the rule it applies.
//
//   not blank              the empty key has no route (`/kv/` is the page route)
//   no control characters  C0 (a tab only inside values), DEL, C1, U+2028, U+2029: the listing is one
//                          `key:value` per line, and a line break could fake an entry
//   no `:`                 it ends a key in the listing and in a `key: value` body, so a key holding
//                          one could pass for another key's entry (`home` + `https://…`)
//   no space around it     a body's keys are trimmed, so ` a` could be written by one route and never
//                          named by another; refused rather than escaped: no escaping would keep the
//                          seed's `key:value` listing readable by the seed's own clients
//   at most maxKeyBytes    UTF-8 bytes (TCPKV_MAX_KEY_BYTES), bounded so that every route can carry
//                          the key: `/kv/<key>` and a page's `prefix=` and `after=`, percent-encoded
//                          at three characters a byte, fit in TCPKV_MAX_TARGET_BYTES (see
//                          targetBytesForKeys)

import { Texts } from './texts.js';

export const DEFAULT_MAX_KEY_BYTES = 1024;

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex -- as above
const CONTROL_BUT_TAB = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/;

/** Whether `s` holds a character keys (or, with `value`, values) cannot hold. */
export function hasControlCharacters(s: string, value: boolean): boolean {
  return (value ? CONTROL_BUT_TAB : CONTROL).test(s);
}

export type KeyRule = 'blank' | 'control' | 'colon' | 'space' | 'length';

export interface KeyRefusal {
  readonly rule: KeyRule;
  /** the answer's text, naming the rule */
  readonly text: string;
}

const REFUSALS: Readonly<Record<Exclude<KeyRule, 'length'>, KeyRefusal>> = Object.freeze({
  blank: { rule: 'blank', text: Texts.blankKey },
  control: { rule: 'control', text: Texts.controlCharacters },
  colon: { rule: 'colon', text: Texts.keyColon },
  space: { rule: 'space', text: Texts.keySpaces },
});

/**
 * The rule a key to be written breaks, or undefined. Reads and deletes check less (see
 * readableKeyRefusal): a key stored before a rule existed can still be read and removed.
 */
export function keyRefusal(key: string, maxKeyBytes = DEFAULT_MAX_KEY_BYTES): KeyRefusal | undefined {
  const basic = readableKeyRefusal(key);
  if (basic !== undefined) return basic;
  if (key.includes(':')) return REFUSALS.colon;
  if (key.trim().length !== key.length) return REFUSALS.space;
  return keyLengthRefusal(key, maxKeyBytes);
}

/**
 * The byte limit alone: all a `key: value` body's key needs besides the control check, since the
 * body's format already keeps `:` out of it, trims it and refuses it blank.
 */
export function keyLengthRefusal(key: string, maxKeyBytes = DEFAULT_MAX_KEY_BYTES): KeyRefusal | undefined {
  // a UTF-16 unit is at most 3 UTF-8 bytes: count bytes only when the limit could be passed
  if (key.length * 3 > maxKeyBytes && Buffer.byteLength(key, 'utf8') > maxKeyBytes) return { rule: 'length', text: Texts.keyTooLong(maxKeyBytes) };
  return undefined;
}

/** What GET, HEAD and DELETE /kv/<key> refuse: a blank key, control characters. */
export function readableKeyRefusal(key: string): KeyRefusal | undefined {
  if (key.trim() === '') return REFUSALS.blank;
  if (CONTROL.test(key)) return REFUSALS.control;
  return undefined;
}

/** `/kv?prefix=` + `&after=` + `&limit=1000`: what a page target holds besides its two keys. */
const PAGE_QUERY_OVERHEAD = 29;

/**
 * Request-target bytes needed to carry keys of maxKeyBytes on every route: a page query whose
 * `prefix` and `after` are both that long, percent-encoded (three characters a byte at worst).
 */
export function targetBytesForKeys(maxKeyBytes: number): number {
  return 6 * maxKeyBytes + PAGE_QUERY_OVERHEAD;
}

/** The longest key every route can carry within `maxTargetBytes` (at least 1), at most `preferred`. */
export function keyBytesForTarget(maxTargetBytes: number, preferred = DEFAULT_MAX_KEY_BYTES): number {
  return Math.max(1, Math.min(preferred, Math.floor((maxTargetBytes - PAGE_QUERY_OVERHEAD) / 6)));
}
