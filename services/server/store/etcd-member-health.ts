// Which etcd members a replica's pooled client may send calls to.
//
// A member is skipped when a call to it fails as a member failure: no connection (refused, reset,
// a name that no longer resolves), or a call that ran out of its deadline. The deadline says little
// on its own: the member may be gone without a word (a killed VM or container, a hung process: its
// connection just stops answering), or alive while the cluster is not (a follower holds a write
// while a new leader is elected). Guessing wrong costs dearly either way: skipping live followers
// during an election leaves only the dead member to call; calling the dead member again makes a
// write wait out the whole deadline. So a member that failed is skipped at once and asked for its
// status, which a live member answers from its own state within milliseconds; it is called again as
// soon as it answers and names a leader. A member that answers without one (cut off from the other
// members, or in an election) is asked again every 250 ms; one that does not answer, every 2 s. No
// client request is spent on finding out, and while no member has a leader, writes answer 503
// "nothing was changed" at once instead of each waiting out the deadline.
//
// A member that stops answering without a word is found sooner than its calls' deadline: a call it
// has not answered for `suspectAfterMs`, while it answered nothing else since that call went out,
// makes it skipped and asked for its status at once (a live member, merely slow on that call, answers
// in milliseconds and is called again). Without this, every call sent to a silent member until the
// first deadline ran out would wait out a deadline of its own after that.
//
// The store's read barriers to a chosen member run through the same policy as the pooled calls
// (`policy(member)` is one per member), so a barrier that fails or hangs there makes writes skip the
// member too, and a barrier never goes to a member that writes skip.
//
// With a single endpoint there is no other member to skip to and no one to ask: after a failed call
// the member is skipped for a while (calls answer 503 at once), then one call tries it again.

import { circuitBreaker, CircuitState, ConsecutiveBreaker, handleWhen, isBrokenCircuitError, type IPolicy } from 'cockatiel';
import { isRecoverableError, type Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { StoreEvents } from '../events.js';

export interface MemberHealthOptions {
  /** a client of this one member only, for status requests (none with a single endpoint) */
  readonly statusClient: (member: string) => Etcd3 | undefined;
  /** deadline of a status request (a live member answers it in milliseconds) */
  readonly statusTimeoutMs: number;
  /** how long a member that does not answer is skipped before it is asked again */
  readonly retryMs: number;
  /** how soon a member that answers without a leader is asked again */
  readonly leaderlessRetryMs: number;
  /** a call unanswered this long, with nothing else answered since it went out, makes the member skipped and asked */
  readonly suspectAfterMs: number;
  readonly events: StoreEvents;
  readonly logger: Logger;
}

export class MemberHealth {
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly policies = new Map<string, { policy: IPolicy; breaker: ReturnType<typeof circuitBreaker> }>();
  /** etcd member id → endpoint, from status answers */
  private readonly endpointOf = new Map<string, string>();

  constructor(private readonly options: MemberHealthOptions) {}

  /** The fault policy of one member's connection (etcd3's `faultHandling.host`): one per member. */
  policy(member: string): IPolicy {
    let made = this.policies.get(member);
    if (made === undefined) {
      made = this.makePolicy(member);
      this.policies.set(member, made);
    }
    return made.policy;
  }

  /** The endpoint that answered a status with this member id (see skipUntilItNamesALeader). */
  learnMember(endpoint: string, memberId: string): void {
    this.endpointOf.set(memberId, endpoint);
  }

  /** Whether calls skip the member now. */
  skipped(member: string): boolean {
    const made = this.policies.get(member);
    return made !== undefined && made.breaker.state !== CircuitState.Closed;
  }

  private makePolicy(member: string): { policy: IPolicy; breaker: ReturnType<typeof circuitBreaker> } {
    const { events, retryMs, suspectAfterMs } = this.options;
    let held: { dispose(): void } | undefined;
    const breaker = circuitBreaker(
      handleWhen((error) => {
        if (!memberFailed(error) || held !== undefined) return false;
        held = this.skipUntilItNamesALeader(member, breaker);
        // no status client (a single endpoint): the breaker opens instead
        return held === undefined;
      }),
      { halfOpenAfter: retryMs, breaker: new ConsecutiveBreaker(1) },
    );
    breaker.onStateChange((state) => {
      if (state === CircuitState.Closed) held = undefined;
      events.etcdBreaker(member, state === CircuitState.Closed ? 'closed' : state === CircuitState.HalfOpen ? 'half-open' : 'open');
    });
    let answeredAt = -Infinity;
    const policy: IPolicy = {
      _altReturn: undefined as never,
      onSuccess: breaker.onSuccess,
      onFailure: breaker.onFailure,
      execute: async (fn, signal) => {
        const sentAt = performance.now();
        const timer = setTimeout(() => {
          if (answeredAt >= sentAt || held !== undefined || this.closed) return;
          held = this.skipUntilItNamesALeader(member, breaker);
        }, suspectAfterMs);
        timer.unref();
        try {
          const result = await breaker.execute(fn, signal);
          answeredAt = performance.now();
          return result;
        } catch (error) {
          if (!isBrokenCircuitError(error) && !memberFailed(error as Error)) answeredAt = performance.now();
          throw error;
        } finally {
          clearTimeout(timer);
        }
      },
    };
    return { policy, breaker };
  }

  /** Stops asking members for their status. */
  close(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /**
   * Skips the member until its status names a leader; none is made with a single endpoint. A member
   * that answers without a leader (cut off from the others, or during an election) is alive, but a
   * write sent to it would wait out the deadline: it is asked again sooner, since it answers at once.
   * So is one that names as leader a member that calls skip (it has not noticed its leader is gone).
   */
  private skipUntilItNamesALeader(member: string, breaker: ReturnType<typeof circuitBreaker>): { dispose(): void } | undefined {
    const client = this.options.statusClient(member);
    if (client === undefined || this.closed) return undefined;
    const hold = breaker.isolate();
    const since = Date.now();
    let said: 'silent' | 'leaderless' | undefined;
    const askAgain = (ms: number): void => {
      if (this.closed) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        ask();
      }, ms);
      timer.unref();
      this.timers.add(timer);
    };
    const ask = (): void => {
      if (this.closed) return;
      client.maintenance.status({ deadline: Date.now() + this.options.statusTimeoutMs }).then(
        (status) => {
          this.learnMember(member, status.header.member_id);
          // a leader this replica skips because it does not answer: the member has not noticed yet,
          // and a write it forwards there waits out the deadline, as with no leader at all
          const leaderEndpoint = this.endpointOf.get(status.leader);
          const silentLeader = leaderEndpoint !== undefined && leaderEndpoint !== member && this.skipped(leaderEndpoint);
          if (status.leader === '0' || silentLeader) {
            if (said === undefined) this.options.logger.warn({ member }, 'etcd member answers but knows no leader that answers (cut off from the others, or an election): calls skip it until it names one');
            said ??= 'leaderless';
            askAgain(this.options.leaderlessRetryMs);
            return;
          }
          if (said !== undefined) this.options.logger.info({ member, skippedMs: Date.now() - since }, 'etcd member answers again with a leader: calls go to it again');
          hold.dispose();
        },
        (error: unknown) => {
          if (said !== 'silent') this.options.logger.warn({ member, err: (error as Error).message }, 'etcd member does not answer: calls skip it until it answers a status request');
          said = 'silent';
          askAgain(this.options.retryMs);
        },
      );
    };
    ask();
    return hold;
  }
}

/**
 * The member could not be reached, or did not answer in time (gRPC UNAVAILABLE or DEADLINE_EXCEEDED
 * without an answer from etcd). An answer from etcd itself ("etcdserver: ...", such as "no leader"
 * during an election, which uses the same gRPC code) is about this request, not the member.
 */
function memberFailed(error: Error): boolean {
  // RESOURCE_EXHAUSTED (an answer over the client's 4 MiB) is about the request, not the member
  return isRecoverableError(error) && !/etcdserver:|RESOURCE_EXHAUSTED|larger than max/.test(error.message);
}
