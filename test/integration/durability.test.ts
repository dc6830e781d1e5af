// The append-only log with real processes, real files and kill -9 (issue 5's acceptance 1–4).

import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { Texts } from '../../services/protocol/texts.js';
import { encodeJsonRecord, encodeRecord, MAGIC, TYPE_SET } from '../../services/server/store/log-format.js';
import { sleep, spawnServer, type ChildServer } from '../support/net.js';
import { checkAgainstModel, newModel, parseListing, runWriteLoad, type LoadModel } from '../support/write-load.js';

const freshDir = () => mkdtempSync(join(tmpdir(), 'tcpkv-data-'));
const client = (port: number) => new TcpkvClient({ servers: [{ host: '127.0.0.1', port }], dialect: 'standard', timeoutMs: 5000 });

async function listing(port: number): Promise<Map<string, string>> {
  const answer = await client(port).send({ method: 'GET', path: '' });
  if (answer.kind !== 'response' || answer.response.status !== 200) throw new Error('GET failed');
  return parseListing(answer.response.body);
}

async function send(port: number, method: string, path: string, body: string) {
  const answer = await client(port).send({ method, path, body });
  if (answer.kind !== 'response') throw new Error('no answer');
  return answer.response;
}

/** Start, check the data against the model, load, kill -9 at a random moment; `cycles` times. */
async function crashCycles(fsync: string, cycles: number, env: Record<string, string> = {}, valueBytes = 8): Promise<{ model: LoadModel; outputs: string[]; dir: string }> {
  const dir = freshDir();
  const model = newModel();
  const outputs: string[] = [];
  for (let i = 0; i <= cycles; i++) {
    const server = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_FSYNC: fsync, ...env });
    try {
      const problems = checkAgainstModel(await listing(server.port), model);
      expect(problems, `after crash ${i} (fsync=${fsync})`).toEqual([]);
      if (i === cycles) break;
      const load = runWriteLoad(server.port, model, 4, `c${i}`, valueBytes);
      await sleep(50 + Math.floor(Math.random() * 350));
      server.kill('SIGKILL');
      expect(await server.exited).toBe(null); // killed by the signal, not exited
      load.stop();
      await load.done;
    } finally {
      outputs.push(server.output());
      server.kill('SIGKILL');
    }
  }
  return { model, outputs, dir };
}

describe('kill -9 under concurrent POST/PUT load (4 connections)', () => {
  for (const fsync of ['always', 'everysec']) {
    it(`TCPKV_FSYNC=${fsync}: 20 crashes, every acknowledged write survives with its latest value, nothing refused appears`, async () => {
      const { model } = await crashCycles(fsync, 20);
      expect(model.acked).toBeGreaterThan(200); // the load really ran
      expect(model.refused.size).toBeGreaterThan(20);
    });
  }
});

describe('compaction', () => {
  it('under write load: loses nothing and shrinks the file', async () => {
    const dir = freshDir();
    const server = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'no', TCPKV_COMPACT_MIN_BYTES: '65536', TCPKV_COMPACT_FACTOR: '2' });
    const model = newModel();
    try {
      const load = runWriteLoad(server.port, model, 4, 'cmp', 200, 'updates');
      await sleep(2500);
      load.stop();
      await load.done;
      const compactions = server.output().split('\n').filter((l) => l.includes('"msg":"log compacted"')).map((l) => JSON.parse(l) as { before: number; snapshot: number; after: number });
      expect(compactions.length).toBeGreaterThan(0);
      // each rewrite's snapshot of the live data is far smaller than the log it replaced (what came in
      // during the rewrite is appended after it, so `after` may be larger on a busy machine)
      for (const c of compactions) expect(c.snapshot).toBeLessThan(c.before / 2);
      expect(checkAgainstModel(await listing(server.port), model)).toEqual([]);
      // without compaction the log would hold every acknowledged write: at least 9 + 200 bytes each
      expect(statSync(join(dir, 'tcpkv.log')).size).toBeLessThan(model.acked * 209);
    } finally {
      server.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
    const again = await spawnServer({ TCPKV_DATA_DIR: dir });
    try {
      expect(checkAgainstModel(await listing(again.port), model)).toEqual([]);
    } finally {
      again.kill('SIGKILL');
    }
  });

  it('kill -9 at random points while compactions run leaves a directory that starts with all acknowledged data', async () => {
    const { outputs } = await crashCycles('everysec', 12, { TCPKV_COMPACT_MIN_BYTES: '16384', TCPKV_COMPACT_FACTOR: '1.5' }, 300);
    expect(outputs.join('\n')).toContain('"msg":"log compacted"');
  });
});

describe('damaged logs', () => {
  /** A log of three POSTs written by a real server, and where each record starts. */
  async function threeRecordLog(): Promise<{ dir: string; starts: number[]; file: string }> {
    const dir = freshDir();
    const server = await spawnServer({ TCPKV_DATA_DIR: dir });
    for (const body of ['a: 1', 'b: 2', 'c: 3']) expect((await send(server.port, 'POST', 'create', body)).status).toBe(200);
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const starts = [MAGIC.length];
    for (const pairs of [[['a', '1']], [['b', '2']]] as const) starts.push(starts[starts.length - 1]! + encodeRecord(pairs).length);
    return { dir, starts, file: join(dir, 'tcpkv.log') };
  }

  it('a torn tail: starts, warns with file and offset, keeps every complete record, cuts the file', async () => {
    const { dir, starts, file } = await threeRecordLog();
    const full = readFileSync(file);
    writeFileSync(file, full.subarray(0, full.length - 4)); // a crash in the middle of the last write
    const server = await spawnServer({ TCPKV_DATA_DIR: dir });
    try {
      const warning = server.output().split('\n').find((l) => l.includes('torn last record'));
      expect(warning).toContain(`"offset":${starts[2]}`);
      expect(warning).toContain(file);
      expect([...(await listing(server.port))]).toEqual([['a', '1'], ['b', '2']]);
      expect(statSync(file).size).toBe(starts[2]);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('corruption in the middle: refuses to start naming file and offset (exit 2); with TCPKV_LOG_REPAIR=truncate starts with the records before it', async () => {
    const { dir, starts, file } = await threeRecordLog();
    const damaged = readFileSync(file);
    damaged[starts[1]! + 12]! ^= 0x55;
    writeFileSync(file, damaged);
    const refused = await spawnServer({ TCPKV_DATA_DIR: dir }).then(
      (s) => (s.kill('SIGKILL'), 'started'),
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/exited with 2 before listening/);
    expect(refused).toContain(`${file} is damaged at offset ${starts[1]}`);
    const repaired = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_LOG_REPAIR: 'truncate' });
    try {
      expect([...(await listing(repaired.port))]).toEqual([['a', '1']]);
      expect(repaired.output()).toContain('cutting');
    } finally {
      repaired.kill('SIGKILL');
    }
  });

  for (const payload of ['[["a"]]', '[null]', '[[1,"x"]]']) {
    it(`a record with a good checksum but the payload ${payload}: exit 2 naming file and offset (never a TypeError); truncate repairs`, async () => {
      const dir = freshDir();
      const file = join(dir, 'tcpkv.log');
      const good = encodeRecord([['a', '1']]);
      writeFileSync(file, Buffer.concat([MAGIC, good, encodeJsonRecord(TYPE_SET, payload), encodeRecord([['b', '2']])]));
      const refused = await spawnServer({ TCPKV_DATA_DIR: dir }).then(
        (s) => (s.kill('SIGKILL'), 'started'),
        (e: Error) => e.message,
      );
      expect(refused).toMatch(/exited with 2 before listening/);
      expect(refused).toContain(`${file} is damaged at offset ${MAGIC.length + good.length}`);
      expect(refused).not.toContain('TypeError');
      const repaired = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_LOG_REPAIR: 'truncate' });
      try {
        expect([...(await listing(repaired.port))]).toEqual([['a', '1']]);
      } finally {
        repaired.kill('SIGKILL');
      }
    });
  }

  it('a file that is not a tcpkv log refuses to start', async () => {
    const dir = freshDir();
    writeFileSync(join(dir, 'tcpkv.log'), 'hello\n');
    await expect(spawnServer({ TCPKV_DATA_DIR: dir })).rejects.toThrow(/exited with 2[\s\S]*not a tcpkv log/);
  });
});

describe('one server per directory; failed writes', () => {
  it('a second server on the same directory fails with a clear message and exit 2; after a kill -9 the lock is free again', async () => {
    const dir = freshDir();
    const first = await spawnServer({ TCPKV_DATA_DIR: dir });
    let second: ChildServer | undefined;
    try {
      await expect(spawnServer({ TCPKV_DATA_DIR: dir })).rejects.toThrow(/exited with 2[\s\S]*in use by another tcpkv-server/);
      expect((await send(first.port, 'GET', '', '')).status).toBe(200); // the first is unharmed
      first.kill('SIGKILL');
      await first.exited;
      second = await spawnServer({ TCPKV_DATA_DIR: dir });
      expect((await send(second.port, 'GET', '', '')).status).toBe(200);
    } finally {
      first.kill('SIGKILL');
      second?.kill('SIGKILL');
    }
  });

  it('a full disk (a real 64 KiB tmpfs): the write gets 503, memory is unchanged, reads go on', async () => {
    const dir = freshDir();
    // a private mount namespace: the tmpfs exists only for this server process
    const server = await spawnServer({ TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'always' }, [], ['unshare', '-rm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs "${dir}" && exec "$@"`, 'sh']);
    try {
      const big = 'v'.repeat(6000);
      let failedAt = -1;
      let before = new Map<string, string>();
      for (let i = 0; i < 30 && failedAt < 0; i++) {
        before = await listing(server.port);
        const r = await send(server.port, 'POST', 'create', `k${i}: ${big}`);
        if (r.status === 503) {
          failedAt = i;
          expect(r.body).toBe(Texts.storeUnavailable);
        } else {
          expect(r.status).toBe(200);
        }
      }
      expect(failedAt).toBeGreaterThan(0);
      expect(await listing(server.port)).toEqual(before); // nothing of the failed write
      expect(server.output()).toMatch(/"code":"ENOSPC"[^\n]*log write failed/);
      // a small write may still fit into what the failed one left: either it works or it is a clean 503
      const small = await send(server.port, 'PUT', 'update', 'k0: small');
      expect([200, 503]).toContain(small.status);
    } finally {
      server.kill('SIGKILL');
    }
  });
});
