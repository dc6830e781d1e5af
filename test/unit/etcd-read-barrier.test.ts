// Gathering reads into read barriers (services/server/store/etcd-read-barrier.ts), with a fake etcd:
// each barrier is a promise the test answers. The barriers against a real etcd are in
// test/integration/etcd-read-gathering.test.ts.
import { describe, expect, it } from 'vitest';
import { BarrierGathering } from '../../services/server/store/etcd-read-barrier.js';

/** A fake etcd whose barriers the test answers one by one. */
function fakeBarriers(options: { overlapAfterMs?: number; gatherMaxMs?: number; maxInFlight?: number } = {}) {
  const sent: { answer(revision: number): void; fail(error: Error): void }[] = [];
  const gathering = new BarrierGathering({
    maxInFlight: options.maxInFlight ?? 3,
    overlapAfterMs: options.overlapAfterMs ?? 10_000,
    gatherMaxMs: options.gatherMaxMs ?? 10_000,
    send: () => new Promise<number>((resolve, reject) => sent.push({ answer: resolve, fail: reject })),
  });
  return { gathering, sent };
}
type Fake = ReturnType<typeof fakeBarriers>;

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(1);
  }
}

/**
 * From a new gathering: a barrier carrying `n` reads is answered (they joined while one was out),
 * each barrier answered after `answerAfterMs`. Reads then arrive from the next turn on, as from I/O.
 */
async function prime({ gathering, sent }: Fake, n: number, answerAfterMs = 0): Promise<void> {
  const lone = gathering.barrier();
  await turn();
  expect(sent).toHaveLength(1);
  const joined = Array.from({ length: n }, () => gathering.barrier());
  await sleep(answerAfterMs);
  sent[0]!.answer(1);
  await lone;
  await until(() => sent.length === 2);
  await sleep(answerAfterMs);
  sent[1]!.answer(2);
  await Promise.all(joined);
  await turn();
}

describe('read barrier gathering', () => {
  it('a lone reader of a new replica is not held: its barrier goes in the next turn', async () => {
    const { gathering, sent } = fakeBarriers();
    const read = gathering.barrier();
    expect(sent).toHaveLength(0); // sent once the turn's reads have joined
    await turn();
    expect(sent).toHaveLength(1);
    sent[0]!.answer(42);
    expect(await read).toBe(42);
    expect(gathering.barriersSent).toBe(1);
  });

  it('after a barrier carried n reads, the next goes as soon as n reads have joined it, and answers them all', async () => {
    const fake = fakeBarriers();
    await prime(fake, 10);
    const { gathering, sent } = fake;
    const reads = Array.from({ length: 9 }, () => gathering.barrier());
    expect(sent).toHaveLength(2);
    reads.push(gathering.barrier()); // the tenth: sent at once, in the same turn
    expect(sent).toHaveLength(3);
    sent[2]!.answer(7);
    expect(await Promise.all(reads)).toEqual(Array(10).fill(7));
    expect(gathering.barriersSent).toBe(3);
  });

  it('a read never joins a barrier sent before it arrived', async () => {
    const { gathering, sent } = fakeBarriers();
    const first = gathering.barrier();
    await turn();
    expect(sent).toHaveLength(1);
    let secondRevision: number | undefined;
    const second = gathering.barrier().then((revision) => (secondRevision = revision));
    await turn();
    expect(sent).toHaveLength(1); // the one out is quick so far: the second waits for it
    sent[0]!.answer(5);
    expect(await first).toBe(5);
    await until(() => sent.length === 2);
    expect(secondRevision).toBeUndefined();
    sent[1]!.answer(7);
    await second;
    expect(secondRevision).toBe(7);
  });

  it('a second barrier goes out only once the one out has taken overlapAfterMs, and at most maxInFlight', async () => {
    const { gathering, sent } = fakeBarriers({ overlapAfterMs: 60, maxInFlight: 2 });
    void gathering.barrier();
    await turn();
    const sentAt = performance.now();
    void gathering.barrier();
    await until(() => sent.length === 2);
    expect(performance.now() - sentAt).toBeGreaterThanOrEqual(50);
    void gathering.barrier();
    await sleep(200);
    expect(sent).toHaveLength(2); // two out: the third read waits for one of them
    sent[0]!.answer(1);
    await until(() => sent.length === 3);
  });

  it('fewer reads than last time wait at most about a round trip (capped at gatherMaxMs)', async () => {
    // barriers answered after 300 ms: the round-trip average passes the 40 ms cap
    const fake = fakeBarriers({ gatherMaxMs: 40 });
    await prime(fake, 4, 300);
    const { gathering, sent } = fake;
    const joinedAt = performance.now();
    void gathering.barrier();
    await turn();
    expect(sent).toHaveLength(2); // gathering for the others that came last time
    await until(() => sent.length === 3);
    const waitedMs = performance.now() - joinedAt;
    expect(waitedMs).toBeGreaterThanOrEqual(30);
    expect(waitedMs).toBeLessThan(1000);
  });

  it('a failed barrier fails the reads that joined it, and the next goes at once', async () => {
    const fake = fakeBarriers();
    await prime(fake, 3);
    const { gathering, sent } = fake;
    const reads = Array.from({ length: 3 }, () => gathering.barrier());
    expect(sent).toHaveLength(3);
    sent[2]!.fail(new Error('no quorum'));
    for (const read of reads) await expect(read).rejects.toThrow('no quorum');
    await turn();
    void gathering.barrier();
    await turn();
    expect(sent).toHaveLength(4);
  });
});
