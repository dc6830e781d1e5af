// One server per data directory. The lock is a Unix socket listening in the directory: it lives
// exactly as long as the process (kill -9 included — the kernel closes it), needs no PID guesswork
// (PIDs repeat across container restarts: every container's server is PID 1), and a second server
// finds out by connecting to it.

import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';

export const LOCK_NAME = 'tcpkv.lock';

export class DirectoryLockedError extends Error {
  override readonly name = 'DirectoryLockedError';
}

export interface DirectoryLock {
  release(): Promise<void>;
}

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    // A prober only needs the connection to succeed; whatever it does next must not reach us.
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.destroy();
    });
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      server.unref();
      resolve(server);
    });
  });
}

/** true if a live process holds the socket at `path` */
function isHeld(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function lockDirectory(dir: string): Promise<DirectoryLock> {
  const path = join(dir, LOCK_NAME);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const server = await listen(path);
      return {
        release: () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
          }),
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      if (await isHeld(path)) throw new DirectoryLockedError(`data directory ${dir} is in use by another tcpkv-server (lock ${path})`);
      // left behind by a process that died: take it over
      if (existsSync(path)) unlinkSync(path);
    }
  }
  throw new DirectoryLockedError(`could not lock data directory ${dir}`);
}
