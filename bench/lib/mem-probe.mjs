// Preloaded into a server for the memory figures (`node --expose-gc --import bench/lib/mem-probe.mjs
// …`): on SIGUSR2 it runs a full GC and writes process.memoryUsage() to $BENCH_MEM_FILE. Nothing
// else: the server's code is not touched and no inspector is opened.

import { writeFileSync, renameSync } from 'node:fs';

const file = process.env.BENCH_MEM_FILE;
if (file) {
  process.on('SIGUSR2', () => {
    if (typeof globalThis.gc === 'function') {
      globalThis.gc();
      globalThis.gc();
    }
    writeFileSync(file + '.tmp', JSON.stringify({ ...process.memoryUsage(), gc: typeof globalThis.gc === 'function' }));
    renameSync(file + '.tmp', file);
  });
}
