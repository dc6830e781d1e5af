// The seed's test scenario (cases 1–16), as data: one request per case, in order, with what a correct
// server answers. The same table drives `tcpkv-client scenario` and the test suites.

import { Texts } from '../protocol/texts.js';
import { ClientError, TcpkvClient, type Answer, type Dialect } from './client.js';

export interface ScenarioCase {
  readonly n: number;
  readonly method: string;
  /** as the seed wrote it: `host/path` */
  readonly url: string;
  readonly body: string;
  /** expected status by dialect; 'stopped' = 200 or a connection closed without an answer */
  readonly status: { readonly seed: number | 'stopped'; readonly standard: number | 'stopped' };
  /** tcpkv's own texts for this case, in order (tcpkv-server's tests hold it to them) */
  readonly contains: readonly string[];
  /**
   * What every conforming server's body shows, in any order (the keys and
   * values of cases 7, 8, 11 and 13). The seed's own server is the reference, so its texts — its
   * misspellings, `\n\r` breaks, the old value named where tcpkv names the new key — pass too.
   */
  readonly mustShow: readonly RegExp[];
  /** the expected column as printed */
  readonly expected: string;
}

const SEED_HOST = '127.0.0.1';
const both = (s: number | 'stopped') => ({ seed: s, standard: s });

const stored7 = [/ID: ?20182793/, /Subject: ?Computer_Network/, /Grade: ?A/];

export const SCENARIO: readonly ScenarioCase[] = Object.freeze([
  { n: 1, method: 'HEAD', url: '127.0.0.1/', body: '', status: { seed: 100, standard: 200 }, contains: [], mustShow: [], expected: '' },
  { n: 2, method: 'GET', url: '127.0.0.1/', body: '', status: both(200), contains: [Texts.emptyDb], mustShow: [], expected: 'empty' },
  { n: 3, method: 'GET', url: '127.0.0.1??', body: '', status: both(404), contains: [Texts.invalidAddress], mustShow: [], expected: 'bad address' },
  { n: 4, method: 'PRRT', url: '127.0.0.1/', body: '', status: both(405), contains: [Texts.methodNotAllowed], mustShow: [], expected: 'bad method' },
  { n: 5, method: 'GET', url: '127.0.5.1/', body: '', status: both(400), contains: [Texts.notAllowedHost('127.0.5.1')], mustShow: [], expected: 'host refused' },
  { n: 6, method: 'PUT', url: '127.0.0.1/create', body: '', status: both(404), contains: [Texts.createNeedsPost], mustShow: [], expected: 'create needs POST' },
  {
    n: 7, method: 'POST', url: '127.0.0.1/create', body: 'ID: 20182793&Subject: Computer_Network&Grade: A', status: both(200),
    contains: ['ID:20182793', 'Subject:Computer_Network', 'Grade:A', Texts.postOk], mustShow: stored7, expected: 'stores ID, Subject, Grade',
  },
  {
    n: 8, method: 'GET', url: '127.0.0.1/', body: '', status: both(200),
    contains: [Texts.listingHeader, 'ID:20182793', 'Subject:Computer_Network', 'Grade:A'], mustShow: stored7, expected: 'lists ID, Subject, Grade',
  },
  { n: 9, method: 'POST', url: '127.0.0.1/create', body: ': 95', status: both(400), contains: [Texts.blankKey], mustShow: [], expected: 'blank key' },
  { n: 10, method: 'POST', url: '127.0.0.1/create', body: 'middle_exam70', status: both(400), contains: [Texts.badFormat], mustShow: [], expected: 'bad format' },
  { n: 11, method: 'POST', url: '127.0.0.1/create', body: 'ID: 20180434', status: both(400), contains: [Texts.keyExists], mustShow: [/already exists/], expected: 'key exists' },
  { n: 12, method: 'HEAD', url: '127.0.0.1/', body: '', status: { seed: 100, standard: 200 }, contains: [], mustShow: [], expected: '' },
  {
    n: 13, method: 'PUT', url: '127.0.0.1/update', body: 'ID: 20180434&final_exam: 90', status: both(200),
    contains: [Texts.updatedHeader, 'ID: 20182793 => 20180434', Texts.createdHeader, 'final_exam: 90', Texts.putOk],
    mustShow: [/ID: 20182793 => 20180434/, /final_exam: 90/], expected: 'ID 20182793 => 20180434, final_exam: 90',
  },
  { n: 14, method: 'PUT', url: '127.0.0.1/update', body: '', status: both(400), contains: [Texts.noContent], mustShow: [], expected: 'no content' },
  { n: 15, method: 'PUT', url: '127.0.0.1/update', body: 'retake_wheaterYes', status: both(400), contains: [Texts.badFormat], mustShow: [], expected: 'bad format' },
  { n: 16, method: 'END', url: '127.0.0.1/', body: '', status: both('stopped'), contains: [], mustShow: [], expected: '' },
]);

/**
 * `127.0.0.1/create` → host and path, the seed's way: no `/` means the client cannot parse it (`?/?`).
 * The seed's own host, 127.0.0.1, stands for the target host the client was given.
 */
export function splitSeedUrl(url: string, targetHost: string): { host: string; path: string | undefined } {
  const slash = url.indexOf('/');
  if (slash < 0) return { host: '?', path: undefined };
  const host = url.slice(0, slash);
  return { host: host === SEED_HOST ? targetHost : host, path: url.slice(slash + 1).split('/')[0] };
}

export interface CaseResult {
  readonly n: number;
  readonly request: string;
  readonly expected: string;
  readonly got: string;
  readonly ok: boolean;
  /** an answer came (or, for END, the connection closed as a stopping server closes it) */
  readonly answered: boolean;
}

function describeExpected(c: ScenarioCase, dialect: Dialect): string {
  const status = c.status[dialect];
  if (status === 'stopped') return 'server stops (200 or closed)';
  return c.expected ? `${status} ${c.expected}` : String(status);
}

/** Control characters shown as escapes (`\r`, `\n`, `\x1b`…): a `\r` from a server must not move the cursor. */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what this replaces
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === '\r' ? '\\r' : c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function judge(c: ScenarioCase, dialect: Dialect, answer: Answer): { ok: boolean; got: string } {
  const expected = c.status[dialect];
  if (answer.kind === 'closed') return { ok: expected === 'stopped', got: 'connection closed, no answer' };
  const { status, body } = answer.response;
  const firstLine = body.split('\n').find((l) => l.trim() !== '') ?? '';
  const got = escapeControls(`${status}${firstLine ? ' ' + firstLine.slice(0, 60) : ''}`);
  if (expected === 'stopped') return { ok: status === 200, got };
  if (status !== expected) return { ok: false, got };
  const missing = c.mustShow.find((pattern) => !pattern.test(body));
  if (missing) return { ok: false, got: `${got} (missing ${missing.source})` };
  return { ok: true, got };
}

export interface ScenarioOptions {
  /**
   * Spread the cases over the client's servers: case n goes to server n mod k (and on to the others
   * only if that one cannot be reached) — replicas over one shared store must answer as one server.
   */
  readonly spread?: boolean;
}

/** Runs the cases in order against one client; a case that cannot get an answer fails, the rest go on. */
export async function runScenario(client: TcpkvClient, cases: readonly ScenarioCase[] = SCENARIO, options: ScenarioOptions = {}): Promise<CaseResult[]> {
  const dialect = client.options.dialect;
  const servers = client.options.servers;
  const results: CaseResult[] = [];
  for (const [index, c] of cases.entries()) {
    const first = options.spread ? index % servers.length : 0;
    const rotated = [...servers.slice(first), ...servers.slice(0, first)];
    const caseClient = first === 0 ? client : new TcpkvClient({ ...client.options, servers: rotated });
    const server = rotated[0]!;
    const target = client.options.targetHost ?? server.host;
    const { host, path } = splitSeedUrl(c.url, target);
    const request = `${c.method} ${c.url}${c.body ? ` "${c.body}"` : ''}${options.spread ? ` → ${server.host}:${server.port}` : ''}`;
    let outcome: { ok: boolean; got: string; answered: boolean };
    try {
      const answer = await caseClient.send({ method: c.method, path, body: c.body, targetHost: host });
      outcome = { ...judge(c, dialect, answer), answered: answer.kind === 'response' || c.status[dialect] === 'stopped' };
    } catch (error) {
      // a TLS failure fails every case alike: said once, by the caller
      if (error instanceof ClientError && error.code === 'TLS_FAILED') throw error;
      // END: a server that stops may reset the connection instead of closing it
      const stopped = c.status[dialect] === 'stopped' && error instanceof ClientError && error.code === 'CONNECTION_LOST';
      outcome = { ok: stopped, answered: stopped, got: stopped ? 'connection reset (server stopped)' : escapeControls(`error: ${(error as Error).message}`) };
    }
    results.push({ n: c.n, request, expected: describeExpected(c, dialect), ...outcome });
  }
  return results;
}

/** Terminal columns a text takes: Hangul, CJK, full-width forms and most emoji take two. */
export function columns(text: string): number {
  let n = 0;
  for (const c of text) n += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1faff}\u{20000}-\u{3fffd}]/u.test(c) ? 2 : 1;
  return n;
}

/** Widest the table may be: it must fit a 120-column terminal. */
export const TABLE_WIDTH = 120;
// caps per column (# request expected got result); with 2-space gaps they sum to TABLE_WIDTH
const COLUMN_CAPS = [2, 36, 32, 36, 6];

/** A plain-text table: case / request / expected / got / result, every cell escaped and cut to fit. */
export function formatTable(results: readonly CaseResult[]): string {
  const rows = [['#', 'request', 'expected', 'got', 'result'], ...results.map((r) => [String(r.n), r.request, r.expected, r.got, r.ok ? 'PASS' : 'FAIL'].map(escapeControls))];
  const widths = rows[0]!.map((_, col) => Math.min(COLUMN_CAPS[col]!, Math.max(...rows.map((row) => columns(row[col]!)))));
  const cut = (cell: string, width: number) => {
    if (columns(cell) <= width) return cell + ' '.repeat(width - columns(cell));
    let out = '';
    for (const c of cell) {
      if (columns(out + c) > width - 1) break;
      out += c;
    }
    return out + '…' + ' '.repeat(width - 1 - columns(out));
  };
  const line = (row: string[]) => row.map((cell, col) => cut(cell, widths[col]!)).join('  ').trimEnd();
  const passed = results.filter((r) => r.ok).length;
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line), '', `${passed}/${results.length} cases passed`].join('\n');
}
