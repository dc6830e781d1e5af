// SPEC §3, the seed's rules, as one function of (request, store, policy) → response. No sockets here;
// the store may be synchronous (memory) or not (log, etcd), and so may the answer.

import { resolveAddress, type Dialect } from '../protocol/dialect.js';
import type { Response } from '../protocol/response-writer.js';
import { Texts } from '../protocol/texts.js';
import { authorizeShutdown, type HostAllowList, type ShutdownPolicy } from './access.js';
import { isPromise, StoreUnavailableError, type CreateResult, type ListingSnapshot, type MaybePromise, type Pair, type Store } from './store/store.js';

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
}

const ALLOWED_METHODS = 'HEAD, GET, POST, PUT, END';
const ALLOW_HEADER = [['Allow', ALLOWED_METHODS]] as const;

function text(status: number, body: string, headersOnly = false): Response {
  return headersOnly ? { status, body, headersOnly } : { status, body };
}

// ---- body: `key: value&key2: value2` -------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true });

export type PairsResult = { readonly pairs: Pair[] } | { readonly error: string };

/**
 * Splits a body into pairs: `&` between pairs, each split at its FIRST `:` (values may contain `:`),
 * key and value trimmed. The first bad pair decides the error, as in the seed.
 */
export function parsePairs(body: Buffer): PairsResult {
  let textBody: string;
  try {
    textBody = utf8.decode(body);
  } catch {
    return { error: Texts.badUtf8 };
  }
  const pairs: Pair[] = [];
  // one pass over the text, part by part (no intermediate array of parts)
  for (let from = 0; ; ) {
    const amp = textBody.indexOf('&', from);
    const end = amp < 0 ? textBody.length : amp;
    const colon = textBody.indexOf(':', from);
    if (colon < 0 || colon > end) {
      // a blank body has no colon at all: say so rather than "not valid"
      return { error: pairs.length === 0 && textBody.trim() === '' ? Texts.noContent : Texts.badFormat };
    }
    const key = textBody.slice(from, colon).trim();
    if (key === '') return { error: Texts.blankKey };
    pairs.push([key, textBody.slice(colon + 1, end).trim()]);
    if (amp < 0) return { pairs };
    from = amp + 1;
  }
}

// ---- GET listing, rendered once per store revision --------------------------------------------------

// One Response object per store revision for GET (and for standard HEAD), so that unchanged data is
// rendered once and, within a second, serialised once (see writeResponse).
interface ListingAnswers {
  readonly revision: number;
  readonly get: Response;
  readonly head: Response;
}
const listingCache = new WeakMap<Store, ListingAnswers>();

// SCAFFOLD: the snapshot's slices joined into one string; issue 13 streams them instead.
function renderListing(snapshot: ListingSnapshot): string {
  if (snapshot.count === 0) return Texts.emptyDb;
  return Texts.listingHeader + snapshot.slices.join('');
}

function listingAnswers(body: string, revision: number): ListingAnswers {
  return {
    revision,
    get: { status: 200, body, reusable: true },
    head: { status: 200, body, headersOnly: true, reusable: true },
  };
}

function listing(store: Store, head: boolean): MaybePromise<Response> {
  const revision = store.revision;
  if (revision !== undefined) {
    const cached = listingCache.get(store);
    if (cached !== undefined && cached.revision === revision) return head ? cached.head : cached.get;
  }
  const entries = store.listing();
  if (isPromise(entries)) {
    return entries.then((e) => {
      const body = renderListing(e);
      return head ? { status: 200, body, headersOnly: true } : { status: 200, body };
    }, storeFailure);
  }
  const answers = listingAnswers(renderListing(entries), revision ?? -1);
  if (revision !== undefined) listingCache.set(store, answers);
  return head ? answers.head : answers.get;
}

const SEED_HEAD: Response = Object.freeze({ status: 100, body: '', headersOnly: true, reusable: true });

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
  // 2. a method tcpkv does not know (END is the seed's documented extension)
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST' && method !== 'PUT' && method !== 'END') {
    return { status: 405, body: Texts.methodNotAllowed, headers: ALLOW_HEADER };
  }
  // 3. the Host allow-list (the seed's `host != IP` check)
  if (!policy.allowedHosts.allows(address.host)) return text(400, Texts.notAllowedHost(address.host), headOnly);

  if (method === 'END') return endRequest(request, policy, peerAddress);

  const path = address.path;
  // 4, 5. each write path has its own method
  if (path === 'create' && method !== 'POST') return text(404, Texts.createNeedsPost, headOnly);
  if (path === 'update' && method !== 'PUT') return text(404, Texts.updateNeedsPut, headOnly);
  // 6. HEAD: the seed answered `100 CONTINUE`; standard HTTP gets 200 with GET's headers
  if (method === 'HEAD') return headRequest(store, address.dialect);
  // 7. GET lists the DB on any path
  if (method === 'GET') return listing(store, false);
  // 8. POST / PUT anywhere but their own path
  if (path === 'create') return create(request.body, store);
  if (path === 'update') return update(request.body, store);
  return text(404, Texts.noRoute);
}

function headRequest(store: Store, dialect: Dialect): MaybePromise<Response> {
  return dialect === 'seed' ? SEED_HEAD : listing(store, true);
}

function endRequest(request: RuleRequest, policy: Policy, peerAddress: string): Response {
  const decision = authorizeShutdown(policy.shutdown, request.authorization, peerAddress);
  if (decision.allowed) return { status: 200, body: Texts.shuttingDown, close: true, shutdown: true };
  switch (decision.reason) {
    case 'disabled':
      return text(403, Texts.shutdownDisabled);
    case 'not-loopback':
      return text(403, Texts.shutdownNotLoopback);
    default:
      return text(403, Texts.shutdownBadToken);
  }
}

function create(body: Buffer, store: Store): MaybePromise<Response> {
  const parsed = parsePairs(body);
  if ('error' in parsed) return text(400, parsed.error);
  const pairs = parsed.pairs;
  if (pairs.length > 1) {
    // a key repeated in one body counts as existing: the seed stored the first and then refused
    const seen = new Set<string>();
    for (const [key] of pairs) {
      if (seen.has(key)) return text(400, Texts.keyExists);
      seen.add(key);
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

function update(body: Buffer, store: Store): MaybePromise<Response> {
  const parsed = parsePairs(body);
  if ('error' in parsed) return text(400, parsed.error);
  // a key repeated in one body: the last value wins, and the key is reported once
  const pairs: Pair[] = [...new Map(parsed.pairs)];
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
  throw error;
}
