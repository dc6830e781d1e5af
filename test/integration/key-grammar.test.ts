// The key grammar end to end, on a real server with its default limits: a key that POST /create
// accepts can be read, walked to and deleted through every other route (percent-encoded targets
// included); a longer one is refused by every write route with a text naming the rule; the client
// checks the grammar before it sends. Plus the settings around it: the key limit must fit the target
// limit, `::1` is an allowed host by default, and paths may hold spaces.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useChildServers } from '../support/child-servers.js';
import { runClient, spawnServer } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';

const track = useChildServers();
const tempDir = useTempDirs();

/** Exactly 1024 bytes of UTF-8 (the default key limit): 341 Hangul syllables and one ASCII letter. */
const LONGEST = '가'.repeat(341) + 'a';

async function request(port: number, method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, ...(body === undefined ? {} : { body }) });
  return { status: r.status, text: await r.text() };
}

describe('one key grammar for every route', () => {
  it('a key POST /create accepts (1,024 bytes; 3,070 characters percent-encoded) is read, walked to and deleted through GET, HEAD, the keys walk and DELETE', async () => {
    const server = track(await spawnServer());
    const at = `127.0.0.1:${server.port}`;
    // a 1,000-character Hangul key (3,000 bytes): refused at once, naming the rule, never stored
    const hangul = '한'.repeat(1000);
    const refused = await request(server.port, 'POST', '/create', `${hangul}: 1`);
    expect(refused).toEqual({ status: 400, text: 'Keys are at most 1024 bytes of UTF-8 (TCPKV_MAX_KEY_BYTES).' });
    expect((await request(server.port, 'PUT', '/update', `${hangul}: 1`)).status).toBe(400);
    expect(server.output()).toMatch(/"code":"TCPKV_ERR_KEY_TOO_LONG"/);

    expect((await runClient(['create', '--server', at, `${LONGEST}: 1`])).code).toBe(0);
    expect(await runClient(['get', '--server', at, LONGEST, '-q'])).toMatchObject({ code: 0, stdout: '1\n' });
    expect((await runClient(['head', '--server', at, LONGEST])).code).toBe(0);
    expect((await request(server.port, 'GET', `/kv/${encodeURIComponent(LONGEST)}`)).status).toBe(200);
    // a page whose prefix and after are both that key, percent-encoded: 6,144 characters of query
    expect(await request(server.port, 'GET', `/kv?prefix=${encodeURIComponent(LONGEST)}&after=${encodeURIComponent(LONGEST)}&limit=1000`)).toEqual({ status: 200, text: '{"items":[],"next":null}' });
    expect(await runClient(['keys', '--server', at, '--prefix', LONGEST, '--page', '1'])).toMatchObject({ code: 0, stdout: `${LONGEST}\n` });
    expect(await runClient(['delete', '--server', at, LONGEST])).toMatchObject({ code: 0 });
    expect((await request(server.port, 'GET', `/kv/${encodeURIComponent(LONGEST)}`)).status).toBe(404);
  });

  it('a key holding ":" or spaces around it cannot be stored, so it cannot fake a listing entry', async () => {
    const server = track(await spawnServer());
    expect((await request(server.port, 'PUT', '/kv/home', 'https://good.example/')).status).toBe(200);
    expect(await request(server.port, 'PUT', '/kv/home%3Ahttps', '//evil.example/')).toEqual({ status: 400, text: 'Keys cannot contain ":" (it ends a key in the listing and in key: value pairs).' });
    expect(await request(server.port, 'PUT', '/kv/%20home', 'x')).toEqual({ status: 400, text: 'Keys cannot begin or end with a space.' });
    expect((await request(server.port, 'DELETE', '/kv/home')).status).toBe(200);
    expect(await request(server.port, 'GET', '/')).toEqual({ status: 200, text: 'No data in DB' });
    expect(await request(server.port, 'PUT', '/kv/', 'x')).toEqual({ status: 400, text: 'Key value does not exist or is blank.' });
    expect(await request(server.port, 'DELETE', '/kv/')).toEqual({ status: 400, text: 'Key value does not exist or is blank.' });
  });

  it('the client checks the grammar before it sends: exit 2 naming the rule', async () => {
    const server = track(await spawnServer());
    const at = `127.0.0.1:${server.port}`;
    const colon = await runClient(['put', '--server', at, 'home:https', 'x']);
    expect(colon.code).toBe(2);
    expect(colon.stderr).toContain('Keys cannot contain ":"');
    const space = await runClient(['put', '--server', at, ' a', 'x']);
    expect(space.code).toBe(2);
    expect(space.stderr).toContain('Keys cannot begin or end with a space.');
    expect((await runClient(['get', '--server', at, ''])).code).toBe(2);
    expect(await request(server.port, 'GET', '/')).toEqual({ status: 200, text: 'No data in DB' });
  });
});

describe('settings around the grammar', () => {
  it('a key limit set too large for the target limit stops the server: one line naming both, exit 2; unset, it follows the target limit', async () => {
    const r = await runServerToExit({ TCPKV_MAX_TARGET_BYTES: '4096', TCPKV_MAX_KEY_BYTES: '1024' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/TCPKV_MAX_TARGET_BYTES=4096 cannot carry keys of TCPKV_MAX_KEY_BYTES=1024/);
    const fits = track(await spawnServer({ TCPKV_MAX_TARGET_BYTES: '4096', TCPKV_MAX_KEY_BYTES: '600' }));
    expect((await request(fits.port, 'PUT', `/kv/${'k'.repeat(601)}`, 'v')).text).toBe('Keys are at most 600 bytes of UTF-8 (TCPKV_MAX_KEY_BYTES).');
    // unset, the key limit is what the target limit carries: (4096 − 29) ÷ 6
    const derived = track(await spawnServer({ TCPKV_MAX_TARGET_BYTES: '4096' }));
    expect((await request(derived.port, 'PUT', `/kv/${'k'.repeat(678)}`, 'v')).text).toBe('Keys are at most 677 bytes of UTF-8 (TCPKV_MAX_KEY_BYTES).');
    expect((await request(derived.port, 'PUT', `/kv/${'k'.repeat(677)}`, 'v')).status).toBe(200);
  });

  it('TCPKV_BIND=::1 accepts its own client (::1 is an allowed host by default)', async () => {
    const server = track(await spawnServer({ TCPKV_BIND: '::1' }));
    const r = await runClient(['put', '--server', `[::1]:${server.port}`, 'a', '1']);
    expect(r).toMatchObject({ code: 0, stdout: '200 OK\nCreated a\n' });
    expect((await runClient(['get', '--server', `[::1]:${server.port}`, 'a', '-q'])).stdout).toBe('1\n');
  });

  it('TCPKV_DATA_DIR and the etcd certificate files may hold spaces', async () => {
    const dir = join(tempDir('tcpkv-space-'), 'my data');
    const server = track(await spawnServer({ TCPKV_DATA_DIR: dir }));
    expect((await request(server.port, 'PUT', '/kv/a', '1')).status).toBe(200);
    // the certificate paths are taken as they are: the refusal is about http://, not about the names
    const certs = join(tempDir('tcpkv-space-'), 'etcd certs');
    mkdirSync(certs);
    for (const f of ['ca.pem', 'client.pem', 'client key.pem']) writeFileSync(join(certs, f), 'not used\n');
    const r = await runServerToExit({ TCPKV_ETCD_ENDPOINTS: 'http://127.0.0.1:1', TCPKV_ETCD_CA_FILE: join(certs, 'ca.pem'), TCPKV_ETCD_CERT_FILE: join(certs, 'client.pem'), TCPKV_ETCD_KEY_FILE: join(certs, 'client key.pem') });
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/without spaces/);
    expect(r.stderr).toMatch(/https?:\/\//);
  });
});

async function runServerToExit(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  try {
    // it started after all: that is the answer (stopped at once)
    const server = track(await spawnServer(env));
    return { code: -1, stderr: `listening:\n${server.output()}` };
  } catch (error) {
    const text = (error as Error).message;
    const m = /server exited with (\d+|null) before listening:\n([\s\S]*)$/.exec(text);
    if (!m) throw error;
    return { code: m[1] === 'null' ? null : Number(m[1]), stderr: m[2]! };
  }
}
