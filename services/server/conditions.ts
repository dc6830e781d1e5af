// Preconditions of the one-key routes (RFC 9110 §13): If-Match and If-None-Match read into what the
// store decides (a Condition) or what a read answers (412, 304). Pure decoding; the rules decide.
//
// A version's entity tag is its number in quotes, `"42"`. Tags are compared strongly for If-Match (a
// weak tag, `W/"42"`, never matches) and weakly for If-None-Match on reads, as §13.1.1–2 say; a tag
// that is not one of ours is valid and matches no version. Writes take If-None-Match only as `*`
// (create only): "write unless it is still at version V" is If-Match's job turned around, and no
// client needs it; refusing it is clearer than half-supporting it.

import type { Condition } from './store/store.js';

/** The entity tag of a version. */
export function etagOf(version: number): string {
  return `"${version}"`;
}

/** One header's list: `*`, or entity tags. */
type TagList = { readonly any: true } | { readonly any: false; readonly strong: readonly number[]; readonly weak: readonly number[] };

/** The request's If-Match and If-None-Match, as read (undefined: the header is absent). */
export interface Preconditions {
  readonly ifMatch: TagList | undefined;
  readonly ifNoneMatch: TagList | undefined;
}

export const NO_PRECONDITIONS: Preconditions = Object.freeze({ ifMatch: undefined, ifNoneMatch: undefined });

/** A header value that is not `*` or a list of entity tags: its name, for the 400. */
export interface BadPrecondition {
  readonly bad: 'If-Match' | 'If-None-Match';
}

// entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text
const ETAG = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/;
const VERSION = /^[1-9][0-9]{0,15}$/;

function readList(values: readonly string[]): TagList | undefined {
  const strong: number[] = [];
  const weak: number[] = [];
  let any = false;
  let items = 0;
  for (const value of values) {
    for (const raw of value.split(',')) {
      const item = raw.trim();
      if (item === '') continue; // empty list elements are allowed (RFC 9110 §5.6.1)
      items++;
      if (item === '*') {
        any = true;
        continue;
      }
      const m = ETAG.exec(item);
      if (m === null) return undefined;
      // a tag that is not a version of ours is kept out of the lists: it matches nothing
      if (!VERSION.test(m[2]!)) continue;
      (m[1] === undefined ? strong : weak).push(Number(m[2]));
    }
  }
  // `*` stands alone (§13.1.1: "*" / #entity-tag); a list with nothing in it is not a value
  if (any) return items === 1 ? { any: true } : undefined;
  if (items === 0) return undefined;
  return { any: false, strong, weak };
}

/** Reads If-Match and If-None-Match from a request's flattened header list (names lower-cased). */
export function readPreconditions(headers: readonly string[] | undefined): Preconditions | BadPrecondition {
  if (headers === undefined) return NO_PRECONDITIONS;
  let ifMatch: string[] | undefined;
  let ifNoneMatch: string[] | undefined;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === 'if-match') (ifMatch ??= []).push(headers[i + 1]!);
    else if (name === 'if-none-match') (ifNoneMatch ??= []).push(headers[i + 1]!);
  }
  if (ifMatch === undefined && ifNoneMatch === undefined) return NO_PRECONDITIONS;
  const match = ifMatch === undefined ? undefined : readList(ifMatch);
  if (ifMatch !== undefined && match === undefined) return { bad: 'If-Match' };
  const noneMatch = ifNoneMatch === undefined ? undefined : readList(ifNoneMatch);
  if (ifNoneMatch !== undefined && noneMatch === undefined) return { bad: 'If-None-Match' };
  return { ifMatch: match, ifNoneMatch: noneMatch };
}

/** Why a write's preconditions cannot be a Condition: both headers, or If-None-Match with tags. */
export type WriteConditionRefusal = 'both' | 'none-match-tags';

/** The Condition a PUT or DELETE carries. */
export function writeCondition(p: Preconditions): Condition | { readonly refusal: WriteConditionRefusal } {
  if (p.ifMatch !== undefined && p.ifNoneMatch !== undefined) return { refusal: 'both' };
  if (p.ifNoneMatch !== undefined) return p.ifNoneMatch.any ? { kind: 'absent' } : { refusal: 'none-match-tags' };
  if (p.ifMatch === undefined) return { kind: 'any' };
  if (p.ifMatch.any) return { kind: 'exists' };
  return { kind: 'versions', versions: p.ifMatch.strong };
}

/** What a read's preconditions make of it, given the key's version (undefined: no such key). */
export function readOutcome(p: Preconditions, current: number | undefined): 'read' | 'precondition-failed' | 'not-modified' {
  if (p.ifMatch !== undefined) {
    const holds = current !== undefined && (p.ifMatch.any || p.ifMatch.strong.includes(current));
    if (!holds) return 'precondition-failed';
  }
  if (p.ifNoneMatch !== undefined && current !== undefined) {
    if (p.ifNoneMatch.any || p.ifNoneMatch.strong.includes(current) || p.ifNoneMatch.weak.includes(current)) return 'not-modified';
  }
  return 'read';
}
