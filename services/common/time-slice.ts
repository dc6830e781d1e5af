// Long synchronous work on the event loop (copying a million keys' places, building a replica's copy)
// is cut into slices: between two steps the work awaits `pause()`, which, once a slice's time is
// spent, lets timers, sockets and other requests run before it goes on.

/** How long one slice of such work may hold the event loop, by default. */
export const DEFAULT_SLICE_MS = 8;

export class TimeSlicer {
  private readonly sliceMs: number;
  private sliceStarted = performance.now();

  constructor(sliceMs = DEFAULT_SLICE_MS) {
    this.sliceMs = sliceMs;
  }

  /** Gives the event loop back if this slice's time is spent (a resolved no-op otherwise). */
  async pause(): Promise<void> {
    if (performance.now() - this.sliceStarted < this.sliceMs) return;
    await new Promise((resolve) => setImmediate(resolve));
    this.sliceStarted = performance.now();
  }
}
