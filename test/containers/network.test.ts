// Issue 4 (a): the server and client images on one testcontainers Network; the client container runs
// the seed scenario against the server's network alias and exits 0, its END (with the shared token)
// stops the server, which exits 0. The server is waited for through its own HEALTHCHECK.

import { Network, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerResources, NODE_UID, inspectState, processUser, runClient, waitForExit, startServer } from '../support/docker.js';

const TOKEN = 'network-test-token';

describe('server and client containers on one network', () => {
  const res = new DockerResources();
  let network: StartedNetwork;
  let server: StartedTestContainer;

  beforeAll(async () => {
    network = res.network(await new Network().start());
    server = await startServer({
      network,
      aliases: ['kv'],
      env: { TCPKV_ALLOWED_HOSTS: 'kv,127.0.0.1', TCPKV_SHUTDOWN_TOKEN: TOKEN },
      waitForHealthy: true,
      resources: res,
    });
  });
  afterAll(async () => {
    await res.cleanup();
  });

  it('the server became healthy through its HEALTHCHECK and runs as uid 1000', async () => {
    expect((await inspectState(server.getId())).Health?.Status).toBe('healthy');
    expect(await processUser(server)).toEqual({ uid: NODE_UID, gid: NODE_UID });
  });

  it('the client container runs the scenario against kv:10000 and exits 0; END stops the server with exit 0', async () => {
    const run = await runClient(['--server', 'kv:10000', 'scenario'], { network, env: { TCPKV_SHUTDOWN_TOKEN: TOKEN }, resources: res });
    expect(run.exitCode, run.output).toBe(0);
    expect(run.user).toBe('node');
    expect(run.stdout).toMatch(/16\/16 cases passed/);
    expect(await waitForExit(server.getId(), 20_000)).toBe(0);
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
