// Where a read barrier goes. Barriers go to the member a majority of members name as leader, when
// there is one: a follower would forward each to the leader, and the leader folds the barriers that
// reach it together from all replicas into one confirmation round. Any member's answer is
// linearizable; the choice only saves work. A barrier out at the leader for suspectAfterMs makes the
// next ones go to the member with the fewest out, and a member that calls skip (etcd-member-health.ts)
// is never chosen.

import { performance } from 'node:perf_hooks';
import { isBrokenCircuitError, type IPolicy } from 'cockatiel';

/** What this file asks of an etcd client: a member's status (an Etcd3 client has it). */
export interface StatusClient {
  readonly maintenance: {
    status(options?: { deadline?: number }): Promise<{ readonly header: { readonly member_id: string }; readonly leader: string }>;
  };
}

/** What this file asks of the members' health (a MemberHealth has it). */
export interface MemberSkips {
  policy(member: string): IPolicy;
  learnMember(endpoint: string, memberId: string): void;
  skipped(member: string): boolean;
}

export interface BarrierRouteOptions<C extends StatusClient> {
  /** the pooled client: barriers go there with a single endpoint, or when no member can take them */
  readonly pooled: C;
  /** one client per endpoint, in the order of `endpoints` (none with a single endpoint) */
  readonly memberClients: readonly C[];
  readonly endpoints: readonly string[];
  readonly health: MemberSkips;
  /** deadline of each status request of a leader check (ms) */
  readonly statusTimeoutMs: number;
  /** how often the members are asked which one leads (ms) */
  readonly leaderCheckEveryMs: number;
  /** a barrier out this long at the leader makes the next ones go to another member (ms) */
  readonly suspectAfterMs: number;
}

export class BarrierRoute<C extends StatusClient> {
  /** the member the majority names as leader (an index into memberClients) */
  private leaderIndex: number | undefined;
  private leaderCheck: Promise<void> | undefined;
  private leaderCheckedAt = -Infinity;
  /** bumped when a barrier fails at the leader: a leader check started before must not name it again */
  private leaderEpoch = 0;
  /** per member, when each barrier out there was sent */
  private readonly barriersOutAt: number[][];
  private closed = false;

  constructor(private readonly options: BarrierRouteOptions<C>) {
    this.barriersOutAt = options.memberClients.map(() => []);
  }

  /** The endpoint of the member the majority named as leader at the last check, if any. */
  get leader(): string | undefined {
    return this.leaderIndex === undefined ? undefined : this.options.endpoints[this.leaderIndex];
  }

  /** Stops asking the members which one leads. */
  close(): void {
    this.closed = true;
  }

  /**
   * Sends one barrier read to the chosen member, through that member's policy (as pooled calls are),
   * else pooled. `wrap` is the call around it (failures are classified there).
   */
  async read<T>(read: (client: C) => Promise<T>, wrap: (run: () => Promise<T>) => Promise<T>): Promise<T> {
    const sentAt = performance.now();
    if (this.options.memberClients.length > 0 && Date.now() - this.leaderCheckedAt >= this.options.leaderCheckEveryMs) this.findLeader();
    const via = this.barrierMember(sentAt);
    if (via !== undefined) this.barriersOutAt[via]!.push(sentAt);
    const epoch = this.leaderEpoch;
    try {
      return await wrap(() => this.readVia(via, read));
    } catch (error) {
      if (via !== undefined && via === this.leaderIndex && epoch === this.leaderEpoch) {
        // the leader failed it: back to any member until the members name a leader again
        this.leaderIndex = undefined;
        this.leaderEpoch++;
        this.findLeader();
      }
      throw error;
    } finally {
      if (via !== undefined) this.barriersOutAt[via]!.splice(this.barriersOutAt[via]!.indexOf(sentAt), 1);
    }
  }

  /**
   * Where a barrier goes (an index into memberClients; undefined: the pooled client, which skips the
   * members it skips): the leader, unless a barrier has been out there for suspectAfterMs (then the
   * member with the fewest barriers out), and never a member that calls skip.
   */
  private barrierMember(now: number): number | undefined {
    const { memberClients, endpoints, health, suspectAfterMs } = this.options;
    if (memberClients.length === 0) return undefined;
    const usable = (i: number) => !health.skipped(endpoints[i]!);
    const leader = this.leaderIndex;
    if (leader !== undefined && usable(leader) && !this.barriersOutAt[leader]!.some((at) => now - at >= suspectAfterMs)) return leader;
    let best: number | undefined;
    for (let i = 0; i < memberClients.length; i++) {
      if (i === leader || !usable(i)) continue;
      if (best === undefined || this.barriersOutAt[i]!.length < this.barriersOutAt[best]!.length) best = i;
    }
    return best;
  }

  private async readVia<T>(via: number | undefined, read: (client: C) => Promise<T>): Promise<T> {
    const { pooled, memberClients, endpoints, health } = this.options;
    if (via === undefined) return read(pooled);
    try {
      return await health.policy(endpoints[via]!).execute(() => read(memberClients[via]!));
    } catch (error) {
      // skipped since it was chosen: the call never left, so another member may take it
      if (isBrokenCircuitError(error)) return read(pooled);
      throw error;
    }
  }

  /**
   * Asks every member which member leads, and sends barriers to the one a majority names (a member cut
   * off from the others may still believe it leads); none while there is no such majority. A check
   * that a barrier failure at the leader overtook is dropped (its answers may predate the election)
   * and asked again; a member that calls skip is never named.
   */
  private findLeader(): void {
    if (this.leaderCheck !== undefined || this.closed) return;
    const { memberClients, endpoints, health, statusTimeoutMs } = this.options;
    this.leaderCheckedAt = Date.now();
    const epoch = this.leaderEpoch;
    this.leaderCheck = Promise.allSettled(memberClients.map((client) => client.maintenance.status({ deadline: Date.now() + statusTimeoutMs })))
      .then((results) => {
        if (epoch !== this.leaderEpoch) return;
        const named = new Map<string, number>();
        const byMember = new Map<string, number>();
        results.forEach((result, i) => {
          if (result.status !== 'fulfilled') return;
          byMember.set(result.value.header.member_id, i);
          health.learnMember(endpoints[i]!, result.value.header.member_id);
          if (result.value.leader !== '0') named.set(result.value.leader, (named.get(result.value.leader) ?? 0) + 1);
        });
        const majority = Math.floor(memberClients.length / 2) + 1;
        const leader = [...named].find(([, votes]) => votes >= majority)?.[0];
        const index = leader === undefined ? undefined : byMember.get(leader);
        this.leaderIndex = index !== undefined && !health.skipped(endpoints[index]!) ? index : undefined;
      })
      .finally(() => {
        this.leaderCheck = undefined;
        if (epoch !== this.leaderEpoch) this.findLeader();
      });
  }
}
