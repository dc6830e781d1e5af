// Issue 4 (d) and acceptance 4: the server image on a port published on 127.0.0.1, driven from the
// host exactly as the seed's client does it — its bytes (`\r\n\n` after the headers), one connection
// per request, ONE read (`recv(4096)`) — for scenario cases 1–15. END from the host reaches the
// container from the Docker gateway (not loopback) and no token is configured: 403, still serving.
// Then the host-side client CLI (dist/, built by `npm test`) against the same port.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DockerResources,
  REPO_ROOT,
  SERVER_PORT,
  dockerOk,
  inspectState,
  parseResponse,
  seedRequest,
  sendOnce,
  startServer,
} from '../support/docker.js';

const run = promisify(execFile);

/** Cases 1–15 of services/client/scenario.ts as the seed client sends them, with the seed-dialect answers. */
const CASES: Array<{ n: number; method: string; url: string; body?: string; status: number; contains?: string[] }> = [
  { n: 1, method: 'HEAD', url: '127.0.0.1/', status: 100 },
  { n: 2, method: 'GET', url: '127.0.0.1/', status: 200, contains: ['No data in DB'] },
  { n: 3, method: 'GET', url: '127.0.0.1??', status: 404, contains: ['Invalid Address(url)'] },
  { n: 4, method: 'PRRT', url: '127.0.0.1/', status: 405, contains: ['Method not allowed'] },
  { n: 5, method: 'GET', url: '127.0.5.1/', status: 400, contains: ['Not allowed host: 127.0.5.1'] },
  { n: 6, method: 'PUT', url: '127.0.0.1/create', status: 404, contains: ['Select the appropriate method(Create mode => POST)'] },
  {
    n: 7, method: 'POST', url: '127.0.0.1/create', body: 'ID: 20182793&Subject: Computer_Network&Grade: A', status: 200,
    contains: ['ID:20182793', 'Subject:Computer_Network', 'Grade:A', 'Post Successfully OK'],
  },
  { n: 8, method: 'GET', url: '127.0.0.1/', status: 200, contains: ['The data in DB is as follows.', 'ID:20182793', 'Subject:Computer_Network', 'Grade:A'] },
  { n: 9, method: 'POST', url: '127.0.0.1/create', body: ': 95', status: 400, contains: ['Key value does not exist or is blank.'] },
  { n: 10, method: 'POST', url: '127.0.0.1/create', body: 'middle_exam70', status: 400, contains: ['Key-value format is not valid.'] },
  { n: 11, method: 'POST', url: '127.0.0.1/create', body: 'ID: 20180434', status: 400, contains: ['The key already exists!'] },
  { n: 12, method: 'HEAD', url: '127.0.0.1/', status: 100 },
  {
    n: 13, method: 'PUT', url: '127.0.0.1/update', body: 'ID: 20180434&final_exam: 90', status: 200,
    contains: ['Update Data as follow:', 'ID: 20182793 => 20180434', 'Update(New) Data as follow:', 'final_exam: 90', 'Update with new data Successfully OK'],
  },
  { n: 14, method: 'PUT', url: '127.0.0.1/update', body: '', status: 400, contains: ['There is no content. Please check'] },
  { n: 15, method: 'PUT', url: '127.0.0.1/update', body: 'retake_wheaterYes', status: 400, contains: ['Key-value format is not valid.'] },
];

function expectInOrder(body: string, texts: string[]): void {
  let at = 0;
  for (const text of texts) {
    const i = body.indexOf(text, at);
    expect(i, `"${text}" after offset ${at} in ${JSON.stringify(body)}`).toBeGreaterThanOrEqual(0);
    at = i + text.length;
  }
}

describe('server container on a published 127.0.0.1 port, driven by the seed client\'s bytes', () => {
  const res = new DockerResources();
  let server: StartedTestContainer;
  let port: number;

  beforeAll(async () => {
    // No TCPKV_SHUTDOWN_TOKEN: END is allowed from loopback only, and the host's connections arrive
    // from the Docker gateway.
    server = await startServer({ publish: true, env: { TCPKV_ALLOWED_HOSTS: '127.0.0.1,localhost' }, resources: res });
    port = server.getMappedPort(SERVER_PORT);
  });
  afterAll(async () => {
    await res.cleanup();
  });

  it('publishes on 127.0.0.1 only', async () => {
    const published = await dockerOk(['port', server.getId(), `${SERVER_PORT}/tcp`]);
    expect(published.split('\n').filter(Boolean)).toEqual([`127.0.0.1:${port}`]);
  });

  for (const c of CASES) {
    it(`case ${c.n}: ${c.method} ${c.url}${c.body ? ` "${c.body}"` : ''} → ${c.status}`, async () => {
      const raw = await sendOnce(port, seedRequest(c.method, c.url, c.body ?? ''));
      const resp = parseResponse(raw);
      expect(resp.status, raw).toBe(c.status);
      if (c.status === 100) expect(resp.reason).toBe('CONTINUE');
      // CRLF-framed status line and headers, and the whole answer fits the seed's single read
      expect(raw).toMatch(/^HTTP\/1\.1 \d{3} [^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n/);
      expect(resp.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(resp.headers['date']).toMatch(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
      if (c.method !== 'HEAD') {
        expect(Buffer.byteLength(resp.body, 'utf8')).toBe(Number(resp.headers['content-length']));
      }
      if (c.contains) expectInOrder(resp.body, c.contains);
    });
  }

  it('END from the Docker gateway without a token → 403, and the server keeps serving', async () => {
    const resp = parseResponse(await sendOnce(port, seedRequest('END', '127.0.0.1/')));
    expect(resp.status).toBe(403);
    await new Promise((r) => setTimeout(r, 300));
    expect((await inspectState(server.getId())).Running).toBe(true);
    const after = parseResponse(await sendOnce(port, seedRequest('GET', '127.0.0.1/')));
    expect(after.status).toBe(200);
    expectInOrder(after.body, ['The data in DB is as follows.', 'ID:20180434', 'final_exam:90']);
  });

  it('the host-side client (dist/services/client/cli.js) reads the same server', async () => {
    const cli = join(REPO_ROOT, 'dist/services/client/cli.js');
    expect(existsSync(cli), `${cli} missing: run \`npm run build\` first (npm test does)`).toBe(true);
    const server = `127.0.0.1:${port}`;
    const head = await run(process.execPath, [cli, '--server', server, 'head'], { timeout: 20_000 });
    expect(head.stdout + head.stderr).toBeDefined();
    const got = await run(process.execPath, [cli, '--server', server, 'get'], { timeout: 20_000 });
    expect(got.stdout).toContain('ID:20180434');
    expect(got.stdout).toContain('final_exam:90');
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
