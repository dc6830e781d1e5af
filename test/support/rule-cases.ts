// The rules of services/server/rules.ts as one table of cases, run (hono-style) through every
// implementation: the pure rules and a real socket, in both dialects, against every store. Each case
// may seed the store first and says what GET must list afterwards, which is how all-or-nothing is
// checked.

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
  /** only in these dialects (the /kv routes are standard HTTP only); default both */
  readonly dialects?: readonly ('seed' | 'standard')[];
  /** a raw request target instead of `/path` (standard dialect) */
  readonly target?: string;
  /**
   * headers the answer must carry (names lower-cased): a value exactly (`$k` is key k's ETag after the
   * setup), a pattern, or ABSENT
   */
  readonly headers?: Readonly<Record<string, string | RegExp | typeof ABSENT>>;
  /** headers the request carries (`$k` as above) */
  readonly requestHeaders?: Readonly<Record<string, string>>;
  /** the body parsed as JSON equals this */
  readonly json?: unknown;
}

/** The answer must not carry this header. */
export const ABSENT = Symbol('absent');
const ETAG = /^"[1-9][0-9]*"$/;

const STD = ['standard'] as const;
const SEED = ['seed'] as const;
const JSON_TYPE = { 'content-type': 'application/json' };
const items = (...pairs: [string, string][]) => pairs.map(([key, value]) => ({ key, value }));

// the key grammar's texts, spelled out (the rules must name the rule they apply)
const KEY_COLON = 'Keys cannot contain ":" (it ends a key in the listing and in key: value pairs).';
const KEY_SPACES = 'Keys cannot begin or end with a space.';
const MAX_KEY = 1024;
const KEY_TOO_LONG = `Keys are at most ${MAX_KEY} bytes of UTF-8 (TCPKV_MAX_KEY_BYTES).`;
/** 341 Hangul syllables (3 bytes each) and one more byte: exactly MAX_KEY bytes, and one over */
const MAX_KEY_TEXT = '가'.repeat(341) + 'a';
const LONG_KEY = MAX_KEY_TEXT + 'b';

/** the refusal of a ttl that is not a whole number of seconds from a second to a year */
const TTL_REFUSAL = 'ttl must be a whole number of seconds from 1 to 31536000.';
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

  // keys and values without line breaks or control characters (both dialects, every write)
  { name: 'POST a value with a line break → 400, nothing stored', method: 'POST', path: 'create', body: 'a: 1\nb: 2', status: 400, body_is: Texts.controlCharacters, listing: listing() },
  { name: 'POST a value with a CR → 400', method: 'POST', path: 'create', body: 'ok: 1&a: x\ry', status: 400, body_is: Texts.controlCharacters, listing: listing() },
  { name: 'POST a key with a tab inside → 400', method: 'POST', path: 'create', body: 'a\tb: 1', status: 400, body_is: Texts.controlCharacters },
  { name: 'POST a value with DEL, a C1 control or U+2028 → 400', method: 'POST', path: 'create', body: 'a: x\x7f&b: \u0085&c: \u2028', status: 400, body_is: Texts.controlCharacters, listing: listing() },
  { name: 'a tab inside a value is allowed', method: 'POST', path: 'create', body: 'a: x\ty', status: 200, listing: listing('a:x\ty') },
  { name: 'line breaks around a pair are trimmed like spaces', method: 'POST', path: 'create', body: 'a: 1\r\n', status: 200, listing: listing('a:1') },
  { name: 'PUT /update with a control character → 400, nothing changed', setup: 'a: 1', method: 'PUT', path: 'update', body: 'a: 2&b: \u0000', status: 400, body_is: Texts.controlCharacters, listing: listing('a:1') },
  { name: 'the first bad pair decides: format before control', method: 'POST', path: 'create', body: 'x&a: \u0001', status: 400, body_is: Texts.badFormat },

  // one key at a time (docs/store.md; standard dialect)
  { name: 'PUT /kv/<key> creates, with a raw value holding & and :', dialects: STD, method: 'PUT', path: 'kv/a', body: 'x&y: z', status: 200, body_is: 'Created a', listing: listing('a:x&y: z') },
  { name: 'PUT /kv/<key> on an existing key updates in place', dialects: STD, setup: 'a: 1&b: 2', method: 'PUT', path: 'kv/a', body: 'new', status: 200, body_is: 'Updated a', listing: listing('a:new', 'b:2') },
  { name: 'PUT /kv/<key> with an empty body stores an empty value', dialects: STD, method: 'PUT', path: 'kv/e', body: '', status: 200, body_is: 'Created e', listing: listing('e:') },
  { name: 'PUT /kv/<key> keeps spaces: the value is raw', dialects: STD, method: 'PUT', path: 'kv/s', body: ' v ', status: 200, listing: listing('s: v ') },
  { name: 'GET /kv/<key> → the value', dialects: STD, setup: 'a: http://x:1/&b: 2', method: 'GET', path: 'kv/a', status: 200, body_is: 'http://x:1/' },
  { name: 'GET /kv/<key> of a missing key → 404', dialects: STD, method: 'GET', path: 'kv/nope', status: 404, body_is: 'No such key: nope' },
  { name: 'HEAD /kv/<key> → 200, headers only', dialects: STD, setup: 'a: 1', method: 'HEAD', path: 'kv/a', status: 200 },
  { name: 'HEAD /kv/<key> of a missing key → 404', dialects: STD, method: 'HEAD', path: 'kv/a', status: 404 },
  { name: 'DELETE /kv/<key> removes it from the listing', dialects: STD, setup: 'a: 1&b: 2&c: 3', method: 'DELETE', path: 'kv/b', status: 200, body_is: 'Deleted b', listing: listing('a:1', 'c:3') },
  { name: 'DELETE /kv/<key> of a missing key → 404', dialects: STD, setup: 'a: 1', method: 'DELETE', path: 'kv/z', status: 404, body_is: 'No such key: z', listing: listing('a:1') },
  // versions and conditions (RFC 9110 §13): `$a` is key a's ETag after the setup
  { name: 'GET /kv/<key> answers its version as ETag', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a', status: 200, body_is: '1', headers: { etag: ETAG } },
  { name: 'HEAD /kv/<key> answers the ETag too', dialects: STD, setup: 'a: 1', method: 'HEAD', path: 'kv/a', status: 200, headers: { etag: '$a' } },
  { name: 'PUT /kv/<key> answers the new version as ETag', dialects: STD, method: 'PUT', path: 'kv/a', body: 'v', status: 200, headers: { etag: ETAG } },
  { name: 'PUT with If-Match: its version → 200', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': '$a' }, status: 200, body_is: 'Updated a', listing: listing('a:2') },
  { name: 'PUT with If-Match: one of several tags → 200', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': '"999999999", $a' }, status: 200, listing: listing('a:2') },
  { name: 'PUT with If-Match: another version → 412, nothing applied, ETag the current one', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': '"999999999"' }, status: 412, headers: { etag: '$a' }, listing: listing('a:1') },
  { name: 'PUT with If-Match: a weak tag never matches → 412', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': 'W/$a' }, status: 412, listing: listing('a:1') },
  { name: 'PUT with If-Match: a tag that is no version ("nope") → 412', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': '"nope"' }, status: 412, listing: listing('a:1') },
  { name: 'PUT with If-Match: * on a missing key → 412 without ETag', dialects: STD, method: 'PUT', path: 'kv/n', body: '1', requestHeaders: { 'If-Match': '*' }, status: 412, headers: { etag: ABSENT }, body_is: 'Precondition failed: no such key: n', listing: listing() },
  { name: 'PUT with If-Match: * on an existing key → 200', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': '*' }, status: 200, listing: listing('a:2') },
  { name: 'PUT with If-None-Match: * creates → 200', dialects: STD, method: 'PUT', path: 'kv/n', body: '1', requestHeaders: { 'If-None-Match': '*' }, status: 200, body_is: 'Created n', listing: listing('n:1') },
  { name: 'PUT with If-None-Match: * on an existing key → 412', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-None-Match': '*' }, status: 412, headers: { etag: '$a' }, listing: listing('a:1') },
  { name: 'PUT with If-None-Match: a tag → 400 (writes take only *)', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-None-Match': '$a' }, status: 400, body_is: Texts.noneMatchTags, listing: listing('a:1') },
  { name: 'PUT with both If-Match and If-None-Match → 400', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': '$a', 'If-None-Match': '*' }, status: 400, body_is: Texts.conditionBoth, listing: listing('a:1') },
  { name: 'PUT with a malformed If-Match (no quotes) → 400', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a', body: '2', requestHeaders: { 'If-Match': '7' }, status: 400, body_is: Texts.badCondition('If-Match'), listing: listing('a:1') },
  { name: 'DELETE with If-Match: its version → 200 with the delete\'s revision', dialects: STD, setup: 'a: 1&b: 2', method: 'DELETE', path: 'kv/a', requestHeaders: { 'If-Match': '$a' }, status: 200, headers: { 'tcpkv-revision': /^[1-9][0-9]*$/ }, listing: listing('b:2') },
  { name: 'DELETE with If-Match: another version → 412, nothing removed', dialects: STD, setup: 'a: 1', method: 'DELETE', path: 'kv/a', requestHeaders: { 'If-Match': '"999999999"' }, status: 412, headers: { etag: '$a' }, listing: listing('a:1') },
  { name: 'DELETE with If-Match: * of a missing key → 412', dialects: STD, method: 'DELETE', path: 'kv/z', requestHeaders: { 'If-Match': '*' }, status: 412 },
  { name: 'DELETE with If-None-Match: * of an existing key → 412', dialects: STD, setup: 'a: 1', method: 'DELETE', path: 'kv/a', requestHeaders: { 'If-None-Match': '*' }, status: 412, listing: listing('a:1') },
  { name: 'GET with If-None-Match: its version → 304, no body', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a', requestHeaders: { 'If-None-Match': '$a' }, status: 304, body_is: '', headers: { etag: '$a' } },
  { name: 'GET with If-None-Match: its weak tag → 304 (weak comparison for reads)', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a', requestHeaders: { 'If-None-Match': 'W/$a' }, status: 304 },
  { name: 'GET with If-None-Match: another version → 200', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a', requestHeaders: { 'If-None-Match': '"999999999"' }, status: 200, body_is: '1' },
  { name: 'GET with If-Match: another version → 412', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a', requestHeaders: { 'If-Match': '"999999999"' }, status: 412, headers: { etag: '$a' } },
  { name: 'GET with a malformed If-None-Match → 400', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a', requestHeaders: { 'If-None-Match': '"a", *' }, status: 400, body_is: Texts.badCondition('If-None-Match') },
  // expiry: PUT /kv/<key>?ttl=SECONDS (that the key does expire is each store's own test)
  { name: 'PUT with ?ttl=60 → 200, the key stored', dialects: STD, method: 'PUT', path: 'kv/a?ttl=60', body: 'v', status: 200, body_is: 'Created a', headers: { etag: ETAG }, listing: listing('a:v') },
  { name: 'PUT with ?ttl=1 (the shortest) and If-Match → 200', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a?ttl=1', body: '2', requestHeaders: { 'If-Match': '$a' }, status: 200, body_is: 'Updated a' },
  { name: 'PUT with ?ttl=31536000 (a year, the longest) → 200', dialects: STD, method: 'PUT', path: 'kv/a?limit=5&ttl=31536000', body: 'v', status: 200, listing: listing('a:v') },
  { name: 'PUT with ?ttl=0 → 400, nothing applied', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/a?ttl=0', body: '2', status: 400, body_is: TTL_REFUSAL, listing: listing('a:1') },
  { name: 'PUT with ?ttl=31536001 (over a year) → 400', dialects: STD, method: 'PUT', path: 'kv/a?ttl=31536001', body: 'v', status: 400, body_is: TTL_REFUSAL, listing: listing() },
  { name: 'PUT with ?ttl=1.5 (not whole seconds) → 400', dialects: STD, method: 'PUT', path: 'kv/a?ttl=1.5', body: 'v', status: 400, body_is: TTL_REFUSAL, listing: listing() },
  { name: 'PUT with ?ttl=-5 → 400', dialects: STD, method: 'PUT', path: 'kv/a?ttl=-5', body: 'v', status: 400, body_is: TTL_REFUSAL, listing: listing() },
  { name: 'PUT with ?ttl=abc → 400', dialects: STD, method: 'PUT', path: 'kv/a?ttl=abc', body: 'v', status: 400, body_is: TTL_REFUSAL, listing: listing() },
  { name: 'PUT with ?ttl (no value) → 400', dialects: STD, method: 'PUT', path: 'kv/a?ttl', body: 'v', status: 400, body_is: TTL_REFUSAL, listing: listing() },
  { name: 'PUT with ?ttl=1e3 → 400', dialects: STD, method: 'PUT', path: 'kv/a?ttl=1e3', body: 'v', status: 400, body_is: TTL_REFUSAL, listing: listing() },
  { name: 'PUT with ?ttl=%ZZ (a bad escape) → 400', dialects: STD, method: 'PUT', path: 'kv/a?ttl=%ZZ', body: 'v', status: 400, body_is: Texts.badQueryEncoding('ttl'), listing: listing() },
  { name: 'GET of a key without a TTL answers no Tcpkv-Expires-At', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a', status: 200, headers: { 'tcpkv-expires-at': ABSENT } },
  { name: 'GET ignores ?ttl (only a PUT sets one)', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/a?ttl=0', status: 200, body_is: '1' },
  { name: 'the seed routes ignore conditions', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'update', body: 'a: 2', requestHeaders: { 'If-Match': '"999999999"' }, status: 200, listing: listing('a:2') },
  { name: 'the key is percent-decoded UTF-8', dialects: STD, method: 'PUT', path: 'kv/%EC%9D%B4%EB%A6%84%20%2F%26', body: '김민식', status: 200, body_is: 'Created 이름 /&', listing: listing('이름 /&:김민식') },
  { name: 'a bad percent escape → 400', dialects: STD, method: 'GET', path: 'kv/a%ZZ', status: 400, body_is: Texts.badKeyEncoding },
  { name: 'a key that is not UTF-8 → 400', dialects: STD, method: 'PUT', path: 'kv/%FF', body: 'v', status: 400, body_is: Texts.badKeyEncoding, listing: listing() },
  { name: 'a key with a control character → 400', dialects: STD, method: 'PUT', path: 'kv/a%0Ab', body: 'v', status: 400, body_is: Texts.controlCharacters, listing: listing() },
  { name: 'PUT /kv/<key> with a line break in the value → 400', dialects: STD, method: 'PUT', path: 'kv/a', body: 'x\ny', status: 400, body_is: Texts.controlCharacters, listing: listing() },
  { name: 'PUT /kv/<key> with invalid UTF-8 → 400', dialects: STD, method: 'PUT', path: 'kv/a', body: Buffer.from([0xff]), status: 400, body_is: Texts.badUtf8, listing: listing() },
  { name: 'an empty key → 400', dialects: STD, method: 'GET', path: 'kv/%20', status: 400, body_is: Texts.blankKey },
  // the key grammar (services/protocol/key-grammar.ts): one for every write route and both dialects
  { name: 'PUT /kv/ (the empty key) → 400', dialects: STD, setup: 'a: 1', method: 'PUT', path: 'kv/', body: 'v', status: 400, body_is: Texts.blankKey, listing: listing('a:1') },
  { name: 'DELETE /kv/ (the empty key) → 400', dialects: STD, setup: 'a: 1', method: 'DELETE', path: 'kv/', status: 400, body_is: Texts.blankKey, listing: listing('a:1') },
  { name: 'GET /kv/ is the page route, like /kv', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv/', status: 200, json: { items: items(['a', '1']), next: null } },
  { name: 'a key holding ":" cannot forge a listing entry → 400', dialects: STD, setup: 'home: https://good.example/', method: 'PUT', path: 'kv/home%3Ahttps', body: '//evil.example/', status: 400, body_is: KEY_COLON, listing: listing('home:https://good.example/') },
  { name: 'a key with a leading space → 400', dialects: STD, method: 'PUT', path: 'kv/%20a', body: 'v', status: 400, body_is: KEY_SPACES, listing: listing() },
  { name: 'a key with a trailing Unicode space → 400', dialects: STD, method: 'PUT', path: 'kv/a%E3%80%80', body: 'v', status: 400, body_is: KEY_SPACES, listing: listing() },
  { name: 'GET and DELETE name any key a write could once store (":" and spaces): 404 here', dialects: STD, method: 'GET', path: 'kv/a%3Ab%20', status: 404, body_is: 'No such key: a:b ' },
  { name: `PUT /kv/<key> of ${MAX_KEY + 1} bytes → 400 naming the limit`, dialects: STD, method: 'PUT', path: `kv/${encodeURIComponent(LONG_KEY)}`, body: 'v', status: 400, body_is: KEY_TOO_LONG, listing: listing() },
  { name: `POST /create with a key of ${MAX_KEY + 1} bytes → 400, nothing stored`, method: 'POST', path: 'create', body: `a: 1&${LONG_KEY}: 2`, status: 400, body_is: KEY_TOO_LONG, listing: listing() },
  { name: `PUT /update with a key of ${MAX_KEY + 1} bytes → 400, nothing changed`, setup: 'a: 1', method: 'PUT', path: 'update', body: `a: 2&${LONG_KEY}: 2`, status: 400, body_is: KEY_TOO_LONG, listing: listing('a:1') },
  { name: `a key of exactly ${MAX_KEY} bytes is stored`, method: 'POST', path: 'create', body: `${MAX_KEY_TEXT}: 1`, status: 200, listing: listing(`${MAX_KEY_TEXT}:1`) },
  { name: 'POST /kv/<key> → 405 with an Allow naming DELETE', dialects: STD, method: 'POST', path: 'kv/a', body: 'a: 1', status: 405, body_is: Texts.methodNotAllowed, headers: { allow: 'GET, HEAD, PUT, DELETE' }, listing: listing() },
  { name: 'PATCH /kv/<key> → 405 with the same Allow', dialects: STD, method: 'PATCH', path: 'kv/a', status: 405, headers: { allow: 'GET, HEAD, PUT, DELETE' } },
  { name: 'DELETE /kv → 405, Allow GET, HEAD', dialects: STD, method: 'DELETE', path: 'kv', status: 405, headers: { allow: 'GET, HEAD' } },
  { name: 'DELETE elsewhere → 405 without DELETE in Allow', dialects: STD, method: 'DELETE', path: 'a', status: 405, headers: { allow: 'HEAD, GET, POST, PUT, END' } },
  { name: 'the host check applies to /kv too', dialects: STD, method: 'PUT', path: 'kv/a', host: 'evil.example', body: 'v', status: 400, body_is: 'Not allowed host: evil.example', listing: listing() },
  { name: 'the seed dialect is unchanged: a kv/... path lists', dialects: SEED, setup: 'a: 1', method: 'GET', path: 'kv/a', status: 200, body_is: listing('a:1') },
  { name: 'the seed dialect has no DELETE', dialects: SEED, setup: 'a: 1', method: 'DELETE', path: 'kv/a', status: 405, listing: listing('a:1') },

  // pages (docs/store.md)
  { name: 'GET /kv lists as JSON in insertion order', dialects: STD, setup: 'b: 2&a: 1&c: 3', method: 'GET', path: 'kv', status: 200, headers: JSON_TYPE, json: { items: items(['b', '2'], ['a', '1'], ['c', '3']), next: null } },
  { name: 'GET /kv on an empty store', dialects: STD, method: 'GET', path: 'kv', status: 200, json: { items: [], next: null } },
  { name: 'GET /kv?limit=2 → next is the last key', dialects: STD, setup: 'b: 2&a: 1&c: 3', method: 'GET', path: 'kv', target: '/kv?limit=2', status: 200, json: { items: items(['b', '2'], ['a', '1']), next: 'a' } },
  { name: 'GET /kv?after=<key> continues after it', dialects: STD, setup: 'b: 2&a: 1&c: 3', method: 'GET', path: 'kv', target: '/kv?after=a&limit=2', status: 200, json: { items: items(['c', '3']), next: null } },
  { name: 'GET /kv?prefix= filters by key prefix', dialects: STD, setup: 'user/1: x&other: y&user/2: z', method: 'GET', path: 'kv', target: '/kv/?prefix=user%2F', status: 200, json: { items: items(['user/1', 'x'], ['user/2', 'z']), next: null } },
  { name: 'GET /kv escapes JSON and decodes + in the query', dialects: STD, setup: 'a b: "q"\\&c: 김', method: 'GET', path: 'kv', target: '/kv?prefix=a+b', status: 200, json: { items: items(['a b', '"q"\\']), next: null } },
  { name: 'HEAD /kv → 200, headers only', dialects: STD, setup: 'a: 1', method: 'HEAD', path: 'kv', status: 200, headers: JSON_TYPE },
  ...['0', '1001', 'x', '-1', '1.5', ''].map((limit) => ({ name: `GET /kv?limit=${limit} → 400`, dialects: STD, method: 'GET', path: 'kv', target: `/kv?limit=${limit}`, status: 400, body_is: Texts.badLimit })),
  { name: 'GET /kv?limit=1000 is the most', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv', target: '/kv?limit=1000', status: 200, json: { items: items(['a', '1']), next: null } },
  { name: 'a bad escape in the query → 400', dialects: STD, method: 'GET', path: 'kv', target: '/kv?after=%E2%82', status: 400, body_is: Texts.badQueryEncoding('after') },
  { name: 'GET /kv?after=<a key never stored> → 400, never an empty last page', dialects: STD, setup: 'a: 1', method: 'GET', path: 'kv', target: '/kv?after=zz', status: 400, body_is: Texts.unknownCursor('zz') },
];
