// SPEC §3 through the pure rules: request bytes → RequestParser → handle() → response, no sockets.

import { describe, expect, it } from 'vitest';
import { handle, parsePairs, Texts, type Policy } from '../../services/server/rules.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import { StoreUnavailableError, type Store } from '../../services/server/store/store.js';
import { pureRulesTarget, runRuleCases, TEST_POLICY } from '../support/run-rule-cases.js';

const policy = TEST_POLICY;

runRuleCases('pure rules over MemoryStore', pureRulesTarget(() => new MemoryStore()));

describe('rules details', () => {
  const req = (method: string, target: string, host: string | undefined, body = '', authorization?: string) => ({ method, target, host, body: Buffer.from(body), authorization });

  it('405 carries an Allow header', async () => {
    const r = await handle(req('PATCH', '/', '127.0.0.1'), new MemoryStore(), policy, '127.0.0.1');
    expect(r.status).toBe(405);
    expect(r.headers).toEqual([['Allow', 'HEAD, GET, POST, PUT, END']]);
  });

  it('END from loopback without a token configured → 200 and shutdown', async () => {
    const r = await handle(req('END', '/', '127.0.0.1/'), new MemoryStore(), policy, '127.0.0.1');
    expect(r).toMatchObject({ status: 200, shutdown: true, close: true });
  });

  it('END from another address without a token configured → 403', async () => {
    const r = await handle(req('END', '/', '127.0.0.1/'), new MemoryStore(), policy, '10.1.2.3');
    expect(r).toMatchObject({ status: 403, body: Texts.shutdownNotLoopback });
    expect(r.shutdown).toBeUndefined();
  });

  it('END with a token: wrong or missing → 403, right → 200', async () => {
    const p: Policy = { ...policy, shutdown: { enabled: true, token: 's3cret' } };
    const store = new MemoryStore();
    expect((await handle(req('END', '/', '127.0.0.1/'), store, p, '127.0.0.1')).status).toBe(403);
    expect((await handle(req('END', '/', '127.0.0.1/', '', 'Bearer nope'), store, p, '127.0.0.1')).status).toBe(403);
    expect((await handle(req('END', '/', '127.0.0.1/', '', 'Bearer s3cret'), store, p, '10.9.9.9')).status).toBe(200);
  });

  it('END switched off → 403 even from loopback', async () => {
    const r = await handle(req('END', '/', '127.0.0.1/'), new MemoryStore(), { ...policy, shutdown: { enabled: false, token: undefined } }, '127.0.0.1');
    expect(r).toMatchObject({ status: 403, body: Texts.shutdownDisabled });
  });

  it('a store that is unavailable answers 503 and the rules do not throw (sync and async)', async () => {
    const failing = (async: boolean): Store => {
      const fail = () => {
        if (async) return Promise.reject(new StoreUnavailableError('disk on fire'));
        throw new StoreUnavailableError('disk on fire');
      };
      return { revision: undefined, listing: fail, get: fail, page: fail, delete: fail, usage: () => undefined, createAll: fail, upsertAll: fail, close: async () => {} } as unknown as Store;
    };
    for (const async of [false, true]) {
      expect((await handle(req('POST', '/create', '127.0.0.1', 'a: 1'), failing(async), policy, '127.0.0.1')).status).toBe(503);
      expect((await handle(req('GET', '/', '127.0.0.1'), failing(async), policy, '127.0.0.1')).status).toBe(503);
    }
  });

  it('the GET listing is rendered once per store revision', async () => {
    const store = new MemoryStore();
    await handle(req('POST', '/create', '127.0.0.1', 'a: 1'), store, policy, '127.0.0.1');
    const first = await handle(req('GET', '/', '127.0.0.1'), store, policy, '127.0.0.1');
    const second = await handle(req('GET', '/', '127.0.0.1'), store, policy, '127.0.0.1');
    expect(second.body).toBe(first.body);
    await handle(req('PUT', '/update', '127.0.0.1', 'a: 2'), store, policy, '127.0.0.1');
    expect((await handle(req('GET', '/', '127.0.0.1'), store, policy, '127.0.0.1')).body).toBe(`${Texts.listingHeader}\na:2`);
  });

  it('parsePairs splits at the first colon and reports the first bad pair', () => {
    expect(parsePairs(Buffer.from('a: b:c&d:e'))).toEqual({ pairs: [['a', 'b:c'], ['d', 'e']] });
    expect(parsePairs(Buffer.from('a: 1&&b: 2'))).toEqual({ error: Texts.badFormat });
    expect(parsePairs(Buffer.from(' : 1&x'))).toEqual({ error: Texts.blankKey });
    expect(parsePairs(Buffer.from('a:'))).toEqual({ pairs: [['a', '']] });
  });
});
