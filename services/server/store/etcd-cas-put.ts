// PUT as one flat compare-and-swap transaction: compare each key's mod revision with what this
// replica's copy holds (create revision 0 for a key it does not hold); if all match, put every key
// (asking for the previous value), ord/ for the new ones, and the stamp; if not, the failure branch
// reads the keys and the transaction runs again with what it read (nothing was applied, so that is
// safe). A flat transaction, unlike nested ones, is counted by etcd's space quota.

import type { Etcd3, IResponseOp } from 'etcd3';
import type { OrderedEntries } from './etcd-cache.js';
import { NoSpaceAnswer, type EtcdCalls } from './etcd-calls.js';
import type { EtcdKeyspace, WriteStamps } from './etcd-keyspace.js';
import { StoreFullError, StoreUnavailableError, type Pair, type UpsertResult } from './store.js';

/** What this file asks of an etcd client: transactions (an Etcd3 client has them). */
export interface TxnClient {
  readonly kv: Pick<Etcd3['kv'], 'txn'>;
}

/** What an etcd write needs of the store (this file's PUT and etcd-key-writes.ts's one-key writes). */
export interface EtcdWriteOptions {
  readonly client: TxnClient;
  readonly keyspace: EtcdKeyspace;
  readonly stamps: WriteStamps;
  readonly calls: Pick<EtcdCalls, 'call'>;
  /** the copy as it is now (replaced as a whole when the copy lists again) */
  readonly copy: () => OrderedEntries;
  /** the revision of a write etcd answered NOSPACE, if it applied it (see EtcdStore); undefined = not applied */
  readonly revisionDespiteNoSpace: (stamp: string, copy: OrderedEntries) => Promise<number | undefined>;
  /** the etcd deadline (ms): losing to concurrent writes stops after it */
  readonly timeoutMs: number;
}

/**
 * Puts every key of `values` (one value per key: the last given wins) and returns, for each of
 * `pairs`, the value its key held before.
 */
export async function compareAndSwapPut(options: EtcdWriteOptions, pairs: readonly Pair[], values: ReadonlyMap<string, string>): Promise<UpsertResult> {
  const { client, keyspace, stamps, calls, copy, revisionDespiteNoSpace, timeoutMs } = options;
  const keys = [...values.keys()];
  let revisions: (number | undefined)[] = keys.map((key) => copy().get(key)?.modRevision);
  // the values at those revisions: the previous values if the write applies with an answer lost to NOSPACE
  let held: (string | undefined)[] = keys.map((key) => copy().get(key)?.value);
  const ordered = (expected: readonly (number | undefined)[]) => expected.filter((r) => r === undefined).length > 1;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const expected = revisions;
    const stamp = stamps.next();
    const copyAtSend = copy();
    const response = await calls
      .call('update', true, () =>
        client.kv.txn({
          compare: keys.map((key, i) =>
            expected[i] === undefined
              ? { key: keyspace.kvKey(key), target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
              : { key: keyspace.kvKey(key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: expected[i] },
          ),
          success: [
            ...keys.flatMap((key, i) => {
              const put = { request_put: { key: keyspace.kvKey(key), value: Buffer.from(values.get(key)!, 'utf8'), prev_kv: true } };
              return expected[i] === undefined && ordered(expected) ? [put, { request_put: { key: keyspace.ordKey(key), value: Buffer.from(String(i)) } }] : [put];
            }),
            { request_put: { key: keyspace.stampKey, value: Buffer.from(stamp) } },
          ],
          // mod revisions only: values could make the answer larger than the client takes
          failure: keys.map((key) => ({ request_range: { key: keyspace.kvKey(key), keys_only: true } })),
        }),
      )
      .catch(async (error: unknown) => {
        if (!(error instanceof NoSpaceAnswer)) throw error;
        if ((await revisionDespiteNoSpace(stamp, copyAtSend)) === undefined) throw new StoreFullError('etcd space quota (NOSPACE alarm)');
        // applied: each key was at the revision compared, so its previous value is the one held then
        return { succeeded: true, applied: true } as const;
      });
    if ('applied' in response) {
      const previous = new Map(keys.map((key, i) => [key, held[i]] as const));
      return { previous: pairs.map(([key]) => previous.get(key)) };
    }
    if (response.succeeded) {
      const previous = new Map<string, string | undefined>();
      let at = 0;
      for (const [i, key] of keys.entries()) {
        const prev = (response.responses[at] as IResponseOp).response_put.prev_kv;
        previous.set(key, prev ? prev.value.toString('utf8') : undefined);
        at += expected[i] === undefined && ordered(expected) ? 2 : 1;
      }
      return { previous: pairs.map(([key]) => previous.get(key)) };
    }
    // another write got there first: nothing was applied; try again with what etcd holds now
    revisions = response.responses.map((r) => {
      const kv = r.response_range.kvs[0];
      return kv ? Number(kv.mod_revision) : undefined;
    });
    held = response.responses.map((r) => r.response_range.kvs[0]?.value.toString('utf8'));
    if (Date.now() > deadline) throw new StoreUnavailableError('PUT kept losing to concurrent writes of the same keys until the etcd deadline; nothing was applied');
  }
}
