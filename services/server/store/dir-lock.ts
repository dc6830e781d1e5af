// One server per data directory. The lock is a listening Unix socket in the directory: it lives exactly
// as long as the process (kill -9 included — the kernel closes it), needs no PID guesswork (PIDs repeat
// across container restarts: every container's server is PID 1), works across containers that share
// the directory, and a second server finds out by connecting to it.
//
// Taking over a stale socket (its process died) must be atomic without flock, which Node lacks. Stale
// sockets are therefore never replaced under their own name. Lock sockets are numbered
// (`tcpkv.lock.<n>`) and a contender:
//   1. listens on a private name, so that whatever name it publishes already accepts connections;
//   2. reads the directory: any live lock socket → refused;
//   3. hard-links its socket to the next number after the highest it saw (link fails if that name
//      exists, so two contenders can never publish the same number);
//   4. reads the directory again: if any OTHER lock socket is live, it withdraws its own (unlink) and
//      starts over after a short random pause, else it holds the lock and removes the stale ones.
// Two contenders that both pass step 4 are impossible: each published before its own re-read, so the
// one that re-read last sees the other's socket alive. (Both may withdraw; the random pause settles it.)
//
// Socket addresses are limited to ~107 bytes and a longer path is silently cut by the kernel interface,
// which would put the lock in another directory. A long directory is therefore addressed through
// /proc/self/fd/<fd of the directory>/, which is short whatever the directory's path.

import { closeSync, linkSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { StartupError } from '../../common/errors.js';

/** The name an older tcpkv-server locked with; a live one is respected, a stale one removed. */
export const LEGACY_LOCK_NAME = 'tcpkv.lock';
const LOCK_PATTERN = /^tcpkv\.lock\.(\d+)$/;
const PRIVATE_PREFIX = 'tcpkv.lock.tmp.';
/** sun_path is 108 bytes including the terminating NUL */
const MAX_SOCKET_PATH = 107;
const ATTEMPTS = 50;

/** Another server holds the data directory: this one cannot start on it. */
export class DirectoryLockedError extends StartupError {
  constructor(message: string) {
    super('TCPKV_ERR_DATA_DIR_LOCKED', message, 'TCPKV_DATA_DIR');
  }
}

export interface DirectoryLock {
  /** the lock socket's name inside the directory */
  readonly name: string;
  release(): Promise<void>;
}

function listen(address: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    // A prober only needs the connection to succeed; whatever it does next must not reach us.
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.destroy();
    });
    server.once('error', reject);
    server.listen(address, () => {
      server.off('error', reject);
      server.unref();
      resolve(server);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * true if a live process holds the socket at `address`. Only "nobody listens" (ECONNREFUSED) and
 * "gone" (ENOENT) count as free: anything else (a full backlog while the holder's event loop is busy
 * replaying a big log) counts as held.
 */
function isHeld(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(address);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT'));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

export async function lockDirectory(dir: string): Promise<DirectoryLock> {
  const dirFd = openSync(dir, 'r');
  const direct = (name: string) => join(dir, name);
  // addresses for the socket calls; plain paths for link and unlink (no length limit there)
  const address = (name: string) => (Buffer.byteLength(direct(name)) <= MAX_SOCKET_PATH - 8 ? direct(name) : `/proc/self/fd/${dirFd}/${name}`);
  const privateName = `${PRIVATE_PREFIX}${process.pid}.${randomBytes(4).toString('hex')}`;
  let server: Server;
  try {
    server = await listen(address(privateName));
  } catch (error) {
    closeSync(dirFd);
    throw error;
  }
  const giveUp = async (error: Error): Promise<never> => {
    unlinkQuietly(direct(privateName));
    await close(server);
    closeSync(dirFd);
    throw error;
  };
  /** the lock sockets now in the directory, with whether each is alive */
  const survey = async (): Promise<{ name: string; generation: number; live: boolean }[]> => {
    const names = readdirSync(dir).filter((n) => LOCK_PATTERN.test(n) || n === LEGACY_LOCK_NAME);
    return Promise.all(names.map(async (name) => ({ name, generation: Number(LOCK_PATTERN.exec(name)?.[1] ?? 0), live: await isHeld(address(name)) })));
  };
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const before = await survey();
      const holder = before.find((s) => s.live);
      if (holder) return await giveUp(new DirectoryLockedError(`data directory ${dir} is in use by another tcpkv-server (lock ${direct(holder.name)})`));
      const mine = `tcpkv.lock.${Math.max(0, ...before.map((s) => s.generation)) + 1}`;
      try {
        linkSync(direct(privateName), direct(mine));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue; // another contender took this number: look again
        throw error;
      }
      const others = (await survey()).filter((s) => s.name !== mine);
      if (others.some((s) => s.live)) {
        unlinkQuietly(direct(mine));
        await sleep(5 + Math.random() * 40);
        continue;
      }
      // ours: the others are stale sockets of processes that died
      for (const stale of others) unlinkQuietly(direct(stale.name));
      unlinkQuietly(direct(privateName));
      closeSync(dirFd);
      return {
        name: mine,
        release: async () => {
          unlinkQuietly(direct(mine));
          await close(server);
        },
      };
    }
  } catch (error) {
    if (error instanceof DirectoryLockedError) throw error; // giveUp has released everything
    return giveUp(error as Error);
  }
  return giveUp(new DirectoryLockedError(`could not lock data directory ${dir}: other servers kept contending for it`));
}
