// Memory per body byte of a chunked body is bounded: a body sent as one-byte chunks (`1\r\nx\r\n` a
// million times, inside the 1 MiB body limit) must not cost a JavaScript object per chunk. Measured in a
// server process of its own (after a full GC) while the body is still open, over a real socket.

import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startMemoryProbe } from '../support/memory-probe.js';
import { openSocket, sleep } from '../support/net.js';

describe('a chunked body of tiny chunks', () => {
  it('1,000,000 one-byte chunks held open cost under 3 bytes of heap + buffers per body byte', async () => {
    const probe = await startMemoryProbe();
    const { port, measure } = probe;
    let socket: Socket | undefined;
    try {
      const before = await measure();
      const CHUNKS = 1_000_000;
      const bodyBytes = 3 + CHUNKS; // `k: ` then one `x` per chunk
      socket = await openSocket(port);
      const answer = new Promise<string>((resolve) => {
        let text = '';
        socket!.on('data', (c: Buffer) => {
          text += c.toString('latin1');
          if (text.includes('\r\n')) resolve(text);
        });
      });
      socket.write('POST /create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nk: \r\n');
      const block = Buffer.from('1\r\nx\r\n'.repeat(10_000));
      for (let i = 0; i < CHUNKS / 10_000; i++) {
        if (!socket.write(block)) await new Promise((r) => socket!.once('drain', r));
      }
      await new Promise<void>((r) => socket!.write('', () => r()));
      // the server has all of it once its memory stops moving (its parser is what consumes the bytes)
      let during = await measure();
      for (let i = 0; i < 40; i++) {
        await sleep(250);
        const now = await measure();
        const settled = Math.abs(now.heapUsed + now.arrayBuffers - (during.heapUsed + during.arrayBuffers)) < 64 * 1024;
        during = now;
        if (settled && i >= 2) break;
      }
      const grown = during.heapUsed - before.heapUsed + (during.arrayBuffers - before.arrayBuffers);
      console.log(
        `chunked body of ${CHUNKS} one-byte chunks, held open: heap +${((during.heapUsed - before.heapUsed) / 2 ** 20).toFixed(1)} MiB, ` +
          `buffers +${((during.arrayBuffers - before.arrayBuffers) / 2 ** 20).toFixed(1)} MiB, ${(grown / bodyBytes).toFixed(2)} B per body byte`,
      );
      expect(grown / bodyBytes).toBeLessThan(3);
      // and the body is whole: the request completes and is stored
      socket.write('0\r\n\r\n');
      const text = await answer;
      expect(text.startsWith('HTTP/1.1 200 OK'), text.slice(0, 200)).toBe(true);
    } finally {
      socket?.destroy();
      probe.exit();
    }
  });
});
