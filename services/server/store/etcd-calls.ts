// One call to etcd, and what its failure means. etcd3's own retries are switched off: a transaction
// retried after a lost answer could be applied twice, or report its own write as a conflict. A
// failure answers 503 instead, saying whether the write may have been applied. What stays on is a
// circuit breaker per member (etcd-member-health.ts): a call the breaker stops never reached etcd,
// so moving it on is safe. Refusals (too large, too many operations, the space quota, permissions)
// are answers from a healthy member about the request: never counted against a member.

import { performance } from 'node:perf_hooks';
import { isBrokenCircuitError } from 'cockatiel';
import { EtcdAuthenticationFailedError, EtcdInvalidAuthTokenError, EtcdPermissionDeniedError, EtcdUserNotFoundError } from 'etcd3';
import type { Logger } from 'pino';
import type { StoreEvents } from '../events.js';
import { StoreFullError, StoreUnavailableError, ValueTooLargeError } from './store.js';

/** An outage is logged at error level at most this often (each failure is at debug level). */
const ERROR_LOG_EVERY_MS = 10_000;

/**
 * etcd answered a write NOSPACE. Whether it applied it is not in the answer (etcd applies the write
 * that crosses its quota and answers NOSPACE all the same): the write paths find out.
 */
export class NoSpaceAnswer extends StoreFullError {}

export type Refusal = 'too-many-ops' | 'too-large' | 'no-space' | 'denied' | undefined;

/** etcd3's typed errors for a user or token etcd does not accept, or rights the user lacks. */
const DENIED_ERRORS = [EtcdPermissionDeniedError, EtcdAuthenticationFailedError, EtcdInvalidAuthTokenError, EtcdUserNotFoundError];

/**
 * An answer from a healthy member refusing this request (retrying it never helps). etcd3 types the
 * refusals of credentials and rights; the others share a gRPC code with unrelated errors (too many
 * operations and too large are INVALID_ARGUMENT, NOSPACE is RESOURCE_EXHAUSTED, as is an answer over
 * the client's receive limit), so etcd's own text tells them apart.
 */
export function refusal(error: unknown): Refusal {
  if (DENIED_ERRORS.some((type) => error instanceof type)) return 'denied';
  const message = (error as Error)?.message ?? '';
  if (/too many operations in txn/.test(message)) return 'too-many-ops';
  if (/request is too large|larger than max/.test(message)) return 'too-large';
  if (/database space exceeded|NOSPACE/.test(message)) return 'no-space';
  // etcd3 has no type for this one: credentials given to an etcd without authentication
  if (/authentication is not enabled/.test(message)) return 'denied';
  return undefined;
}

/** The call cannot have reached etcd: no connection was made, or every member's breaker stopped it. */
export function neverSent(error: unknown): boolean {
  if (isBrokenCircuitError(error)) return true;
  const message = (error as Error)?.message ?? '';
  return /No connection established|ECONNREFUSED|Connection pool has no hosts/.test(message);
}

export interface EtcdCallsOptions {
  readonly logger: Logger;
  readonly events: StoreEvents;
  /** named in the answer to a transaction etcd finds has too many operations */
  readonly maxTxnOps: number;
}

/** Runs calls to etcd and turns their failures into store errors; notes an outage and its end. */
export class EtcdCalls {
  private unavailableSince: number | undefined;
  private lastErrorLog = -Infinity;

  constructor(private readonly options: EtcdCallsOptions) {}

  noteFailure(what: string, message: string): void {
    const now = Date.now();
    this.unavailableSince ??= now;
    if (now - this.lastErrorLog >= ERROR_LOG_EVERY_MS) {
      this.lastErrorLog = now;
      this.options.logger.error({ op: what, err: message }, 'etcd call failed: answering 503 until it recovers');
    } else {
      this.options.logger.debug({ op: what, err: message }, 'etcd call failed');
    }
  }

  /**
   * One call to etcd. An outage becomes StoreUnavailableError (logged at error level once in a
   * while); a refusal of this request by a healthy member becomes 413, 507 or a 503 that says nothing
   * was applied, and is not counted as a member failure.
   */
  async call<T>(what: string, isWrite: boolean, run: () => Promise<T>): Promise<T> {
    const { logger, events } = this.options;
    const started = performance.now();
    try {
      const result = await run();
      events.etcdCall(what, (performance.now() - started) / 1000, true);
      if (this.unavailableSince !== undefined) {
        logger.info({ downMs: Date.now() - this.unavailableSince }, 'etcd answers again');
        this.unavailableSince = undefined;
      }
      return result;
    } catch (error) {
      const message = (error as Error).message;
      const refused = refusal(error);
      events.etcdCall(what, (performance.now() - started) / 1000, refused !== undefined);
      switch (refused) {
        case 'too-many-ops':
          logger.warn({ op: what, err: message }, 'etcd refused the write: more operations than its --max-txn-ops; set TCPKV_ETCD_MAX_TXN_OPS to match it');
          throw new ValueTooLargeError(`etcd refused the write: more operations than its --max-txn-ops (TCPKV_ETCD_MAX_TXN_OPS=${this.options.maxTxnOps} says more); nothing was applied`);
        case 'too-large':
          logger.warn({ op: what, err: message }, 'etcd refused the write as too large; set TCPKV_ETCD_MAX_REQUEST_BYTES to match its --max-request-bytes');
          throw new ValueTooLargeError(`etcd refused the write as too large (over its --max-request-bytes); nothing was applied`);
        case 'no-space':
          // whether a write was applied is decided by the caller (see appliedDespiteNoSpace)
          logger.error({ op: what, err: message }, 'etcd is out of space (NOSPACE alarm): writes answer 507 until an operator compacts, defragments and disarms the alarm');
          throw new NoSpaceAnswer('etcd space quota (NOSPACE alarm)');
        case 'denied':
          logger.error({ op: what, err: message }, 'etcd refused the request: check the etcd user and its role');
          throw new StoreUnavailableError(`etcd refused the request (${message}); nothing was applied`);
        default:
          this.noteFailure(what, message);
          // A write whose answer was lost may have been applied; one that never reached etcd was not.
          throw new StoreUnavailableError(message, { indeterminate: isWrite && !neverSent(error) });
      }
    }
  }
}
