// A key walk while its keys are deleted (a queue drain): `tcpkv-client keys --prefix job/ --page 1`,
// each key it prints deleted at once on another connection. Every key present for the whole walk is
// printed, on every store (docs/store.md, Pages): a cursor key deleted since continues from its place.

import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { useLocalEtcd } from '../support/etcd.js';
import { useChildServers } from '../support/child-servers.js';
import { CLIENT_BIN, openSocket, ROOT, spawnServer } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';

const track = useChildServers();
const tempDir = useTempDirs();
const localEtcd = useLocalEtcd();

const JOBS = 300;

async function post(port: number, body: string): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/create`, { method: 'POST', body });
  await r.text();
  return r.status;
}

/** Runs the walk; deletes each printed key on a socket of its own; resolves with what was printed. */
async function drainWithClient(port: number): Promise<{ code: number | null; printed: string[]; stderr: string }> {
  const socket = await openSocket(port);
  let answers = 0;
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    const parts = received.split('HTTP/1.1 200 ');
    answers += parts.length - 1;
    received = parts.at(-1)!;
  });
  const proc = spawn(process.execPath, [CLIENT_BIN, 'keys', '--prefix', 'job/', '--page', '1', '--server', `127.0.0.1:${port}`], {
    env: { PATH: process.env.PATH ?? '' },
    cwd: ROOT + 'test',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const printed: string[] = [];
  let partial = '';
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  proc.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const key of lines) {
      printed.push(key);
      socket.write(`DELETE /kv/${encodeURIComponent(key)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    }
  });
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  for (let i = 0; i < 500 && answers < printed.length; i++) await new Promise((r) => setTimeout(r, 10));
  socket.destroy();
  return { code, printed, stderr };
}

describe('keys --prefix job/ --page 1 while each printed key is deleted', () => {
  const stores: [string, () => Promise<Record<string, string>>][] = [
    ['memory', async () => ({})],
    ['log', async () => ({ TCPKV_DATA_DIR: tempDir('tcpkv-walk-') })],
    ['etcd', async () => ({ TCPKV_ETCD_ENDPOINTS: localEtcd().endpoint, TCPKV_ETCD_PREFIX: `walk${process.pid}-${Date.now()}/` })],
  ];
  for (const [name, env] of stores) {
    it(`${name} store: all ${JOBS} keys are printed, and none is left`, async () => {
      const server = track(await spawnServer(await env()));
      // other keys between the jobs, so the walk skips as it goes
      const pairs = Array.from({ length: JOBS }, (_, i) => `job/${String(i).padStart(3, '0')}: ${i}&other/${i}: x`);
      // in POSTs of 40 pairs: etcd takes at most 63 in one transaction by default
      for (let i = 0; i < JOBS; i += 20) expect(await post(server.port, pairs.slice(i, i + 20).join('&'))).toBe(200);
      const { code, printed, stderr } = await drainWithClient(server.port);
      console.log(JSON.stringify({ store: name, printed: printed.length, code }));
      expect(stderr).toBe('');
      expect(code).toBe(0);
      expect(printed).toEqual(Array.from({ length: JOBS }, (_, i) => `job/${String(i).padStart(3, '0')}`));
      const left = await fetch(`http://127.0.0.1:${server.port}/kv?prefix=job%2F`);
      expect(await left.json()).toEqual({ items: [], next: null });
    });
  }
});
