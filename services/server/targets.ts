// Request targets of the standard dialect: percent decoding, where the path lies, the `/kv` routes'
// match, a page's query (`prefix`, `after`, `limit`), a watch's, and a key's (`ttl`). Pure decoding: the
// rules decide the answers.

import { MAX_TTL_MS, MIN_TTL_MS, type PageRequest } from './store/store.js';

export const PAGE_LIMIT_DEFAULT = 100;
export const PAGE_LIMIT_MAX = 1000;

const HEX = new Int8Array(128).fill(-1);
for (let c = 0; c <= 9; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Percent-decodes text[from, to) into UTF-8 bytes and decodes those (`plus`: `+` is a space, as in
 * query strings). Undefined for a bad escape or bytes that are not UTF-8. The result is always a
 * fresh string of its own.
 */
export function percentDecode(text: string, from = 0, to = text.length, plus = false): string | undefined {
  const bytes = Buffer.allocUnsafe(to - from);
  let n = 0;
  let high = 0; // the decoded bytes OR-ed: below 0x80, they are ASCII
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = i + 2 < to ? HEX[text.charCodeAt(i + 1) & 0x7f]! : -1;
      const lo = i + 2 < to ? HEX[text.charCodeAt(i + 2) & 0x7f]! : -1;
      if (hi < 0 || lo < 0 || text.charCodeAt(i + 1) > 0x7f || text.charCodeAt(i + 2) > 0x7f) return undefined;
      high |= bytes[n++] = hi * 16 + lo;
      i += 2;
    } else if (c > 0x7f) {
      return undefined; // the parser admits only ASCII targets; anything else is not ours to guess
    } else {
      bytes[n++] = plus && c === 0x2b /* + */ ? 0x20 : c;
    }
  }
  // ASCII is UTF-8 as it is: no validating decoder needed
  if (high < 0x80) return bytes.toString('latin1', 0, n);
  try {
    return strictUtf8.decode(bytes.subarray(0, n));
  } catch {
    return undefined;
  }
}

/** Where a standard request target's path starts and ends (origin-form or absolute-form). */
function pathBounds(target: string): { from: number; to: number; query: number } {
  let from = 0;
  if (target.charCodeAt(0) !== 0x2f) {
    const scheme = target.indexOf('://');
    const slash = scheme < 0 ? -1 : target.indexOf('/', scheme + 3);
    from = slash < 0 ? target.length : slash;
  }
  let to = target.length;
  const hash = target.indexOf('#', from);
  if (hash >= 0) to = hash;
  const q = target.indexOf('?', from);
  const query = q >= 0 && q < to ? q : -1;
  if (query >= 0) to = query;
  return { from, to, query };
}

/**
 * A `/kv` route: one key (the raw, still encoded key is target[from, to); `query` is where its query's
 * `?` is, -1 without one), or a page (`emptyKey`: the path was `/kv/`, the key route with no key — a
 * page for GET and HEAD, 400 for writes).
 */
export type KvRoute =
  | { readonly kind: 'key'; readonly from: number; readonly to: number; readonly query: number }
  | { readonly kind: 'page'; readonly query: number; readonly end: number; readonly emptyKey: boolean }
  | { readonly kind: 'watch'; readonly query: number; readonly end: number };

/** `/kv/<key>` or `/kv` (with or without a trailing slash), standard dialect only; else undefined. */
export function kvRoute(target: string): KvRoute | undefined {
  const { from, to, query } = pathBounds(target);
  if (!target.startsWith('/kv', from)) return undefined;
  const after = from + 3;
  if (after === to || (after + 1 === to && target.charCodeAt(after) === 0x2f)) {
    if (query >= 0 && hasParameter(target, query, 'watch')) return { kind: 'watch', query, end: target.length };
    return { kind: 'page', query, end: target.length, emptyKey: after !== to };
  }
  if (target.charCodeAt(after) !== 0x2f) return undefined; // `/kvx`: not ours
  return { kind: 'key', from: after + 1, to, query };
}

/** One `name[=value]` of a query: the name, and where its raw value lies (undefined: no `=`). */
interface QueryParameter {
  readonly name: string;
  readonly value: { readonly from: number; readonly to: number } | undefined;
}

/** The parameters of the query that starts at `query` (the `?`) and ends at `end` or a `#`. */
function* queryParameters(target: string, query: number, end: number): Generator<QueryParameter> {
  const hash = target.indexOf('#', query);
  const stop = hash >= 0 && hash < end ? hash : end;
  for (let from = query + 1; from < stop; ) {
    let amp = target.indexOf('&', from);
    if (amp < 0 || amp > stop) amp = stop;
    const eq = target.indexOf('=', from);
    const nameEnd = eq >= 0 && eq < amp ? eq : amp;
    yield { name: target.slice(from, nameEnd), value: nameEnd === amp ? undefined : { from: nameEnd + 1, to: amp } };
    from = amp + 1;
  }
}

/** A parameter's value, percent-decoded (`+` a space); '' without one; undefined for a bad escape. */
function decodedValue(target: string, p: QueryParameter): string | undefined {
  return p.value === undefined ? '' : percentDecode(target, p.value.from, p.value.to, true);
}

/** Whether the query starting at `query` (the `?`) names parameter `name`, with or without a value. */
function hasParameter(target: string, query: number, name: string): boolean {
  for (const p of queryParameters(target, query, target.length)) if (p.name === name) return true;
  return false;
}

/** A query parameter that could not be read: `limit` out of range, or a bad escape in `name`. */
export type PageQueryRefusal = { readonly badLimit: true } | { readonly badEncoding: string };

/** The page a `/kv` query asks for (unknown parameters are ignored), or why it cannot be read. */
export function pageQuery(target: string, route: { readonly query: number; readonly end: number }): PageRequest | PageQueryRefusal {
  let prefix = '';
  let after: string | undefined;
  let limit = PAGE_LIMIT_DEFAULT;
  if (route.query >= 0) {
    for (const p of queryParameters(target, route.query, route.end)) {
      if (p.name !== 'prefix' && p.name !== 'after' && p.name !== 'limit') continue;
      const value = decodedValue(target, p);
      if (value === undefined) return { badEncoding: p.name };
      if (p.name === 'prefix') prefix = value;
      else if (p.name === 'after') after = value === '' ? undefined : value;
      else {
        if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 1 || Number(value) > PAGE_LIMIT_MAX) return { badLimit: true };
        limit = Number(value);
      }
    }
  }
  return { prefix, after, limit };
}
/** `GET /kv?watch`: changes after `since` under `prefix`, waiting up to `waitMs` for one. */
export interface WatchRequest {
  readonly prefix: string;
  /** undefined: from now (the store's revision when the request arrives) */
  readonly since: number | undefined;
  readonly waitMs: number;
  /** changes one answer carries at most (a write's changes come whole) */
  readonly limit: number;
  /** `stream`: one chunked answer of NDJSON lines for as long as the client stays */
  readonly stream: boolean;
}

export const WATCH_WAIT_DEFAULT_MS = 30_000;

/** A watch query that cannot be read: which parameter. */
export type WatchQueryRefusal = { readonly badParameter: 'since' | 'wait' | 'limit' } | { readonly badEncoding: string };

/**
 * The watch a `/kv?watch` query asks for (unknown parameters are ignored): `prefix`, `since` (a
 * revision), `wait` (seconds, decimals allowed), `limit` (1..1000), `stream`.
 */
export function watchQuery(target: string, route: { readonly query: number; readonly end: number }): WatchRequest | WatchQueryRefusal {
  let prefix = '';
  let since: number | undefined;
  let waitMs = WATCH_WAIT_DEFAULT_MS;
  let limit = PAGE_LIMIT_MAX;
  let stream = false;
  for (const p of queryParameters(target, route.query, route.end)) {
    if (p.name === 'stream') stream = true;
    if (p.name !== 'prefix' && p.name !== 'since' && p.name !== 'wait' && p.name !== 'limit') continue;
    const value = decodedValue(target, p);
    if (value === undefined) return { badEncoding: p.name };
    if (p.name === 'prefix') prefix = value;
    else if (p.name === 'since') {
      if (!/^(0|[1-9][0-9]{0,15})$/.test(value)) return { badParameter: 'since' };
      since = Number(value);
    } else if (p.name === 'wait') {
      if (!/^[0-9]{1,7}(\.[0-9]{1,3})?$/.test(value)) return { badParameter: 'wait' };
      waitMs = Math.round(Number(value) * 1000);
    } else {
      if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 1 || Number(value) > PAGE_LIMIT_MAX) return { badParameter: 'limit' };
      limit = Number(value);
    }
  }
  return { prefix, since, waitMs, limit, stream };
}

/** A `/kv/<key>` query that cannot be read: `ttl` out of range or not a number, or a bad escape. */
export type KeyQueryRefusal = { readonly badTtl: true } | { readonly badEncoding: string };

/**
 * What a `/kv/<key>` query asks of a PUT (unknown parameters are ignored): `ttl`, a whole number of
 * seconds from MIN_TTL_MS to MAX_TTL_MS, as ms; undefined: the key does not expire.
 */
export function keyQuery(target: string, route: { readonly query: number }): { readonly ttlMs: number | undefined } | KeyQueryRefusal {
  let ttlMs: number | undefined;
  if (route.query >= 0) {
    for (const p of queryParameters(target, route.query, target.length)) {
      if (p.name !== 'ttl') continue;
      const value = decodedValue(target, p);
      if (value === undefined) return { badEncoding: p.name };
      if (!/^[0-9]{1,12}$/.test(value)) return { badTtl: true };
      ttlMs = Number(value) * 1000;
      if (ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) return { badTtl: true };
    }
  }
  return { ttlMs };
}
