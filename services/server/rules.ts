// The seed's rules, and the one-key routes and pages of docs/store.md: what each request is answered
// with, given the route it matched (services/server/routes.ts), the store and the policy. Decisions
// only: decoding is in pairs.ts and targets.ts, rendering in render.ts, a store's failure in
// store-answers.ts. No sockets here; the store may be synchronous (memory) or not (log, etcd), and so
// may the answer.

import type { Address } from '../protocol/dialect.js';
import { DEFAULT_MAX_KEY_BYTES, hasControlCharacters, keyRefusal, readableKeyRefusal } from '../protocol/key-grammar.js';
import { Texts } from '../protocol/texts.js';
import { authorizeShutdown, type HostAllowList, type ShutdownPolicy } from './access.js';
import { isUtf8 } from 'node:buffer';
import { keyRefused, nonAscii, parsePairs, type Refusal } from './pairs.js';
import { ALLOW_ANY, ALLOW_KV_KEY, ALLOW_KV_PAGE, ALLOW_KV_WATCH, changesAnswer, createdAnswer, watchGoneAnswer, END_ANSWERS, listingAnswer, methodNotAllowed, pageAnswer, refused, SEED_HEAD, text, updatedAnswer, type Answer } from './render.js';
import { guard } from './store-answers.js';
import { conditionHolds, MAX_TTL_MS, MIN_TTL_MS, type Condition, type MaybePromise, type Pair, type Store, type Versioned } from './store/store.js';
import { etagOf, readPreconditions, readOutcome, writeCondition } from './conditions.js';
import { keyQuery, pageQuery, percentDecode, watchQuery, type KvRoute, type WatchRequest } from './targets.js';
import type { ChangeFeed } from './store/change-feed.js';
import { WatchStream } from './watch-stream.js';
import type { DrainSignal } from './drain-signal.js';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../common/setting-names.js';

export { Texts };

/** The parts of a parsed request the rules read (a ParsedRequest fits). */
export interface RuleRequest {
  readonly method: string;
  readonly target: string;
  readonly host: string | undefined;
  readonly authorization: string | undefined;
  readonly body: Buffer;
  /** header names lower-cased and values, flattened (the one-key routes read If-Match / If-None-Match) */
  readonly headers?: readonly string[];
  /** the request's HTTP version (a watch stream needs 1.1's chunked coding) */
  readonly version?: '1.0' | '1.1';
}

export interface Policy {
  readonly allowedHosts: HostAllowList;
  readonly shutdown: ShutdownPolicy;
  /** pairs one POST /create or PUT /update may carry (413 beyond); default DEFAULT_MAX_PAIRS */
  readonly maxPairs?: number;
  /** UTF-8 bytes a key to be written may take (the key grammar); default DEFAULT_MAX_KEY_BYTES */
  readonly maxKeyBytes?: number;
  /** longest a watch waits for a change (its `wait` is capped to it); default DEFAULT_WATCH_MAX_WAIT_MS */
  readonly watchMaxWaitMs?: number;
  /** set by the server: begun once it drains, when waiting watches answer at once */
  readonly draining?: DrainSignal;
}

export const DEFAULT_WATCH_MAX_WAIT_MS = numericDefault(S.watchMaxWaitMs);

/**
 * Pairs per request by default. A body within the 1 MiB body limit can hold ~100,000 tiny pairs, and
 * applying them is one synchronous step of the event loop (tens of ms per 10,000 pairs on a loaded
 * machine): every other connection waits for it. Bounded like etcd bounds operations per transaction.
 */
export const DEFAULT_MAX_PAIRS = numericDefault(S.maxPairs);

/** What a route's rule is given: the request, where it is addressed, and the server's store and policy. */
export interface RuleCall {
  readonly request: RuleRequest;
  readonly address: Address;
  /** the `/kv` route, standard dialect only */
  readonly kv: KvRoute | undefined;
  readonly store: Store;
  readonly policy: Policy;
  readonly peer: string;
}

/** A HEAD answer of the standard dialect has no body (the seed's HEAD is its own rule). */
function headOnly(call: RuleCall): boolean {
  return call.request.method === 'HEAD' && call.address.dialect === 'standard';
}

/**
 * The checks every route shares, in the seed's order: an address that cannot be parsed (1), a method
 * tcpkv does not know (2: END is the seed's documented extension; DELETE only under /kv), a Host
 * outside the allow-list (3, the seed's `host != IP`). Undefined: the route's own rule decides.
 */
export function admission(call: RuleCall): Answer | undefined {
  const { address, kv } = call;
  const method = call.request.method;
  if (!address.valid) return text(404, Texts.invalidAddress, headOnly(call));
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST' && method !== 'PUT' && method !== 'END' && (method !== 'DELETE' || kv === undefined)) {
    return methodNotAllowed(kv === undefined ? ALLOW_ANY : kv.kind === 'key' ? ALLOW_KV_KEY : kv.kind === 'watch' ? ALLOW_KV_WATCH : ALLOW_KV_PAGE);
  }
  if (!call.policy.allowedHosts.allows(address.host)) return text(400, Texts.notAllowedHost(address.host), headOnly(call));
  return undefined;
}

// ---- the seed's routes ------------------------------------------------------------------------------

/** GET lists the DB on any path. */
export function listingRule(call: RuleCall): MaybePromise<Answer> {
  return guard(call.store.listing(), (snapshot) => listingAnswer(snapshot, false));
}

/** HEAD: the seed answered `100 CONTINUE`; standard HTTP gets 200 with GET's headers. */
export function headRule(call: RuleCall): MaybePromise<Answer> {
  if (call.address.dialect === 'seed') return SEED_HEAD;
  return guard(call.store.listing(), (snapshot) => listingAnswer(snapshot, true));
}

/** Each write path has its own method. */
export function createNeedsPostRule(call: RuleCall): Answer {
  return text(404, Texts.createNeedsPost, headOnly(call));
}

export function updateNeedsPutRule(call: RuleCall): Answer {
  return text(404, Texts.updateNeedsPut, headOnly(call));
}

/** POST / PUT anywhere but their own path. */
export function noRouteRule(): Answer {
  return text(404, Texts.noRoute);
}

export function endRule(call: RuleCall): Answer {
  const decision = authorizeShutdown(call.policy.shutdown, call.request.authorization, call.peer);
  if (decision.allowed) return END_ANSWERS.accepted;
  // no token at all is answered like a wrong one
  return END_ANSWERS[decision.reason === 'disabled' || decision.reason === 'not-loopback' ? decision.reason : 'bad-token'];
}

function refusalAnswer(refusal: Refusal, headOnly = false): Answer {
  return refusal.code === undefined ? text(400, refusal.error, headOnly) : refused(refusal.code, refusal.error);
}

export function createRule(call: RuleCall): MaybePromise<Answer> {
  const policy = call.policy;
  const parsed = parsePairs(call.request.body, policy.maxPairs ?? DEFAULT_MAX_PAIRS, policy.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES);
  if ('error' in parsed) return refusalAnswer(parsed);
  const pairs = parsed.pairs;
  if (pairs.length > 1) {
    // a key repeated in one body counts as existing: the seed stored the first and then refused
    const seen = new Set<string>();
    for (let i = 0; i < pairs.length; i++) {
      seen.add(pairs[i]![0]);
      if (seen.size === i) return text(400, Texts.keyExists);
    }
  }
  return guard(call.store.createAll(pairs), (result) => (result.ok ? createdAnswer(pairs) : text(400, Texts.keyExists)));
}

export function updateRule(call: RuleCall): MaybePromise<Answer> {
  const policy = call.policy;
  const parsed = parsePairs(call.request.body, policy.maxPairs ?? DEFAULT_MAX_PAIRS, policy.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES);
  if ('error' in parsed) return refusalAnswer(parsed);
  // a key repeated in one body: the last value wins, and the key is reported once
  const pairs: Pair[] = parsed.pairs.length > 1 ? [...new Map(parsed.pairs)] : parsed.pairs;
  return guard(call.store.upsertAll(pairs), ({ previous }) => updatedAnswer(pairs, previous));
}

// ---- one key at a time, and pages (docs/store.md) ----------------------------------------------------

export function kvKeyRule(call: RuleCall): MaybePromise<Answer> {
  const { request, store } = call;
  const method = request.method;
  const route = call.kv as KvRoute & { kind: 'key' };
  const head = method === 'HEAD';
  if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT' && method !== 'DELETE') return methodNotAllowed(ALLOW_KV_KEY);
  const key = percentDecode(request.target, route.from, route.to);
  if (key === undefined) return text(400, Texts.badKeyEncoding, head);
  // reads and deletes name any key a write could ever have stored; writes follow the whole grammar
  const refusal = method === 'PUT' ? keyRefusal(key, call.policy.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES) : readableKeyRefusal(key);
  if (refusal !== undefined) return refusalAnswer(keyRefused(refusal), head);
  const preconditions = readPreconditions(request.headers);
  if ('bad' in preconditions) return badCondition(Texts.badCondition(preconditions.bad), head);
  if (method === 'GET' || method === 'HEAD') {
    return guard(store.getVersioned(key), (found) => {
      const outcome = readOutcome(preconditions, found?.version);
      if (outcome === 'precondition-failed') return preconditionFailed(key, found?.version, head);
      if (found === undefined) return text(404, Texts.noSuchKey(key), head);
      const headers = readHeaders(found);
      if (outcome === 'not-modified') return { status: 304, body: '', headers, headersOnly: true };
      return head ? { status: 200, body: found.value, headers, headersOnly: true } : { status: 200, body: found.value, headers };
    });
  }
  const condition = writeCondition(preconditions);
  if ('refusal' in condition) return badCondition(condition.refusal === 'both' ? Texts.conditionBoth : Texts.noneMatchTags, false);
  if (method === 'DELETE') {
    return guard(store.deleteKey(key, condition), (result) => {
      if (result.ok) return { status: 200, body: Texts.deleted(key), headers: [['Tcpkv-Revision', String(result.version)]] };
      // nothing to delete where the condition allowed it (none, or If-None-Match: *): 404
      return missingOrFailed(key, condition, result.current);
    });
  }
  // PUT: the body is the value, raw (it may hold `&` and `:`), decoded into a string of its own
  const body = request.body;
  if (!isUtf8(body)) return text(400, Texts.badUtf8);
  const value = body.toString(nonAscii(body, 0, body.length) ? 'utf8' : 'latin1');
  if (hasControlCharacters(value, true)) return text(400, Texts.controlCharacters);
  const query = keyQuery(request.target, route);
  if ('badEncoding' in query) return text(400, Texts.badQueryEncoding(query.badEncoding));
  if ('badTtl' in query) return text(400, Texts.badTtl(MIN_TTL_MS / 1000, MAX_TTL_MS / 1000));
  return guard(store.putKey(key, value, condition, query.ttlMs), (result) => {
    if (!result.ok) return preconditionFailed(key, result.current, false);
    return { status: 200, body: result.created ? Texts.createdKey(key) : Texts.updatedKey(key), headers: [['ETag', etagOf(result.version)]] };
  });
}

/** A read's headers: the key's ETag, and when it expires (ISO 8601 UTC) if it does. */
function readHeaders(found: Versioned): readonly (readonly [string, string])[] {
  const etag = ['ETag', etagOf(found.version)] as const;
  return found.expiresAt === undefined ? [etag] : [etag, ['Tcpkv-Expires-At', new Date(found.expiresAt).toISOString()]];
}

/** 412 with the version found as its ETag (none: there was no such key); nothing was applied. */
function preconditionFailed(key: string, current: number | undefined, head: boolean): Answer {
  const body = Texts.preconditionFailed(key, current);
  const headers = current === undefined ? undefined : ([['ETag', etagOf(current)]] as const);
  return { status: 412, body, code: 'TCPKV_ERR_PRECONDITION_FAILED', ...(headers && { headers }), ...(head && { headersOnly: true }) };
}

function badCondition(body: string, head: boolean): Answer {
  return { status: 400, body, code: 'TCPKV_ERR_BAD_CONDITION', ...(head && { headersOnly: true }) };
}

/** A delete that removed nothing: 404 when its condition held (the key is simply not there), else 412. */
function missingOrFailed(key: string, condition: Condition, current: number | undefined): Answer {
  return current === undefined && conditionHolds(condition, undefined) ? text(404, Texts.noSuchKey(key)) : preconditionFailed(key, current, false);
}

export function kvPageRule(call: RuleCall): MaybePromise<Answer> {
  const method = call.request.method;
  const route = call.kv as KvRoute & { kind: 'page' };
  // `/kv/` is the empty key to PUT and DELETE (a key is never empty); GET and HEAD read it as `/kv`
  if (route.emptyKey && (method === 'PUT' || method === 'DELETE')) return text(400, Texts.blankKey);
  if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(ALLOW_KV_PAGE);
  const head = method === 'HEAD';
  const page = pageQuery(call.request.target, route);
  if ('badLimit' in page) return text(400, Texts.badLimit, head);
  if ('badEncoding' in page) return text(400, Texts.badQueryEncoding(page.badEncoding), head);
  return guard(call.store.page(page), (result) => pageAnswer(result, head));
}

// ---- watches (docs/store.md, Watching changes) --------------------------------------------------------

/** Changes one watch answer may carry, in bytes (about; a single write's changes come whole). */
const WATCH_ANSWER_BYTES = 1024 * 1024;

export function kvWatchRule(call: RuleCall): MaybePromise<Answer> {
  if (call.request.method !== 'GET') return methodNotAllowed(ALLOW_KV_WATCH);
  const route = call.kv as KvRoute & { kind: 'watch' };
  const query = watchQuery(call.request.target, route);
  if ('badEncoding' in query) return text(400, Texts.badQueryEncoding(query.badEncoding));
  if ('badParameter' in query) return text(400, Texts.badWatchParameter(query.badParameter));
  const feed = call.store.changes;
  if (query.stream) {
    if (call.request.version === '1.0') return text(400, Texts.watchStreamNeeds11);
    const since = query.since ?? feed.revision;
    if (since < feed.oldest) return watchGoneAnswer(since, feed.oldest);
    return { status: 200, body: '', contentType: NDJSON_TYPE, headers: NO_CACHE, stream: new WatchStream(feed, query, since, call.policy.draining), close: true };
  }
  const maxWaitMs = call.policy.watchMaxWaitMs ?? DEFAULT_WATCH_MAX_WAIT_MS;
  return watch(feed, query, Math.min(query.waitMs, maxWaitMs), call.policy.draining);
}

const NDJSON_TYPE = 'application/x-ndjson';
const NO_CACHE = [['Cache-Control', 'no-cache']] as const;

/** Reads the feed; while there is nothing under the prefix, waits for the next change, up to waitMs. */
async function watch(feed: ChangeFeed, query: WatchRequest, waitMs: number, draining: DrainSignal | undefined): Promise<Answer> {
  const until = performance.now() + waitMs;
  let since = query.since ?? feed.revision;
  for (;;) {
    const read = feed.read(since, query.prefix, query.limit, WATCH_ANSWER_BYTES);
    if ('gone' in read) return watchGoneAnswer(since, read.gone);
    const left = until - performance.now();
    if (read.changes.length > 0 || left <= 0 || draining?.done === true) return changesAnswer(read.changes, read.next);
    since = read.next;
    await (draining === undefined ? feed.changed(left) : Promise.race([feed.changed(left), draining.promise]));
  }
}
