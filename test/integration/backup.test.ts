// `tcpkv-client dump` and `restore` against real server processes on every store kind: round trips
// between kinds with the listing byte-identical, damaged files refused before anything is written,
// non-empty targets refused (and merged, replaced), a dump taken under 8 writers that is one instant,
// and a restore killed with SIGKILL and run again that ends with exactly the dump.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useLocalEtcd } from '../support/etcd.js';
import { useChildServers } from '../support/child-servers.js';
import { CLIENT_BIN, ROOT, runClient, spawnServer, type ChildServer } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';

const tempDir = useTempDirs();
const track = useChildServers();
const localEtcd = useLocalEtcd();
let prefixes = 0;

type Kind = 'memory' | 'log' | 'etcd';
const KINDS: readonly Kind[] = ['memory', 'log', 'etcd'];

async function serverOf(kind: Kind): Promise<ChildServer> {
  const env: Record<string, string> =
    kind === 'memory' ? {} : kind === 'log' ? { TCPKV_DATA_DIR: tempDir('tcpkv-backup-') } : { TCPKV_ETCD_ENDPOINTS: localEtcd().endpoint, TCPKV_ETCD_PREFIX: `backup${process.pid}-${++prefixes}/` };
  return track(await spawnServer(env));
}

const at = (s: ChildServer) => ['--server', `127.0.0.1:${s.port}`];

async function listing(s: ChildServer): Promise<string> {
  const r = await runClient([...at(s), '--quiet', 'get']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

/** Keys and values the grammar allows and the pair grammar cannot all carry: Korean, emoji, &, spaces, tabs, `:` in values. */
const AWKWARD: readonly (readonly [string, string])[] = [
  ['학번', '20182793'],
  ['과목', '컴퓨터네트워크 & 소켓 프로그래밍'],
  ['emoji-🙂', '🎉🚀 party'],
  ['url', 'https://example.com/a?b=c&d=e'],
  ['spaced', '  leading and trailing  '],
  ['tabbed', 'a\tb'],
  ['colon', 'x:y:z'],
  ['percent%20key', '100%'],
  ['a&b', 'key with an ampersand'],
];

async function fill(s: ChildServer, entries: readonly (readonly [string, string])[]): Promise<void> {
  for (const [k, v] of entries) {
    const r = await runClient([...at(s), 'put', k, v]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }
}

/** POSTs /create of `n` keys `prefix<i>` with Korean values, `per` pairs a request. */
async function bulk(s: ChildServer, n: number, prefix: string, per = 50): Promise<void> {
  for (let i = 0; i < n; i += per) {
    const pairs: string[] = [];
    for (let j = i; j < Math.min(n, i + per); j++) pairs.push(`${prefix}${j}: 값-${j}-한국어`);
    const r = await runClient([...at(s), 'create', pairs.join('&')]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  }
}

describe.each(KINDS)('from the %s store', (from) => {
  it.each(KINDS.filter((k) => k !== from))('dumps, restores into an empty %s store, and GET / is byte-identical', async (to) => {
    const source = await serverOf(from);
    await fill(source, AWKWARD);
    await bulk(source, 300, 'bulk-');
    const dumped = await runClient([...at(source), 'dump']);
    expect(dumped.code, dumped.stderr).toBe(0);
    expect(dumped.stderr).toMatch(/^dumped 309 keys \(sha256 [0-9a-f]{64}\)\n$/);
    const target = await serverOf(to);
    const restored = await runClient([...at(target), 'restore'], {}, Buffer.from(dumped.stdout));
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stderr).toContain('restore done: 309 written, 0 updated, 0 already there, 0 deleted');
    expect(sha(await listing(target))).toBe(sha(await listing(source)));
    for (const [k, v] of AWKWARD) {
      const r = await runClient([...at(target), '--quiet', 'get', k]);
      expect(r.stdout).toBe(v + '\n');
    }
  });
});

describe('the dump file', () => {
  let source: ChildServer;
  let file: string;

  beforeAll(async () => {
    source = await spawnServer();
    await fill(source, AWKWARD);
    file = (await runClient([...at(source), 'dump'])).stdout;
  });
  afterAll(() => source.kill('SIGKILL'));

  it('is a header, one line per entry in listing order, and a trailer with the count and checksum', () => {
    const lines = file.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ format: 'tcpkv-dump', version: 1, source: `127.0.0.1:${source.port}` });
    expect(lines.slice(1, -1)).toEqual(AWKWARD.map(([k, v]) => ({ k, v })));
    const body = file.slice(0, file.lastIndexOf('\n', file.length - 2) + 1);
    expect(lines.at(-1)).toEqual({ end: true, keys: AWKWARD.length, sha256: sha(body) });
  });

  it.each([
    ['one value changed', (f: string) => f.replace('20182793', '20182794'), 'the checksum does not match'],
    ['cut short', (f: string) => f.slice(0, Math.floor(f.length / 2)), 'cut short'],
    ['the trailer lost', (f: string) => f.slice(0, f.lastIndexOf('{"end"')), 'cut short'],
    ['not a dump', () => 'hello\nworld\n', 'not JSON'],
  ])('%s: refused with exit 2 before anything is written', async (_name, damage, message) => {
    const target = track(await spawnServer());
    const r = await runClient([...at(target), 'restore'], {}, Buffer.from(damage(file)));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`nothing restored: `);
    expect(r.stderr).toContain(message);
    expect(await listing(target)).toBe('No data in DB\n');
  });
});

describe('a target that is not empty', () => {
  it('is refused naming the colliding keys; --merge sets them; --replace also deletes the rest', async () => {
    const source = await serverOf('memory');
    await fill(source, [['a', '1'], ['b', '2']]);
    const file = Buffer.from((await runClient([...at(source), 'dump'])).stdout);
    const target = await serverOf('log');
    await fill(target, [['b', 'other'], ['c', '3']]);

    const refused = await runClient([...at(target), 'restore'], {}, file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the target is not empty: 2 of its 2 keys are not in the dump with the dump\'s value ("b", "c")');
    expect(await listing(target)).toBe('The data in DB is as follows.\nb:other\nc:3\n');

    const merged = await runClient([...at(target), 'restore', '--merge'], {}, file);
    expect(merged.code, merged.stderr).toBe(0);
    expect(await listing(target)).toBe('The data in DB is as follows.\nb:2\nc:3\na:1\n');

    const replaced = await runClient([...at(target), 'restore', '--replace'], {}, file);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stderr).toContain('1 deleted');
    expect(await listing(target)).toBe('The data in DB is as follows.\nb:2\na:1\n');
  });
});

describe('consistency and interruption', () => {
  it('a dump taken while 8 writers run is one instant: no multi-key write is seen in part', async () => {
    const server = await serverOf('log');
    const stopAt = Date.now() + 4_000;
    // each writer: POST /create of a pair of keys, then PUT /update of both to the same new number
    const writer = async (w: number) => {
      for (let i = 0; Date.now() < stopAt; i++) {
        await runClient([...at(server), 'create', `w${w}-${i}-a: 0&w${w}-${i}-b: 0`]);
        await runClient([...at(server), 'update', `w${w}-${i}-a: ${i + 1}&w${w}-${i}-b: ${i + 1}`]);
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    await new Promise((r) => setTimeout(r, 1_500));
    const dumps: string[] = [];
    while (Date.now() < stopAt - 500) dumps.push((await runClient([...at(server), 'dump'])).stdout);
    await Promise.all(writers);
    expect(dumps.length).toBeGreaterThan(0);
    for (const file of dumps) {
      const values = new Map<string, string>();
      for (const line of file.trimEnd().split('\n').slice(1, -1)) {
        const { k, v } = JSON.parse(line) as { k: string; v: string };
        values.set(k, v);
      }
      expect(values.size).toBeGreaterThan(0);
      for (const [k, v] of values) {
        if (!k.endsWith('-a')) continue;
        expect(values.get(k.replace(/-a$/, '-b')), k).toBe(v);
      }
      expect([...values.keys()].filter((k) => k.endsWith('-b')).every((k) => values.has(k.replace(/-b$/, '-a')))).toBe(true);
    }
  });

  it('a restore killed with SIGKILL halfway and run again ends with exactly the dump', async () => {
    const source = await serverOf('memory');
    await bulk(source, 30_000, 'k-', 1000);
    const file = Buffer.from((await runClient([...at(source), 'dump'])).stdout);
    const target = await serverOf('log');

    // the first run: killed once it has said it restored the first 10,000
    const first = spawn(process.execPath, [CLIENT_BIN, ...at(target), 'restore', '--batch', '100'], { cwd: ROOT, stdio: ['pipe', 'ignore', 'pipe'] });
    first.stdin.end(file);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      first.stderr.on('data', (c: Buffer) => {
        err += c.toString();
        if (err.includes('restored 10000 of 30000')) {
          first.kill('SIGKILL');
          resolve();
        }
      });
      first.on('exit', () => reject(new Error(`restore ended before it was killed: ${err}`)));
    });
    const part = await listing(target);
    const held = part.split('\n').length - 2;
    expect(held).toBeGreaterThanOrEqual(10_000);
    expect(held).toBeLessThan(30_000);

    const second = await runClient([...at(target), 'restore', '--batch', '100'], {}, file);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain(`the target already holds ${held} of the dump's 30000 keys with their values: continuing`);
    expect(second.stderr).toContain(`restore done: ${30_000 - held} written, 0 updated, ${held} already there, 0 deleted`);
    expect(sha(await listing(target))).toBe(sha(await listing(source)));
  });
});
