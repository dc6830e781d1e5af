// A damaged log against a real tcpkv-server: damage anywhere but a torn last write refuses to start
// (exit 2, file and offset named, the file untouched); TCPKV_LOG_REPAIR=truncate cuts with a warning
// that counts what it drops; a log written by the previous format version still loads.

import fc from 'fast-check';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import type { FileHandle } from 'node:fs/promises';
import { LOG_NAME, LogOpenError, LogStore, REAL_FILE_OPS, type LogFileOps } from '../../services/server/store/log-store.js';
import { spawnServer } from '../support/net.js';
import { recordStarts } from '../support/log-files.js';
import { useTempDirs } from '../support/temp-dirs.js';
import { parseListing } from '../support/write-load.js';

const tempDir = useTempDirs();
const V1_FIXTURE = new URL('../fixtures/logs/v1-log.bin', import.meta.url);

async function send(port: number, method: string, path: string, body = '') {
  const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port }], dialect: 'standard', timeoutMs: 5000 });
  const answer = await client.send({ method, path, body });
  if (answer.kind !== 'response') throw new Error('no answer');
  return answer.response;
}

const listing = async (port: number) => parseListing((await send(port, 'GET', '')).body);

/** Start-up that must fail: its exit status and output. */
async function refusedStart(env: Record<string, string>): Promise<string> {
  return spawnServer(env).then(
    (s) => {
      s.kill('SIGKILL');
      return 'started';
    },
    (e: Error) => e.message,
  );
}

/** 16 keys written by a real server, one record each, then a clean stop. */
async function sixteenKeyLog(): Promise<{ dir: string; file: string }> {
  const dir = tempDir('tcpkv-damage-');
  const server = await spawnServer({ TCPKV_DATA_DIR: dir });
  for (let i = 1; i <= 16; i++) expect((await send(server.port, 'POST', 'create', `k${i}: v${i}`)).status).toBe(200);
  server.kill('SIGTERM');
  expect(await server.exited).toBe(0);
  return { dir, file: join(dir, 'tcpkv.log') };
}

describe('a damaged length field', () => {
  it('one flipped bit in the length of the 2nd of 16 records (now 64 KiB past the end): exit 2 naming file and offset, the file untouched', async () => {
    const { dir, file } = await sixteenKeyLog();
    const log = readFileSync(file);
    const starts = recordStarts(log);
    expect(starts).toHaveLength(16);
    const damaged = Buffer.from(log);
    damaged[starts[1]! + 2]! ^= 0x01; // length + 65,536
    writeFileSync(file, damaged);

    const refused = await refusedStart({ TCPKV_DATA_DIR: dir, TCPKV_LOG_REPAIR: 'off' });
    expect(refused).toMatch(/exited with 2 before listening/);
    expect(refused).toContain(`${file} is damaged at offset ${starts[1]}`);
    expect(readFileSync(file).equals(damaged)).toBe(true); // nothing cut
  });

  it('TCPKV_LOG_REPAIR=truncate cuts there, warning that it drops the damaged record and the 14 readable records after it', async () => {
    const { dir, file } = await sixteenKeyLog();
    const log = readFileSync(file);
    const starts = recordStarts(log);
    const damaged = Buffer.from(log);
    damaged[starts[1]! + 2]! ^= 0x01;
    writeFileSync(file, damaged);

    const server = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_LOG_REPAIR: 'truncate' });
    try {
      expect([...(await listing(server.port))]).toEqual([['k1', 'v1']]);
      const warning = server.output().split('\n').find((l) => l.includes('TCPKV_LOG_REPAIR=truncate'));
      expect(warning).toBeDefined();
      expect(warning).toContain(`at offset ${starts[1]}`);
      expect(warning).toContain('14 readable records after it');
      expect(warning).toContain('14 keys');
      expect(readFileSync(file).length).toBe(starts[1]);
    } finally {
      server.kill('SIGKILL');
    }
  });
});

describe('format versions', () => {
  it('a log written by the previous version (v1) loads with its data, and the server goes on writing it', async () => {
    const dir = tempDir('tcpkv-v1-');
    copyFileSync(V1_FIXTURE, join(dir, 'tcpkv.log'));
    const server = await spawnServer({ TCPKV_DATA_DIR: dir });
    let before: Map<string, string>;
    try {
      before = await listing(server.port);
      expect(before.size).toBe(17);
      expect(before.get('k3')).toBe('세 번째 값 😀');
      expect(before.has('k5')).toBe(false);
      expect(before.get('emoji')).toBe('🎉');
      expect((await send(server.port, 'POST', 'create', 'after: upgrade')).status).toBe(200);
    } finally {
      server.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
    const again = await spawnServer({ TCPKV_DATA_DIR: dir });
    try {
      expect(await listing(again.port)).toEqual(new Map([...before, ['after', 'upgrade']]));
    } finally {
      again.kill('SIGKILL');
    }
  });

  it('a v1 log with a damaged length inside it refuses to start too (a scan finds the intact records after it)', async () => {
    const dir = tempDir('tcpkv-v1-');
    const file = join(dir, 'tcpkv.log');
    const log = readFileSync(V1_FIXTURE);
    const starts = recordStarts(log);
    const damaged = Buffer.from(log);
    damaged[starts[3]! + 2]! ^= 0x01;
    writeFileSync(file, damaged);
    const refused = await refusedStart({ TCPKV_DATA_DIR: dir });
    expect(refused).toMatch(/exited with 2 before listening/);
    expect(refused).toContain(`${file} is damaged at offset ${starts[3]}`);
    expect(readFileSync(file).equals(damaged)).toBe(true);
  });
});

describe('property, on real files through the store: one flipped bit or one cut anywhere', () => {
  const open = (dir: string, repair: 'off' | 'truncate' = 'off') =>
    LogStore.open({ dir, fsync: 'no', compactFactor: 1000, compactMinBytes: 1 << 30, repair, logger: pino({ level: 'silent' }) });

  const key = fc.constantFrom('a', 'b', 'c', '키', 'e😀');
  const write = fc.oneof(
    fc.record({ kind: fc.constant('create' as const), pairs: fc.array(fc.tuple(key, fc.string({ maxLength: 12 })), { minLength: 1, maxLength: 3 }) }),
    fc.record({ kind: fc.constant('upsert' as const), pairs: fc.array(fc.tuple(key, fc.string({ maxLength: 12 })), { minLength: 1, maxLength: 3 }) }),
    fc.record({ kind: fc.constant('delete' as const), key }),
  );

  it('refuses to start (exit path: LogOpenError naming file and offset, the file untouched) or starts with exactly the acknowledged records before it', async () => {
    let refusals = 0;
    let started = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(write, { minLength: 2, maxLength: 10 }), fc.nat(), fc.boolean(), async (writes, where, cut) => {
        const dir = tempDir('tcpkv-prop-');
        const file = join(dir, 'tcpkv.log');
        // the data after each acknowledged record, in the order they were written
        const states: Map<string, string>[] = [new Map()];
        const store = await open(dir);
        for (const w of writes) {
          const before = states[states.length - 1]!;
          const after = new Map(before);
          if (w.kind === 'delete') {
            if (await store.delete(w.key)) after.delete(w.key);
            else continue;
          } else {
            const r = w.kind === 'create' ? await store.createAll(w.pairs) : await store.upsertAll(w.pairs);
            if ('ok' in r && !r.ok) continue;
            for (const [k, v] of w.pairs) after.set(k, v);
          }
          states.push(after);
        }
        await store.close();
        const log = readFileSync(file);
        const starts = recordStarts(log);
        const ends = starts.map((_, i) => starts[i + 1] ?? log.length);
        expect(ends).toHaveLength(states.length - 1);

        const damaged = Buffer.from(log);
        let offset: number;
        if (cut) {
          offset = where % (log.length + 1);
          writeFileSync(file, damaged.subarray(0, offset));
        } else {
          const bit = where % (log.length * 8);
          offset = bit >> 3;
          damaged[offset]! ^= 1 << (bit & 7);
          writeFileSync(file, damaged);
        }
        const expected = states[ends.filter((e) => e <= offset).length]!;
        let reopened: LogStore | undefined;
        try {
          reopened = await open(dir);
        } catch (error) {
          expect(error).toBeInstanceOf(LogOpenError);
          expect(cut, 'a cut always starts').toBe(false);
          expect((error as Error).message).toContain(file);
          expect(readFileSync(file).equals(damaged), 'a refused start changes nothing').toBe(true);
          refusals++;
          return;
        }
        try {
          started++;
          expect(new Map(writes.flatMap((w) => ('key' in w ? [w.key] : w.pairs.map(([k]) => k))).map((k) => [k, reopened!.get(k)] as const).filter(([, v]) => v !== undefined))).toEqual(expected);
          expect(reopened.usage().keys).toBe(expected.size);
        } finally {
          await reopened.close();
        }
      }),
      { numRuns: 60 },
    );
    // both outcomes were exercised
    expect(refusals).toBeGreaterThan(5);
    expect(started).toBeGreaterThan(5);
  });
});

describe('a write cut short by a full disk, left in the file', () => {
  it('the restart takes it for a torn tail and keeps every acknowledged record', async () => {
    const dir = tempDir('tcpkv-enospc-');
    let full = false;
    // ENOSPC after half the bytes, and the cut-off fails too: the partial record stays (as when the
    // process dies before it can cut it off)
    const ops: LogFileOps = {
      ...REAL_FILE_OPS,
      async write(handle: FileHandle, data: Buffer, path: string) {
        if (!full || !path.endsWith(LOG_NAME)) return REAL_FILE_OPS.write(handle, data, path);
        await REAL_FILE_OPS.write(handle, data.subarray(0, data.length >> 1), path);
        throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
      },
      async truncate(handle: FileHandle, bytes: number, path: string) {
        if (full) throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
        return REAL_FILE_OPS.truncate(handle, bytes, path);
      },
    };
    const options = { dir, fsync: 'always' as const, compactFactor: 1000, compactMinBytes: 1 << 30, repair: 'off' as const, logger: pino({ level: 'silent' }) };
    const store = await LogStore.open({ ...options, fileOps: ops });
    for (let i = 0; i < 20; i++) await store.upsertAll([[`k${i}`, `v${i}`.repeat(50)]]);
    const acknowledged = readFileSync(join(dir, LOG_NAME)).length;
    full = true;
    await expect(store.upsertAll([['lost', 'x'.repeat(5000)]])).rejects.toThrow(/ENOSPC/);
    await store.close();
    expect(readFileSync(join(dir, LOG_NAME)).length).toBeGreaterThan(acknowledged); // the partial record is there

    const again = await LogStore.open(options);
    try {
      expect(readFileSync(join(dir, LOG_NAME)).length).toBe(acknowledged);
      for (let i = 0; i < 20; i++) expect(again.get(`k${i}`)).toBe(`v${i}`.repeat(50));
      expect(again.get('lost')).toBeUndefined();
    } finally {
      await again.close();
    }
  });
});
