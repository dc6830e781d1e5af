// Issue 4 (b): a "remote VM". The server listens on 0.0.0.0 with TCPKV_ALLOWED_HOSTS naming the name
// its clients use, TCPKV_ALLOWED_CLIENTS naming the clients' network (plus loopback for the
// healthcheck) and a shutdown token. It is also attached to a second network outside that range.
//   - a host not on the list → 400 `Not allowed host: …`
//   - a client on the other network → 403 `Client not allowed: <addr>`, connection closed
//   - END from a (non-loopback) client without the token, or with a wrong one → 403, still serving
//   - the client container's scenario with the token passes; its END → 200 and the server exits 0

import { Network, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DockerResources,
  SERVER_PORT,
  dockerOk,
  inspectState,
  parseResponse,
  rawFromContainer,
  runClient,
  startServer,
  waitForExit,
} from '../support/docker.js';

const NAME = 'tcpkv-vm';
const TOKEN = 'vm-secret-token';

async function subnetOf(network: StartedNetwork): Promise<string> {
  return dockerOk(['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', network.getId()]);
}

function get(host: string): string {
  return `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
}
function end(host: string, token?: string): string {
  return `END / HTTP/1.1\r\nHost: ${host}\r\n${token ? `Authorization: Bearer ${token}\r\n` : ''}Content-Length: 0\r\nConnection: close\r\n\r\n`;
}

describe('remote VM simulation: allowed hosts, allowed clients, END with and without the token', () => {
  const res = new DockerResources();
  let inside: StartedNetwork;
  let outside: StartedNetwork;
  let insideSubnet: string;
  let server: StartedTestContainer;
  const target = { host: NAME, port: SERVER_PORT };

  beforeAll(async () => {
    inside = res.network(await new Network().start());
    outside = res.network(await new Network().start());
    insideSubnet = await subnetOf(inside);
    server = await startServer({
      network: inside,
      aliases: [NAME],
      env: {
        TCPKV_BIND: '0.0.0.0',
        TCPKV_ALLOWED_HOSTS: NAME,
        TCPKV_ALLOWED_CLIENTS: `${insideSubnet},127.0.0.1`,
        TCPKV_SHUTDOWN_TOKEN: TOKEN,
      },
      waitForHealthy: true,
      resources: res,
    });
    await dockerOk(['network', 'connect', '--alias', NAME, outside.getId(), server.getId()]);
  });
  afterAll(async () => {
    await res.cleanup();
  });

  it('answers a client on the allowed network', async () => {
    const r = await rawFromContainer(target, get(NAME), { network: inside, resources: res });
    expect(parseResponse(r.response).status).toBe(200);
  });

  it('a host not on the allowed list → 400 Not allowed host', async () => {
    const r = await rawFromContainer(target, get('elsewhere.example'), { network: inside, resources: res });
    const resp = parseResponse(r.response);
    expect(resp.status).toBe(400);
    expect(resp.body).toContain('Not allowed host: elsewhere.example');
  });

  it('a client outside the allowed clients → 403 Client not allowed, connection closed', async () => {
    const outsideSubnet = await subnetOf(outside);
    expect(outsideSubnet).not.toBe(insideSubnet);
    const r = await rawFromContainer(target, get(NAME), { network: outside, resources: res });
    const resp = parseResponse(r.response);
    expect(resp.status).toBe(403);
    expect(resp.body).toMatch(/Client not allowed: \S+/);
    expect(r.closed).toBe(true);
  });

  it('END from a non-loopback client without the token, or with a wrong one → 403, and the server keeps serving', async () => {
    for (const request of [end(NAME), end(NAME, 'wrong-token')]) {
      const r = await rawFromContainer(target, request, { network: inside, resources: res });
      expect(parseResponse(r.response).status).toBe(403);
    }
    expect((await inspectState(server.getId())).Running).toBe(true);
    const after = await rawFromContainer(target, get(NAME), { network: inside, resources: res });
    expect(parseResponse(after.response).status).toBe(200);
  });

  it('the client container passes the scenario; its END with the token → 200 and the server exits 0', async () => {
    const run = await runClient(['--server', `${NAME}:${SERVER_PORT}`, 'scenario', '--json'], {
      network: inside,
      env: { TCPKV_SHUTDOWN_TOKEN: TOKEN },
      resources: res,
    });
    expect(run.exitCode, run.output).toBe(0);
    const report = JSON.parse(run.stdout) as { passed: number; failed: number; cases: Array<{ n: number; ok: boolean; got: string }> };
    expect(report).toMatchObject({ passed: 16, failed: 0 });
    const cases = report.cases;
    expect(cases).toHaveLength(16);
    expect(cases.every((c) => c.ok)).toBe(true);
    expect(cases[15]?.got).toMatch(/^200\b/);
    expect(await waitForExit(server.getId(), 20_000)).toBe(0);
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
