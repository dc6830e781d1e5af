// The limits a write meets before it is sent: etcd's own (operations and bytes per transaction,
// which it would refuse: 413 up front) and the store limits (keys and data bytes: 507).

import type { Logger } from 'pino';
import type { EtcdKeyspace } from './etcd-keyspace.js';
import { STAMP_VALUE_MAX_BYTES } from './etcd-keyspace.js';
import { StoreFullError, ValueTooLargeError, type Pair, type StoreLimits, type StoreUsage } from './store.js';

/** Below 90 % of a store limit by more than this, the limit check uses the copy without a barrier. */
const LIMIT_MARGIN_KEYS = 1000;
const LIMIT_MARGIN_BYTES = 4 * 1024 * 1024;
/** Protobuf framing per operation, over-estimated, for the request size check. */
const OP_OVERHEAD_BYTES = 32;
/** A store limit that is hit is logged at most this often. */
const LIMIT_LOG_EVERY_MS = 60_000;

/** What a write adds to the store: for the store limits. */
export interface Growth {
  readonly newKeys: number;
  readonly addedBytes: number;
}

export interface WriteLimitsOptions {
  readonly keyspace: EtcdKeyspace;
  /** etcd's --max-txn-ops */
  readonly maxTxnOps: number;
  /** etcd's --max-request-bytes */
  readonly maxRequestBytes: number;
  readonly limits: StoreLimits | undefined;
  readonly logger: Logger;
  /** what the copy holds now (milliseconds behind etcd), and whether it has synced at all */
  readonly copyUsage: () => StoreUsage;
  readonly copySynced: () => boolean;
  /** waits until the copy holds every write acknowledged before the call (a read barrier) */
  readonly fresh: () => Promise<unknown>;
}

export class WriteLimits {
  private lastLimitLog = -Infinity;

  constructor(private readonly options: WriteLimitsOptions) {}

  /** Pairs one transaction takes: a write of n pairs takes 2n+1 operations. */
  get maxPairs(): number {
    return Math.floor((this.options.maxTxnOps - 1) / 2);
  }

  /** What every write transaction holds besides its pairs: the stamp and framing. */
  get fixedBytes(): number {
    return OP_OVERHEAD_BYTES + this.options.keyspace.stampKey.length + STAMP_VALUE_MAX_BYTES;
  }

  /** Refuses up front what etcd would refuse for its size (413); returns the pairs' share of the request (pairsBytes). */
  checkSize(pairs: readonly Pair[]): number {
    const { maxTxnOps, maxRequestBytes, logger } = this.options;
    const maxPairs = this.maxPairs;
    if (pairs.length > maxPairs) {
      logger.warn({ pairs: pairs.length, maxPairs }, 'write refused: more pairs than one etcd transaction takes');
      throw new ValueTooLargeError(`A write holds at most ${maxPairs} pairs with this etcd (TCPKV_ETCD_MAX_TXN_OPS=${maxTxnOps}); this one has ${pairs.length}`);
    }
    const pairsBytes = this.pairsBytes(pairs);
    const bytes = this.fixedBytes + pairsBytes;
    if (bytes > maxRequestBytes) {
      logger.warn({ bytes, maxRequestBytes }, 'write refused: larger than one etcd request');
      throw new ValueTooLargeError(`The write needs an etcd request of about ${bytes} bytes; etcd takes at most ${maxRequestBytes} (TCPKV_ETCD_MAX_REQUEST_BYTES)`);
    }
    return pairsBytes;
  }

  /** What `pairs` add to a write transaction, over-estimated: kv/ in compare, put and failure, ord/, the value. */
  private pairsBytes(pairs: readonly Pair[]): number {
    const { kvPrefix, ordPrefix } = this.options.keyspace;
    let bytes = 0;
    for (const [key, value] of pairs) {
      const k = Buffer.byteLength(key);
      bytes += 3 * (kvPrefix.length + k) + ordPrefix.length + k + Buffer.byteLength(value) + 5 * OP_OVERHEAD_BYTES;
    }
    return bytes;
  }

  /**
   * The store limits (507), against the copy: its view as of the last applied revision, which is
   * milliseconds behind. Near a limit (within 10 % plus LIMIT_MARGIN_*, far more than the writes of a
   * few milliseconds) or before the copy has synced, the check waits for a read barrier first, so
   * that every write acknowledged before it — this replica's own included — is counted.
   */
  async checkLimits(growth: () => Growth): Promise<void> {
    const { limits, copyUsage, copySynced, fresh, logger } = this.options;
    if (limits === undefined) return;
    const over = (): string | undefined => {
      const usage = copyUsage();
      const { newKeys, addedBytes } = growth();
      if (newKeys > 0 && usage.keys + newKeys > limits.maxKeys) return `TCPKV_MAX_KEYS=${limits.maxKeys}`;
      if (addedBytes > 0 && usage.dataBytes + addedBytes > limits.maxDataBytes) return `TCPKV_MAX_DATA_BYTES=${limits.maxDataBytes}`;
      return undefined;
    };
    const near = (): boolean => {
      const usage = copyUsage();
      const { newKeys, addedBytes } = growth();
      return usage.keys + newKeys > 0.9 * limits.maxKeys - LIMIT_MARGIN_KEYS || usage.dataBytes + addedBytes > 0.9 * limits.maxDataBytes - LIMIT_MARGIN_BYTES;
    };
    if (!copySynced() || near()) await fresh();
    const which = over();
    if (which === undefined) return;
    const now = Date.now();
    if (now - this.lastLimitLog >= LIMIT_LOG_EVERY_MS) {
      this.lastLimitLog = now;
      const usage = copyUsage();
      logger.warn({ limit: which, keys: usage.keys, dataBytes: usage.dataBytes }, 'store limit reached: writes answer 507');
    }
    throw new StoreFullError(which);
  }
}
