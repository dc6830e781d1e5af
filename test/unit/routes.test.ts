// The route table (routes.ts): one match per request gives both the metrics label and the rule, and
// answers carry their typed error code and END outcome (render.ts), never a text to compare.

import { describe, expect, it } from 'vitest';
import { ProtocolErrors, RequestError } from '../../services/protocol/errors.js';
import { matchRoute, ROUTES, runRoute } from '../../services/server/routes.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import type { Store } from '../../services/server/store/store.js';
import { TEST_POLICY } from '../support/run-rule-cases.js';

const req = (method: string, target: string, host: string | undefined = '127.0.0.1', body = '', authorization?: string) => ({ method, target, host, body: Buffer.from(body), authorization });
const match = (method: string, target: string, host?: string) => matchRoute(req(method, target, host), new MemoryStore(), TEST_POLICY, '127.0.0.1');

describe('route table', () => {
  it.each([
    ['GET', '/', undefined, 'listing'],
    ['GET', '/anything', undefined, 'listing'],
    ['HEAD', '/', undefined, 'head'],
    ['HEAD', '/', '127.0.0.1/', 'head'],
    ['POST', '/create', undefined, 'create'],
    ['POST', '/', '127.0.0.1/create', 'create'],
    ['GET', '/create', undefined, 'other'],
    ['PUT', '/update', undefined, 'update'],
    ['POST', '/update', undefined, 'other'],
    ['POST', '/elsewhere', undefined, 'other'],
    ['END', '/', '127.0.0.1/', 'end'],
    ['END', '/kv/a', undefined, 'end'],
    ['GET', '/kv/a', undefined, 'kv-key'],
    ['DELETE', '/kv/a', undefined, 'kv-key'],
    ['POST', '/kv/a', undefined, 'kv-key'],
    ['GET', '/kv?prefix=a', undefined, 'kv-page'],
    ['GET', '/kv?watch&since=3', undefined, 'kv-watch'],
    ['PUT', '/kv/', undefined, 'kv-page'],
    ['GET', '/kvx', undefined, 'listing'],
    ['PATCH', '/', undefined, 'other'],
  ] as const)('%s %s (Host %s) matches the %s row', (method, target, host, label) => {
    expect(match(method, target, host).row.label).toBe(label);
  });

  it('every row is the first match of some request', () => {
    const requests: [string, string][] = [
      ['END', '/'],
      ['GET', '/kv/a'],
      ['GET', '/kv'],
      ['GET', '/kv?watch'],
      ['POST', '/create'],
      ['GET', '/create'],
      ['PUT', '/update'],
      ['GET', '/update'],
      ['GET', '/'],
      ['HEAD', '/'],
      ['POST', '/'],
    ];
    const matched = new Set(requests.map(([method, target]) => match(method, target).row));
    expect(ROUTES.filter((row) => !matched.has(row))).toEqual([]);
  });

  it('the rule that answers is the matched row’s: a request answered by another row’s rule shows it', async () => {
    const call = match('GET', '/kv/a');
    const answer = await runRoute({ ...call, row: ROUTES.find((r) => r.label === 'listing')! });
    expect(answer.body).toBe('No data in DB');
    expect((await runRoute(call)).status).toBe(404);
  });

  it('END answers carry their outcome; nothing else does, whatever its body', async () => {
    const store = new MemoryStore();
    const outcome = async (peer: string, policy = TEST_POLICY, authorization?: string) => (await runRoute(matchRoute(req('END', '/', '127.0.0.1/', '', authorization), store, policy, peer))).end;
    expect(await outcome('127.0.0.1')).toBe('accepted');
    expect(await outcome('192.0.2.1')).toBe('not-loopback');
    expect(await outcome('127.0.0.1', { ...TEST_POLICY, shutdown: { enabled: false, token: undefined } })).toBe('disabled');
    expect(await outcome('127.0.0.1', { ...TEST_POLICY, shutdown: { enabled: true, token: 't' } })).toBe('bad-token');
    expect(await outcome('127.0.0.1', { ...TEST_POLICY, shutdown: { enabled: true, token: 't' } }, 'Bearer x')).toBe('bad-token');
    // a value that reads like END's refusal is just a value
    await runRoute(matchRoute(req('PUT', '/kv/k', '127.0.0.1', 'Shutdown is disabled on this server'), store, TEST_POLICY, '127.0.0.1'));
    expect((await runRoute(matchRoute(req('GET', '/kv/k'), store, TEST_POLICY, '127.0.0.1'))).end).toBeUndefined();
  });

  it('a store failure is answered by its code, whatever its class', async () => {
    // not a StoreFullError: the base request error with the store-full code
    const store = { ...new MemoryStore(), putKey: () => Promise.reject(new RequestError('TCPKV_ERR_STORE_FULL', 'Storage is full: TCPKV_MAX_KEYS=1')) } as unknown as Store;
    const answer = await runRoute(matchRoute(req('PUT', '/kv/a', '127.0.0.1', 'v'), store, TEST_POLICY, '127.0.0.1'));
    expect(answer).toMatchObject({ status: ProtocolErrors.TCPKV_ERR_STORE_FULL.status, code: 'TCPKV_ERR_STORE_FULL', body: 'Storage is full: TCPKV_MAX_KEYS=1' });
  });

  it('a limit the rules apply carries its code and the code’s status', async () => {
    const store = new MemoryStore();
    const tooMany = await runRoute(matchRoute(req('POST', '/create', '127.0.0.1', 'a: 1&b: 2&c: 3'), store, { ...TEST_POLICY, maxPairs: 2 }, '127.0.0.1'));
    expect(tooMany).toMatchObject({ status: 413, code: 'TCPKV_ERR_TOO_MANY_PAIRS' });
    const longKey = await runRoute(matchRoute(req('PUT', `/kv/${'k'.repeat(20)}`, '127.0.0.1', 'v'), store, { ...TEST_POLICY, maxKeyBytes: 16 }, '127.0.0.1'));
    expect(longKey).toMatchObject({ status: 400, code: 'TCPKV_ERR_KEY_TOO_LONG' });
  });
});
