// The route table: each row is (label, match, rule). A request is matched once; the row it matched
// gives both the metrics label and the rule that answers it. Rows are tried in order, and a row
// matches by data (method, path, `/kv` route kind), so matching is one small loop with no callbacks.

import { resolveAddress } from '../protocol/dialect.js';
import type { RouteLabel } from './events.js';
import type { Answer } from './render.js';
import { admission, createNeedsPostRule, createRule, endRule, headRule, kvKeyRule, kvPageRule, kvWatchRule, listingRule, noRouteRule, updateNeedsPutRule, updateRule, type Policy, type RuleCall, type RuleRequest } from './rules.js';
import { storeFailure } from './store-answers.js';
import type { MaybePromise, Store } from './store/store.js';
import { kvRoute, type KvRoute } from './targets.js';

export interface RouteRow {
  /** the metrics label of every request this row matches */
  readonly label: RouteLabel;
  /** matches only this method (undefined: any) */
  readonly method: string | undefined;
  /** matches only this path, without its leading `/` (undefined: any) */
  readonly path: string | undefined;
  /** matches only this kind of `/kv` route (undefined: any request, `/kv` or not) */
  readonly kv: KvRoute['kind'] | undefined;
  readonly rule: (call: RuleCall) => MaybePromise<Answer>;
}

/** A row; every row has every field, so matching reads one shape of object. */
function row(label: RouteLabel, match: { method?: string; path?: string; kv?: KvRoute['kind'] }, rule: RouteRow['rule']): RouteRow {
  return Object.freeze({ label, method: match.method, path: match.path, kv: match.kv, rule });
}

/** The routes, first match wins; the last row matches everything. */
export const ROUTES: readonly RouteRow[] = Object.freeze([
  row('end', { method: 'END' }, endRule),
  row('kv-key', { kv: 'key' }, kvKeyRule),
  row('kv-page', { kv: 'page' }, kvPageRule),
  row('kv-watch', { kv: 'watch' }, kvWatchRule),
  row('create', { path: 'create', method: 'POST' }, createRule),
  row('other', { path: 'create' }, createNeedsPostRule),
  row('update', { path: 'update', method: 'PUT' }, updateRule),
  row('other', { path: 'update' }, updateNeedsPutRule),
  row('listing', { method: 'GET' }, listingRule),
  row('head', { method: 'HEAD' }, headRule),
  row('other', {}, noRouteRule),
]);

/** A request matched to its row, with what its rule is given. */
export interface RouteCall extends RuleCall {
  readonly row: RouteRow;
}

/** Matches a request to its row (once: the label and the rule come from this one match). */
export function matchRoute(request: RuleRequest, store: Store, policy: Policy, peer: string): RouteCall {
  const address = resolveAddress(request.target, request.host);
  // the one-key routes and pages (docs/store.md), under /kv, in the standard dialect only
  const kv = address.dialect === 'standard' && address.path.startsWith('kv') ? kvRoute(request.target) : undefined;
  return { request, address, kv, store, policy, peer, row: rowFor(request.method, address.path, kv?.kind) };
}

// The last match, checked first: a client sends the same request again and again, and the parser
// hands out the very same method and path strings for a repeated request line.
let lastMethod: string | undefined;
let lastPath: string | undefined;
let lastKind: KvRoute['kind'] | undefined;
let lastRow: RouteRow = ROUTES[ROUTES.length - 1]!;

/** The first row that matches. */
function rowFor(method: string, path: string, kind: KvRoute['kind'] | undefined): RouteRow {
  if (method === lastMethod && path === lastPath && kind === lastKind) return lastRow;
  let row = ROUTES[ROUTES.length - 1]!;
  for (const candidate of ROUTES) {
    if ((candidate.kv === undefined || candidate.kv === kind) && (candidate.method === undefined || candidate.method === method) && (candidate.path === undefined || candidate.path === path)) {
      row = candidate;
      break;
    }
  }
  lastMethod = method;
  lastPath = path;
  lastKind = kind;
  lastRow = row;
  return row;
}

/** Answers a matched request: the shared checks, then the row's rule. */
export function runRoute(call: RouteCall): MaybePromise<Answer> {
  try {
    return admission(call) ?? call.row.rule(call);
  } catch (error) {
    // a synchronous store that fails (e.g. a log write error) fails like an asynchronous one
    return storeFailure(error);
  }
}

/** Matches and answers one request. */
export function handle(request: RuleRequest, store: Store, policy: Policy, peer: string): MaybePromise<Answer> {
  return runRoute(matchRoute(request, store, policy, peer));
}
