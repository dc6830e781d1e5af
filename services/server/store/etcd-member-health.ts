// Which etcd members a replica's pooled client may send calls to.
//
// A member is skipped when a call to it fails as a member failure: no connection (refused, reset,
// a name that no longer resolves), or a call that ran out of its deadline. The deadline says little
// on its own: the member may be gone without a word (a killed VM or container, a hung process: its
// connection just stops answering), or alive while the cluster is not (a follower holds a write
// while a new leader is elected). Guessing wrong costs dearly either way: skipping live followers
// during an election leaves only the dead member to call; calling the dead member again makes a
// write wait out the whole deadline. So a member that failed is skipped at once and asked for its
// status, which a live member answers from its own state, leader or not, within milliseconds; it is
// called again as soon as it answers. No client request is spent on finding out: while a member
// stays down, only status requests go to it, every 2 s.
//
// With a single endpoint there is no other member to skip to and no one to ask: after a failed call
// the member is skipped for a while (calls answer 503 at once), then one call tries it again.

import { circuitBreaker, CircuitState, ConsecutiveBreaker, handleWhen, type IPolicy } from 'cockatiel';
import { isRecoverableError, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { StoreEvents } from '../events.js';

export interface MemberHealthOptions {
  /** a client of this one member only, for status requests (none with a single endpoint) */
  readonly statusClient: (member: string) => Etcd3 | undefined;
  /** deadline of a status request (a live member answers it in milliseconds) */
  readonly statusTimeoutMs: number;
  /** how long a member that failed is skipped before it is tried (or asked) again */
  readonly retryMs: number;
  readonly events: StoreEvents;
  readonly logger: Logger;
}

export class MemberHealth {
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly options: MemberHealthOptions) {}

  /** The fault policy of one member's connection (etcd3's `faultHandling.host`). */
  policy(member: string): IPolicy {
    const { events, retryMs } = this.options;
    let held: { dispose(): void } | undefined;
    const breaker = circuitBreaker(
      handleWhen((error) => {
        if (!memberFailed(error) || held !== undefined) return false;
        held = this.holdUntilItAnswers(member, breaker);
        // no status client (a single endpoint): the breaker opens instead
        return held === undefined;
      }),
      { halfOpenAfter: retryMs, breaker: new ConsecutiveBreaker(1) },
    );
    breaker.onStateChange((state) => {
      if (state === CircuitState.Closed) held = undefined;
      events.etcdBreaker(member, state === CircuitState.Closed ? 'closed' : state === CircuitState.HalfOpen ? 'half-open' : 'open');
    });
    return breaker;
  }

  /** Stops asking members for their status. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** Skips the member until it answers a status request; none is made with a single endpoint. */
  private holdUntilItAnswers(member: string, breaker: ReturnType<typeof circuitBreaker>): { dispose(): void } | undefined {
    const client = this.options.statusClient(member);
    if (client === undefined || this.closed) return undefined;
    const hold = breaker.isolate();
    const since = Date.now();
    let attempts = 0;
    const ask = (): void => {
      if (this.closed) return;
      attempts++;
      client.maintenance.status({ deadline: Date.now() + this.options.statusTimeoutMs }).then(
        () => {
          if (attempts > 1) this.options.logger.info({ member, skippedMs: Date.now() - since }, 'etcd member answers again: calls go to it again');
          hold.dispose();
        },
        (error: unknown) => {
          if (attempts === 1) this.options.logger.warn({ member, err: (error as Error).message }, 'etcd member does not answer: calls skip it until it answers a status request');
          if (this.closed) return;
          const timer = setTimeout(() => {
            this.timers.delete(timer);
            ask();
          }, this.options.retryMs);
          timer.unref();
          this.timers.add(timer);
        },
      );
    };
    ask();
    return hold;
  }
}

/**
 * The member could not be reached, or did not answer in time (gRPC UNAVAILABLE or DEADLINE_EXCEEDED
 * without an answer from etcd). An answer from a live member that is itself unavailable — "etcdserver: no leader" during an election, which uses
 * the same gRPC code — must not make the replica skip that member: then every member would be
 * skipped at once, just when the new leader is being elected.
 */
function memberFailed(error: Error): boolean {
  // RESOURCE_EXHAUSTED (an answer over the client's 4 MiB) is about the request, not the member
  return isRecoverableError(error) && !/etcdserver:|RESOURCE_EXHAUSTED|larger than max/.test(error.message);
}
