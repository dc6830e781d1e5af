// A refusal ("no such key", "already exists", 507) that depends on an earlier write of the same batch
// is answered only once that batch is on disk and applied — and if its write fails, with the batch's
// 503, never with a state that never existed. Real files; the write step is held or failed through the
// store's file-operations seam.

import type { FileHandle } from 'node:fs/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LOG_NAME, LogStore, REAL_FILE_OPS, type LogFileOps } from '../../services/server/store/log-store.js';
import { StoreUnavailableError } from '../../services/server/store/store.js';
import { useTempDirs } from '../support/temp-dirs.js';

const tempDir = useTempDirs();

/** The real operations, except that a write of the log waits for `release()` and may then fail. */
function heldWrites() {
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  let failNext: string | undefined;
  const ops: LogFileOps = {
    ...REAL_FILE_OPS,
    async write(handle: FileHandle, data: Buffer, path: string) {
      if (path.endsWith(LOG_NAME) && gate) await gate.promise;
      if (path.endsWith(LOG_NAME) && failNext) {
        const code = failNext;
        failNext = undefined;
        // half the bytes reach the file, then the error (what a full disk does)
        await REAL_FILE_OPS.write(handle, data.subarray(0, data.length >> 1), path);
        throw Object.assign(new Error(`${code}: injected`), { code });
      }
      return REAL_FILE_OPS.write(handle, data, path);
    },
  };
  return {
    ops,
    hold() {
      let open!: () => void;
      const promise = new Promise<void>((r) => (open = r));
      gate = { promise, open };
    },
    release(fail?: string) {
      failNext = fail;
      const g = gate;
      gate = undefined;
      g?.open();
    },
  };
}

const open = (dir: string, fileOps: LogFileOps, maxKeys = 1000) =>
  LogStore.open({ dir, fsync: 'always', compactFactor: 1000, compactMinBytes: 1 << 30, repair: 'off', logger: pino({ level: 'silent' }), limits: { maxKeys, maxDataBytes: 1 << 30 }, fileOps });

/** Each answer as it arrives, with the store's state at that moment: what the answer claims must hold then. */
type Seen = { what: string; answer: unknown; claimHolds: boolean };

function watch(store: LogStore, seen: Seen[], what: string, p: Promise<unknown>, claim: (answer: unknown) => boolean): Promise<void> {
  return p.then(
    (answer) => void seen.push({ what, answer, claimHolds: claim(answer) }),
    (error: Error) => void seen.push({ what, answer: error.name, claimHolds: error instanceof StoreUnavailableError || error.name === 'StoreFullError' }),
  );
}

describe('refusals wait for the batch they depend on', () => {
  it('while the batch that created "a" is being written, "already exists" is not answered; once it is, "a" is readable', async () => {
    const dir = tempDir('tcpkv-refusal-');
    const held = heldWrites();
    const store = await open(dir, held.ops);
    try {
      held.hold();
      const seen: Seen[] = [];
      const all = [
        watch(store, seen, 'create a=1', store.createAll([['a', '1']]), () => store.get('a') === '1'),
        watch(store, seen, 'create a=2', store.createAll([['a', '2']]), (r) => (r as { existingKey?: string }).existingKey === 'a' && store.get('a') !== undefined),
        // answered with the whole batch applied: the delete after it has removed "b" again by then
        watch(store, seen, 'upsert b', store.upsertAll([['b', '1']]), (r) => (r as { previous: unknown[] }).previous[0] === undefined),
        watch(store, seen, 'delete b', store.delete('b'), (r) => r === true && store.get('b') === undefined),
        watch(store, seen, 'delete b again', store.delete('b'), (r) => r === false && store.get('b') === undefined),
      ];
      // the batch is in its write: nothing of it may be answered yet
      await new Promise((r) => setTimeout(r, 100));
      expect(seen.map((s) => s.what)).toEqual([]);
      held.release();
      await Promise.all(all);
      expect(seen.filter((s) => !s.claimHolds)).toEqual([]);
      expect(seen).toHaveLength(5);
    } finally {
      held.release();
      await store.close();
    }
  });

  it('the batch write fails (ENOSPC): every answer of that batch is 503 — none says "already exists" or "no such key" of a state that never was', async () => {
    const dir = tempDir('tcpkv-refusal-');
    const held = heldWrites();
    let store = await open(dir, held.ops, 3);
    try {
      await store.upsertAll([['kept', 'x']]);
      held.hold();
      const seen: Seen[] = [];
      const all = [
        watch(store, seen, 'create a=1', store.createAll([['a', '1']]), () => store.get('a') === '1'),
        // refused against the batch's own earlier write: "a" exists only if that write reaches the disk
        watch(store, seen, 'create a=2', store.createAll([['a', '2']]), (r) => store.get((r as { existingKey: string }).existingKey) !== undefined),
        watch(store, seen, 'upsert b', store.upsertAll([['b', '1']]), () => store.get('b') === '1'),
        // 507 because the batch's earlier writes filled the store (3 keys at most): alone it would fit
        watch(store, seen, 'upsert c, d', store.upsertAll([['c', '1'], ['d', '1']]), () => store.usage().keys >= 3),
        watch(store, seen, 'delete b', store.delete('b'), () => store.get('b') === undefined),
        // "no such key" because the batch deleted it: before the batch, "kept" exists
        watch(store, seen, 'delete kept', store.delete('kept'), (r) => r === true && store.get('kept') === undefined),
        watch(store, seen, 'delete kept again', store.delete('kept'), (r) => r === false && store.get('kept') === undefined),
      ];
      await new Promise((r) => setTimeout(r, 50));
      held.release('ENOSPC');
      await Promise.all(all);
      const wrong = seen.filter((s) => !s.claimHolds || (s.answer !== 'StoreUnavailableError'));
      expect(wrong, JSON.stringify(seen)).toEqual([]);
      // and nothing of the batch was applied
      expect(store.get('a')).toBeUndefined();
      expect(store.get('kept')).toBe('x');
      await store.close();
      store = await open(dir, REAL_FILE_OPS);
      expect(['kept', 'a', 'b', 'c', 'd'].map((k) => store.get(k))).toEqual(['x', undefined, undefined, undefined, undefined]);
      expect(store.usage().keys).toBe(1);
    } finally {
      held.release();
      await store.close();
    }
  });

  it('a refusal that depends on nothing in its batch is answered as before: "no such key" for a key never written', async () => {
    const dir = tempDir('tcpkv-refusal-');
    const held = heldWrites();
    const store = await open(dir, held.ops);
    try {
      await store.upsertAll([['x', '1']]);
      expect(await store.delete('never')).toBe(false);
      expect(await store.createAll([['x', '2']])).toEqual({ ok: false, existingKey: 'x' });
    } finally {
      await store.close();
    }
  });
});
