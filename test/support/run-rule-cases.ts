// Runs RULE_CASES through one implementation in both dialects (the hono `runTest({ newRouter })` idea):
// the caller says how to make a store and how to send request bytes; every case, every combination.

import { describe, expect, it } from 'vitest';
import { buildRequest, type Dialect } from '../../services/client/client.js';
import { ProtocolError } from '../../services/protocol/errors.js';
import { NEED_MORE, RequestParser, type ParsedRequest } from '../../services/protocol/request-parser.js';
import { ResponseReader, type ParsedResponse } from '../../services/protocol/response-reader.js';
import { wireBuffer, writeResponse, type Response } from '../../services/protocol/response-writer.js';
import { parseHostAllowList } from '../../services/server/access.js';
import { handle } from '../../services/server/routes.js';
import type { Policy } from '../../services/server/rules.js';
import type { Store } from '../../services/server/store/store.js';
import { ABSENT, RULE_CASES, type RuleCase } from './rule-cases.js';

/** A page's JSON without each item's version. */
function withoutVersions(json: unknown): unknown {
  if (json === null || typeof json !== 'object' || !Array.isArray((json as { items?: unknown }).items)) return json;
  const page = json as { items: Record<string, unknown>[] };
  return { ...page, items: page.items.map(({ version: _version, ...rest }) => rest) };
}

export interface RuleTarget {
  /** a fresh store, or a store factory with cleanup */
  newStore(): Promise<Store> | Store;
  /** sends one request's bytes against `store`; `head` = the request is HEAD */
  send(store: Store, bytes: Buffer, head: boolean): Promise<ParsedResponse>;
  /** called after each case */
  cleanup?(store: Store): Promise<void>;
}

export function runRuleCases(label: string, target: RuleTarget, dialects: Dialect[] = ['seed', 'standard']): void {
  for (const dialect of dialects) {
    describe(`${label} — ${dialect} dialect`, () => {
      const send = (store: Store, method: string, path: string | undefined, body: string | Buffer = '', host = '127.0.0.1', requestTarget?: string, headers?: [string, string][]) =>
        target.send(store, buildRequest({ method, path, body, ...(requestTarget !== undefined ? { target: requestTarget } : {}), ...(headers ? { headers } : {}) }, dialect, host, 10000), method === 'HEAD');
      // `$k` in a case's request or answer headers: key k's ETag after the setup (versions are the store's)
      const etags = async (store: Store, c: RuleCase): Promise<Map<string, string | undefined>> => {
        const found = new Map<string, string | undefined>();
        const names = [...Object.values(c.requestHeaders ?? {}), ...Object.values(c.headers ?? {})].filter((v): v is string => typeof v === 'string').join(' ').match(/\$[a-z]+/g) ?? [];
        for (const name of names) {
          const r = await send(store, 'GET', `kv/${name.slice(1)}`);
          found.set(name, r.headers.find(([n]) => n === 'etag')?.[1]);
        }
        return found;
      };
      const fill = (text: string, known: Map<string, string | undefined>) => text.replace(/\$[a-z]+/g, (name) => known.get(name) ?? `(no ETag for ${name})`);

      for (const c of RULE_CASES) {
        if (c.dialects !== undefined && !c.dialects.includes(dialect)) continue;
        it(c.name, async () => {
          const store = await target.newStore();
          try {
            if (c.setup !== undefined) expect((await send(store, 'POST', 'create', c.setup)).status).toBe(200);
            const known = await etags(store, c);
            const requestHeaders = Object.entries(c.requestHeaders ?? {}).map(([n, v]): [string, string] => [n, fill(v, known)]);
            const r = await send(store, c.method, c.path, c.body ?? '', c.host, c.target, requestHeaders);
            expect(r.status).toBe(typeof c.status === 'number' ? c.status : c.status[dialect]);
            if (c.body_is !== undefined) expect(r.body).toBe(c.body_is);
            for (const [name, value] of Object.entries(c.headers ?? {})) {
              const got = r.headers.find(([n]) => n === name)?.[1];
              if (value instanceof RegExp) expect(got).toMatch(value);
              else if (value === ABSENT) expect(got).toBeUndefined();
              else expect(got).toBe(fill(value, known));
            }
            // versions are the store's (etcd's revisions): the JSON is compared without them, and
            // each item's version must be its key's ETag
            if (c.json !== undefined) expect(withoutVersions(JSON.parse(r.body))).toEqual(c.json);
            if (c.json !== undefined && Array.isArray((JSON.parse(r.body) as { items?: unknown }).items)) {
              for (const item of (JSON.parse(r.body) as { items: { key: string; version: number }[] }).items) {
                const answer = await send(store, 'GET', undefined, '', '127.0.0.1', `/kv/${encodeURIComponent(item.key)}`);
                expect(answer.headers.find(([n]) => n === 'etag')?.[1]).toBe(`"${item.version}"`);
              }
            }
            for (const text of c.contains ?? []) expect(r.body).toContain(text);
            if (c.method === 'HEAD') expect(r.body).toBe('');
            if (c.listing !== undefined) expect((await send(store, 'GET', '')).body).toBe(c.listing);
          } finally {
            await target.cleanup?.(store);
          }
        });
      }
    });
  }
}

export const TEST_POLICY: Policy = { allowedHosts: parseHostAllowList('127.0.0.1,localhost'), shutdown: { enabled: true, token: undefined } };

/** A whole answer's bytes, as the connection sends them: head and body, then the slices of `more`. */
export function answerBytes(response: Response): Buffer {
  const head = wireBuffer(writeResponse(response, true));
  if (response.more === undefined || response.headersOnly) return head;
  return Buffer.concat([head, ...response.more.slices]);
}

/** One request's bytes through the parser, as the connection would hand it to the rules. */
export function parseOne(bytes: Buffer): ParsedRequest {
  const parser = new RequestParser();
  parser.push(bytes);
  const r = parser.next();
  if (r === NEED_MORE || typeof r === 'symbol' || r instanceof Error) throw new Error(`did not parse: ${String(r)}`);
  return r;
}

/** The pure path, no sockets: bytes → RequestParser → handle() → writeResponse → ResponseReader. */
export function pureRulesTarget(newStore: () => Store | Promise<Store>, cleanup?: (store: Store) => Promise<void>): RuleTarget {
  return {
    newStore,
    async send(store, bytes, head) {
      const parser = new RequestParser();
      parser.push(bytes);
      const parsed = parser.next();
      // a request the parser refuses is answered as the connection answers it
      const response: Response = parsed instanceof ProtocolError ? { status: parsed.status, body: parsed.message, close: true } : await handle(parseOne(bytes), store, TEST_POLICY, '127.0.0.1');
      return new ResponseReader(head).push(answerBytes(response))!;
    },
    ...(cleanup ? { cleanup } : {}),
  };
}
