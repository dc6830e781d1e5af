// tcpkv-client as a user runs it: one-shot commands and their exit codes, raw bytes, --help and
// --version, and the interactive prompt on a real pseudo-terminal (util-linux `script`).

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import { CLIENT_BIN, runClient, sleep, startServer, type InProcessServer } from '../support/net.js';

let server: InProcessServer;
let at: string;
beforeAll(async () => {
  server = await startServer();
  at = `127.0.0.1:${server.port}`;
});
afterAll(() => server.close());

describe('one-shot commands', () => {
  it('create, update, get, head print the answer; exit 0 on success, 1 on an error answer', async () => {
    const created = await runClient(['create', '--server', at, 'ID: 1', 'Name: Kim']);
    expect([created.code, created.stdout]).toEqual([0, `200 OK\nID:1\nName:Kim\n${Texts.postOk}\n`]);
    const again = await runClient(['create', '--server', at, 'ID: 2']);
    expect([again.code, again.stdout]).toEqual([1, `400 BAD_REQUEST\n${Texts.keyExists}\n`]);
    const updated = await runClient(['update', '--server', at, 'ID: 3&City: Seoul']);
    expect(updated.stdout).toContain('ID: 1 => 3');
    expect(updated.stdout).toContain('City: Seoul');
    const got = await runClient(['get'], { TCPKV_SERVER: at });
    expect(got.stdout).toBe(`200 OK\n${Texts.listingHeader}\nID:3\nName:Kim\nCity:Seoul\n`);
    expect((await runClient(['head', '--server', at])).code).toBe(0);
    expect((await runClient(['head', '--server', at, '--dialect', 'seed'])).stdout).toBe('100 CONTINUE\n');
  });

  it('--target-host names another host (refused by the Host allow-list)', async () => {
    const r = await runClient(['get', '--server', at, '--target-host', 'elsewhere.example']);
    expect([r.code, r.stdout]).toEqual([1, '400 BAD_REQUEST\nNot allowed host: elsewhere.example\n']);
  });

  it('no server: exit 3 with one clear line', async () => {
    const r = await runClient(['get', '--server', '127.0.0.1:1']);
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe('tcpkv-client: cannot connect to 127.0.0.1:1: ECONNREFUSED');
  });

  it('bad usage and bad settings: exit 2', async () => {
    expect((await runClient(['frobnicate'])).code).toBe(2);
    expect((await runClient(['create'])).code).toBe(2);
    const bad = await runClient(['get', '--server', 'nonsense:port']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--server');
    expect((await runClient(['get'], { TCPKV_TIMEOUT_MS: 'soon' })).stderr).toContain('TCPKV_TIMEOUT_MS');
  });

  it('--help and --version exit 0', async () => {
    const help = await runClient(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('scenario');
    const version = await runClient(['--version']);
    expect([version.code, version.stdout.trim()]).toEqual([0, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version]);
  });

  it('raw sends stdin as it is and prints what comes back', async () => {
    const r = await runClient(['raw', '--server', at], {}, Buffer.from('GET / HTTP/1.1\nHost: 127.0.0.1/\n\nPRRT / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*HTTP\/1\.1 405 METHOD_NOT_ALLOWED\r\n[\s\S]*Allow: HEAD, GET, POST, PUT, END\r\n/);
  });

  it('without a command and without a terminal: usage, exit 2', async () => {
    const r = await runClient([]);
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toContain('Usage: tcpkv-client');
  });
});

describe('the interactive prompt', () => {
  it('runs on a terminal, answers commands, and keeps history across sessions', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tcpkv-home-'));
    const session = async (lines: string[]) => {
      // `script` gives the client a real pseudo-terminal, as a person's shell would
      const proc = spawn('script', ['-qfec', `${process.execPath} ${CLIENT_BIN} --server ${at}`, '/dev/null'], { env: { PATH: process.env.PATH, HOME: home, TERM: 'xterm' } });
      let out = '';
      proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
      const exited = new Promise<number | null>((r) => proc.on('exit', r));
      for (let i = 0; i < 50 && !out.includes('> '); i++) await sleep(100);
      for (const line of lines) {
        const before = out.length;
        if (line.startsWith('\x1b')) {
          // a key press arrives on its own, as from a keyboard, before Enter
          proc.stdin.write(line);
          await sleep(300);
        } else {
          proc.stdin.write(line);
        }
        proc.stdin.write('\r');
        for (let i = 0; i < 50 && (out.length === before || !out.slice(before).includes('> ')); i++) await sleep(50);
      }
      proc.stdin.write('quit\r');
      expect(await exited).toBe(0);
      return out;
    };
    const first = await session(['help', 'bogus', 'create Repl: yes', 'get']);
    expect(first).toContain(`tcpkv 127.0.0.1:${server.port}> `);
    expect(first).toContain('create key: value&k: v');
    expect(first).toContain('200 OK');
    expect(first).toContain('Repl:yes');
    expect(first).toContain('unknown command "bogus"');
    const history = readFileSync(join(home, '.tcpkv_history'), 'utf8');
    expect(history).toBe('help\nbogus\ncreate Repl: yes\nget\n'); // quit is not worth recalling
    // the next session starts with that history: arrow-up recalls the last command
    const second = await session(['\x1b[A']);
    expect(second).toContain('get');
    expect(second).toContain('Repl:yes');
  });
});

describe('scenario against a server that already holds data', () => {
  it('fails, and says why and how to reset', async () => {
    const full = await startServer();
    try {
      await runClient(['create', '--server', `127.0.0.1:${full.port}`, 'left: over']);
      const r = await runClient(['scenario', '--server', `127.0.0.1:${full.port}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('docker compose down -v');
    } finally {
      await full.close();
    }
  });
});
