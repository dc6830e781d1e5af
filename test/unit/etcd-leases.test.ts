// The etcd store's lease ids (etcd-leases.ts): the id of a second's lease carries that second's end, so
// every replica reads a key's expiry from the lease id etcd gives with the key; other ids carry none.

import { describe, expect, it } from 'vitest';
import { leaseEnd, leaseIdFor, leaseSeconds } from '../../services/server/store/etcd-leases.js';

describe('lease ids', () => {
  it('carry the end of their second and a mark; other ids carry none', () => {
    const id = leaseIdFor(1_800_000_000);
    expect(leaseEnd(id, 1_799_999_000_000)).toBe(1_800_000_000_000);
    // a positive int64, as etcd takes lease ids
    expect(BigInt(id) > 0n && BigInt(id) < 2n ** 63n).toBe(true);
    // an end too far ahead is no tcpkv lease's
    expect(leaseEnd(id, 1_000_000_000_000)).toBeUndefined();
    expect(leaseEnd('not a number')).toBeUndefined();
    expect(leaseEnd('0')).toBeUndefined();
    expect(leaseEnd('7587868391254212345')).toBeUndefined();
    expect(leaseEnd(undefined)).toBeUndefined();
    // whole seconds, rounded up: never before the end
    expect(leaseSeconds(10_000, 8_999)).toBe(2);
    expect(leaseSeconds(10_000, 9_000)).toBe(1);
  });
});
