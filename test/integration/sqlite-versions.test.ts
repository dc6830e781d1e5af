// The SQLite store's versions on real database files, beyond the contract table: the exact numbers (one
// revision per accepted write, none for a refused one) checked against a model over a seeded run of
// mixed writes, the counter in the file never going back (the highest version deleted, the file
// reopened), and a file written by tcpkv before versions existed, migrated in place at open — or left
// as it was when the migration fails.

import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { sqliteDriver } from '../../services/server/store/sqlite-driver.js';
import { StoreFullError, UNCONDITIONAL, type Condition, type Store, type StoreLimits } from '../../services/server/store/store.js';
import { useTempDirs } from '../support/temp-dirs.js';

/** The part of node:sqlite the fixtures use (the @types/node of the oldest supported Node lacks it). */
interface Database {
  exec(sql: string): void;
  prepare(sql: string): { run(...params: unknown[]): unknown; all(...params: unknown[]): Record<string, unknown>[] };
  close(): void;
}
const moduleName = 'node:sqlite';
const sqlite = (await import(moduleName).catch(() => undefined)) as { DatabaseSync: new (file: string) => Database } | undefined;

const tempDir = useTempDirs();
const LOOSE: StoreLimits = { maxKeys: 1_000_000, maxDataBytes: 1_000_000_000 };

function logged(): { logger: ReturnType<typeof pino>; lines: { level: number; msg: string; keys?: number }[] } {
  const lines: { level: number; msg: string; keys?: number }[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }), done()) });
  return { logger: pino({ level: 'info' }, sink), lines };
}

function open(file: string, limits: StoreLimits = LOOSE, logger = pino({ level: 'silent' })): Promise<Store> {
  return sqliteDriver.open({ sqliteFile: file }, { limits, logger });
}

/** Rows of a query on a closed store's file, read with node:sqlite itself. */
function query(file: string, sql: string): Record<string, unknown>[] {
  const db = new sqlite!.DatabaseSync(file);
  try {
    return db.prepare(sql).all().map((row) => ({ ...row }));
  } finally {
    db.close();
  }
}

const newFile = () => join(tempDir('tcpkv-sqlite-versions-'), 'data.db');
const ifVersions = (...versions: number[]): Condition => ({ kind: 'versions', versions });

/** A small seeded generator (xorshift32), so a failing run can be repeated. */
function generator(seed: number): (below: number) => number {
  let x = seed >>> 0 || 1;
  return (below) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % below;
  };
}

describe.runIf(sqlite !== undefined)('SqliteStore versions', () => {
  it('a seeded run of 400 mixed writes: each accepted one takes exactly the next revision, each refused one none, as a model says; the file holds the same after reopening', async () => {
    const file = newFile();
    const store = await open(file);
    // the model: each key's value and version, in insertion order, and the last revision taken
    const model = new Map<string, { value: string; version: number }>();
    let revision = 0;
    const random = generator(26);
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const pick = () => keys[random(keys.length)]!;
    const someCondition = (key: string): Condition => {
      const current = model.get(key)?.version;
      switch (random(5)) {
        case 0:
          return UNCONDITIONAL;
        case 1:
          return { kind: 'exists' };
        case 2:
          return { kind: 'absent' };
        case 3:
          return ifVersions(current ?? revision); // the right one when the key exists
        default:
          return ifVersions(Math.max(1, revision - random(3))); // often stale
      }
    };
    const holds = (condition: Condition, current: number | undefined) =>
      condition.kind === 'any' || (condition.kind === 'exists' && current !== undefined) || (condition.kind === 'absent' && current === undefined) || (condition.kind === 'versions' && current !== undefined && condition.versions.includes(current));
    let accepted = 0;
    let refused = 0;
    try {
      for (let step = 0; step < 400; step++) {
        const key = pick();
        const value = `v${step}`;
        const current = model.get(key)?.version;
        switch (random(5)) {
          case 0: {
            const other = pick();
            const answer = await store.createAll(key === other ? [[key, value]] : [[key, value], [other, value]]);
            if (model.has(key) || model.has(other)) {
              expect(answer.ok).toBe(false);
              refused++;
            } else {
              expect(answer).toEqual({ ok: true });
              revision++;
              accepted++;
              model.set(key, { value, version: revision });
              model.set(other, { value, version: revision });
            }
            break;
          }
          case 1: {
            const other = pick();
            const answer = await store.upsertAll([[key, value], [other, `${value}'`]]);
            expect(answer.previous).toEqual([model.get(key)?.value, model.get(other)?.value]);
            revision++;
            accepted++;
            model.set(key, { value: other === key ? `${value}'` : value, version: revision });
            model.set(other, { value: `${value}'`, version: revision });
            break;
          }
          case 2: {
            const removed = await store.delete(key);
            expect(removed).toBe(current !== undefined);
            if (current !== undefined) {
              revision++;
              accepted++;
              model.delete(key);
            } else refused++;
            break;
          }
          case 3: {
            const condition = someCondition(key);
            const answer = await store.putKey(key, value, condition);
            if (holds(condition, current)) {
              revision++;
              accepted++;
              expect(answer).toEqual({ ok: true, version: revision, created: current === undefined });
              model.set(key, { value, version: revision });
            } else {
              refused++;
              expect(answer).toEqual({ ok: false, current });
            }
            break;
          }
          default: {
            const condition = someCondition(key);
            const answer = await store.deleteKey(key, condition);
            if (current !== undefined && holds(condition, current)) {
              revision++;
              accepted++;
              expect(answer).toEqual({ ok: true, version: revision });
              model.delete(key);
            } else {
              refused++;
              expect(answer).toEqual({ ok: false, current });
            }
          }
        }
        expect(store.revision).toBe(revision);
        const probe = pick();
        expect(await store.getVersioned(probe)).toEqual(model.get(probe));
      }
      // a run that exercised both outcomes plenty
      expect(accepted).toBeGreaterThan(100);
      expect(refused).toBeGreaterThan(50);
      const page = await store.page({ prefix: '', after: undefined, limit: 10 });
      expect(new Map(page.items.map(([key, value], i) => [key, { value, version: page.versions[i]! }]))).toEqual(model);
    } finally {
      await store.close();
    }
    expect(query(file, 'SELECT revision FROM meta')).toEqual([{ revision }]);
    const again = await open(file);
    try {
      expect(again.revision).toBe(revision);
      const page = await again.page({ prefix: '', after: undefined, limit: 10 });
      expect(new Map(page.items.map(([key, value], i) => [key, { value, version: page.versions[i]! }]))).toEqual(model);
      expect(await again.putKey('new', '1', { kind: 'absent' })).toEqual({ ok: true, version: revision + 1, created: true });
    } finally {
      await again.close();
    }
  });

  it('never goes back: the key with the highest version deleted, the file closed and opened again (twice), the next write takes a larger one', async () => {
    const file = newFile();
    const first = await open(file);
    expect(await first.putKey('a', '1', UNCONDITIONAL)).toEqual({ ok: true, version: 1, created: true });
    expect(await first.putKey('b', '2', UNCONDITIONAL)).toEqual({ ok: true, version: 2, created: true });
    expect(await first.deleteKey('b', ifVersions(2))).toEqual({ ok: true, version: 3 });
    expect(await first.delete('a')).toBe(true); // version 4, held by no key
    await first.close();
    // no key is left to tell: only the counter in the file knows
    expect(query(file, 'SELECT count(*) AS n FROM entries')).toEqual([{ n: 0 }]);
    await (await open(file)).close();
    const again = await open(file);
    try {
      expect(again.revision).toBe(4);
      expect(await again.putKey('b', '3', { kind: 'absent' })).toEqual({ ok: true, version: 5, created: true });
    } finally {
      await again.close();
    }
  });

  it('a write refused for a limit takes no revision and leaves no transaction open', async () => {
    const store = await open(newFile(), { maxKeys: 1, maxDataBytes: 6 });
    try {
      expect(await store.putKey('a', '1', UNCONDITIONAL)).toEqual({ ok: true, version: 1, created: true });
      expect(() => store.putKey('b', '1', UNCONDITIONAL)).toThrow(StoreFullError);
      expect(() => store.putKey('a', '123456', ifVersions(1))).toThrow(StoreFullError);
      expect(() => store.upsertAll([['b', '1']])).toThrow(StoreFullError);
      // the condition is decided before the limit: a failed one is a 412, not a 507
      expect(await store.putKey('a', '123456', ifVersions(7))).toEqual({ ok: false, current: 1 });
      expect(await store.putKey('a', '2', ifVersions(1))).toEqual({ ok: true, version: 2, created: false });
      expect(await store.deleteKey('a', { kind: 'exists' })).toEqual({ ok: true, version: 3 });
      expect(store.usage()).toEqual({ keys: 0, dataBytes: 0 });
    } finally {
      await store.close();
    }
  });
});

/**
 * A file as tcpkv wrote it before versions, with that version's schema written out here (not taken
 * from the store's code): four keys created, one updated, one deleted for good, one deleted and
 * created again (a new row at the end), in WAL mode as the old store left it.
 */
function oldFile(): string {
  const file = newFile();
  const db = new sqlite!.DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL, bytes INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS graves (n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL);
  `);
  const insert = db.prepare('INSERT INTO entries (key, value, bytes) VALUES (?, ?, ?)');
  for (const [key, value] of [['a', '1'], ['b', '2'], ['c', '3'], ['z', '4'], ['d', '5']]) insert.run(key, value, key.length + value.length);
  db.exec(`UPDATE entries SET value = '22', bytes = 3 WHERE key = 'b'`);
  db.exec(`INSERT INTO graves (key, seq) SELECT key, seq FROM entries WHERE key IN ('c', 'z'); DELETE FROM entries WHERE key IN ('c', 'z')`);
  insert.run('c', '33', 3);
  db.exec(`DELETE FROM graves WHERE key = 'c'`);
  db.close();
  return file;
}

describe.runIf(sqlite !== undefined)('a SQLite file from before versions', () => {
  it('opens, migrated in place and logged once: versions 1, 2, … in insertion order, the counter after them, cursors kept', async () => {
    const file = oldFile();
    const { logger, lines } = logged();
    const store = await open(file, LOOSE, logger);
    try {
      expect(lines.filter((l) => /migrated/.test(l.msg))).toMatchObject([{ level: 40, keys: 4 }]);
      expect(await store.page({ prefix: '', after: undefined, limit: 10 })).toEqual({ items: [['a', '1'], ['b', '22'], ['d', '5'], ['c', '33']], versions: [1, 2, 3, 4], next: undefined });
      expect(store.usage()).toEqual({ keys: 4, dataBytes: 2 + 3 + 2 + 3 });
      expect(store.revision).toBe(4);
      // the place of the key deleted for good is still a cursor
      expect(await store.page({ prefix: '', after: 'z', limit: 10 })).toMatchObject({ items: [['d', '5'], ['c', '33']] });
      expect(await store.putKey('b', '222', ifVersions(2))).toEqual({ ok: true, version: 5, created: false });
      expect(await store.createAll([['e', '6']])).toEqual({ ok: true });
      expect(await store.getVersioned('e')).toEqual({ value: '6', version: 6 });
    } finally {
      await store.close();
    }
    expect(query(file, `SELECT name FROM pragma_table_info('entries') WHERE name = 'version'`)).toEqual([{ name: 'version' }]);
    const again = logged();
    const reopened = await open(file, LOOSE, again.logger);
    try {
      expect(again.lines.filter((l) => /migrated/.test(l.msg))).toEqual([]);
      expect((await reopened.page({ prefix: '', after: undefined, limit: 10 })).versions).toEqual([1, 5, 3, 4, 6]);
      expect(await reopened.putKey('f', '7', UNCONDITIONAL)).toEqual({ ok: true, version: 7, created: true });
    } finally {
      await reopened.close();
    }
  });

  it('an empty file from before versions: the counter starts at 0, the first write takes 1', async () => {
    const file = newFile();
    const db = new sqlite!.DatabaseSync(file);
    db.exec('CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL, bytes INTEGER NOT NULL)');
    db.close();
    const store = await open(file);
    try {
      expect(store.revision).toBe(0);
      expect(await store.putKey('a', '1', UNCONDITIONAL)).toEqual({ ok: true, version: 1, created: true });
    } finally {
      await store.close();
    }
  });

  it('a migration that fails leaves the file as it was, and the start is refused naming TCPKV_SQLITE_FILE', async () => {
    const file = oldFile();
    // a trigger of the file's own refuses the migration's UPDATE halfway through it
    const db = new sqlite!.DatabaseSync(file);
    db.exec(`CREATE TRIGGER refuse BEFORE UPDATE ON entries BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END`);
    db.close();
    await expect(open(file)).rejects.toMatchObject({ name: 'ConfigError', setting: 'TCPKV_SQLITE_FILE', message: expect.stringContaining('refused by a trigger') as string });
    expect(query(file, `SELECT name FROM pragma_table_info('entries')`).map((r) => r.name)).toEqual(['seq', 'key', 'value', 'bytes']);
    expect(query(file, `SELECT name FROM sqlite_master WHERE name = 'meta'`)).toEqual([]);
    expect(query(file, 'SELECT key, value FROM entries ORDER BY seq')).toEqual([{ key: 'a', value: '1' }, { key: 'b', value: '22' }, { key: 'd', value: '5' }, { key: 'c', value: '33' }]);
    const fix = new sqlite!.DatabaseSync(file);
    fix.exec('DROP TRIGGER refuse');
    fix.close();
    const store = await open(file);
    try {
      expect((await store.page({ prefix: '', after: undefined, limit: 10 })).versions).toEqual([1, 2, 3, 4]);
    } finally {
      await store.close();
    }
  });
});
