// `tcpkv-server --check-log FILE`: checks a log without starting a server — no lock, nothing written —
// and, for damage, says what TCPKV_LOG_REPAIR=truncate would cut. And a log copied with cp while eight
// writers load the server is a valid backup: it passes the check and loads with every write
// acknowledged before the copy began.

import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { recordStarts } from '../support/log-files.js';
import { SERVER_BIN, sleep, spawnServer } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';
import { newModel, parseListing, runWriteLoad, type LoadModel } from '../support/write-load.js';

const tempDir = useTempDirs();

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const checkLog = (file: string) => run(process.execPath, [SERVER_BIN, '--check-log', file]);

async function listing(port: number): Promise<Map<string, string>> {
  const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port }], dialect: 'standard', timeoutMs: 10_000 });
  const answer = await client.send({ method: 'GET', path: '' });
  if (answer.kind !== 'response' || answer.response.status !== 200) throw new Error('GET failed');
  return parseListing(answer.response.body);
}

/** A running server with 16 keys written, one record each. */
async function serverWithSixteenKeys(dir: string) {
  const server = await spawnServer({ TCPKV_DATA_DIR: dir });
  const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'standard', timeoutMs: 5000 });
  for (let i = 1; i <= 16; i++) {
    const answer = await client.send({ method: 'POST', path: 'create', body: `k${i}: v${i}` });
    expect(answer.kind === 'response' && answer.response.status).toBe(200);
  }
  return server;
}

describe('tcpkv-server --check-log', () => {
  it('the live log of a running server: exit 0 with its records and keys; no lock taken, nothing written, the server unaffected', async () => {
    const dir = tempDir('tcpkv-check-');
    const server = await serverWithSixteenKeys(dir);
    try {
      const file = join(dir, 'tcpkv.log');
      const before = { bytes: readFileSync(file), mtime: statSync(file).mtimeMs, entries: readdirSync(dir).sort() };
      const r = await checkLog(file);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('ok: 16 records, 16 keys; a server loads it as it is');
      expect(readFileSync(file).equals(before.bytes)).toBe(true);
      expect(statSync(file).mtimeMs).toBe(before.mtime);
      expect(readdirSync(dir).sort()).toEqual(before.entries); // no lock socket of its own, no rewrite file
      expect((await listing(server.port)).size).toBe(16);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('damage: exit 1, the offset and what truncate would cut (the 14 readable records after it and their keys); the file untouched', async () => {
    const dir = tempDir('tcpkv-check-');
    const server = await serverWithSixteenKeys(dir);
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const file = join(dir, 'tcpkv.log');
    const damaged = readFileSync(file);
    const starts = recordStarts(damaged);
    damaged[starts[1]! + 2]! ^= 0x01;
    writeFileSync(file, damaged);
    const r = await checkLog(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`DAMAGED at offset ${starts[1]} (record header checksum mismatch), after 1 good record (1 key)`);
    expect(r.stdout).toContain(
      `TCPKV_LOG_REPAIR=truncate would cut it at offset ${starts[1]}: ${damaged.length - starts[1]!} bytes, the damaged record and 14 readable records after it, which write or delete 14 keys: "k3", "k4",`,
    );
    expect(r.stdout).toContain('"k16"');
    expect(r.stdout).toContain('copy the file before repairing it');
    expect(readFileSync(file).equals(damaged)).toBe(true);
    // and the dry run says what the repair then does
    const repaired = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_LOG_REPAIR: 'truncate' });
    try {
      expect(repaired.output()).toContain('14 readable records after it, which write or delete 14 keys');
      expect([...(await listing(repaired.port)).keys()]).toEqual(['k1']);
    } finally {
      repaired.kill('SIGKILL');
    }
  });

  it('a torn last write: exit 0, saying what a server cuts off', async () => {
    const dir = tempDir('tcpkv-check-');
    const server = await serverWithSixteenKeys(dir);
    server.kill('SIGTERM');
    await server.exited;
    const file = join(dir, 'tcpkv.log');
    const full = readFileSync(file);
    const last = recordStarts(full)[15]!;
    writeFileSync(file, full.subarray(0, full.length - 3));
    const r = await checkLog(file);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`ok: 15 records, 15 keys, then a torn last write at offset ${last} (${full.length - 3 - last} bytes`);
  });

  it('not a log: exit 1; a file that cannot be read: exit 2 with the reason', async () => {
    const dir = tempDir('tcpkv-check-');
    writeFileSync(join(dir, 'notes.txt'), 'hello\n');
    const notLog = await checkLog(join(dir, 'notes.txt'));
    expect(notLog.code).toBe(1);
    expect(notLog.stdout).toContain('not a tcpkv log');
    const missing = await checkLog(join(dir, 'nope.log'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('ENOENT');
    const directory = await checkLog(dir);
    expect(directory.code).toBe(2);
    expect(directory.stderr).toContain('EISDIR');
  });
});

/** The sequence number a load value carries (`<tag>.<n>` then padding): later writes of a key carry larger ones. */
const seq = (value: string) => Number(/^[^.]*\.(\d+)/.exec(value)![1]);

describe('copying the live log with cp is a valid backup', () => {
  it('copies taken while 8 writers load the server (compactions included) pass --check-log and load with every write acknowledged before the copy began', async () => {
    const dir = tempDir('tcpkv-live-');
    const backups = tempDir('tcpkv-backups-');
    // 1 KB values: a log of a few MB, rewritten every ~2 MB, so copies overlap writes and renames
    const server = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'everysec', TCPKV_COMPACT_MIN_BYTES: String(1 << 20), TCPKV_COMPACT_FACTOR: '2' });
    const model: LoadModel = newModel();
    const copies: { dir: string; ackedBefore: Map<string, string>; refused: Set<string> }[] = [];
    let compactions: number;
    try {
      const load = runWriteLoad(server.port, model, 8, 'cp', 1000, 'mixed');
      await sleep(500);
      for (let i = 0; i < 6; i++) {
        const ackedBefore = new Map([...model.keys].filter(([, s]) => s.acked !== undefined).map(([k, s]) => [k, s.acked!] as const));
        const copyDir = join(backups, `copy${i}`);
        mkdirSync(copyDir);
        const cp = await run('cp', [join(dir, 'tcpkv.log'), join(copyDir, 'tcpkv.log')]);
        expect(cp.code, cp.stderr).toBe(0);
        copies.push({ dir: copyDir, ackedBefore, refused: new Set(model.refused) });
        await sleep(250);
      }
      load.stop();
      await load.done;
      expect(model.acked).toBeGreaterThan(200);
    } finally {
      server.kill('SIGTERM');
      await server.exited;
      compactions = server.output().split('\n').filter((l) => l.includes('"msg":"log compacted"')).length;
    }

    let torn = 0;
    for (const [i, copy] of copies.entries()) {
      const file = join(copy.dir, 'tcpkv.log');
      const check = await checkLog(file);
      expect(check.code, `copy ${i}: ${check.stdout}${check.stderr}`).toBe(0);
      if (check.stdout.includes('torn last write')) torn++;
      const restored = await spawnServer({ TCPKV_DATA_DIR: copy.dir });
      try {
        const data = await listing(restored.port);
        const problems: string[] = [];
        for (const [key, acked] of copy.ackedBefore) {
          const got = data.get(key);
          // the value acknowledged when the copy began, or one written after it
          if (got === undefined || seq(got) < seq(acked)) problems.push(`${key}: acknowledged ${acked.slice(0, 12)} before the copy, found ${got?.slice(0, 12) ?? 'nothing'}`);
        }
        for (const key of copy.refused) if (data.has(key)) problems.push(`${key} was refused but is stored`);
        expect(problems, `copy ${i}`).toEqual([]);
      } finally {
        restored.kill('SIGKILL');
      }
    }
    console.log(`[log figures] cp under load: ${copies.length} copies, ${torn} ended in a torn write, ${compactions} compactions meanwhile, ${model.acked} writes acknowledged`);
  });
});
