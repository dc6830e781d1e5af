// Memory of a server process: VmRSS from /proc/PID/status, and (when the server was started with
// mem-probe.mjs) the V8 heap after a full GC.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const PROBE = fileURLToPath(new URL('./mem-probe.mjs', import.meta.url));

/** Node flags that load the probe. */
export function probeArgs() {
  return ['--expose-gc', '--import', PROBE];
}

export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Asks the probe for a GC and process.memoryUsage(); undefined if it does not answer in 10 s. */
export async function probe(pid, file) {
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
    await sleep(50);
  }
  return undefined;
}

/** GC (through the probe), a moment to settle, then RSS and heap. */
export async function measure(pid, file) {
  await sleep(500);
  const usage = await probe(pid, file);
  await sleep(300);
  return { rss: rssBytes(pid), heapUsed: usage?.heapUsed, external: usage?.external, arrayBuffers: usage?.arrayBuffers };
}
