// What an idle keep-alive connection costs the server (issue 6, acceptance 5): 10,000 connections,
// each after one request, measured in a server process of its own after a full GC.

import { fork } from 'node:child_process';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { openSocket, ROOT, sleep } from '../support/net.js';

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  connections: number;
}

describe('idle keep-alive connections', () => {
  it('10,000 of them cost under 4 KiB of heap each', async () => {
    const child = fork(`${ROOT}test/support/memory-probe-server.mjs`, [], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const next = <T>() => new Promise<T>((r) => child.once('message', (m) => r(m as T)));
    const sockets: Socket[] = [];
    try {
      const { port } = await next<{ port: number }>();
      child.send('measure');
      const before = await next<Memory>();
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
      child.send('measure');
      const after = await next<Memory>();
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
      child.send('exit');
    }
  });
});
