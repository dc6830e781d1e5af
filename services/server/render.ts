// What the rules answer with, rendered: the Answer type (a Response plus what the request observer
// needs: a typed error code and a typed END outcome), the fixed answers, the listing, a page's JSON
// and the texts of a write. No decisions here: services/server/rules.ts decides which answer.

import { ProtocolErrors, type ProtocolErrorCode } from '../protocol/errors.js';
import type { Response } from '../protocol/response-writer.js';
import { Texts } from '../protocol/texts.js';
import type { EndOutcome } from './events.js';
import type { Change } from './store/change-feed.js';
import type { ListingSnapshot, Page, Pair } from './store/store.js';

/** A rule's answer: the response, and what it means for the logs and counters. */
export interface Answer extends Response {
  /** the request met this error (a limit is logged and counted: ProtocolErrors' `limit`) */
  readonly code?: ProtocolErrorCode;
  /** an END request: how it ended */
  readonly end?: EndOutcome;
}

export function text(status: number, body: string, headersOnly = false): Answer {
  return headersOnly ? { status, body, headersOnly } : { status, body };
}

/** A request refused with a code: the status is the code's. */
export function refused(code: ProtocolErrorCode, body: string): Answer {
  return { status: ProtocolErrors[code].status, body, code };
}

export const ALLOW_ANY = [['Allow', 'HEAD, GET, POST, PUT, END']] as const;
export const ALLOW_KV_KEY = [['Allow', 'GET, HEAD, PUT, DELETE']] as const;
export const ALLOW_KV_PAGE = [['Allow', 'GET, HEAD']] as const;
export const ALLOW_KV_WATCH = [['Allow', 'GET']] as const;

export function methodNotAllowed(allow: readonly (readonly [string, string])[]): Answer {
  return { status: 405, body: Texts.methodNotAllowed, headers: allow };
}

// ---- the listing: the store's rendered slices, sent as they are ------------------------------------

const EMPTY_GET: Answer = Object.freeze({ status: 200, body: Texts.emptyDb, reusable: true });
const EMPTY_HEAD: Answer = Object.freeze({ status: 200, body: Texts.emptyDb, headersOnly: true, reusable: true });

export function listingAnswer(snapshot: ListingSnapshot, head: boolean): Answer {
  if (snapshot.count === 0) return head ? EMPTY_HEAD : EMPTY_GET;
  // the header line, then the slices (each `\nkey:value…`) streamed by the connection: never joined
  const more = { slices: snapshot.slices, bytes: snapshot.bytes };
  return head ? { status: 200, body: Texts.listingHeader, more, headersOnly: true } : { status: 200, body: Texts.listingHeader, more };
}

/** The seed's answer to HEAD. */
export const SEED_HEAD: Answer = Object.freeze({ status: 100, body: '', headersOnly: true, reusable: true });

// ---- END --------------------------------------------------------------------------------------------

// A refused END closes the connection: guessing tokens then costs a connection per try, instead of
// ~10^5 tries a second pipelined on one connection.
export const END_ANSWERS: Readonly<Record<EndOutcome, Answer>> = Object.freeze({
  accepted: Object.freeze({ status: 200, body: Texts.shuttingDown, close: true, shutdown: true, end: 'accepted' }),
  disabled: Object.freeze({ status: 403, body: Texts.shutdownDisabled, close: true, end: 'disabled' }),
  'not-loopback': Object.freeze({ status: 403, body: Texts.shutdownNotLoopback, close: true, end: 'not-loopback' }),
  'bad-token': Object.freeze({ status: 403, body: Texts.shutdownBadToken, close: true, end: 'bad-token' }),
});

// ---- pages and writes -------------------------------------------------------------------------------

const JSON_TYPE = 'application/json';

/** `{"items":[{"key":…,"value":…,"version":…},…],"next":…}` */
export function pageAnswer(page: Page, head: boolean): Answer {
  let body = '{"items":[';
  const items = page.items;
  const versions = page.versions;
  for (let i = 0; i < items.length; i++) {
    const [key, value] = items[i]!;
    body += (i === 0 ? '{"key":' : ',{"key":') + JSON.stringify(key) + ',"value":' + JSON.stringify(value) + ',"version":' + String(versions[i]) + '}';
  }
  body += '],"next":' + (page.next === undefined ? 'null' : JSON.stringify(page.next)) + '}';
  return head ? { status: 200, body, contentType: JSON_TYPE, headersOnly: true } : { status: 200, body, contentType: JSON_TYPE };
}

/** POST /create's answer: every pair, then the seed's OK line. */
export function createdAnswer(pairs: readonly Pair[]): Answer {
  let out = '';
  for (const [key, value] of pairs) out += key + ':' + value + '\n';
  return { status: 200, body: out + Texts.postOk };
}

/** PUT /update's answer: the changed keys (old => new), then the new ones, then the seed's OK line. */
export function updatedAnswer(pairs: readonly Pair[], previous: readonly (string | undefined)[]): Answer {
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
}

// A change's JSON, made once however many watchers send it (a write fans out to every watcher).
const CHANGE_JSON = new WeakMap<Change, string>();

/** `{"key":…,"value":…,"version":…}`, or `{"key":…,"deleted":true,"version":…}` for a removal. */
export function changeJson(c: Change): string {
  let json = CHANGE_JSON.get(c);
  if (json === undefined) {
    json = '{"key":' + JSON.stringify(c.key) + (c.value === undefined ? ',"deleted":true' : ',"value":' + JSON.stringify(c.value)) + ',"version":' + String(c.version) + '}';
    CHANGE_JSON.set(c, json);
  }
  return json;
}

/** A watch's answer: `{"changes":[change,…],"revision":…}` (see changeJson). */
export function changesAnswer(changes: readonly Change[], revision: number): Answer {
  let body = '{"changes":[';
  for (let i = 0; i < changes.length; i++) body += (i === 0 ? '' : ',') + changeJson(changes[i]!);
  body += '],"revision":' + String(revision) + '}';
  return { status: 200, body, contentType: JSON_TYPE };
}

/** 410: the changes after `since` are no longer held; `oldest` is the earliest `since` served. */
export function watchGoneAnswer(since: number, oldest: number): Answer {
  const body = JSON.stringify({ error: Texts.watchGone(since, oldest), oldest });
  return { status: 410, body, contentType: JSON_TYPE, code: 'TCPKV_ERR_WATCH_GONE' };
}
