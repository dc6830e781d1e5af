// tcpkv-client as a user runs it, always as a real process over real loopback sockets: the exit
// statuses (0 / 1 / 2 / 3 / 4) each from a real situation, the health-check command, the one-key
// commands, --json / -q / -v, help and "did you mean", errors a person can act on, a closed stdout,
// and the prompt from stdin and on a pseudo-terminal (util-linux `script`).

import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { TcpkvClient } from '../../services/client/client.js';
import { Texts } from '../../services/protocol/texts.js';
import { CLIENT_BIN, freePort, ROOT, runClient, spawnServer, startServer, type InProcessServer, tinyServer } from '../support/net.js';
import { ptySession } from '../support/pty.js';

let server: InProcessServer;
let at: string;
beforeAll(async () => {
  server = await startServer();
  at = `127.0.0.1:${server.port}`;
});
afterAll(() => server.close());

/** Runs a command to its end without blocking this process (whose event loop serves the in-process server). */
function runCommand(command: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Accepts, reads the request, closes (FIN) without a byte of answer: a server at its limit, or broken. */
const dropping = () => tinyServer((socket) => socket.once('data', () => socket.end()));

describe('exit statuses, each from a real situation', () => {
  it('0: an answer in 2xx; 1: an answer in 4xx', async () => {
    const created = await runClient(['create', '--server', at, 'ID: 1', 'Name: Kim']);
    expect([created.code, created.stdout]).toEqual([0, `200 OK\nID:1\nName:Kim\n${Texts.postOk}\n`]);
    const again = await runClient(['create', '--server', at, 'ID: 2']);
    expect([again.code, again.stdout]).toEqual([1, `400 BAD_REQUEST\n${Texts.keyExists}\n`]);
    const updated = await runClient(['update', '--server', at, 'ID: 3&City: Seoul']);
    expect(updated.code).toBe(0);
    expect(updated.stdout).toContain('ID: 1 => 3');
    const got = await runClient(['get'], { TCPKV_SERVER: at });
    expect(got.stdout).toBe(`200 OK\n${Texts.listingHeader}\nID:3\nName:Kim\nCity:Seoul\n`);
    expect((await runClient(['head', '--server', at])).code).toBe(0);
    const seedHead = await runClient(['head', '--server', at, '--dialect', 'seed']);
    expect([seedHead.code, seedHead.stdout]).toEqual([0, '100 CONTINUE\n']); // the seed dialect's 100 to HEAD is success
    const refused = await runClient(['get', '--server', at, '--target-host', 'elsewhere.example']);
    expect([refused.code, refused.stdout]).toEqual([1, '400 BAD_REQUEST\nNot allowed host: elsewhere.example\n']);
  });

  it('2: usage and configuration errors', async () => {
    const unknown = await runClient(['gte']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'gte'");
    expect(unknown.stderr).toContain('Did you mean get?');
    expect((await runClient(['create'])).code).toBe(2);
    const bad = await runClient(['get', '--server', 'nonsense:port']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--server');
    const badEnv = await runClient(['get'], { TCPKV_TIMEOUT_MS: 'soon' });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toContain('TCPKV_TIMEOUT_MS');
  });

  it('3: nothing listening — the address named, with a hint', async () => {
    const port = await freePort();
    const r = await runClient(['get', '--server', `127.0.0.1:${port}`]);
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe(
      `tcpkv-client: cannot connect to 127.0.0.1:${port}: ECONNREFUSED — is the server running there? Set its address with --server host:port or TCPKV_SERVER`,
    );
  });

  it('3: a server that accepts, reads and closes without answering (head, get, create); 0 for END, as the seed server stops', async () => {
    const drop = await dropping();
    try {
      for (const args of [['head'], ['get'], ['create', 'a: 1']]) {
        const r = await runClient([...args, '--server', `127.0.0.1:${drop.port}`]);
        expect([args[0], r.code, r.stderr]).toEqual([args[0], 3, '']);
        expect(r.stdout).toContain('connection closed by the server without an answer');
      }
      expect((await runClient(['shutdown', '--server', `127.0.0.1:${drop.port}`])).code).toBe(0);
    } finally {
      drop.close();
    }
  });

  it('3: a server that never answers (timeout) or resets the connection', async () => {
    const silent = await tinyServer((socket) => socket.on('data', () => undefined));
    const reset = await tinyServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    try {
      const started = Date.now();
      const slow = await runClient(['get', '--server', `127.0.0.1:${silent.port}`, '--timeout', '300']);
      expect(slow.code).toBe(3);
      expect(slow.stderr).toContain('no answer');
      expect(Date.now() - started).toBeLessThan(5000);
      const r = await runClient(['get', '--server', `127.0.0.1:${reset.port}`]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('ECONNRESET');
    } finally {
      silent.close();
      reset.close();
    }
  });

  it('4: an answer in 5xx', async () => {
    const unavailable = await tinyServer((socket) =>
      socket.once('data', () => socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\nConnection: close\r\n\r\nnot now, sir')),
    );
    try {
      const r = await runClient(['get', '--server', `127.0.0.1:${unavailable.port}`]);
      expect([r.code, r.stdout]).toEqual([4, '503 Service Unavailable\nnot now, sir\n']);
    } finally {
      unavailable.close();
    }
  });

  it('4: tcpkv-server whose etcd cannot be reached answers 503', async () => {
    const etcd = await freePort(); // nothing listens there
    const replica = await spawnServer({ TCPKV_ETCD_ENDPOINTS: `http://127.0.0.1:${etcd}`, TCPKV_ETCD_TIMEOUT_MS: '200' });
    try {
      const r = await runClient(['put', 'a', 'b', '--server', `127.0.0.1:${replica.port}`]);
      expect([r.code, r.stdout]).toEqual([4, `503 SERVICE_UNAVAILABLE\n${Texts.storeUnavailable}\n`]);
    } finally {
      replica.kill('SIGKILL');
    }
  });

  it('scenario against a server that is down: 3', async () => {
    const r = await runClient(['scenario', '--server', `127.0.0.1:${await freePort()}`]);
    expect(r.code).toBe(3);
  });
});

/**
 * The health-check command lines that run the client, as the repository's files write them, with
 * the image's /app/ made this checkout and the server's port put in.
 */
function healthCheckCommands(port: number): string[][] {
  const commands: string[][] = [];
  const script = join(ROOT, 'services/server/healthcheck.sh');
  if (existsSync(script)) {
    const line = /exec node \/app\/dist\/services\/client\/cli\.js head[^\n]*/.exec(readFileSync(script, 'utf8'));
    if (line) {
      // the script's own fallback line, run by sh with the variables it uses
      commands.push(['sh', '-c', `host=127.0.0.1; TCPKV_PORT=${port}; ${line[0].replaceAll('/app/', ROOT)}`]);
    }
  }
  for (const file of ['docker-compose.yml', 'docker-compose.cluster.yml']) {
    const compose = parseYaml(readFileSync(join(ROOT, file), 'utf8')) as Record<string, unknown>;
    const found: unknown[] = [];
    const walk = (node: unknown) => {
      if (node && typeof node === 'object') {
        const test = (node as { healthcheck?: { test?: unknown } }).healthcheck?.test;
        if (Array.isArray(test) && test.includes('/app/dist/services/client/cli.js')) found.push(test);
        Object.values(node).forEach(walk);
      }
    };
    walk(compose);
    for (const test of found as string[][]) {
      commands.push(test.slice(1).map((a) => a.replace('/app/', ROOT).replace(/^node$/, process.execPath).replace(/^127\.0\.0\.1:10000$/, `127.0.0.1:${port}`)));
    }
  }
  return commands;
}

describe("the image's health check (the client's HEAD)", () => {
  it('fails against a server that drops every connection, passes against tcpkv-server', async () => {
    const drop = await dropping();
    try {
      const against = (port: number) => healthCheckCommands(port);
      expect(against(drop.port).length).toBeGreaterThan(0);
      for (const command of against(drop.port)) {
        const r = await runCommand(command[0]!, command.slice(1));
        expect([command.join(' '), r.status]).toEqual([command.join(' '), 3]);
      }
      for (const command of against(server.port)) {
        const r = await runCommand(command[0]!, command.slice(1));
        expect([command.join(' '), r.status]).toEqual([command.join(' '), 0]);
      }
    } finally {
      drop.close();
    }
  });
});

describe('one key at a time', () => {
  it('put (argument, or stdin with - or no value), get KEY, delete, head KEY', async () => {
    const put = await runClient(['put', '--server', at, 'url', 'https://a.example/?x=1&y=2']);
    expect([put.code, put.stdout]).toEqual([0, '200 OK\nCreated url\n']);
    const fromStdin = await runClient(['put', '--server', at, 'note', '-'], {}, Buffer.from('첫 줄: 값\n'));
    expect([fromStdin.code, fromStdin.stdout]).toEqual([0, '200 OK\nCreated note\n']);
    const absent = await runClient(['put', '--server', at, 'note'], {}, Buffer.from('again\n'));
    expect([absent.code, absent.stdout]).toEqual([0, '200 OK\nUpdated note\n']);
    expect((await runClient(['get', '--server', at, 'url', '-q'])).stdout).toBe('https://a.example/?x=1&y=2\n');
    expect((await runClient(['get', '--server', at, 'note', '--quiet'])).stdout).toBe('again\n');
    expect((await runClient(['head', '--server', at, 'note'])).code).toBe(0);
    const del = await runClient(['delete', '--server', at, 'note']);
    expect([del.code, del.stdout]).toEqual([0, '200 OK\nDeleted note\n']);
    const gone = await runClient(['get', '--server', at, 'note', '-q']);
    expect([gone.code, gone.stdout, gone.stderr]).toEqual([1, '', '404 NOT_FOUND\nNo such key: note\n']);
    expect((await runClient(['head', '--server', at, 'note'])).code).toBe(1);
  });

  it('keys follows next page by page, with --prefix', async () => {
    const own = await startServer();
    try {
      const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: own.port }], dialect: 'standard', timeoutMs: 5000 });
      const pairs = Array.from({ length: 250 }, (_, i) => `p${String(i).padStart(3, '0')}: ${i}`);
      await client.send({ method: 'POST', path: 'create', body: [...pairs, 'other: x'].join('&') });
      const r = await runClient(['keys', '--server', `127.0.0.1:${own.port}`, '--prefix', 'p', '--page', '100']);
      expect(r.code).toBe(0);
      expect(r.stdout.trim().split('\n')).toEqual(pairs.map((p) => p.slice(0, 4)));
      const json = JSON.parse((await runClient(['keys', '--server', `127.0.0.1:${own.port}`, '--json', '--page', '100'])).stdout) as { items: { key: string; value: string }[]; pages: number };
      expect(json.items).toHaveLength(251);
      expect(json.items[250]).toEqual({ key: 'other', value: 'x', version: 1 }); // one POST: one version for all its keys
      expect(json.pages).toBe(3);
    } finally {
      await own.close();
    }
  });
});

describe('--json: one document per answer, in the documented shape', () => {
  it('answers, a closed connection and no answer', async () => {
    await runClient(['put', '--server', at, 'j', 'v']);
    const answer = JSON.parse((await runClient(['get', 'j', '--server', at, '--json'])).stdout) as Record<string, unknown>;
    expect(answer).toMatchObject({ server: at, status: 200, reason: 'OK', body: 'v', headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': '1' } });
    expect(Object.keys(answer).sort()).toEqual(['body', 'headers', 'reason', 'server', 'status']);
    const failed = await runClient(['create', 'j: again', '--server', at, '--json']);
    expect([failed.code, JSON.parse(failed.stdout).status]).toEqual([1, 400]);
    const drop = await dropping();
    try {
      const closed = await runClient(['head', '--server', `127.0.0.1:${drop.port}`, '--json']);
      expect([closed.code, JSON.parse(closed.stdout)]).toEqual([3, { server: `127.0.0.1:${drop.port}`, closed: true }]);
    } finally {
      drop.close();
    }
    const none = await runClient(['get', '--server', `127.0.0.1:${await freePort()}`, '--json']);
    expect(none.code).toBe(3);
    expect(JSON.parse(none.stdout)).toMatchObject({ error: { code: 'CONNECT_FAILED', maybeApplied: false } });
  });
});

describe('-v and failover', () => {
  it('shows the request and response heads on stderr, and the move to the next --server', async () => {
    const down = await freePort();
    const r = await runClient(['-v', 'get', 'j', '--server', `127.0.0.1:${down},${at}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('200 OK\nv\n');
    expect(r.stderr).toContain(`* 127.0.0.1:${down} cannot be reached (cannot connect to 127.0.0.1:${down}: ECONNREFUSED); trying ${at}`);
    expect(r.stderr).toContain(`> GET /kv/j HTTP/1.1\n> Host: 127.0.0.1:${server.port}\n`);
    expect(r.stderr).toContain('< HTTP/1.1 200 OK\n< content-type: text/plain; charset=utf-8\n');
  });
});

describe('help, version and errors a person can act on', () => {
  it('help, help <command>, <command> --help with the global options; -V prints the version', async () => {
    const help = await runClient(['help']);
    expect(help.code).toBe(0);
    for (const command of ['get', 'put', 'delete', 'keys', 'head', 'create', 'update', 'shutdown', 'raw', 'scenario']) expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    const helpPut = await runClient(['help', 'put']);
    expect(helpPut.code).toBe(0);
    expect(helpPut.stdout).toContain('Usage: tcpkv-client put [options] <key> [value]');
    const putHelp = await runClient(['put', '--help']);
    expect(putHelp.stdout).toBe(helpPut.stdout);
    expect(putHelp.stdout).toContain('Global Options:');
    expect(putHelp.stdout).toMatch(/--server <host:port\[,host:port…\]>[\s\S]*env: TCPKV_SERVER/);
    const version = await runClient(['-V']);
    expect([version.code, version.stdout.trim()]).toEqual([0, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version]);
  });

  it('names the malformed pair and why, and which key is already stored', async () => {
    const bad = await runClient(['create', '--server', at, 'fine: 1', 'broken']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('hint: pair 2 of 2 "broken" has no ":" — write it as "key: value"\n');
    const blank = await runClient(['update', '--server', at, ': 95']);
    expect(blank.stderr).toBe('hint: pair 1 of 1 ": 95" has a blank key\n');
    const exists = await runClient(['create', '--server', at, 'fresh: 1', 'j: 2']);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toBe('hint: key "j" is already stored; update (or put) changes it\n');
  });
});

describe('a reader that goes away', () => {
  it('`tcpkv-client get | head -1` on a large listing ends quietly', async () => {
    const big = await startServer();
    try {
      const client = new TcpkvClient({ servers: [{ host: '127.0.0.1', port: big.port }], dialect: 'standard', timeoutMs: 10_000 });
      const value = 'v'.repeat(100);
      for (let batch = 0; batch < 10; batch++) {
        const body = Array.from({ length: 2000 }, (_, i) => `k${batch}_${i}: ${value}`).join('&');
        const a = await client.send({ method: 'POST', path: 'create', body });
        expect(a.kind === 'response' && a.response.status).toBe(200);
      }
      const r = await runCommand('bash', ['-c', `"${process.execPath}" "${CLIENT_BIN}" get --server 127.0.0.1:${big.port} | head -1; echo "status \${PIPESTATUS[0]}" >&2`]);
      expect(r.stdout).toBe('200 OK\n');
      expect(r.stderr).toBe('status 0\n'); // no EPIPE, no stack trace
    } finally {
      await big.close();
    }
  });
});

describe('raw', () => {
  it('sends stdin as it is and prints what comes back', async () => {
    const r = await runClient(['raw', '--server', at], {}, Buffer.from('GET / HTTP/1.1\nHost: 127.0.0.1/\n\nPRRT / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*HTTP\/1\.1 405 METHOD_NOT_ALLOWED\r\n[\s\S]*Allow: /);
  });
});

describe('the prompt from stdin (not a terminal)', () => {
  it('runs each line with the CLI grammar, quotes and all; exit status of the last command', async () => {
    const own = await startServer();
    try {
      const r = await runClient(['--server', `127.0.0.1:${own.port}`], {}, Buffer.from('create "a: 1" \'b: two words\'\nget\nput "spaced key" "x & y"\nget "spaced key" -q\nget missing\n'));
      expect(r.stdout).toContain(`200 OK\na:1\nb:two words\n${Texts.postOk}\n`);
      expect(r.stdout).toContain(`200 OK\n${Texts.listingHeader}\na:1\nb:two words\n`);
      expect(r.stdout).toContain('x & y\n');
      expect(r.code).toBe(1); // the last line's 404
      const ok = await runClient(['--server', `127.0.0.1:${own.port}`], {}, Buffer.from('get\n'));
      expect(ok.code).toBe(0);
      const typo = await runClient(['--server', `127.0.0.1:${own.port}`], {}, Buffer.from('gte\nkeys\n'));
      expect(typo.stderr).toContain('Did you mean get?');
      expect(typo.stdout).toBe('a\nb\nspaced key\n'); // the prompt goes on after a bad line
    } finally {
      await own.close();
    }
  });
});

describe('the prompt on a terminal', () => {
  const session = (home: string, lines: string[]) => ptySession(`${process.execPath} ${CLIENT_BIN} --server ${at}`, { HOME: home }, lines);

  it('answers commands, completes command names with Tab, keeps a 0600 history trimmed to 500 lines', async () => {
    const home = mkdtempSync(join(tmpdir(), 'tcpkv-home-'));
    const historyPath = join(home, '.tcpkv_history');
    writeFileSync(historyPath, Array.from({ length: 700 }, (_, i) => `get old${i}\n`).join(''));
    chmodSync(historyPath, 0o644);
    const first = await session(home, ['help', 'bogus', 'create "Repl: yes" "Other: 2"', 'ge\t']);
    expect(first).toContain(`tcpkv 127.0.0.1:${server.port}> `);
    expect(first).toContain('Usage: tcpkv-client [options] [command]');
    expect(first).toContain("unknown command 'bogus'");
    expect(first).toContain('Repl:yes');
    expect(first).toContain('Other:2');
    expect(first).toMatch(/Gget \s*200 OK\s+The data in DB is as follows\./); // "ge" + Tab ran "get "
    expect(statSync(historyPath).mode & 0o777).toBe(0o600);
    const history = readFileSync(historyPath, 'utf8').split('\n').filter((l) => l !== '');
    expect(history).toHaveLength(500 + 4); // trimmed at start, then this session's lines (quit is not kept)
    expect(history.slice(-4)).toEqual(['help', 'bogus', 'create "Repl: yes" "Other: 2"', 'get']);
    // the next session starts with that history: arrow-up recalls the last command
    const second = await session(home, ['\x1b[A']);
    expect(second).toContain('The data in DB is as follows.');
  });
});
