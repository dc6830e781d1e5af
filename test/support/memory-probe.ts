// The client side of memory-probe-server.mjs: starts that server in a process of its own (with
// --expose-gc) and asks it for its memory, so a test measures the server without its own sockets.

import { fork } from 'node:child_process';
import { ROOT } from './net.js';

/** What the probe server reports after a full GC. */
export interface ProbeMemory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  connections: number;
}

export interface MemoryProbe {
  /** the probe server's port on 127.0.0.1 */
  readonly port: number;
  measure(): Promise<ProbeMemory>;
  /** ends the probe server's process */
  exit(): void;
}

export async function startMemoryProbe(): Promise<MemoryProbe> {
  const child = fork(`${ROOT}test/support/memory-probe-server.mjs`, [], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = <T>() => new Promise<T>((r) => child.once('message', (m) => r(m as T)));
  const { port } = await next<{ port: number }>();
  return {
    port,
    measure: () => {
      child.send('measure');
      return next<ProbeMemory>();
    },
    exit: () => child.send('exit'),
  };
}
