// The seed's rules (rules.ts), pure: request bytes → RequestParser → handle() → response, no sockets.

import { describe, expect, it } from 'vitest';
import { parsePairs } from '../../services/server/pairs.js';
import { handle } from '../../services/server/routes.js';
import { Texts, type Policy } from '../../services/server/rules.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import { StoreUnavailableError, ValueTooLargeError, type Store } from '../../services/server/store/store.js';
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
      return { revision: undefined, listing: fail, get: fail, getVersioned: fail, page: fail, delete: fail, putKey: fail, deleteKey: fail, usage: () => undefined, createAll: fail, upsertAll: fail, close: async () => {} } as unknown as Store;
    };
    for (const async of [false, true]) {
      expect((await handle(req('POST', '/create', '127.0.0.1', 'a: 1'), failing(async), policy, '127.0.0.1')).status).toBe(503);
      expect((await handle(req('GET', '/', '127.0.0.1'), failing(async), policy, '127.0.0.1')).status).toBe(503);
    }
  });

  it('the GET listing is the store’s slices, shared while the store does not change', async () => {
    const store = new MemoryStore();
    await handle(req('POST', '/create', '127.0.0.1', 'a: 1'), store, policy, '127.0.0.1');
    const first = await handle(req('GET', '/', '127.0.0.1'), store, policy, '127.0.0.1');
    const second = await handle(req('GET', '/', '127.0.0.1'), store, policy, '127.0.0.1');
    expect(second.more!.slices).toBe(first.more!.slices);
    await handle(req('PUT', '/update', '127.0.0.1', 'a: 2'), store, policy, '127.0.0.1');
    const third = await handle(req('GET', '/', '127.0.0.1'), store, policy, '127.0.0.1');
    expect(third.body + third.more!.slices.join('')).toBe(`${Texts.listingHeader}\na:2`);
    expect(third.more!.bytes).toBe(4);
  });

  it('a full store answers 507 naming the limit, a value too large 413, nothing applied', async () => {
    const store = new MemoryStore({ limits: { maxKeys: 2, maxDataBytes: 1000 } });
    expect((await handle(req('POST', '/create', '127.0.0.1', 'a: 1&b: 2'), store, policy, '127.0.0.1')).status).toBe(200);
    const full = await handle(req('POST', '/create', '127.0.0.1', 'c: 3'), store, policy, '127.0.0.1');
    expect(full).toMatchObject({ status: 507, body: 'Storage is full: TCPKV_MAX_KEYS=2' });
    expect((await handle(req('PUT', '/kv/c', '127.0.0.1', '3'), store, policy, '127.0.0.1')).status).toBe(507);
    expect((await handle(req('PUT', '/kv/a', '127.0.0.1', 'x'.repeat(2000)), store, policy, '127.0.0.1')).body).toBe('Storage is full: TCPKV_MAX_DATA_BYTES=1000');
    expect((await handle(req('DELETE', '/kv/a', '127.0.0.1'), store, policy, '127.0.0.1')).status).toBe(200);
    expect(store.usage()).toEqual({ keys: 1, dataBytes: 2 });
    const tooLarge = { ...store, putKey: () => { throw new ValueTooLargeError('a record is at most 64 MiB'); } } as unknown as Store;
    expect(await handle(req('PUT', '/kv/a', '127.0.0.1', 'v'), tooLarge, policy, '127.0.0.1')).toMatchObject({ status: 413, body: 'Too large for this store: a record is at most 64 MiB' });
  });

  it('keys and values parsed from a body are strings of their own, not slices of it', () => {
    const body = Buffer.from(`k${' '.repeat(100)}: ${' '.repeat(100_000)}value${' '.repeat(100_000)}&\u3000\u3000x\u3000: y`);
    const parsed = parsePairs(body);
    expect(parsed).toEqual({ pairs: [['k', 'value'], ['x', 'y']] });
  });

  it('parsePairs splits at the first colon and reports the first bad pair', () => {
    expect(parsePairs(Buffer.from('a: b:c&d:e'))).toEqual({ pairs: [['a', 'b:c'], ['d', 'e']] });
    expect(parsePairs(Buffer.from('a: 1&&b: 2'))).toEqual({ error: Texts.badFormat });
    expect(parsePairs(Buffer.from(' : 1&x'))).toEqual({ error: Texts.blankKey });
    expect(parsePairs(Buffer.from('a:'))).toEqual({ pairs: [['a', '']] });
  });
});
