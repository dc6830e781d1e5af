// kill -9 of a real tcpkv-server while it compacts a log of large records (100 KB values), 20 times:
// every restart succeeds and every acknowledged write is there with its latest value.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { REWRITE_NAME } from '../../services/server/store/log-store.js';
import { sleep, spawnServer } from '../support/net.js';
import { checkAgainstModel, newModel, parseListing, runWriteLoad } from '../support/write-load.js';
import { useTempDirs } from '../support/temp-dirs.js';

const tempDir = useTempDirs();

describe('kill -9 during compactions of large records', () => {
  it('20 cycles with 100 KB values: every restart succeeds, nothing acknowledged is lost', async () => {
    const dir = tempDir('tcpkv-kill-');
    // 8 writers × 10 keys × 100 KB = 8 MB live; a rewrite every ~4 MB written
    const env = { TCPKV_DATA_DIR: dir, TCPKV_FSYNC: 'everysec', TCPKV_COMPACT_MIN_BYTES: String(1 << 20), TCPKV_COMPACT_FACTOR: '1.5' };
    const model = newModel();
    let compactions = 0;
    let killedMidRewrite = 0;
    const CYCLES = 20;
    for (let i = 0; i <= CYCLES; i++) {
      const server = await spawnServer(env); // rejects if a restart fails
      try {
        const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: server.port }], dialect: 'standard', timeoutMs: 10_000 });
        const answer = await client.send({ method: 'GET', path: '' });
        if (answer.kind !== 'response' || answer.response.status !== 200) throw new Error('GET failed');
        expect(checkAgainstModel(parseListing(answer.response.body), model), `after kill ${i}`).toEqual([]);
        if (i === CYCLES) break;
        const load = runWriteLoad(server.port, model, 8, `c${i}`, 100_000, 'updates');
        // let it write until a rewrite has started; then kill in the middle of it (odd cycles) or
        // just after its switch to the new file (even cycles), at a random point
        const rewriting = () => existsSync(join(dir, REWRITE_NAME));
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline && !rewriting()) await sleep(5);
        if (i % 2 === 0) while (Date.now() < deadline + 5000 && rewriting()) await sleep(2);
        await sleep(Math.floor(Math.random() * (i % 2 === 0 ? 50 : 100)));
        if (rewriting()) killedMidRewrite++;
        server.kill('SIGKILL');
        expect(await server.exited).toBe(null);
        load.stop();
        await load.done;
      } finally {
        compactions += server.output().split('\n').filter((l) => l.includes('"msg":"log compacted"')).length;
        server.kill('SIGKILL');
      }
    }
    console.log(`[log figures] kill -9 cycles: ${CYCLES} kills, ${killedMidRewrite} while a rewrite file existed, ${compactions} compactions completed, ${model.acked} writes acknowledged`);
    expect(model.acked).toBeGreaterThan(CYCLES * 5);
    expect(killedMidRewrite).toBeGreaterThanOrEqual(CYCLES / 4);
    expect(compactions).toBeGreaterThan(0);
  });
});
