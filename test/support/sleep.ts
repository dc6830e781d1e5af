// The tests' one sleep: waits `ms` milliseconds of timers (a busy machine waits longer).

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
