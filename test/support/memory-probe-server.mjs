// A tcpkv server in a process of its own that reports its memory when asked over IPC, so a test can
// measure what idle connections cost without counting the client's sockets. Run with --expose-gc.
import { pino } from 'pino';
import { parseClientAllowList, parseHostAllowList } from '../../dist/services/server/access.js';
import { TcpkvServer } from '../../dist/services/server/server.js';
import { MemoryStore } from '../../dist/services/server/store/memory-store.js';

const server = new TcpkvServer({
  bind: '127.0.0.1',
  port: 0,
  limits: { maxHeaderBytes: 16384, maxHeaderCount: 100, maxTargetBytes: 8192, maxBodyBytes: 1048576, headersTimeoutMs: 60000, bodyTimeoutMs: 60000, idleTimeoutMs: 600000, maxPipelined: 64, maxRequestsPerConnection: 0 },
  maxConnections: 50000,
  allowedClients: parseClientAllowList('*'),
  policy: { allowedHosts: parseHostAllowList('*'), shutdown: { enabled: false, token: undefined } },
  store: new MemoryStore(),
  logger: pino({ level: 'warn' }),
  shutdownTimeoutMs: 1000,
});
const address = await server.listen();
const measure = () => {
  for (let i = 0; i < 3; i++) globalThis.gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, connections: server.connectionCount };
};
process.on('message', (msg) => {
  if (msg === 'measure') process.send(measure());
  if (msg === 'exit') process.exit(0);
});
process.send({ port: address.port });
