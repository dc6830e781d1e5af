// The data directory: one server per directory (an atomic lock, whatever the path's length), and the
// modes of what the store creates.

import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { DirectoryLockedError, lockDirectory } from '../../services/server/store/dir-lock.js';
import { LOG_NAME, LogStore } from '../../services/server/store/log-store.js';
import { ROOT, spawnServer } from '../support/net.js';

const LOCK_MODULE = `${ROOT}dist/services/server/store/dir-lock.js`;

/**
 * Starts a process that tries to lock `dir` once `go` appears on stdin's line, holds a win for
 * `holdMs`, and prints `won` or `locked`; `kill` leaves the lock stale (kill -9 while holding it).
 */
function contender(dir: string, holdMs: number) {
  const script = `
    const { lockDirectory } = await import(${JSON.stringify(LOCK_MODULE)});
    process.stdin.once('data', async () => {
      try {
        const lock = await lockDirectory(${JSON.stringify(dir)});
        console.log('won');
        setTimeout(() => lock.release().then(() => process.exit(0)), ${holdMs});
      } catch (e) {
        console.log(e.name === 'DirectoryLockedError' ? 'locked' : 'error ' + e.message);
        process.exit(0);
      }
    });`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return {
    go: () => proc.stdin.write('go\n'),
    answer: async () => {
      for (let i = 0; i < 200 && out === ''; i++) await new Promise((r) => setTimeout(r, 25));
      return out.trim();
    },
    kill: () => proc.kill('SIGKILL'),
    exited,
  };
}

/** Leaves a stale lock in `dir`: a process that took it and died by kill -9. */
async function staleLock(dir: string): Promise<void> {
  const holder = contender(dir, 60_000);
  await new Promise((r) => setTimeout(r, 150)); // its module loaded
  holder.go();
  expect(await holder.answer()).toBe('won');
  holder.kill();
  await holder.exited;
}

describe('the data-directory lock', () => {
  it('contenders racing for a stale lock: exactly one wins, every time (10 rounds × 6 processes)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tcpkv-lock-'));
    for (let round = 0; round < 10; round++) {
      await staleLock(dir);
      const racers = Array.from({ length: 6 }, () => contender(dir, 700));
      await new Promise((r) => setTimeout(r, 300)); // every module loaded, so they start together
      for (const r of racers) r.go();
      const answers = await Promise.all(racers.map((r) => r.answer()));
      expect(answers.filter((a) => a === 'won'), `round ${round}: ${answers.join(',')}`).toHaveLength(1);
      expect(answers.filter((a) => a === 'locked')).toHaveLength(5);
      await Promise.all(racers.map((r) => r.exited));
    }
    // the stale sockets of the dead holders were cleared away by the winners
    expect(readdirSync(dir).filter((n) => n.startsWith('tcpkv.lock')).length).toBeLessThanOrEqual(1);
  });

  it('a path too long for a socket address still locks the directory itself, and a server restarts in it after kill -9', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'tcpkv-lock-')), 'a-data-directory-whose-path-is-far-longer-than-a-unix-socket-address-can-hold-0123456789-0123456789');
    expect(dir.length).toBeGreaterThan(120);
    mkdirSync(dir);
    const lock = await lockDirectory(dir);
    try {
      await expect(lockDirectory(dir)).rejects.toBeInstanceOf(DirectoryLockedError);
      expect(readdirSync(dir)).toContain(lock.name);
      expect(readdirSync(join(dir, '..')).filter((n) => n.startsWith('tcpkv'))).toEqual([]);
    } finally {
      await lock.release();
    }
    for (let i = 0; i < 3; i++) {
      const server = await spawnServer({ TCPKV_DATA_DIR: dir });
      const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'standard', timeoutMs: 5000 });
      const answer = await client.send({ method: 'POST', path: 'create', body: `k${i}: v` });
      expect(answer.kind === 'response' && answer.response.status).toBe(200);
      server.kill('SIGKILL');
      await server.exited;
    }
    const last = await spawnServer({ TCPKV_DATA_DIR: dir });
    try {
      await expect(spawnServer({ TCPKV_DATA_DIR: dir })).rejects.toThrow(/exited with 2[\s\S]*in use by another tcpkv-server/);
    } finally {
      last.kill('SIGKILL');
    }
  });
});

describe('file modes', () => {
  const capture = () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }));
    return { logger, lines };
  };
  const openStore = (dir: string, logger = pino({ level: 'silent' })) => LogStore.open({ dir, fsync: 'no', compactFactor: 2, compactMinBytes: 1 << 20, repair: 'off', logger });

  it('a created directory is 0700, the log and the compacted log 0600', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'tcpkv-modes-')), 'data');
    const store = await openStore(dir);
    try {
      await store.upsertAll([['k', 'v']]);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect(statSync(join(dir, LOG_NAME)).mode & 0o777).toBe(0o600);
      await store.compact();
      expect(statSync(join(dir, LOG_NAME)).mode & 0o777).toBe(0o600);
    } finally {
      await store.close();
    }
  });

  it('an existing directory or log others can read is used, with a warning naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tcpkv-modes-'));
    chmodSync(dir, 0o755);
    const first = await openStore(dir);
    await first.close();
    chmodSync(join(dir, LOG_NAME), 0o644);
    const { logger, lines } = capture();
    const store = await openStore(dir, logger);
    await store.close();
    expect(lines.join('')).toContain(`data directory ${dir} is accessible by other users (mode 755)`);
    expect(lines.join('')).toContain(`log file ${join(dir, LOG_NAME)} is accessible by other users (mode 644)`);
  });
});
