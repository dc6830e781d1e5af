// The seed's rules, and the one-key routes and pages of docs/store.md, as one function of (request,
// store, policy) → response. No sockets here; the store may be synchronous (memory) or not (log,
// etcd), and so may the answer.

import { resolveAddress, type Dialect } from '../protocol/dialect.js';
import type { ProtocolErrorCode } from '../protocol/errors.js';
import { DEFAULT_MAX_KEY_BYTES, hasControlCharacters, keyLengthRefusal, keyRefusal, readableKeyRefusal, type KeyRefusal } from '../protocol/key-grammar.js';
import type { Response } from '../protocol/response-writer.js';
import { Texts } from '../protocol/texts.js';
import { authorizeShutdown, type HostAllowList, type ShutdownPolicy } from './access.js';
import type { RouteLabel } from './events.js';
import { isUtf8 } from 'node:buffer';
import { isPromise, StoreFullError, StoreUnavailableError, UnknownCursorError, ValueTooLargeError, type CreateResult, type ListingSnapshot, type MaybePromise, type Pair, type Store } from './store/store.js';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../common/setting-names.js';

export { Texts };

/** The parts of a parsed request the rules read (a ParsedRequest fits). */
export interface RuleRequest {
  readonly method: string;
  readonly target: string;
  readonly host: string | undefined;
  readonly authorization: string | undefined;
  readonly body: Buffer;
}

export interface Policy {
  readonly allowedHosts: HostAllowList;
  readonly shutdown: ShutdownPolicy;
  /** pairs one POST /create or PUT /update may carry (413 beyond); default DEFAULT_MAX_PAIRS */
  readonly maxPairs?: number;
  /** UTF-8 bytes a key to be written may take (the key grammar); default DEFAULT_MAX_KEY_BYTES */
  readonly maxKeyBytes?: number;
}

/**
 * Pairs per request by default. A body within the 1 MiB body limit can hold ~100,000 tiny pairs, and
 * applying them is one synchronous step of the event loop (tens of ms per 10,000 pairs on a loaded
 * machine): every other connection waits for it. Bounded like etcd bounds operations per transaction.
 */
export const DEFAULT_MAX_PAIRS = numericDefault(S.maxPairs);

const ALLOWED_METHODS = 'HEAD, GET, POST, PUT, END';
const ALLOW_HEADER = [['Allow', ALLOWED_METHODS]] as const;

function text(status: number, body: string, headersOnly = false): Response {
  return headersOnly ? { status, body, headersOnly } : { status, body };
}

// ---- body: `key: value&key2: value2` -------------------------------------------------------------

export type PairsResult = { readonly pairs: Pair[] } | { readonly error: string; readonly status?: 413; readonly limit?: ProtocolErrorCode };

// Keys follow the key grammar (services/protocol/key-grammar.ts); values are text without line breaks
// or other control characters (a value holding a newline could fake an entry in the listing).
export { hasControlCharacters };

/** A key refused by the grammar, as an answer: the length rule is a limit, logged when hit. */
function keyRefused(refusal: KeyRefusal): { readonly error: string; readonly limit?: ProtocolErrorCode } {
  return refusal.rule === 'length' ? { error: refusal.text, limit: 'TCPKV_ERR_KEY_TOO_LONG' } : { error: refusal.text };
}

/** The ASCII whitespace String.prototype.trim removes: TAB, LF, VT, FF, CR, SP. */
function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** Whether body[from, to) holds a byte ≥ 0x80. */
function nonAscii(body: Buffer, from: number, to: number): boolean {
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
    if (pairs.length === maxPairs) return { error: Texts.tooManyPairs(maxPairs), status: 413 };
    from = end + 1;
  }
}

// ---- GET listing: the store's rendered slices, sent as they are ------------------------------------

const EMPTY_GET: Response = Object.freeze({ status: 200, body: Texts.emptyDb, reusable: true });
const EMPTY_HEAD: Response = Object.freeze({ status: 200, body: Texts.emptyDb, headersOnly: true, reusable: true });

function listingAnswer(snapshot: ListingSnapshot, head: boolean): Response {
  if (snapshot.count === 0) return head ? EMPTY_HEAD : EMPTY_GET;
  // the header line, then the slices (each `\nkey:value…`) streamed by the connection: never joined
  const more = { slices: snapshot.slices, bytes: snapshot.bytes };
  return head ? { status: 200, body: Texts.listingHeader, more, headersOnly: true } : { status: 200, body: Texts.listingHeader, more };
}

function listing(store: Store, head: boolean): MaybePromise<Response> {
  return guard(store.listing(), (snapshot) => listingAnswer(snapshot, head));
}

const SEED_HEAD: Response = Object.freeze({ status: 100, body: '', headersOnly: true, reusable: true });

// ---- one key at a time, and pages (docs/store.md) ----------------------------------------------------

const KV_KEY_ALLOW = [['Allow', 'GET, HEAD, PUT, DELETE']] as const;
const KV_PAGE_ALLOW = [['Allow', 'GET, HEAD']] as const;
const JSON_TYPE = 'application/json';
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
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = i + 2 < to ? HEX[text.charCodeAt(i + 1) & 0x7f]! : -1;
      const lo = i + 2 < to ? HEX[text.charCodeAt(i + 2) & 0x7f]! : -1;
      if (hi < 0 || lo < 0 || text.charCodeAt(i + 1) > 0x7f || text.charCodeAt(i + 2) > 0x7f) return undefined;
      bytes[n++] = hi * 16 + lo;
      i += 2;
    } else if (c > 0x7f) {
      return undefined; // the parser admits only ASCII targets; anything else is not ours to guess
    } else {
      bytes[n++] = plus && c === 0x2b /* + */ ? 0x20 : c;
    }
  }
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

/** `emptyKey`: the path was `/kv/`, the key route with no key (a page for GET and HEAD, 400 for writes) */
type KvRoute = { readonly kind: 'key'; readonly raw: { from: number; to: number } } | { readonly kind: 'page'; readonly query: number; readonly end: number; readonly emptyKey: boolean };

/** `/kv/<key>` or `/kv` (with or without a trailing slash), standard dialect only; else undefined. */
function kvRoute(target: string): KvRoute | undefined {
  const { from, to, query } = pathBounds(target);
  if (!target.startsWith('/kv', from)) return undefined;
  const after = from + 3;
  if (after === to || (after + 1 === to && target.charCodeAt(after) === 0x2f)) return { kind: 'page', query, end: target.length, emptyKey: after !== to };
  if (target.charCodeAt(after) !== 0x2f) return undefined; // `/kvx`: not ours
  return { kind: 'key', raw: { from: after + 1, to } };
}

function kvRequest(request: RuleRequest, route: KvRoute, store: Store, method: string, maxKeyBytes: number): MaybePromise<Response> {
  const headOnly = method === 'HEAD';
  if (route.kind === 'page') {
    // `/kv/` is the empty key to PUT and DELETE (a key is never empty); GET and HEAD read it as `/kv`
    if (route.emptyKey && (method === 'PUT' || method === 'DELETE')) return text(400, Texts.blankKey);
    if (method !== 'GET' && method !== 'HEAD') return { status: 405, body: Texts.methodNotAllowed, headers: KV_PAGE_ALLOW };
    return pageRequest(request.target, route, store, headOnly);
  }
  if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT' && method !== 'DELETE') return { status: 405, body: Texts.methodNotAllowed, headers: KV_KEY_ALLOW };
  const key = percentDecode(request.target, route.raw.from, route.raw.to);
  if (key === undefined) return text(400, Texts.badKeyEncoding, headOnly);
  // reads and deletes name any key a write could ever have stored; writes follow the whole grammar
  const refusal = method === 'PUT' ? keyRefusal(key, maxKeyBytes) : readableKeyRefusal(key);
  if (refusal !== undefined) {
    const { error, limit } = keyRefused(refusal);
    return limit === undefined ? text(400, error, headOnly) : { status: 400, body: error, limit };
  }
  if (method === 'GET' || method === 'HEAD') {
    return guard(store.get(key), (value) => (value === undefined ? text(404, Texts.noSuchKey(key), headOnly) : text(200, value, headOnly)));
  }
  if (method === 'DELETE') return guard(store.delete(key), (had) => (had ? text(200, Texts.deleted(key)) : text(404, Texts.noSuchKey(key))));
  // PUT: the body is the value, raw (it may hold `&` and `:`), decoded into a string of its own
  const body = request.body;
  if (!isUtf8(body)) return text(400, Texts.badUtf8);
  const value = body.toString(nonAscii(body, 0, body.length) ? 'utf8' : 'latin1');
  if (hasControlCharacters(value, true)) return text(400, Texts.controlCharacters);
  return guard(store.upsertAll([[key, value]]), ({ previous }) => text(200, previous[0] === undefined ? Texts.createdKey(key) : Texts.updatedKey(key)));
}

function pageRequest(target: string, route: { query: number; end: number }, store: Store, headOnly: boolean): MaybePromise<Response> {
  let prefix = '';
  let after: string | undefined;
  let limit = PAGE_LIMIT_DEFAULT;
  if (route.query >= 0) {
    const hash = target.indexOf('#', route.query);
    const end = hash >= 0 ? hash : route.end;
    for (let from = route.query + 1; from < end; ) {
      let amp = target.indexOf('&', from);
      if (amp < 0 || amp > end) amp = end;
      const eq = target.indexOf('=', from);
      const nameEnd = eq >= 0 && eq < amp ? eq : amp;
      const name = target.slice(from, nameEnd);
      if (name === 'prefix' || name === 'after' || name === 'limit') {
        const value = nameEnd === amp ? '' : percentDecode(target, nameEnd + 1, amp, true);
        if (value === undefined) return text(400, Texts.badQueryEncoding(name), headOnly);
        if (name === 'prefix') prefix = value;
        else if (name === 'after') after = value === '' ? undefined : value;
        else {
          if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 1 || Number(value) > PAGE_LIMIT_MAX) return text(400, Texts.badLimit, headOnly);
          limit = Number(value);
        }
      }
      from = amp + 1;
    }
  }
  return guard(store.page({ prefix, after, limit }), (page) => {
    let body = '{"items":[';
    const items = page.items;
    for (let i = 0; i < items.length; i++) {
      const [key, value] = items[i]!;
      body += (i === 0 ? '{"key":' : ',{"key":') + JSON.stringify(key) + ',"value":' + JSON.stringify(value) + '}';
    }
    body += '],"next":' + (page.next === undefined ? 'null' : JSON.stringify(page.next)) + '}';
    return headOnly ? { status: 200, body, contentType: JSON_TYPE, headersOnly: true } : { status: 200, body, contentType: JSON_TYPE };
  });
}

/** The route a request takes, for the metrics (a small fixed set of labels). */
export function routeOf(request: { readonly method: string; readonly target: string; readonly host: string | undefined }): RouteLabel {
  const method = request.method;
  if (method === 'END') return 'end';
  const address = resolveAddress(request.target, request.host);
  const path = address.path;
  if (address.dialect === 'standard' && path.startsWith('kv')) {
    const kv = kvRoute(request.target);
    if (kv !== undefined) return kv.kind === 'key' ? 'kv-key' : 'kv-page';
  }
  if (path === 'create') return method === 'POST' ? 'create' : 'other';
  if (path === 'update') return method === 'PUT' ? 'update' : 'other';
  if (method === 'GET') return 'listing';
  if (method === 'HEAD') return 'head';
  return 'other';
}

// ---- the rules ------------------------------------------------------------------------------------

export function handle(request: RuleRequest, store: Store, policy: Policy, peerAddress: string): MaybePromise<Response> {
  try {
    return route(request, store, policy, peerAddress);
  } catch (error) {
    // a synchronous store that fails (e.g. a log write error) fails like an asynchronous one
    return storeFailure(error);
  }
}

function route(request: RuleRequest, store: Store, policy: Policy, peerAddress: string): MaybePromise<Response> {
  const address = resolveAddress(request.target, request.host);
  const method = request.method;
  const headOnly = method === 'HEAD' && address.dialect === 'standard';

  // 1. an address that cannot be parsed
  if (!address.valid) return text(404, Texts.invalidAddress, headOnly);
  // the one-key routes and pages (docs/store.md), under /kv, in the standard dialect only
  const kv = address.dialect === 'standard' && address.path.startsWith('kv') ? kvRoute(request.target) : undefined;
  // 2. a method tcpkv does not know (END is the seed's documented extension; DELETE only under /kv)
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST' && method !== 'PUT' && method !== 'END' && (method !== 'DELETE' || kv === undefined)) {
    return { status: 405, body: Texts.methodNotAllowed, headers: kv === undefined ? ALLOW_HEADER : kv.kind === 'key' ? KV_KEY_ALLOW : KV_PAGE_ALLOW };
  }
  // 3. the Host allow-list (the seed's `host != IP` check)
  if (!policy.allowedHosts.allows(address.host)) return text(400, Texts.notAllowedHost(address.host), headOnly);

  if (method === 'END') return endRequest(request, policy, peerAddress);
  if (kv !== undefined) return kvRequest(request, kv, store, method, policy.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES);

  const path = address.path;
  // 4, 5. each write path has its own method
  if (path === 'create' && method !== 'POST') return text(404, Texts.createNeedsPost, headOnly);
  if (path === 'update' && method !== 'PUT') return text(404, Texts.updateNeedsPut, headOnly);
  // 6. HEAD: the seed answered `100 CONTINUE`; standard HTTP gets 200 with GET's headers
  if (method === 'HEAD') return headRequest(store, address.dialect);
  // 7. GET lists the DB on any path
  if (method === 'GET') return listing(store, false);
  // 8. POST / PUT anywhere but their own path
  if (path === 'create') return create(request.body, store, policy.maxPairs ?? DEFAULT_MAX_PAIRS, policy.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES);
  if (path === 'update') return update(request.body, store, policy.maxPairs ?? DEFAULT_MAX_PAIRS, policy.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES);
  return text(404, Texts.noRoute);
}

function headRequest(store: Store, dialect: Dialect): MaybePromise<Response> {
  return dialect === 'seed' ? SEED_HEAD : listing(store, true);
}

const REFUSED_END_DISABLED: Response = Object.freeze({ status: 403, body: Texts.shutdownDisabled, close: true });
const REFUSED_END_NOT_LOOPBACK: Response = Object.freeze({ status: 403, body: Texts.shutdownNotLoopback, close: true });
const REFUSED_END_BAD_TOKEN: Response = Object.freeze({ status: 403, body: Texts.shutdownBadToken, close: true });

function endRequest(request: RuleRequest, policy: Policy, peerAddress: string): Response {
  const decision = authorizeShutdown(policy.shutdown, request.authorization, peerAddress);
  if (decision.allowed) return { status: 200, body: Texts.shuttingDown, close: true, shutdown: true };
  // A refused END closes the connection: guessing tokens then costs a connection per try, instead of
  // ~10^5 tries a second pipelined on one connection.
  switch (decision.reason) {
    case 'disabled':
      return REFUSED_END_DISABLED;
    case 'not-loopback':
      return REFUSED_END_NOT_LOOPBACK;
    default:
      return REFUSED_END_BAD_TOKEN;
  }
}

function pairsError(parsed: { readonly error: string; readonly status?: 413; readonly limit?: ProtocolErrorCode }): Response {
  if (parsed.status === 413) return { status: 413, body: parsed.error, limit: 'TCPKV_ERR_TOO_MANY_PAIRS' };
  return parsed.limit === undefined ? text(400, parsed.error) : { status: 400, body: parsed.error, limit: parsed.limit };
}

function create(body: Buffer, store: Store, maxPairs: number, maxKeyBytes: number): MaybePromise<Response> {
  const parsed = parsePairs(body, maxPairs, maxKeyBytes);
  if ('error' in parsed) return pairsError(parsed);
  const pairs = parsed.pairs;
  if (pairs.length > 1) {
    // a key repeated in one body counts as existing: the seed stored the first and then refused
    const seen = new Set<string>();
    for (let i = 0; i < pairs.length; i++) {
      seen.add(pairs[i]![0]);
      if (seen.size === i) return text(400, Texts.keyExists);
    }
  }
  return guard(store.createAll(pairs), (result) => created(pairs, result));
}

function created(pairs: readonly Pair[], result: CreateResult): Response {
  if (!result.ok) return text(400, Texts.keyExists);
  let out = '';
  for (const [key, value] of pairs) out += key + ':' + value + '\n';
  return { status: 200, body: out + Texts.postOk };
}

function update(body: Buffer, store: Store, maxPairs: number, maxKeyBytes: number): MaybePromise<Response> {
  const parsed = parsePairs(body, maxPairs, maxKeyBytes);
  if ('error' in parsed) return pairsError(parsed);
  // a key repeated in one body: the last value wins, and the key is reported once
  const pairs: Pair[] = parsed.pairs.length > 1 ? [...new Map(parsed.pairs)] : parsed.pairs;
  return guard(store.upsertAll(pairs), ({ previous }) => {
    let updated = '';
    let created = '';
    pairs.forEach(([key, value], i) => {
      const old = previous[i];
      if (old === undefined) created += '\n' + key + ': ' + value;
      else updated += '\n' + key + ': ' + old + ' => ' + value;
    });
    let out = '';
    if (updated !== '') out += Texts.updatedHeader + updated + '\n';
    if (created !== '') out += Texts.createdHeader + created + '\n';
    return { status: 200, body: out + Texts.putOk };
  });
}

/** Applies `then` to a value or a promise, and turns a store failure into 503 (nothing applied). */
function guard<T>(value: MaybePromise<T>, then: (v: T) => Response): MaybePromise<Response> {
  if (!isPromise(value)) return then(value);
  return value.then(then, storeFailure);
}

function storeFailure(error: unknown): Response {
  if (error instanceof StoreUnavailableError) return text(503, error.indeterminate ? Texts.storeIndeterminate : Texts.storeUnavailable);
  // the store logged these (rate-limited); the connection counts them
  if (error instanceof StoreFullError) return { status: 507, body: error.message, limit: 'TCPKV_ERR_STORE_FULL' };
  if (error instanceof ValueTooLargeError) return { status: 413, body: Texts.valueTooLarge(error.message), limit: 'TCPKV_ERR_VALUE_TOO_LARGE' };
  if (error instanceof UnknownCursorError) return text(400, Texts.unknownCursor(error.after));
  throw error;
}
