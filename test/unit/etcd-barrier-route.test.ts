// Which member a read barrier goes to (services/server/store/etcd-barrier-route.ts), with fake
// members whose status answers the test sets. Barriers to a real cluster's leader:
// test/integration/etcd-silent-leader.test.ts and etcd-member-failover.test.ts.
import { NoopPolicy } from 'cockatiel';
import { describe, expect, it } from 'vitest';
import { BarrierRoute, type StatusClient } from '../../services/server/store/etcd-barrier-route.js';

interface FakeMember extends StatusClient {
  readonly name: string;
  /** the member id this member answers with, and the leader it names ('0': none) */
  status: { id: string; leader: string } | 'silent';
  barriers: number;
}

function fakeCluster(leaders: string[]) {
  const members: FakeMember[] = leaders.map((leader, i) => {
    const member: FakeMember = {
      name: `m${i}`,
      status: { id: `id${i}`, leader },
      barriers: 0,
      maintenance: {
        status: async () => {
          if (member.status === 'silent') throw new Error('deadline exceeded');
          return { header: { member_id: member.status.id }, leader: member.status.leader };
        },
      },
    };
    return member;
  });
  const pooled: FakeMember = { name: 'pooled', status: 'silent', barriers: 0, maintenance: { status: async () => Promise.reject(new Error('not asked')) } };
  const skipped = new Set<string>();
  const learned = new Map<string, string>();
  const route = new BarrierRoute<FakeMember>({
    pooled,
    memberClients: members,
    endpoints: members.map((m) => m.name),
    health: { policy: () => new NoopPolicy(), learnMember: (endpoint, id) => learned.set(id, endpoint), skipped: (member) => skipped.has(member) },
    statusTimeoutMs: 100,
    leaderCheckEveryMs: 60_000,
    suspectAfterMs: 50,
  });
  /** one barrier: which member it went to */
  const barrier = (hang?: Promise<void>) =>
    route.read(
      async (client) => {
        client.barriers++;
        if (hang) await hang;
        return client.name;
      },
      (run) => run(),
    );
  return { route, members, skipped, learned, barrier };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('read barrier route', () => {
  it('barriers go to the member a majority names as leader, once the members have been asked', async () => {
    const { route, learned, barrier } = fakeCluster(['id1', 'id1', 'id1']);
    await barrier(); // the first asks the members; it goes to one of them meanwhile
    await settle();
    expect(route.leader).toBe('m1');
    expect(learned.get('id2')).toBe('m2');
    expect(await barrier()).toBe('m1');
    expect(await barrier()).toBe('m1');
  });

  it('a leader named by a minority only (a member cut off from the others) is not used', async () => {
    const { route, barrier } = fakeCluster(['id0', 'id1', '0']);
    await barrier();
    await settle();
    expect(route.leader).toBeUndefined();
  });

  it('never a member that calls skip; with no member left, the pooled client', async () => {
    const { route, skipped, barrier } = fakeCluster(['id1', 'id1', 'id1']);
    await barrier();
    await settle();
    skipped.add('m1');
    expect(await barrier()).not.toBe('m1');
    skipped.add('m0').add('m2');
    expect(await barrier()).toBe('pooled');
    expect(route.leader).toBe('m1'); // named, but skipped
  });

  it('a barrier out at the leader for suspectAfterMs sends the next ones to the member with the fewest out', async () => {
    const { barrier } = fakeCluster(['id0', 'id0', 'id0']);
    await barrier();
    await settle();
    let release!: () => void;
    const hang = new Promise<void>((resolve) => (release = resolve));
    const stuck = barrier(hang);
    expect(await barrier()).toBe('m0'); // not out long yet
    await new Promise((resolve) => setTimeout(resolve, 80));
    const next = [await barrier(), await barrier()];
    expect(next).not.toContain('m0');
    release();
    expect(await stuck).toBe('m0');
  });

  it('a barrier that fails at the leader drops it until the members name a leader again', async () => {
    const { route, members, barrier } = fakeCluster(['id0', 'id0', 'id0']);
    await barrier();
    await settle();
    expect(route.leader).toBe('m0');
    members[0]!.status = 'silent';
    for (const m of members.slice(1)) m.status = { id: (m.status as { id: string }).id, leader: 'id2' };
    await expect(
      route.read(
        async (client) => {
          throw new Error(`failed at ${client.name}`);
        },
        (run) => run(),
      ),
    ).rejects.toThrow('failed at m0');
    await settle();
    expect(route.leader).toBe('m2'); // asked again at once, not after leaderCheckEveryMs
    expect(await barrier()).toBe('m2');
  });
});
