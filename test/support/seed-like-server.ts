// A server with the seed's own Python server's habits (SPEC §5): it reads each connection once
// (`recv(4096)`), answers with `\r\n\n` after the headers and a Content-Length counted in characters,
// echoes `Host:` and a KST date, never closes a connection itself, and on END closes everything
// without answering. The meaning of each request comes from the rules: the habits are the point.

import { createServer, type AddressInfo, type Socket } from 'node:net';
import { parseHostAllowList } from '../../services/server/access.js';
import { handle } from '../../services/server/rules.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';

export interface SeedLikeServer {
  readonly port: number;
  readonly stopped: Promise<void>;
  close(): void;
  /** split every answer into two writes after this many bytes (to test readers that stop early) */
  splitAt: number | undefined;
}

export async function startSeedLikeServer(): Promise<SeedLikeServer> {
  const store = new MemoryStore();
  const policy = { allowedHosts: parseHostAllowList('127.0.0.1'), shutdown: { enabled: true, token: undefined } };
  const sockets = new Set<Socket>();
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', async (chunk: Buffer) => {
      const request = chunk.toString('utf8');
      const lines = request.split('\n');
      const method = lines[0]!.split(' ')[0]!;
      const url = (lines[1] ?? '').split(':')[1]?.slice(1, -1) ?? '?/?'; // the seed's `split(':')[1][1:-1]`
      const body = lines[lines.length - 1]!;
      if (method === 'END') {
        for (const s of sockets) s.destroy();
        server.close();
        stop();
        return;
      }
      const response = await handle({ method, target: '/', host: url, authorization: undefined, body: Buffer.from(body) }, store, policy, '127.0.0.1');
      const kst = new Date(Date.now() + 9 * 3600_000).toUTCString().replace('GMT', 'KST');
      const text =
        `HTTP/1.1 ${response.status} ${response.status === 100 ? 'CONTINUE' : response.status === 200 ? 'OK' : response.status === 404 ? 'NOT_FOUND' : response.status === 405 ? 'METHOD_NOT_ALLOWED' : 'BAD_REQUEST'}\r\n` +
        `Host: ${url}\r\nContent-Type: text/html\r\nConnection: keep-alive\r\nContent-Length: ${[...response.body].length}\r\nDate: ${kst}\r\n\n${response.body}`;
      const bytes = Buffer.from(text, 'utf8');
      if (result.splitAt !== undefined && result.splitAt < bytes.length) {
        socket.write(bytes.subarray(0, result.splitAt));
        setTimeout(() => socket.write(bytes.subarray(result.splitAt)), 50);
      } else {
        socket.write(bytes);
      }
      // never closes the connection: the seed's server left that to the client
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const result: SeedLikeServer = {
    port: (server.address() as AddressInfo).port,
    stopped,
    splitAt: undefined,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
      stop();
    },
  };
  return result;
}
