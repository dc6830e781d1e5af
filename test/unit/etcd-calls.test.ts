// How a call to etcd fails (services/server/store/etcd-calls.ts): etcd3's typed errors and the gRPC
// errors it makes from what etcd answers, classified without an etcd. The same refusals from a real
// etcd: test/integration/etcd-defects.test.ts and etcd-nospace-recovery.test.ts.
import { BrokenCircuitError } from 'cockatiel';
import { castGrpcError, EtcdPermissionDeniedError } from 'etcd3';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { NO_STORE_EVENTS } from '../../services/server/events.js';
import { EtcdCalls, NoSpaceAnswer, neverSent, refusal } from '../../services/server/store/etcd-calls.js';
import { StoreUnavailableError, ValueTooLargeError } from '../../services/server/store/store.js';

/** An error as gRPC hands it to etcd3, typed the way etcd3 types it. */
const grpc = (code: number, message: string) => castGrpcError(Object.assign(new Error(`${code} ${message}`), { code }));

describe('etcd refusals', () => {
  it.each([
    ['too-many-ops', grpc(3, 'INVALID_ARGUMENT: etcdserver: too many operations in txn request')],
    ['too-large', grpc(3, 'INVALID_ARGUMENT: etcdserver: request is too large')],
    ['too-large', grpc(8, 'RESOURCE_EXHAUSTED: Received message larger than max (5000000 vs. 4194304)')],
    ['no-space', grpc(8, 'RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded')],
    ['denied', grpc(3, 'INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password')],
    ['denied', grpc(7, 'PERMISSION_DENIED: etcdserver: permission denied')],
    ['denied', grpc(16, 'UNAUTHENTICATED: etcdserver: invalid auth token')],
    ['denied', grpc(9, 'FAILED_PRECONDITION: etcdserver: user name not found')],
    ['denied', grpc(9, 'FAILED_PRECONDITION: etcdserver: authentication is not enabled')],
    ['denied', new EtcdPermissionDeniedError('no rights')],
  ])('%s: %s', (expected, error) => {
    expect(refusal(error)).toBe(expected);
  });

  it.each([
    grpc(14, 'UNAVAILABLE: No connection established'),
    grpc(4, 'DEADLINE_EXCEEDED: Deadline exceeded'),
    grpc(14, 'UNAVAILABLE: etcdserver: no leader'),
    new Error('socket hang up'),
  ])('not a refusal: %s', (error) => {
    expect(refusal(error)).toBeUndefined();
  });

  it('a call stopped by every breaker, or without a connection, never reached etcd', () => {
    expect(neverSent(new BrokenCircuitError())).toBe(true);
    expect(neverSent(grpc(14, 'UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2379'))).toBe(true);
    expect(neverSent(grpc(4, 'DEADLINE_EXCEEDED: Deadline exceeded'))).toBe(false);
  });
});

describe('a call to etcd', () => {
  function calls() {
    const counted: { operation: string; ok: boolean }[] = [];
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const etcd = new EtcdCalls({ logger, events: { ...NO_STORE_EVENTS, etcdCall: (operation, _seconds, ok) => void counted.push({ operation, ok }) }, maxTxnOps: 128 });
    return { etcd, counted, lines };
  }
  const failing = (error: Error) => () => Promise.reject(error);

  it('refusals become store errors and do not count against etcd', async () => {
    const { etcd, counted } = calls();
    await expect(etcd.call('create', true, failing(grpc(3, 'INVALID_ARGUMENT: etcdserver: too many operations in txn request')))).rejects.toSatisfy(
      (e: unknown) => e instanceof ValueTooLargeError && /TCPKV_ETCD_MAX_TXN_OPS=128/.test(e.message),
    );
    await expect(etcd.call('create', true, failing(grpc(8, 'RESOURCE_EXHAUSTED: etcdserver: mvcc: database space exceeded')))).rejects.toBeInstanceOf(NoSpaceAnswer);
    await expect(etcd.call('update', true, failing(grpc(7, 'PERMISSION_DENIED: etcdserver: permission denied')))).rejects.toSatisfy(
      (e: unknown) => e instanceof StoreUnavailableError && !e.indeterminate && /nothing was applied/.test(e.message),
    );
    expect(counted).toEqual([
      { operation: 'create', ok: true },
      { operation: 'create', ok: true },
      { operation: 'update', ok: true },
    ]);
  });

  it('a write whose answer was lost may have been applied; one that never left was not; a read is never "may have"', async () => {
    const { etcd, counted } = calls();
    const lost = await etcd.call('update', true, failing(grpc(4, 'DEADLINE_EXCEEDED: Deadline exceeded'))).catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(StoreUnavailableError);
    expect((lost as StoreUnavailableError).indeterminate).toBe(true);
    const stopped = await etcd.call('update', true, failing(new BrokenCircuitError())).catch((e: unknown) => e);
    expect((stopped as StoreUnavailableError).indeterminate).toBe(false);
    const read = await etcd.call('barrier', false, failing(grpc(4, 'DEADLINE_EXCEEDED: Deadline exceeded'))).catch((e: unknown) => e);
    expect((read as StoreUnavailableError).indeterminate).toBe(false);
    expect(counted.map((c) => c.ok)).toEqual([false, false, false]);
  });

  it('an outage is logged at error level once, and its end once', async () => {
    const { etcd, lines } = calls();
    for (let i = 0; i < 3; i++) await etcd.call('barrier', false, failing(new Error('gone'))).catch(() => {});
    expect(await etcd.call('barrier', false, async () => 'ok')).toBe('ok');
    expect(await etcd.call('barrier', false, async () => 'ok')).toBe('ok');
    expect(lines.filter((l) => l.level === 50)).toHaveLength(1);
    expect(lines.filter((l) => l.level === 20)).toHaveLength(2);
    expect(lines.filter((l) => l.msg === 'etcd answers again')).toHaveLength(1);
  });
});
