// The one-key conditional writes (putKey, deleteKey): each is one etcd transaction whose compare holds
// the condition, evaluated by etcd against the kv/ key when the transaction applies; its failure branch
// reads the key's mod revision (no value), so a refusal reports the version etcd saw in that same
// transaction, never this replica's copy's guess. A key's version is its mod revision.
//
//   any       compare-and-swap against the copy's mod revision, as PUT does (etcd-cas-put.ts): the
//             answer knows whether the key was new without reading its previous value
//   absent    create revision 0
//   exists    create revision > 0
//   versions  etcd compares one value per term and terms are all required, so one candidate is
//             compared: the one the copy holds, else the smallest above the copy's (versions never go
//             back, so a smaller one cannot match). A key found at another candidate (the copy was
//             behind) is tried again at that one; at any other version the condition failed, at the
//             revision of the transaction that read it.
//
// Nothing is applied by a transaction that failed, so trying again is safe; it stops at the etcd
// deadline, as PUT does.
//
// A TTL: the kv/ key is put with its expiry second's lease (etcd-leases.ts), in the same transaction;
// without one it is put without a lease, which detaches it from any earlier one. A lease that expired
// before the transaction applied (etcd refuses the whole transaction) is granted again and the
// transaction sent again. An ord/ entry (a key created among others) is not put: it stays after the
// key expires, as an entry no list uses, until the key is written among others again or deleted.

import { EtcdLeaseInvalidError, type ICompare, type IRangeResponse } from 'etcd3';
import { NoSpaceAnswer } from './etcd-calls.js';
import type { EtcdWriteOptions } from './etcd-cas-put.js';
import type { LeaseBuckets } from './etcd-leases.js';
import { conditionHolds, StoreFullError, StoreUnavailableError, type Condition, type KeyDeleteResult, type KeyPutResult } from './store.js';

/** The PUT path's options (etcd-cas-put.ts) and the leases a TTL'd put takes. */
export interface KeyWriteOptions extends EtcdWriteOptions {
  readonly leases: LeaseBuckets;
}

/** A transaction etcd refused because its lease no longer exists: nothing was applied. */
const LEASE_GONE = Symbol('lease gone');

function leaseGone(error: unknown): typeof LEASE_GONE {
  if (error instanceof EtcdLeaseInvalidError || (error instanceof Error && /requested lease not found/.test(error.message))) return LEASE_GONE;
  throw error;
}

/**
 * The candidate of a `versions` condition to compare first: the copy's version if it is one, else the
 * smallest one above it (the copy lags, the key's version only grows), else any (it cannot match: the
 * transaction only reads the current version).
 */
export function firstCandidate(versions: readonly number[], copyVersion: number | undefined): number {
  if (versions.length === 0) return 0;
  if (copyVersion !== undefined && versions.includes(copyVersion)) return copyVersion;
  const floor = copyVersion ?? 0;
  let best: number | undefined;
  for (const v of versions) if (v > floor && (best === undefined || v < best)) best = v;
  return best ?? versions[0]!;
}

/** What the failure branch read: the key's mod revision, or undefined when there is no such key. */
function versionRead(range: IRangeResponse | undefined): number | undefined {
  const kv = range?.kvs[0];
  return kv ? Number(kv.mod_revision) : undefined;
}

/**
 * The compare terms for `condition`, with `expected` the version this attempt assumes: the copy's (or
 * the last read) for `any`, the candidate for `versions`. A term on the mod revision is paired with one
 * on the create revision: etcd compares a missing key as if every field were 0.
 */
function compareFor(key: Buffer, kind: Condition['kind'], expected: number | undefined): ICompare[] {
  const absent: ICompare = { key, target: 'Create', result: 'Equal', create_revision: 0 };
  const exists: ICompare = { key, target: 'Create', result: 'Greater', create_revision: 0 };
  switch (kind) {
    case 'absent':
      return [absent];
    case 'exists':
      return [exists];
    case 'any':
    case 'versions':
      return expected === undefined ? [absent] : [exists, { key, target: 'Mod', result: 'Equal', mod_revision: expected }];
  }
}

function tooLong(what: string): StoreUnavailableError {
  return new StoreUnavailableError(`${what} kept losing to concurrent writes of the same key until the etcd deadline; nothing was applied`);
}

/** putKey: sets `key` if `condition` holds for its version when the transaction applies. Limits are checked before. */
export async function conditionalPut(options: KeyWriteOptions, key: string, value: string, condition: Condition, ttlMs?: number): Promise<KeyPutResult> {
  const { client, keyspace, stamps, calls, copy, revisionDespiteNoSpace, timeoutMs, leases } = options;
  const kvKey = keyspace.kvKey(key);
  const copyVersion = copy().get(key)?.modRevision;
  let expected = condition.kind === 'versions' ? firstCandidate(condition.versions, copyVersion) : copyVersion;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const compare = compareFor(kvKey, condition.kind, expected);
    // created: the compare says the key did not exist (any: the copy-or-read version it compares)
    const created = condition.kind === 'absent' || (condition.kind === 'any' && expected === undefined);
    const lease = ttlMs === undefined ? undefined : await leases.lease(ttlMs);
    const stamp = stamps.next();
    const copyAtSend = copy();
    const response = await calls
      .call('update', true, () =>
        client.kv
          .txn({
            compare,
            success: [
              { request_put: { key: kvKey, value: Buffer.from(value, 'utf8'), ...(lease === undefined ? {} : { lease }) } },
              { request_put: { key: keyspace.stampKey, value: Buffer.from(stamp) } },
            ],
            failure: [{ request_range: { key: kvKey, keys_only: true } }],
          })
          .catch(leaseGone),
      )
      .catch(async (error: unknown) => {
        if (!(error instanceof NoSpaceAnswer)) throw error;
        const revision = await revisionDespiteNoSpace(stamp, copyAtSend);
        if (revision === undefined) throw new StoreFullError('etcd space quota (NOSPACE alarm)');
        return { applied: revision } as const;
      });
    if (response === LEASE_GONE) {
      leases.forget(lease!);
      if (Date.now() > deadline) throw new StoreUnavailableError('A PUT with a TTL: its lease kept expiring before etcd applied the write, until the etcd deadline; nothing was applied');
      continue;
    }
    if ('applied' in response) return { ok: true, version: response.applied, created };
    if (response.succeeded) return { ok: true, version: Number(response.header.revision), created };
    const current = versionRead(response.responses[0]?.response_range);
    if (!conditionHolds(condition, current)) return { ok: false, current };
    // the compare assumed another version than etcd holds, one the condition accepts: again at that one
    expected = current;
    if (Date.now() > deadline) throw tooLong('A conditional PUT');
  }
}

/**
 * deleteKey: deletes kv/, ord/ and the stamp (as delete() does) if the key exists and `condition` holds
 * for its version. A transaction that only deletes and reads: etcd's space quota admits it.
 */
export async function conditionalDelete(options: KeyWriteOptions, key: string, condition: Condition): Promise<KeyDeleteResult> {
  const { client, keyspace, calls, copy, timeoutMs } = options;
  const kvKey = keyspace.kvKey(key);
  const read = { request_range: { key: kvKey, keys_only: true } };
  if (condition.kind === 'absent') {
    // no key is ever deleted under "absent": the answer is the version etcd holds now (a linearizable read)
    const response = await calls.call('delete', false, () => client.kv.txn({ compare: [], success: [read], failure: [] }));
    return { ok: false, current: versionRead(response.responses[0]?.response_range) };
  }
  let expected = condition.kind === 'versions' ? firstCandidate(condition.versions, copy().get(key)?.modRevision) : undefined;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // any and exists: the key exists; versions: at the candidate
    const compare = condition.kind === 'versions' ? compareFor(kvKey, 'versions', expected) : compareFor(kvKey, 'exists', undefined);
    const response = await calls.call('delete', true, () =>
      client.kv.txn({
        compare,
        success: [
          { request_delete_range: { key: kvKey } },
          { request_delete_range: { key: keyspace.ordKey(key) } },
          { request_delete_range: { key: keyspace.stampKey } },
        ],
        failure: [read],
      }),
    );
    if (response.succeeded) return { ok: true, version: Number(response.header.revision) };
    const current = versionRead(response.responses[0]?.response_range);
    if (current === undefined || !conditionHolds(condition, current)) return { ok: false, current };
    expected = current;
    if (Date.now() > deadline) throw tooLong('A conditional DELETE');
  }
}
