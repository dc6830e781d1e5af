// What an idle keep-alive connection costs the server (issue 6, acceptance 5): 10,000 connections,
// each after one request, measured in a server process of its own after a full GC.

import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startMemoryProbe } from '../support/memory-probe.js';
import { openSocket, sleep } from '../support/net.js';

describe('idle keep-alive connections', () => {
  it('10,000 of them cost under 4 KiB of heap each', async () => {
    const probe = await startMemoryProbe();
    const port = probe.port;
    const sockets: Socket[] = [];
    try {
      const before = await probe.measure();
      const N = 10_000;
      for (let i = 0; i < N; i += 500) {
        const batch = await Promise.all(Array.from({ length: Math.min(500, N - i) }, () => openSocket(port)));
        await Promise.all(
          batch.map(
            (s) =>
              new Promise<void>((r) => {
                s.once('data', () => r());
                s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
              }),
          ),
        );
        sockets.push(...batch);
      }
      await sleep(200);
      const after = await probe.measure();
      expect(after.connections).toBe(N);
      const perConnection = {
        heap: Math.round((after.heapUsed - before.heapUsed) / N),
        external: Math.round((after.external - before.external) / N),
        rss: Math.round((after.rss - before.rss) / N),
      };
      console.log(`idle keep-alive connections: ${N}; per connection: heap ${perConnection.heap} B, external ${perConnection.external} B, RSS ${perConnection.rss} B; total RSS ${(after.rss / 2 ** 20).toFixed(1)} MiB`);
      expect(perConnection.heap).toBeLessThan(4096);
    } finally {
      for (const s of sockets) s.destroy();
      probe.exit();
    }
  });
});
