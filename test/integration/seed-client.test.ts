// The seed report's own client (test/fixtures/seed-client/main_client.py, a faithful copy that shares
// nothing with tcpkv's code) against a real tcpkv-server process: the report's 16-case scenario with its
// ASCII data, then the same scenario with Korean keys and values holding 2-, 3- and 4-byte characters.
// The client counts Content-Length in characters (Python's len(str)); everything must arrive whole.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exchange, ROOT, spawnServer, type ChildServer } from '../support/net.js';

const CLIENT = `${ROOT}test/fixtures/seed-client/main_client.py`;
const work = mkdtempSync(join(tmpdir(), 'tcpkv-seed-client-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface SeedCase {
  url: string;
  method: string;
  body: string;
}
interface CaseOutput {
  n: number;
  /** the text of the client's single recv(4096) */
  data: string;
  status: number | undefined;
}

/** Runs the seed client against 127.0.0.1:port; with `cases`, those instead of the report's list. */
function runSeedClient(port: number, cases?: SeedCase[]): Promise<{ code: number | null; cases: CaseOutput[]; stdout: string; stderr: string }> {
  const args = [CLIENT, '127.0.0.1', String(port)];
  if (cases) {
    const file = join(work, `cases-${port}-${cases.length}.json`);
    writeFileSync(file, JSON.stringify(cases));
    args.push(file);
  }
  return new Promise((resolve) => {
    const proc = spawn('python3', args, { env: { PATH: process.env.PATH ?? '', PYTHONIOENCODING: 'utf-8' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      const parsed = stdout
        .split('### Test Case')
        .slice(1)
        .map((block) => {
          const n = Number(/^(\d+):/.exec(block)?.[1]);
          // print("Response data:\n\n", data): the data follows after one space
          const at = block.indexOf('Response data:\n\n ');
          const rest = at < 0 ? '' : block.slice(at + 'Response data:\n\n '.length);
          const data = rest.slice(0, rest.lastIndexOf('\n\n\rFinish...'));
          const status = /^HTTP\/1\.1 (\d{3}) /.exec(data)?.[1];
          return { n, data, status: status === undefined ? undefined : Number(status) };
        });
      resolve({ code, cases: parsed, stdout, stderr });
    });
  });
}

// services/client/scenario.ts: the statuses of cases 1–15 (16 is END)
const EXPECTED = [100, 200, 404, 405, 400, 404, 200, 200, 400, 400, 400, 100, 200, 400, 400];

/** The report's scenario with other bodies for its POST and PUT cases (7, 9, 10, 11, 13, 15). */
function scenario(bodies: Record<number, string>): SeedCase[] {
  const cases: [string, string][] = [
    ['127.0.0.1/', 'HEAD'], ['127.0.0.1/', 'GET'], ['127.0.0.1??', 'GET'], ['127.0.0.1/', 'PRRT'],
    ['127.0.5.1/', 'GET'], ['127.0.0.1/create', 'PUT'], ['127.0.0.1/create', 'POST'], ['127.0.0.1/', 'GET'],
    ['127.0.0.1/create', 'POST'], ['127.0.0.1/create', 'POST'], ['127.0.0.1/create', 'POST'], ['127.0.0.1/', 'HEAD'],
    ['127.0.0.1/update', 'PUT'], ['127.0.0.1/update', 'PUT'], ['127.0.0.1/update', 'PUT'], ['127.0.0.1/', 'END'],
  ];
  return cases.map(([url, method], i) => ({ url, method, body: bodies[i + 1] ?? '' }));
}

async function stopsCleanly(server: ChildServer): Promise<void> {
  const code = await Promise.race([server.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000))]);
  if (code === 'still running') server.kill('SIGKILL');
  expect(code, server.output()).toBe(0);
}

describe('the seed report’s client against tcpkv-server', () => {
  it('cases 1–16 with the report’s ASCII data: every status, the data listed, END stops the server (exit 0)', async () => {
    const server = await spawnServer();
    const run = await runSeedClient(server.port);
    expect(run.code, run.stderr).toBe(0);
    expect(run.cases.map((c) => c.n)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(run.cases.slice(0, 15).map((c) => c.status)).toEqual(EXPECTED);
    expect(run.cases[7]!.data).toMatch(/The data in DB is as follows\.\r?\nID:20182793\r?\nSubject:Computer_Network\r?\nGrade:A/);
    expect(run.cases[12]!.data).toContain('20182793 => 20180434');
    expect(run.cases[12]!.data).toContain('final_exam');
    expect(run.cases[15]!.status ?? 200).toBe(200);
    await stopsCleanly(server);
  });

  it('the same scenario with Korean keys and values (2-, 3- and 4-byte characters): all stored and listed intact', async () => {
    const server = await spawnServer();
    const created: [string, string][] = [
      ['학번', '20182793'],
      ['과목', '컴퓨터네트워크'],
      ['성적', 'A+'],
      ['도시', 'Genève'],
      ['메모', '합격 😀🎉'],
    ];
    const bodies = {
      7: created.map(([k, v]) => `${k}: ${v}`).join('&'),
      9: ': 95',
      10: '중간고사70',
      11: '학번: 20180434',
      13: '학번: 20180434&기말고사: 90점 𝄞',
      15: '재수강여부Yes',
    };
    // the client's Content-Length (characters) really differs from the body's bytes here
    expect([...bodies[7]].length).toBeLessThan(Buffer.byteLength(bodies[7]));
    const cases = scenario(bodies);
    const run = await runSeedClient(server.port, cases.slice(0, 15));
    expect(run.code, run.stderr).toBe(0);
    expect(run.cases.map((c) => c.status)).toEqual(EXPECTED);
    for (const [k, v] of created) expect(run.cases[7]!.data).toContain(`${k}:${v}`);
    expect(run.cases[10]!.data).toContain('The key already exists!');
    expect(run.cases[12]!.data).toContain('20182793 => 20180434');

    // checked through a standard request, too: every pair exactly as sent, nothing else
    const { responses } = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1);
    expect(responses[0]!.status).toBe(200);
    const expected = [['학번', '20180434'], ...created.slice(1), ['기말고사', '90점 𝄞']].map(([k, v]) => `${k}:${v}`);
    expect(responses[0]!.body.split(/\r?\n/).filter((l) => l !== '' && !l.startsWith('The data in DB'))).toEqual(expected);

    const end = await runSeedClient(server.port, cases.slice(15));
    expect(end.code, end.stderr).toBe(0);
    expect(end.cases[0]!.status ?? 200).toBe(200);
    await stopsCleanly(server);
  });
});
