// Disk errors at every step of the log's write path and of the compaction switch, on real files: the
// file operations fail on purpose (EMFILE, ENOSPC, EIO) at one chosen step while writes go on. After
// each fault: every write was answered with success or a 503 (StoreUnavailableError) — never anything
// else — and after the fault clears and the store is closed and opened again, every write that
// succeeded is there with its latest value and no refused write is.

import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LOG_NAME, LogStore, REAL_FILE_OPS, REWRITE_NAME, type LogFileOps } from '../../services/server/store/log-store.js';
import { StoreUnavailableError } from '../../services/server/store/store.js';
import { exchange, SERVER_BIN } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';

const tempDir = useTempDirs();

type Step = keyof LogFileOps;

/** The real file operations, except that a chosen step on a chosen file fails while armed. */
class FaultyOps implements LogFileOps {
  faults: { step: Step; file: string; code: string }[] = [];
  /** steps that failed on purpose, for the test to check it hit what it meant to */
  readonly hits: string[] = [];

  private check(step: Step, path: string): void {
    const f = this.faults.find((x) => x.step === step && path.endsWith(x.file));
    if (f) {
      this.hits.push(`${step}:${f.file}`);
      throw Object.assign(new Error(`${f.code}: injected at ${step} of ${path}`), { code: f.code });
    }
  }

  async open(path: string, flags: number, mode: number) {
    this.check('open', path);
    return REAL_FILE_OPS.open(path, flags, mode);
  }
  async write(handle: FileHandle, data: Buffer, path: string) {
    if (this.faults.some((x) => x.step === 'write' && path.endsWith(x.file)) && data.length > 1) {
      // a write cut short: half of it reaches the file, then the error (what ENOSPC does)
      await REAL_FILE_OPS.write(handle, data.subarray(0, data.length >> 1), path);
    }
    this.check('write', path);
    return REAL_FILE_OPS.write(handle, data, path);
  }
  async read(handle: FileHandle, into: Buffer, position: number, path: string) {
    this.check('read', path);
    return REAL_FILE_OPS.read(handle, into, position, path);
  }
  async datasync(handle: FileHandle, path: string) {
    this.check('datasync', path);
    return REAL_FILE_OPS.datasync(handle, path);
  }
  async truncate(handle: FileHandle, bytes: number, path: string) {
    this.check('truncate', path);
    return REAL_FILE_OPS.truncate(handle, bytes, path);
  }
  async close(handle: FileHandle, path: string) {
    // close(2) releases the descriptor even when it reports an error
    await REAL_FILE_OPS.close(handle, path);
    this.check('close', path);
  }
  async rename(from: string, to: string) {
    this.check('rename', from);
    return REAL_FILE_OPS.rename(from, to);
  }
  async syncDirectory(dir: string) {
    this.check('syncDirectory', `${dir}/.`);
    return REAL_FILE_OPS.syncDirectory(dir);
  }
  async unlink(path: string) {
    this.check('unlink', path);
    return REAL_FILE_OPS.unlink(path);
  }
}

const open = (dir: string, fileOps?: LogFileOps) =>
  LogStore.open({ dir, fsync: 'always', compactFactor: 1000, compactMinBytes: 1 << 30, repair: 'off', logger: pino({ level: 'silent' }), maxRecordBytes: 4096, ...(fileOps ? { fileOps } : {}) });

interface Model {
  /** latest acknowledged value per key, in the order the writes were made */
  acked: Map<string, string>;
  refused: Set<string>;
  outcomes: { ok: number; unavailable: number };
}

/** One write; records what its answer promises. Any answer other than success or 503 fails the test. */
async function write(store: LogStore, model: Model, key: string, value: string): Promise<void> {
  try {
    await store.upsertAll([[key, value]]);
    model.acked.set(key, value);
    model.outcomes.ok++;
  } catch (error) {
    expect(error).toBeInstanceOf(StoreUnavailableError);
    model.refused.add(`${key}=${value}`);
    model.outcomes.unavailable++;
  }
}

/** Deleted files the process still holds open in `dir` (a handle writes could go to after a rename). */
function deletedFilesHeld(dir: string): string[] {
  const held: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir) && target.endsWith('(deleted)')) held.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return held;
}

const steps: { step: Step; file: string; during: 'compaction' | 'write' }[] = [
  { step: 'open', file: REWRITE_NAME, during: 'compaction' },
  { step: 'write', file: REWRITE_NAME, during: 'compaction' },
  { step: 'datasync', file: REWRITE_NAME, during: 'compaction' },
  { step: 'read', file: LOG_NAME, during: 'compaction' },
  { step: 'rename', file: REWRITE_NAME, during: 'compaction' },
  { step: 'syncDirectory', file: '.', during: 'compaction' },
  { step: 'close', file: LOG_NAME, during: 'compaction' },
  { step: 'write', file: LOG_NAME, during: 'write' },
  { step: 'datasync', file: LOG_NAME, during: 'write' },
  { step: 'truncate', file: LOG_NAME, during: 'write' },
];

describe('a disk error at any step: success or 503, and nothing acknowledged is lost', () => {
  for (const { step, file, during } of steps) {
    for (const code of ['EMFILE', 'ENOSPC', 'EIO']) {
      it(`${step} of ${file} fails with ${code} during ${during === 'compaction' ? 'a compaction' : 'writes'}`, async () => {
        const dir = tempDir('tcpkv-fault-');
        const ops = new FaultyOps();
        const model: Model = { acked: new Map(), refused: new Set(), outcomes: { ok: 0, unavailable: 0 } };
        let store = await open(dir, ops);
        // some data, rewritten often: a log worth compacting, with writes to copy at the switch
        for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 40 }, (_, i) => write(store, model, `k${i}`, `r${round}-${'x'.repeat(150)}`)));
        expect(model.outcomes.unavailable).toBe(0);

        // a truncate only runs after a failed write: make the write fail too
        ops.faults = step === 'truncate' ? [{ step: 'write', file, code }, { step, file, code }] : [{ step, file, code }];
        const writesMeanwhile = (tag: string) => Array.from({ length: 30 }, (_, i) => write(store, model, i % 2 ? `k${i}` : `${tag}${i}`, `${tag}-${i}`));
        if (during === 'compaction') {
          const compaction = store.compact();
          await Promise.all(writesMeanwhile('during'));
          await compaction;
          await Promise.all(writesMeanwhile('after'));
        } else {
          await Promise.all(writesMeanwhile('w1'));
          if (step === 'truncate') {
            // the failed write's bytes could not be cut off: nothing may follow them, so 503 even
            // when writing itself works again
            ops.faults = [{ step, file, code }];
            await Promise.all(writesMeanwhile('w2'));
            expect(model.outcomes.ok).toBe(200);
          }
        }
        expect(ops.hits.length, `the fault at ${step} of ${file} happened`).toBeGreaterThan(0);
        // while writes fail, the store says it is not ready (the admin port's /readyz)
        if (during === 'write') expect(store.readiness()).toMatch(/failed|could not/);
        // no handle of ours points at a file that is no longer in the directory
        expect(deletedFilesHeld(dir)).toEqual([]);

        // the fault clears: writes are accepted again (a failed compaction leaves the old log in use;
        // a log in doubt is repaired by the next batch)
        ops.faults = [];
        const before = model.outcomes.ok;
        await Promise.all(writesMeanwhile('healed'));
        expect(model.outcomes.ok - before).toBe(30);
        expect(store.readiness()).toBeUndefined();
        // a compaction works again too
        await store.compact();
        await Promise.all(writesMeanwhile('last'));

        // what memory shows is what was acknowledged
        for (const [key, value] of model.acked) expect(store.get(key), key).toBe(value);
        await store.close();
        expect(readdirSync(dir).filter((n) => n.startsWith('tcpkv.log'))).toEqual([LOG_NAME]);

        store = await open(dir);
        try {
          for (const [key, value] of model.acked) expect(store.get(key), `${key} after the restart`).toBe(value);
          for (const refused of model.refused) {
            const [key, value] = refused.split('=') as [string, string];
            expect(store.get(key), `${refused} was refused`).not.toBe(value);
          }
          expect(store.usage().keys).toBe(model.acked.size);
        } finally {
          await store.close();
        }
      });
    }
  }

  it('a directory fsync that fails after the rename refuses writes (503) until it works, then accepts them', async () => {
    const dir = tempDir('tcpkv-fault-');
    const ops = new FaultyOps();
    const store = await open(dir, ops);
    try {
      await store.upsertAll([['a', '1']]);
      ops.faults = [{ step: 'syncDirectory', file: '.', code: 'EIO' }];
      await store.compact();
      expect(store.stats.compactions).toBe(1);
      expect(store.readiness()).toMatch(/could not be fsynced/);
      await expect(store.upsertAll([['b', '2']])).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(store.get('b')).toBeUndefined();
      ops.faults = [];
      await store.upsertAll([['b', '3']]);
      expect(store.readiness()).toBeUndefined();
      expect(statSync(join(dir, LOG_NAME)).size).toBe(store.logBytes);
    } finally {
      await store.close();
    }
  });
});

describe('a real full disk (a small tmpfs in a private mount namespace)', () => {
  it('a compaction that runs out of space leaves the old log in use; full writes get 503; a restart has every acknowledged write', async () => {
    const dir = tempDir('tcpkv-enospc-');
    // one namespace, one tmpfs, two servers one after the other: the second replays what the first left
    const proc = spawn(
      'unshare',
      ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=192k tmpfs "$0" && "$@"; echo "--- restart"; exec "$@"', dir, process.execPath, SERVER_BIN, '--port', '0'],
      { env: { PATH: process.env.PATH ?? '', TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'always', TCPKV_COMPACT_MIN_BYTES: '65536', TCPKV_COMPACT_FACTOR: '1.5' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    const port = async (nth: number) => {
      for (let i = 0; i < 400; i++) {
        const ports = [...out.matchAll(/"port":(\d+)[^\n]*"msg":"listening"/g)].map((m) => Number(m[1]));
        if (ports.length >= nth) return ports[nth - 1]!;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`server ${nth} did not start:\n${out}`);
    };
    const send = async (p: number, method: string, path: string, body = '') =>
      (await exchange(p, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, 1)).responses[0]!;
    try {
      const first = await port(1);
      const acked = new Map<string, string>();
      let unavailable = 0;
      for (let round = 0; round < 12 && unavailable < 5; round++) {
        for (let i = 0; i < 20; i++) {
          const value = `${round}-${'v'.repeat(4000)}`;
          const r = await send(first, 'PUT', `/kv/k${i}`, value);
          if (r.status === 200) acked.set(`k${i}`, value);
          else {
            expect(r.status).toBe(503);
            unavailable++;
          }
        }
      }
      expect(out).toMatch(/"code":"ENOSPC"[^\n]*log compaction failed/);
      expect(unavailable).toBeGreaterThan(0);
      // reads go on, and show only what was acknowledged
      for (const [key, value] of acked) expect((await send(first, 'GET', `/kv/${key}`)).body).toBe(value);
      expect((await send(first, 'END', '/')).status).toBe(200);
      const second = await port(2);
      for (const [key, value] of acked) expect((await send(second, 'GET', `/kv/${key}`)).body, `${key} after the restart`).toBe(value);
    } finally {
      proc.kill('SIGKILL');
      await exited;
    }
  });
});
