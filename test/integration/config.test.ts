// Configuration of both programs as real processes in a scratch working directory (its own .env):
// flag > environment > .env > default, an empty variable never hides .env, unknown TCPKV_* names
// named with the closest known one, secrets read from files, a secret flag warned about, grouped
// --help with variables and defaults, and every start-up failure one line with exit status 2.

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLIENT_BIN, freePort, SERVER_BIN, startServer } from '../support/net.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program in `cwd` with exactly `env` (plus PATH); kills it after `ms` if it is still running. */
function run(bin: string, args: string[], cwd: string, env: Record<string, string>, ms = 10_000): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts tcpkv-server in `cwd`; resolves with its port and its log so far once it listens, then stops it. */
async function serverListening(cwd: string, env: Record<string, string>, args: string[] = []): Promise<{ port: number; log: string }> {
  const proc = spawn(process.execPath, [SERVER_BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  try {
    return await new Promise((resolve, reject) => {
      const onData = (c: Buffer) => {
        log += c.toString();
        const m = /"port":(\d+)[^\n]*"msg":"listening"/.exec(log);
        if (m) resolve({ port: Number(m[1]), log });
      };
      proc.stdout.on('data', onData);
      proc.stderr.on('data', onData);
      proc.on('exit', (code) => reject(new Error(`exited ${code}: ${log}`)));
    });
  } finally {
    proc.kill('SIGKILL');
  }
}

const scratch = (dotenv?: string) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcpkv-config-'));
  if (dotenv !== undefined) writeFileSync(join(dir, '.env'), dotenv);
  return dir;
};

const warnings = (log: string) =>
  log
    .split('\n')
    .filter((l) => l.includes('"level":40'))
    .map((l) => (JSON.parse(l) as { msg: string }).msg);

describe('where a value comes from', () => {
  it('an empty variable does not hide .env; the environment beats .env; a flag beats both', async () => {
    const [fromDotenv, fromEnv, fromFlag] = [await freePort(), await freePort(), await freePort()];
    const dir = scratch(`TCPKV_PORT=${fromDotenv}\n`);
    expect((await serverListening(dir, { TCPKV_PORT: '' })).port).toBe(fromDotenv);
    expect((await serverListening(dir, { TCPKV_PORT: String(fromEnv) })).port).toBe(fromEnv);
    expect((await serverListening(dir, { TCPKV_PORT: String(fromEnv) }, ['--port', String(fromFlag)])).port).toBe(fromFlag);
  });

  it('the client too: an empty TCPKV_SERVER falls back to .env', async () => {
    const server = await startServer();
    try {
      const dir = scratch(`TCPKV_SERVER=127.0.0.1:${server.port}\n`);
      const r = await run(CLIENT_BIN, ['head'], dir, { TCPKV_SERVER: '' });
      expect([r.code, r.stdout]).toEqual([0, '200 OK\n']);
    } finally {
      await server.close();
    }
  });
});

describe('warnings', () => {
  it('an unknown TCPKV_* variable or .env key, with the closest known name; the other program\'s names and the compose names are known', async () => {
    const dir = scratch('TCPKV_LOG_LEVLE=debug\nTCPKV_SERVER=127.0.0.1:1\nTCPKV_PUBLISH=127.0.0.1:10000\n');
    const { log } = await serverListening(dir, { TCPKV_PORT: '0', TCPKV_PROT: '10001', TCPKV_TIMEOUT_MS: '100' });
    expect(warnings(log)).toEqual([
      'unknown .env key TCPKV_LOG_LEVLE is ignored; did you mean TCPKV_LOG_LEVEL?',
      'unknown environment variable TCPKV_PROT is ignored; did you mean TCPKV_PORT?',
    ]);
    const client = await run(CLIENT_BIN, ['--help'], dir, { TCPKV_SERVR: 'x', TCPKV_DATA_DIR: '/tmp' });
    expect(client.code).toBe(0);
    expect(client.stderr).toBe('');
    const used = await run(CLIENT_BIN, ['get', '--server', `127.0.0.1:${await freePort()}`], dir, { TCPKV_SERVR: 'x' });
    expect(used.stderr).toContain('tcpkv-client: warning: unknown environment variable TCPKV_SERVR is ignored; did you mean TCPKV_SERVER?\n');
  });

  it('a secret given as a flag is visible in ps: a warning', async () => {
    const { log } = await serverListening(scratch(), { TCPKV_PORT: '0' }, ['--shutdown-token', 'not-secret']);
    expect(warnings(log)).toEqual(['--shutdown-token is visible to other users of this machine (ps); prefer TCPKV_SHUTDOWN_TOKEN_FILE or TCPKV_SHUTDOWN_TOKEN']);
    const client = await run(CLIENT_BIN, ['head', '--token', 'x', '--server', `127.0.0.1:${await freePort()}`], scratch(), {});
    expect(client.stderr).toContain('warning: --token is visible to other users of this machine (ps); prefer TCPKV_SHUTDOWN_TOKEN_FILE');
  });
});

describe('secrets from files', () => {
  it('TCPKV_SHUTDOWN_TOKEN_FILE on both sides: END with the file\'s token stops the server, another token is refused', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'token'), 's3cret-from-file\n');
    const port = await freePort();
    const proc = spawn(process.execPath, [SERVER_BIN, '--port', String(port)], { cwd: dir, env: { PATH: process.env.PATH ?? '', TCPKV_SHUTDOWN_TOKEN_FILE: join(dir, 'token') }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => proc.on('exit', r));
    try {
      let out = '';
      proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
      for (let i = 0; i < 100 && !out.includes('"msg":"listening"'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain('"shutdown":"token"');
      const wrong = await run(CLIENT_BIN, ['shutdown', '--server', `127.0.0.1:${port}`], dir, { TCPKV_SHUTDOWN_TOKEN: 'guess' });
      expect(wrong.code).toBe(1);
      expect(wrong.stdout).toContain('403');
      const right = await run(CLIENT_BIN, ['shutdown', '--server', `127.0.0.1:${port}`], dir, { TCPKV_SHUTDOWN_TOKEN_FILE: join(dir, 'token') });
      expect([right.code, right.stdout]).toEqual([0, '200 OK\nServer is shutting down\n']);
      expect(await exited).toBe(0);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  it('both the variable and its _FILE, or a missing file: one line, exit 2', async () => {
    const dir = scratch();
    const both = await run(SERVER_BIN, [], dir, { TCPKV_SHUTDOWN_TOKEN: 'a', TCPKV_SHUTDOWN_TOKEN_FILE: '/nonexistent' });
    expect([both.code, both.stderr]).toEqual([2, 'tcpkv-server: invalid configuration: TCPKV_SHUTDOWN_TOKEN and TCPKV_SHUTDOWN_TOKEN_FILE are both set: keep one\n']);
    const missing = await run(SERVER_BIN, [], dir, { TCPKV_ETCD_PASSWORD_FILE: join(dir, 'nope') });
    expect([missing.code, missing.stderr]).toEqual([2, `tcpkv-server: invalid configuration: TCPKV_ETCD_PASSWORD_FILE=${join(dir, 'nope')}: cannot read it: ENOENT\n`]);
    const client = await run(CLIENT_BIN, ['head'], dir, { TCPKV_SHUTDOWN_TOKEN_FILE: join(dir, 'nope') });
    expect(client.code).toBe(2);
  });
});

describe('every start-up failure: one line on stderr, exit 2', () => {
  it('a bad value, an unknown flag, --data-dir naming a regular file, a port in use', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'a-file'), 'not a directory');
    const occupied = createServer();
    await new Promise<void>((r) => occupied.listen(0, '127.0.0.1', r));
    const busy = (occupied.address() as AddressInfo).port;
    try {
      const cases: [string[], Record<string, string>, RegExp][] = [
        [[], { TCPKV_PORT: 'abc' }, /^error: option '--port <port\|off>' value 'abc' from env 'TCPKV_PORT' is invalid\. must be a whole number from 0 to 65535, or off$/],
        [['--fsync', 'sometimes'], {}, /^error: option '--fsync <policy>' argument 'sometimes' is invalid\. must be one of always, everysec, no$/],
        [['--frobnicate'], {}, /^error: unknown option '--frobnicate'$/],
        [['--port', '0', '--data-dir', 'a-file'], {}, /^tcpkv-server: cannot open the store in TCPKV_DATA_DIR=a-file: it is not a directory$/],
        [['--port', String(busy)], {}, new RegExp(`^tcpkv-server: cannot listen on 127\\.0\\.0\\.1:${busy} \\(TCPKV_BIND, TCPKV_PORT\\): EADDRINUSE$`)],
      ];
      for (const [args, env, line] of cases) {
        const r = await run(SERVER_BIN, args, dir, { TCPKV_LOG_LEVEL: 'silent', ...env });
        expect([args, r.code]).toEqual([args, 2]);
        expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
        expect(r.stderr.trim()).toMatch(line);
      }
    } finally {
      occupied.close();
    }
  });
});

describe('--help', () => {
  it('tcpkv-server groups its options and shows each variable and default', async () => {
    const r = await run(SERVER_BIN, ['--help'], scratch(), {});
    expect(r.code).toBe(0);
    const headings = r.stdout.split('\n').filter((l) => /^[A-Z][A-Za-z]+:$/.test(l));
    expect(headings).toEqual(['Options:', 'Network:', 'TLS:', 'Access:', 'Storage:', 'Limits:', 'Logging:']);
    expect(r.stdout).toMatch(/--port <port\|off>\s+plain TCP port \(0 = any free port; off = no\s+plain listener, e.g. TLS only\) \(default:\s+10000, env: TCPKV_PORT\)/);
    expect(r.stdout).toMatch(/--fsync <policy>[\s\S]*?choices: "always", "everysec", "no",\s+default: everysec, env: TCPKV_FSYNC/);
  });
});
