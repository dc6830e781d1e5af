// Group commit of POSTs. POSTs that arrive together (from different connections) share one etcd
// transaction: each is still all or none, and all of them take effect at the transaction's one
// instant, which lies within each POST's request and answer. If a key of one of them exists, nothing
// was applied: that POST is answered "exists" and the others are sent again. At most maxInFlight
// such transactions are out at once; what arrives meanwhile waits for the next, so the more POSTs
// come at once, the fewer etcd transactions each costs.

import { CREATED, StoreUnavailableError, ValueTooLargeError, type CreateResult, type Pair } from './store.js';

export interface GroupCommitOptions {
  /** pairs one transaction takes, at most (etcd's --max-txn-ops) */
  readonly maxPairs: number;
  /** bytes one transaction takes, at most (etcd's --max-request-bytes) */
  readonly maxRequestBytes: number;
  /** what every transaction holds besides the pairs (the write stamp, framing) */
  readonly fixedBytes: number;
  /** the etcd deadline (ms): a POST answers within it, counted from its arrival */
  readonly timeoutMs: number;
  /** transactions sent and not answered yet, at most */
  readonly maxInFlight: number;
  /** a queued POST with less of its deadline left than this (or a tenth of the deadline) is not sent */
  readonly minTimeLeftMs: number;
  /**
   * One transaction that creates every pair, in order, if none of their keys exists. Resolves true if
   * it did; else, per pair, whether its key exists (then nothing was applied). Rejects as a call to
   * etcd does (store errors), with whether a NOSPACE answer was applied already decided.
   */
  readonly commit: (pairs: readonly Pair[], deadline: number) => Promise<true | readonly boolean[]>;
}

/** A POST waiting for its group-commit transaction. */
interface PendingCreate {
  readonly pairs: readonly Pair[];
  /** its share of the transaction's size */
  readonly bytes: number;
  /** Date.now() by which it must be answered: its arrival plus the etcd deadline */
  readonly deadline: number;
  resolve(result: CreateResult): void;
  reject(error: unknown): void;
}

export class GroupCommit {
  /** POSTs waiting for a group-commit transaction, in arrival order */
  private queue: PendingCreate[] = [];
  private inFlight = 0;
  private pumpScheduled = false;
  /** transactions sent */
  private sent = 0;

  constructor(private readonly options: GroupCommitOptions) {}

  /** Transactions sent so far. */
  get transactionsSent(): number {
    return this.sent;
  }

  /**
   * Queues a POST of `pairs` (no key twice, checked against etcd's limits) whose share of a
   * transaction is `bytes`, to be answered by `deadline` (Date.now() time).
   */
  create(pairs: readonly Pair[], bytes: number, deadline: number): Promise<CreateResult> {
    return new Promise<CreateResult>((resolve, reject) => {
      this.queue.push({ pairs, bytes, deadline, resolve, reject });
      this.schedule();
    });
  }

  /** Sends the queued POSTs once the ones that arrived in this turn of the event loop have joined. */
  private schedule(): void {
    if (this.pumpScheduled || this.queue.length === 0 || this.inFlight >= this.options.maxInFlight) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.expireQueued();
      while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight) this.send(this.takeBatch());
    });
  }

  /**
   * A POST answers within the etcd deadline counted from its arrival, also when it had to wait for a
   * transaction slot (the ones out were slow): one with too little of it left is not sent at all and
   * answers 503 "nothing was changed" (it never left). The ones sent share the earliest deadline of
   * their transaction.
   */
  private expireQueued(): void {
    const now = Date.now();
    const minimum = Math.min(this.options.minTimeLeftMs, this.options.timeoutMs / 10);
    if (!this.queue.some((create) => create.deadline - now < minimum)) return;
    const error = new StoreUnavailableError('etcd did not take the write in time (the writes before it were still waiting for etcd); nothing was applied');
    this.queue = this.queue.filter((create) => {
      if (create.deadline - now >= minimum) return true;
      create.reject(error);
      return false;
    });
  }

  /**
   * The longest run from the head of the queue that fits one transaction (etcd's operation and size
   * limits) with no key twice: a key in two POSTs of one transaction could not be all-or-nothing for
   * each, so the second POST waits for the next transaction.
   */
  private takeBatch(): PendingCreate[] {
    const { maxPairs, maxRequestBytes, fixedBytes } = this.options;
    const keys = new Set<string>();
    let pairs = 0;
    let bytes = fixedBytes;
    let taken = 0;
    for (const create of this.queue) {
      if (taken > 0 && (pairs + create.pairs.length > maxPairs || bytes + create.bytes > maxRequestBytes || create.pairs.some(([key]) => keys.has(key)))) break;
      for (const [key] of create.pairs) keys.add(key);
      pairs += create.pairs.length;
      bytes += create.bytes;
      taken++;
    }
    return this.queue.splice(0, taken);
  }

  private send(batch: PendingCreate[]): void {
    this.inFlight++;
    this.sent++;
    const deadline = Math.min(...batch.map((create) => create.deadline));
    this.options
      .commit(
        batch.flatMap((create) => create.pairs),
        deadline,
      )
      .then(
        (outcome) => {
          if (outcome === true) {
            for (const create of batch) create.resolve(CREATED);
            return;
          }
          // Nothing was applied. A POST with a key that exists is answered; the others go again.
          const again: PendingCreate[] = [];
          let at = 0;
          for (const create of batch) {
            let existing = -1;
            for (let i = 0; i < create.pairs.length && existing < 0; i++) {
              if (outcome[at + i]) existing = i;
            }
            at += create.pairs.length;
            if (existing >= 0) create.resolve({ ok: false, existingKey: create.pairs[existing]![0] });
            else again.push(create);
          }
          // a failed compare is a key that exists (the counts are read in the same transaction), so
          // each round answers at least one POST; should none be named, none is sent blindly again
          if (again.length === batch.length) {
            const error = new StoreUnavailableError('etcd refused a create without naming a key that exists; nothing was applied');
            for (const create of batch) create.reject(error);
            return;
          }
          this.queue.unshift(...again);
        },
        (error: unknown) => {
          if (error instanceof ValueTooLargeError && batch.length > 1) {
            // etcd's own limits are below what tcpkv was told: each POST is sent again alone (counted
            // as a whole request's size, it never shares a transaction) and gets its own answer
            this.queue.unshift(...batch.map((create) => ({ ...create, bytes: this.options.maxRequestBytes })));
            return;
          }
          for (const create of batch) create.reject(error);
        },
      )
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
  }
}
