// Group commit of POSTs (services/server/store/etcd-group-commit.ts), with a fake etcd transaction
// the test answers. POSTs against a real etcd: test/integration/etcd-group-commit.test.ts.
import { describe, expect, it } from 'vitest';
import { GroupCommit, type GroupCommitOptions } from '../../services/server/store/etcd-group-commit.js';
import { CREATED, StoreUnavailableError, ValueTooLargeError, type Pair } from '../../services/server/store/store.js';

interface Txn {
  readonly pairs: readonly Pair[];
  readonly deadline: number;
  answer(outcome: true | readonly boolean[]): void;
  fail(error: Error): void;
}

function fakeCommits(options: Partial<GroupCommitOptions> = {}) {
  const txns: Txn[] = [];
  const commit = new GroupCommit({
    maxPairs: 63,
    maxRequestBytes: 1_000_000,
    fixedBytes: 100,
    timeoutMs: 5000,
    maxInFlight: 2,
    minTimeLeftMs: 250,
    commit: (pairs, deadline) => new Promise((resolve, reject) => txns.push({ pairs, deadline, answer: resolve, fail: reject })),
    ...options,
  });
  const post = (pairs: Pair[], deadline = Date.now() + 5000) => commit.create(pairs, pairs.length * 10, deadline);
  return { commit, txns, post };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
async function until(condition: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

describe('group commit of POSTs', () => {
  it('POSTs that arrive in one turn share one transaction, in arrival order', async () => {
    const { commit, txns, post } = fakeCommits();
    const answers = [post([['a', '1'], ['b', '2']]), post([['c', '3']]), post([['d', '4']])];
    await turn();
    expect(txns).toHaveLength(1);
    expect(txns[0]!.pairs.map(([key]) => key)).toEqual(['a', 'b', 'c', 'd']);
    txns[0]!.answer(true);
    expect(await Promise.all(answers)).toEqual([CREATED, CREATED, CREATED]);
    expect(commit.transactionsSent).toBe(1);
  });

  it('a transaction has the earliest deadline of its POSTs', async () => {
    const { txns, post } = fakeCommits();
    const now = Date.now();
    void post([['a', '1']], now + 4000);
    void post([['b', '1']], now + 3000);
    await turn();
    expect(txns[0]!.deadline).toBe(now + 3000);
  });

  it('a key in two POSTs: the second goes in the next transaction', async () => {
    const { txns, post } = fakeCommits();
    const first = post([['a', '1'], ['b', '1']]);
    const second = post([['a', '2']]);
    await turn();
    expect(txns.map((txn) => txn.pairs)).toEqual([[['a', '1'], ['b', '1']], [['a', '2']]]);
    txns[0]!.answer(true);
    txns[1]!.answer([true]);
    expect(await first).toEqual(CREATED);
    expect(await second).toEqual({ ok: false, existingKey: 'a' });
  });

  it('a key that exists answers its POST; the others are sent again, and nothing is sent blindly', async () => {
    const { txns, post } = fakeCommits();
    const a = post([['a1', '1'], ['a2', '1']]);
    const b = post([['b1', '1'], ['b2', '1']]);
    await turn();
    txns[0]!.answer([false, false, false, true]); // b2 exists: nothing was applied
    expect(await b).toEqual({ ok: false, existingKey: 'b2' });
    await until(() => txns.length === 2);
    expect(txns[1]!.pairs).toEqual([['a1', '1'], ['a2', '1']]);
    txns[1]!.answer(true);
    expect(await a).toEqual(CREATED);

    const c = post([['c', '1']]);
    await until(() => txns.length === 3);
    txns[2]!.answer([false]); // refused, yet no key exists
    await expect(c).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it("a transaction holds at most etcd's pairs and bytes: the rest wait for the next", async () => {
    const { txns, post } = fakeCommits({ maxPairs: 3, maxInFlight: 1 });
    void post([['a', '1'], ['b', '1']]);
    void post([['c', '1'], ['d', '1']]);
    await turn();
    expect(txns).toHaveLength(1);
    expect(txns[0]!.pairs.map(([key]) => key)).toEqual(['a', 'b']);
    txns[0]!.answer(true);
    await until(() => txns.length === 2);
    expect(txns[1]!.pairs.map(([key]) => key)).toEqual(['c', 'd']);
  });

  it('a group etcd refuses as too large is sent again one POST at a time', async () => {
    const { txns, post } = fakeCommits();
    const a = post([['a', '1']]);
    const b = post([['b', '1']]);
    await turn();
    txns[0]!.fail(new ValueTooLargeError('too large'));
    await until(() => txns.length === 3);
    expect(txns.slice(1).map((txn) => txn.pairs.map(([key]) => key))).toEqual([['a'], ['b']]);
    txns[1]!.answer(true);
    txns[2]!.fail(new ValueTooLargeError('still too large'));
    expect(await a).toEqual(CREATED);
    await expect(b).rejects.toThrow('still too large');
  });

  it('a failure answers every POST of the transaction with it', async () => {
    const { txns, post } = fakeCommits();
    const answers = [post([['a', '1']]), post([['b', '1']])];
    await turn();
    const error = new StoreUnavailableError('etcd is gone', { indeterminate: true });
    txns[0]!.fail(error);
    for (const answer of answers) await expect(answer).rejects.toBe(error);
  });

  it('a POST left waiting for a slot until too little of its deadline is left is not sent', async () => {
    const { txns, post } = fakeCommits({ maxInFlight: 1, timeoutMs: 1000, minTimeLeftMs: 250 });
    const first = post([['a', '1']]);
    await turn();
    const late = post([['b', '1']], Date.now() + 50); // less than a tenth of the deadline left soon
    await new Promise((resolve) => setTimeout(resolve, 80));
    txns[0]!.answer(true);
    await first;
    await expect(late).rejects.toThrow(/nothing was applied/);
    await turn();
    expect(txns).toHaveLength(1);
  });
});
