// SPEC §3 as one table of cases, run (hono-style) through every implementation: the pure rules and
// a real socket, in both dialects, against every store. Each case may seed the store first and says
// what GET must list afterwards, which is how all-or-nothing is checked.

import { Texts } from '../../services/protocol/texts.js';

export interface RuleCase {
  readonly name: string;
  /** a POST /create body applied before the case */
  readonly setup?: string;
  readonly method: string;
  /** undefined = an address the client cannot parse (`?/?` in the seed dialect) */
  readonly path: string | undefined;
  readonly body?: string | Buffer;
  /** host named in the request; default 127.0.0.1 */
  readonly host?: string;
  readonly status: number | { readonly seed: number; readonly standard: number };
  /** the whole body, exactly */
  readonly body_is?: string;
  /** texts the body contains */
  readonly contains?: readonly string[];
  /** the GET listing after the case */
  readonly listing?: string;
}

const listing = (...lines: string[]) => (lines.length === 0 ? Texts.emptyDb : [Texts.listingHeader, ...lines].join('\n'));

export const RULE_CASES: readonly RuleCase[] = [
  { name: 'unparseable address → 404', method: 'GET', path: undefined, status: 404, body_is: Texts.invalidAddress },
  { name: 'unknown method → 405', method: 'PRRT', path: '', status: 405, body_is: Texts.methodNotAllowed },
  { name: 'DELETE is not a tcpkv method → 405', method: 'DELETE', path: '', status: 405, body_is: Texts.methodNotAllowed },
  { name: 'host not allowed → 400', method: 'GET', path: '', host: '127.0.5.1', status: 400, body_is: 'Not allowed host: 127.0.5.1' },
  { name: 'host check runs before the path rules', method: 'POST', path: 'create', host: 'evil.example', body: 'a: 1', status: 400, body_is: 'Not allowed host: evil.example', listing: listing() },
  { name: 'localhost is allowed by default', method: 'GET', path: '', host: 'localhost', status: 200, body_is: Texts.emptyDb },
  { name: 'GET /create → 404', method: 'GET', path: 'create', status: 404, body_is: Texts.createNeedsPost },
  { name: 'PUT /create → 404', method: 'PUT', path: 'create', body: 'a: 1', status: 404, body_is: Texts.createNeedsPost, listing: listing() },
  { name: 'GET /update → 404', method: 'GET', path: 'update', status: 404, body_is: Texts.updateNeedsPut },
  { name: 'POST /update → 404', method: 'POST', path: 'update', body: 'a: 1', status: 404, body_is: Texts.updateNeedsPut, listing: listing() },
  { name: 'HEAD → 100 (seed) / 200 (standard)', method: 'HEAD', path: '', status: { seed: 100, standard: 200 } },
  { name: 'GET on an empty DB', method: 'GET', path: '', status: 200, body_is: Texts.emptyDb },
  { name: 'GET lists in insertion order', setup: 'b: 2&a: 1&c: 3', method: 'GET', path: '', status: 200, body_is: listing('b:2', 'a:1', 'c:3') },
  { name: 'GET on any other path lists too', setup: 'k: v', method: 'GET', path: 'anything', status: 200, body_is: listing('k:v') },
  { name: 'POST elsewhere → 404 naming /create and /update', method: 'POST', path: 'other', body: 'a: 1', status: 404, body_is: Texts.noRoute, listing: listing() },
  { name: 'PUT elsewhere → 404', method: 'PUT', path: 'other', body: 'a: 1', status: 404, body_is: Texts.noRoute, listing: listing() },
  { name: 'POST success lists the pairs', method: 'POST', path: 'create', body: 'ID: 20182793&Subject: Computer_Network&Grade: A', status: 200, body_is: `ID:20182793\nSubject:Computer_Network\nGrade:A\n${Texts.postOk}`, listing: listing('ID:20182793', 'Subject:Computer_Network', 'Grade:A') },
  { name: 'POST with an empty body', method: 'POST', path: 'create', body: '', status: 400, body_is: Texts.noContent },
  { name: 'POST with a blank body', method: 'POST', path: 'create', body: '  \t ', status: 400, body_is: Texts.noContent },
  { name: 'POST pair without a colon', method: 'POST', path: 'create', body: 'middle_exam70', status: 400, body_is: Texts.badFormat },
  { name: 'POST blank key', method: 'POST', path: 'create', body: ': 95', status: 400, body_is: Texts.blankKey },
  { name: 'POST is all or nothing: a bad later pair stores nothing', method: 'POST', path: 'create', body: 'a: 1&b: 2&c', status: 400, body_is: Texts.badFormat, listing: listing() },
  { name: 'POST an existing key stores nothing of the body', setup: 'a: 1', method: 'POST', path: 'create', body: 'z: 26&a: 9', status: 400, body_is: Texts.keyExists, listing: listing('a:1') },
  { name: 'POST a key twice in one body', method: 'POST', path: 'create', body: 'a: 1&a: 2', status: 400, body_is: Texts.keyExists, listing: listing() },
  { name: 'values split at the FIRST colon (URLs survive)', method: 'POST', path: 'create', body: 'home: http://example.com:8080/a?b=c', status: 200, listing: listing('home:http://example.com:8080/a?b=c') },
  { name: 'keys and values are trimmed', method: 'POST', path: 'create', body: '  spaced key  :   spaced value  ', status: 200, listing: listing('spaced key:spaced value') },
  { name: 'UTF-8 keys and values', method: 'POST', path: 'create', body: '이름: 김민식&emoji: 🚀', status: 200, listing: listing('이름:김민식', 'emoji:🚀') },
  { name: 'invalid UTF-8 → 400, nothing stored', method: 'POST', path: 'create', body: Buffer.from([0x61, 0x3a, 0x20, 0xff, 0xfe]), status: 400, body_is: Texts.badUtf8, listing: listing() },
  {
    name: 'PUT updates and creates, naming the new keys (the seed printed old values)', setup: 'ID: 20182793&Grade: A', method: 'PUT', path: 'update', body: 'ID: 20180434&final_exam: 90', status: 200,
    body_is: `${Texts.updatedHeader}\nID: 20182793 => 20180434\n${Texts.createdHeader}\nfinal_exam: 90\n${Texts.putOk}`,
    listing: listing('ID:20180434', 'Grade:A', 'final_exam:90'),
  },
  { name: 'PUT only new keys', method: 'PUT', path: 'update', body: 'n: 1', status: 200, body_is: `${Texts.createdHeader}\nn: 1\n${Texts.putOk}`, listing: listing('n:1') },
  { name: 'PUT only existing keys', setup: 'n: 1', method: 'PUT', path: 'update', body: 'n: 2', status: 200, body_is: `${Texts.updatedHeader}\nn: 1 => 2\n${Texts.putOk}`, listing: listing('n:2') },
  { name: 'PUT keeps the key in its place', setup: 'a: 1&b: 2', method: 'PUT', path: 'update', body: 'a: 10', status: 200, listing: listing('a:10', 'b:2') },
  { name: 'PUT repeated key: the last value wins', method: 'PUT', path: 'update', body: 'k: 1&k: 2', status: 200, body_is: `${Texts.createdHeader}\nk: 2\n${Texts.putOk}`, listing: listing('k:2') },
  { name: 'PUT is all or nothing', setup: 'a: 1', method: 'PUT', path: 'update', body: 'a: 2&b: 3&retake_wheaterYes', status: 400, body_is: Texts.badFormat, listing: listing('a:1') },
  { name: 'PUT empty body', method: 'PUT', path: 'update', body: '', status: 400, body_is: Texts.noContent },
  { name: 'PUT blank key', method: 'PUT', path: 'update', body: 'a: 1&  : 2', status: 400, body_is: Texts.blankKey, listing: listing() },
  { name: 'PUT value containing a colon', setup: 'url: x', method: 'PUT', path: 'update', body: 'url: https://a:b@host:1/', status: 200, listing: listing('url:https://a:b@host:1/') },
];
