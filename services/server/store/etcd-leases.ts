// Expiry in the etcd store: a putKey with a TTL puts its key with an etcd lease, in the same
// transaction as without one; etcd deletes the key when the lease expires (one revision for all the
// keys of a lease), and every replica's copy sees that DELETE and records it in its feed. A later put
// without a lease detaches the key from the lease.
//
//   buckets   one lease per second of expiry: every write whose key expires within the same whole
//             second (wall clock) shares one lease, granted once and reused until that second ends
//             (LeaseBuckets). A write costs an etcd call of its own only when its bucket has no lease
//             yet; a lease per key would cost a grant for every write.
//   lease id  the bucket chooses the lease's id: its end second and a mark (leaseIdFor). Replicas
//             writing into the same second share the lease (a grant of an id that exists is refused,
//             and the lease is used as it is), and any replica reads a key's expiry from the lease id
//             the watch or the list brings — no lease lookups, at start or after.
//   never early  the lease is granted for the whole seconds from the grant to its bucket's end,
//             rounded up, so etcd expires it at or after the bucket's end, which is at or after
//             now + ttlMs for every write in the bucket: a key expires at most about a second late
//             (plus etcd's lease check period, 500 ms), never early. etcd raises a TTL below its
//             minimum (1.5 × the election timeout, 2 s with the default 1 s) to that minimum, and a
//             new leader renews every lease for its full TTL: both only make keys live longer.
//   reads     the copy hides a key from its lease's end on (by this replica's wall clock; replicas'
//             clocks are assumed in sync, e.g. NTP), so between that instant and etcd's DELETE
//             reaching the copy no read returns it. A condition is decided by etcd, which may still
//             hold the key for that while.

import type { Etcd3 } from 'etcd3';

/** The lease ids tcpkv chooses: (end second << LEASE_MARK_BITS) | mark. */
const LEASE_MARK_BITS = 20n;
/** The mark in a tcpkv lease id's low bits: a lease another client chose is not read as an expiry. */
const LEASE_MARK = 0x7c0b5n;
/** Lease ids whose end lies further ahead than this are not tcpkv's (ms). */
const LEASE_HORIZON_MS = 400 * 24 * 3600 * 1000;

/** The lease id of the bucket that ends at `endSecond` (Unix seconds). */
export function leaseIdFor(endSecond: number): string {
  return ((BigInt(endSecond) << LEASE_MARK_BITS) | LEASE_MARK).toString();
}

/** The wall-clock ms a tcpkv lease id ends at; undefined for no lease ('0') or a lease tcpkv did not choose. */
export function leaseEnd(leaseId: string | undefined, now = Date.now()): number | undefined {
  if (leaseId === undefined || leaseId === '0' || leaseId === '') return undefined;
  let id: bigint;
  try {
    id = BigInt(leaseId);
  } catch {
    return undefined;
  }
  if ((id & ((1n << LEASE_MARK_BITS) - 1n)) !== LEASE_MARK) return undefined;
  const end = Number(id >> LEASE_MARK_BITS) * 1000;
  return end > now + LEASE_HORIZON_MS ? undefined : end;
}

/** The whole seconds a lease granted at `now` needs to last until `endMs`. */
export function leaseSeconds(endMs: number, now: number): number {
  return Math.max(1, Math.ceil((endMs - now) / 1000));
}

export interface LeaseGrantClient {
  /** grants lease `id` for `ttlSeconds`; resolves false if a lease with that id exists already */
  grant(id: string, ttlSeconds: number): Promise<boolean>;
}

/** Grants and reuses the lease of each second of expiry (see "buckets"). */
export class LeaseBuckets {
  /** grants sent (the choice between a lease per key and per bucket was measured by this) */
  grants = 0;
  private readonly buckets = new Map<number, Promise<string>>();

  constructor(private readonly client: LeaseGrantClient) {}

  /** The lease a write at `now` that expires `ttlMs` later is put with. */
  lease(ttlMs: number, now = Date.now()): Promise<string> {
    const endSecond = Math.ceil((now + ttlMs) / 1000);
    const held = this.buckets.get(endSecond);
    if (held !== undefined) return held;
    this.forgetEnded(now);
    const id = leaseIdFor(endSecond);
    this.grants++;
    const granted = this.client.grant(id, leaseSeconds(endSecond * 1000, now)).then(
      () => id,
      (error: unknown) => {
        this.buckets.delete(endSecond);
        throw error;
      },
    );
    this.buckets.set(endSecond, granted);
    return granted;
  }

  /** A lease etcd no longer has (it expired or was revoked before the write applied): granted again next time. */
  forget(leaseId: string): void {
    const end = leaseEnd(leaseId);
    if (end !== undefined) this.buckets.delete(end / 1000);
  }

  private forgetEnded(now: number): void {
    for (const endSecond of this.buckets.keys()) if (endSecond * 1000 <= now) this.buckets.delete(endSecond);
  }
}

/** LeaseGrantClient over an etcd3 client. */
export function etcdLeaseGrants(client: Pick<Etcd3, 'leaseClient'>): LeaseGrantClient {
  return {
    grant: async (id, ttlSeconds) => {
      try {
        await client.leaseClient.leaseGrant({ ID: id, TTL: ttlSeconds });
        return true;
      } catch (error) {
        if (error instanceof Error && /lease already exists/.test(error.message)) return false;
        throw error;
      }
    },
  };
}
