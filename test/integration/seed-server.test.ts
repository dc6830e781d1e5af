// tcpkv-client against the seed's own server (the Python program of the course report, run as a
// process): the scenario passes 16/16 with one connection per request and no waiting on timeouts,
// the one-shot commands and the prompt work in the seed dialect, and where the original crashes the
// client says there was no answer (exit 3).

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpkvClient } from '../../services/client/client.js';
import { CLIENT_BIN, runClient } from '../support/net.js';
import { ptySession } from '../support/pty.js';
import { SEED_SERVER_PY, startSeedServer, type SeedServer } from '../support/seed-server.js';

let seed: SeedServer | undefined;
afterEach(() => {
  seed?.stop();
  seed = undefined;
});

const at = (s: SeedServer) => `127.0.0.1:${s.port}`;

describe('the fixture is the seed server, not tcpkv', () => {
  it('shares no code with the product and keeps the original texts', () => {
    const source = readFileSync(SEED_SERVER_PY, 'utf8');
    expect(source).not.toMatch(/services\/|tcpkv/i);
    for (const text of ['Sucessfully OK', 'Updata mode => PUT', '"\\r\\n\\n"', 'recv(4096)', "There's no key, New update"]) expect(source).toContain(text);
  });
});

describe('tcpkv-client scenario against the seed server', () => {
  it('passes 16/16, one connection per request, without waiting for a timeout; END stops the server (exit 0)', async () => {
    seed = await startSeedServer();
    const started = Date.now();
    // a long timeout: were any case to end by timeout instead of by the answer's framing, this would take ≥ 20 s
    const r = await runClient(['scenario', '--server', at(seed), '--timeout', '20000']);
    const elapsed = Date.now() - started;
    expect(r.stdout).toContain('16/16 cases passed');
    expect(r.code).toBe(0);
    expect(elapsed).toBeLessThan(10_000);
    expect(await seed.exited).toBe(0);
    expect(seed.requests()).toBe(16); // one request read per connection, END's included
    expect(seed.output()).toContain('Complete all courses. socket finish');
  });

  it("prints the seed's \\r as an escape, never raw, and keeps the table within 120 columns", async () => {
    seed = await startSeedServer();
    const r = await runClient(['scenario', '--server', at(seed)]);
    expect(r.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/); // eslint-disable-line no-control-regex
    expect(r.stdout).toMatch(/^7 .*200 ID:20182793\\r /m);
    for (const line of r.stdout.split('\n')) expect([...line].length).toBeLessThanOrEqual(120);
  });

  it('--json: every case answered; 13 passes on the seed\'s own update text (the old value named, "Sucessfully")', async () => {
    seed = await startSeedServer();
    const r = await runClient(['scenario', '--json', '--server', at(seed)]);
    const report = JSON.parse(r.stdout) as { passed: number; cases: { n: number; ok: boolean; got: string; answered: boolean }[] };
    expect(report.passed).toBe(16);
    expect(report.cases.every((c) => c.answered)).toBe(true);
    expect(report.cases[12]!.got).toBe('200 ID: 20180434&final_exam: 90');
  });
});

describe('one-shot commands and the prompt in the seed dialect', () => {
  it('create, update, get, head: the seed\'s answers and exit statuses', async () => {
    seed = await startSeedServer();
    const s = ['--server', at(seed), '--dialect', 'seed'];
    const head = await runClient(['head', ...s]);
    expect([head.code, head.stdout]).toEqual([0, '100 CONTINUE\n']);
    const created = await runClient(['create', ...s, '이름: 김민식', 'Grade: A']);
    expect(created.code).toBe(0);
    expect(created.stdout).toBe('200 OK\n이름:김민식\r\nGrade:A\r\nPost Successfully OK\n');
    const dup = await runClient(['create', ...s, 'Grade: B']);
    expect([dup.code, dup.stdout]).toEqual([1, '400 BAD_REQUEST\nThe key already exists!\n']);
    const updated = await runClient(['update', ...s, 'Grade: B']);
    expect(updated.code).toBe(0);
    expect(updated.stdout).toContain('Grade: A => B');
    expect(updated.stdout).toContain('Update with new data Sucessfully OK');
    // a Content-Length in characters: the Korean value arrives whole, the answer ends without EOF
    const got = await runClient(['get', ...s, '--timeout', '20000']);
    expect([got.code, got.stdout]).toEqual([0, '200 OK\nThe data in DB is as follows. \n\r이름:김민식\n\rGrade:B\n']);
    const json = await runClient(['get', ...s, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 200, reason: 'OK', headers: { 'content-type': 'text/html', host: '127.0.0.1/' } });
  });

  it('the prompt from stdin: a shell-like line stores two keys, and get lists them', async () => {
    seed = await startSeedServer();
    const r = await runClient(['--server', at(seed), '--dialect', 'seed'], {}, Buffer.from('create "a: 1" "b: 2"\nget\n'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('200 OK\na:1\r\nb:2\r\nPost Successfully OK\n');
    expect(r.stdout).toContain('The data in DB is as follows. \n\ra:1\n\rb:2\n');
  });

  it('the prompt on a terminal, in the seed dialect', async () => {
    seed = await startSeedServer();
    const home = mkdtempSync(join(tmpdir(), 'tcpkv-home-'));
    const out = await ptySession(`${process.execPath} ${CLIENT_BIN} --server ${at(seed)} --dialect seed`, { HOME: home }, ['head', 'create "과목: 컴퓨터네트워크" "Grade: A"', 'update "Grade: B"', 'get']);
    expect(out).toContain('100 CONTINUE');
    expect(out).toContain('Post Successfully OK');
    expect(out).toContain('Grade: A => B');
    expect(out).toContain('과목:컴퓨터네트워크');
    expect(seed.requests()).toBe(4);
  });

  it('a one-key command asks for the standard dialect: exit 2, nothing sent', async () => {
    seed = await startSeedServer();
    const r = await runClient(['get', 'a', '--server', at(seed), '--dialect', 'seed']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('standard dialect');
    expect(seed.requests()).toBe(0);
  });

  it('where the original crashes (POST to another path), the connection closes unanswered: exit 3', async () => {
    seed = await startSeedServer();
    const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: seed.port }], dialect: 'seed', timeoutMs: 5000 });
    const answer = await client.send({ method: 'POST', path: 'elsewhere', body: 'a: 1' }).catch((e: Error) => e);
    expect(answer).toMatchObject(answer instanceof Error ? { code: 'CONNECTION_LOST' } : { kind: 'closed' });
    expect(await seed.exited).toBe(1);
    expect(seed.output()).toContain('UnboundLocalError');
  });
});

describe('the crash, through the CLI', () => {
  it('exits 3 and says the server closed without an answer', async () => {
    seed = await startSeedServer();
    // PUT /update whose first pair is a new key: the original reads an unset variable and dies
    const r = await runClient(['update', '--server', at(seed), '--dialect', 'seed', 'new: 1']);
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toMatch(/closed by the server without an answer|ECONNRESET/);
    expect(await seed.exited).toBe(1);
  });
});
