// Gathering reads into read barriers. A read barrier is one linearizable read of etcd that tells the
// revision every read must wait for (see etcd-store.ts); reads that arrive while no barrier is waiting
// to be sent share the next one (one round trip for many reads), and a read never joins a barrier
// that was already sent before it arrived (that one may predate it).
//
// One barrier is out at a time while they come back quickly, and the next one gathers reads until as
// many have joined as the last one carried, for at most a round trip (gatherMaxMs): clients that keep
// a connection busy come back with their next request, and a barrier sent at once would split them
// into groups whose barriers take turns. A read waits at most one more round trip; a lone reader's
// barrier goes at once (it is as many as last time); and a barrier is still sent after every read that
// joined it arrived. A second and third go out only when the one out has taken longer than
// overlapAfterMs (a slow or dead member): until then a quick etcd is asked once per round trip.

import { performance } from 'node:perf_hooks';

export interface BarrierGatheringOptions {
  /** one barrier: the revision the reads that joined it wait for */
  readonly send: () => Promise<number>;
  /** barriers sent and not answered yet, at most (more reads wait for the next one) */
  readonly maxInFlight: number;
  /** a second barrier goes out only once the one out has taken this long (ms) */
  readonly overlapAfterMs: number;
  /** gathering for the next barrier, at most (ms) */
  readonly gatherMaxMs: number;
}

/** The read barrier not yet sent, and how many reads have joined it. */
interface PendingBarrier {
  readonly promise: Promise<number>;
  resolve(revision: number): void;
  reject(error: unknown): void;
  reads: number;
}

export class BarrierGathering {
  /** the barrier not yet sent, which arriving reads join */
  private nextBarrier: PendingBarrier | undefined;
  private barriersInFlight = 0;
  private lastBarrierSentAt = 0;
  private barrierTimer: NodeJS.Timeout | undefined;
  /** the reads the last answered barrier carried; the next one gathers until as many have come */
  private readsOfLastBarrier = 0;
  /** reads that joined the next barrier since the last one was answered */
  private readsSinceLastAnswer = 0;
  private lastBarrierAnsweredAt = -Infinity;
  /** barrier round trips, averaged (ms) */
  private barrierRoundTripMs = 1;
  /** barriers sent */
  private sent = 0;

  constructor(private readonly options: BarrierGatheringOptions) {}

  /** Barriers sent so far (each one round trip to etcd). */
  get barriersSent(): number {
    return this.sent;
  }

  /**
   * The revision of the latest write, from one barrier shared by the reads that join it. A barrier is
   * sent once the reads that arrived in the same turn of the event loop have joined it (setImmediate:
   * after this poll's I/O callbacks), and at most maxInFlight at once; a read never joins one already
   * sent.
   */
  barrier(): Promise<number> {
    const joined = this.nextBarrier;
    if (joined) {
      joined.reads++;
      if (this.barriersInFlight === 0 && ++this.readsSinceLastAnswer >= this.readsOfLastBarrier) this.maybeSendBarrier(joined);
      return joined.promise;
    }
    let resolve!: (r: number) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<number>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const next: PendingBarrier = { promise, resolve, reject, reads: 1 };
    this.nextBarrier = next;
    if (this.barriersInFlight === 0) this.readsSinceLastAnswer++;
    setImmediate(() => this.maybeSendBarrier(next));
    return promise;
  }

  /**
   * Sends `next` now if none is out and it has gathered enough (gatherMaxMs), or if the one out is
   * slow; otherwise sets a timer to look again.
   */
  private maybeSendBarrier(next: PendingBarrier): void {
    const { maxInFlight, gatherMaxMs, overlapAfterMs } = this.options;
    if (this.nextBarrier !== next || this.barriersInFlight >= maxInFlight) return;
    const now = performance.now();
    let waitMs: number;
    if (this.barriersInFlight === 0) {
      const gatherMs = Math.min(gatherMaxMs, this.barrierRoundTripMs) - (now - this.lastBarrierAnsweredAt);
      if (this.readsSinceLastAnswer >= this.readsOfLastBarrier || gatherMs <= 0) {
        this.sendBarrier();
        return;
      }
      waitMs = gatherMs;
    } else {
      const outFor = now - this.lastBarrierSentAt;
      if (outFor >= overlapAfterMs) {
        this.sendBarrier();
        return;
      }
      waitMs = overlapAfterMs - outFor;
    }
    clearTimeout(this.barrierTimer);
    this.barrierTimer = setTimeout(() => {
      this.barrierTimer = undefined;
      if (this.nextBarrier !== undefined) this.maybeSendBarrier(this.nextBarrier);
    }, Math.ceil(waitMs));
  }

  private sendBarrier(): void {
    const waiting = this.nextBarrier!;
    this.nextBarrier = undefined;
    clearTimeout(this.barrierTimer);
    this.barrierTimer = undefined;
    this.barriersInFlight++;
    this.sent++;
    const sentAt = performance.now();
    this.lastBarrierSentAt = sentAt;
    this.options
      .send()
      .then(
        (revision) => {
          const answeredAt = performance.now();
          this.barrierRoundTripMs += (answeredAt - sentAt - this.barrierRoundTripMs) / 8;
          this.lastBarrierAnsweredAt = answeredAt;
          this.readsOfLastBarrier = waiting.reads;
          waiting.resolve(revision);
        },
        (error: unknown) => {
          this.readsOfLastBarrier = 0; // no gathering after a failure: the next barrier goes at once
          waiting.reject(error);
        },
      )
      .finally(() => {
        this.barriersInFlight--;
        this.readsSinceLastAnswer = 0;
        if (this.nextBarrier) this.maybeSendBarrier(this.nextBarrier);
      });
  }
}
