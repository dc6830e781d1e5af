// Real tcpkv-server processes for one test file, killed after each test (SIGKILL: the tests that
// need a graceful stop do it themselves). Call at the top level of a test file.

import { afterEach } from 'vitest';
import type { ChildServer } from './net.js';

/** Returns `track(server)`: the server is killed, and waited for, after the current test. */
export function useChildServers(): (server: ChildServer) => ChildServer {
  const running: ChildServer[] = [];
  afterEach(async () => {
    for (const s of running.splice(0)) {
      s.kill('SIGKILL');
      await s.exited;
    }
  });
  return (server: ChildServer) => {
    running.push(server);
    return server;
  };
}
