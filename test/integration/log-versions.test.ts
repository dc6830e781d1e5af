// The log store's versions and conditional writes, on real files: requests issued together are decided
// in one batch against memory plus the batch's earlier writes, and answer as the same writes one after
// the other would; every key's version and the revision are the same after a restart, after a
// compaction (also one running while writes go on), and after a failed write (which takes none);
// a v2 log is read with versions numbered by its records and rewritten as v3.

import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { encodeDelete, encodeRecord, MAGIC, MAGIC_V2 } from '../../services/server/store/log-format.js';
import { LOG_NAME, LogStore, REAL_FILE_OPS, type LogFileOps } from '../../services/server/store/log-store.js';
import { StoreFullError, StoreUnavailableError, type StoreLimits } from '../../services/server/store/store.js';
import { useTempDirs } from '../support/temp-dirs.js';
import { sameAnswer, SMALL_LIMITS, VersionModel, versionOp, type CreateRefusal, type VersionAnswer, type VersionOp } from '../support/versions-model.js';

const tempDir = useTempDirs();

const open = (dir: string, options: { limits?: StoreLimits; fileOps?: LogFileOps; compactMinBytes?: number } = {}) =>
  LogStore.open({
    dir,
    fsync: 'no',
    compactFactor: 2,
    compactMinBytes: options.compactMinBytes ?? 1 << 30,
    repair: 'off',
    logger: pino({ level: 'silent' }),
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.fileOps ? { fileOps: options.fileOps } : {}),
  });

/** Issues a write without waiting: its answer, or 'full' for StoreFullError. */
function issue(store: LogStore, op: VersionOp, model: VersionModel): { answer: Promise<VersionAnswer>; expected: VersionAnswer | CreateRefusal } {
  const condition = op.kind === 'putKey' || op.kind === 'deleteKey' ? model.condition(op.key, op.spec) : undefined;
  const expected = model.apply(op, condition);
  let answer: Promise<VersionAnswer>;
  switch (op.kind) {
    case 'create':
      answer = store.createAll(op.pairs);
      break;
    case 'upsert':
      answer = store.upsertAll(op.pairs);
      break;
    case 'delete':
      answer = store.delete(op.key);
      break;
    case 'putKey':
      answer = store.putKey(op.key, op.value, condition!);
      break;
    case 'deleteKey':
      answer = store.deleteKey(op.key, condition!);
      break;
  }
  return {
    answer: answer.catch((error: unknown) => {
      if (error instanceof StoreFullError) return 'full' as const;
      throw error;
    }),
    expected,
  };
}

/** Every key with its value and version, in order, read through page() and getVersioned(). */
function held(store: LogStore): [string, string, number][] {
  const page = store.page({ prefix: '', after: undefined, limit: 1000 });
  const rows = page.items.map(([k, v], i): [string, string, number] => [k, v, page.versions[i]!]);
  for (const [k, v, version] of rows) expect(store.getVersioned(k)).toEqual({ value: v, version });
  return rows;
}

/** A burst of writes issued in one turn (so they share batches), each answer checked against the model. */
async function burst(store: LogStore, model: VersionModel, ops: readonly VersionOp[]): Promise<void> {
  const issued = ops.map((op) => ({ op, ...issue(store, op, model) }));
  for (const { op, answer, expected } of issued) {
    const got = await answer;
    expect(sameAnswer(got, expected), `${JSON.stringify(op)}: ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`).toBe(true);
  }
  expect(store.revision).toBe(model.revision);
}

describe('log store versions', () => {
  it('bursts decided in batches answer as one write after the other; restarts and compactions keep every version', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ ops: fc.array(versionOp, { minLength: 1, maxLength: 12 }), then: fc.constantFrom('nothing', 'restart', 'compact', 'compact-during') }), { minLength: 1, maxLength: 6 }),
        async (bursts) => {
          const dir = tempDir('tcpkv-versions-');
          const model = new VersionModel(SMALL_LIMITS);
          let store = await open(dir, { limits: SMALL_LIMITS });
          try {
            for (const { ops, then } of bursts) {
              if (then === 'compact-during') {
                // a compaction taken between this burst's batches: the writes after it are copied over
                const compaction = store.compact();
                await burst(store, model, ops);
                await compaction;
              } else await burst(store, model, ops);
              expect(held(store)).toEqual(model.snapshot());
              if (then === 'compact') await store.compact();
              if (then === 'restart' || then === 'compact-during' || then === 'compact') {
                await store.close();
                store = await open(dir, { limits: SMALL_LIMITS });
                expect(held(store)).toEqual(model.snapshot());
                expect(store.revision).toBe(model.revision);
              }
            }
            expect(readFileSync(join(dir, LOG_NAME)).subarray(0, MAGIC.length).equals(MAGIC)).toBe(true);
          } finally {
            await store.close();
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('two putKey with the same If-Match version in one batch: exactly one wins, the other sees its version', async () => {
    const store = await open(tempDir('tcpkv-versions-'));
    try {
      const { version } = (await store.putKey('k', 'v0', { kind: 'any' })) as { version: number };
      for (let round = 0; round < 20; round++) {
        const current = store.getVersioned('k')!.version;
        const answers = await Promise.all([store.putKey('k', `a${round}`, { kind: 'versions', versions: [current] }), store.putKey('k', `b${round}`, { kind: 'versions', versions: [current] })]);
        expect(answers).toEqual([
          { ok: true, version: current + 1, created: false },
          { ok: false, current: current + 1 },
        ]);
        expect(store.getVersioned('k')).toEqual({ value: `a${round}`, version: current + 1 });
      }
      // and a deleteKey racing a putKey on the same version: the first in line wins
      const current = store.getVersioned('k')!.version;
      expect(current).toBe(version + 20);
      const [deleted, put] = await Promise.all([store.deleteKey('k', { kind: 'versions', versions: [current] }), store.putKey('k', 'late', { kind: 'versions', versions: [current] })]);
      expect(deleted).toEqual({ ok: true, version: current + 1 });
      expect(put).toEqual({ ok: false, current: undefined });
      // If-None-Match: * twice: one create
      const creates = await Promise.all([store.putKey('n', '1', { kind: 'absent' }), store.putKey('n', '2', { kind: 'absent' })]);
      expect(creates).toEqual([
        { ok: true, version: current + 2, created: true },
        { ok: false, current: current + 2 },
      ]);
    } finally {
      await store.close();
    }
  });

  it('a failed write answers 503, applies nothing and takes no revision; the next write takes the next one, also after a restart', async () => {
    const dir = tempDir('tcpkv-versions-');
    let failWrites = false;
    const ops: LogFileOps = {
      ...REAL_FILE_OPS,
      async write(handle: FileHandle, data: Buffer, path: string) {
        if (failWrites && path.endsWith(LOG_NAME)) {
          // half of it reaches the file, then the error (what ENOSPC does)
          await REAL_FILE_OPS.write(handle, data.subarray(0, data.length >> 1), path);
          throw Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' });
        }
        return REAL_FILE_OPS.write(handle, data, path);
      },
    };
    let store = await open(dir, { fileOps: ops });
    try {
      await store.upsertAll([
        ['a', '1'],
        ['b', '2'],
      ]);
      await store.putKey('a', '3', { kind: 'versions', versions: [1] });
      expect(store.revision).toBe(2);
      failWrites = true;
      const failed = await Promise.allSettled([store.putKey('a', 'lost', { kind: 'versions', versions: [2] }), store.deleteKey('b', { kind: 'any' }), store.upsertAll([['c', 'lost']]), store.putKey('a', 'refused', { kind: 'versions', versions: [1] })]);
      for (const f of failed) expect(f.status === 'rejected' && f.reason instanceof StoreUnavailableError, JSON.stringify(f)).toBe(true);
      expect(store.revision).toBe(2);
      expect(held(store)).toEqual([
        ['a', '3', 2],
        ['b', '2', 1],
      ]);
      failWrites = false;
      expect(await store.putKey('a', '4', { kind: 'versions', versions: [2] })).toEqual({ ok: true, version: 3, created: false });
      expect(await store.deleteKey('b', { kind: 'versions', versions: [1] })).toEqual({ ok: true, version: 4 });
      await store.close();
      store = await open(dir);
      expect(store.revision).toBe(4);
      expect(held(store)).toEqual([['a', '4', 3]]);
    } finally {
      await store.close();
    }
  });

  it('refusals take no revision: an existing key, a failed condition, 507, a missing key, 413', async () => {
    const dir = tempDir('tcpkv-versions-');
    let store = await open(dir, { limits: { maxKeys: 2, maxDataBytes: 1000 } });
    try {
      await store.createAll([['a', '1']]);
      expect(await store.createAll([['a', '2']])).toEqual({ ok: false, existingKey: 'a' });
      expect(await store.createAll([['x', '1'], ['x', '2']])).toEqual({ ok: false, existingKey: 'x' });
      expect(await store.putKey('a', '2', { kind: 'absent' })).toEqual({ ok: false, current: 1 });
      expect(await store.deleteKey('a', { kind: 'versions', versions: [9] })).toEqual({ ok: false, current: 1 });
      expect(await store.delete('nope')).toBe(false);
      expect(await store.deleteKey('nope', { kind: 'any' })).toEqual({ ok: false, current: undefined });
      await expect(store.upsertAll([['b', '1'], ['c', '1']])).rejects.toBeInstanceOf(StoreFullError);
      await store.putKey('b', '1', { kind: 'any' });
      await expect(store.putKey('c', '1', { kind: 'absent' })).rejects.toBeInstanceOf(StoreFullError);
      await expect(store.putKey('c', 'x'.repeat(70 * 1024 * 1024), { kind: 'any' })).rejects.toThrow(/TCPKV_MAX_LOG_RECORD_BYTES/);
      expect(store.revision).toBe(2);
      await store.close();
      store = await open(dir);
      expect(store.revision).toBe(2);
      expect(await store.putKey('a', 'next', { kind: 'exists' })).toEqual({ ok: true, version: 3, created: false });
    } finally {
      await store.close();
    }
  });

  it('a compaction keeps the revision when every key was deleted: the next write after a restart goes on from it', async () => {
    const dir = tempDir('tcpkv-versions-');
    let store = await open(dir);
    try {
      for (let i = 0; i < 10; i++) await store.putKey(`k${i}`, 'v', { kind: 'any' });
      for (let i = 0; i < 10; i++) await store.deleteKey(`k${i}`, { kind: 'exists' });
      await store.compact();
      expect(store.stats.compactions).toBe(1);
      await store.close();
      store = await open(dir);
      expect(store.revision).toBe(20);
      expect(await store.putKey('new', 'v', { kind: 'absent' })).toEqual({ ok: true, version: 21, created: true });
    } finally {
      await store.close();
    }
  });

  it('automatic compactions under a stream of updates keep every version across a restart', async () => {
    const dir = tempDir('tcpkv-versions-');
    let store = await open(dir, { compactMinBytes: 64 * 1024 });
    const versions = new Map<string, number>();
    try {
      for (let round = 0; round < 40; round++) {
        const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => store.putKey(`k${i}`, `${round}-${'x'.repeat(200)}`, { kind: 'any' })));
        answers.forEach((a, i) => versions.set(`k${i}`, (a as { version: number }).version));
      }
      expect(store.stats.compactions).toBeGreaterThan(0);
      const revision = store.revision;
      expect(revision).toBe(2000);
      await store.close();
      store = await open(dir);
      expect(store.revision).toBe(revision);
      expect(new Map(held(store).map(([k, , v]) => [k, v]))).toEqual(versions);
    } finally {
      await store.close();
    }
  });

  it('a v2 log: versions are its records\' ordinals; it is rewritten as v3 and keeps them', async () => {
    const dir = tempDir('tcpkv-versions-');
    const file = join(dir, LOG_NAME);
    writeFileSync(
      file,
      Buffer.concat([
        MAGIC_V2,
        encodeRecord([
          ['a', '1'],
          ['b', '2'],
        ]),
        encodeRecord([['c', '3']]),
        encodeDelete(['a']),
        encodeRecord([['b', '4']]),
        encodeRecord([['d', '5']]),
      ]),
    );
    let store = await open(dir);
    try {
      expect(readFileSync(file).subarray(0, MAGIC.length).equals(MAGIC)).toBe(true);
      expect(store.revision).toBe(5);
      const before = held(store);
      expect(before).toEqual([
        ['b', '4', 4],
        ['c', '3', 2],
        ['d', '5', 5],
      ]);
      await store.close();
      store = await open(dir);
      expect(held(store)).toEqual(before);
      expect(await store.putKey('c', '6', { kind: 'versions', versions: [2] })).toEqual({ ok: true, version: 6, created: false });
    } finally {
      await store.close();
    }
  });
});
