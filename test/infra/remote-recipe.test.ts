// Issue 7, acceptance 4: the remote recipe, end to end, on this machine. The server container (the
// "VM") is started with exactly what infra/remote/server.compose.yml sets (its environment, restart
// policy and data volume, read from the file with the `yaml` package and interpolated with sample
// settings); client containers run what infra/remote/client.compose.yml runs.
//
//   network "home" (its subnet = TCPKV_ALLOWED_CLIENTS) ── client image ──┐
//                                                                        ├──▶ server "tcpkv-vm":10000
//   network "elsewhere" (outside the allow-list) ───────── client image ──┘
//
// Checked: the home client's scenario passes (its END, with the token, stops the server: Docker's
// restart policy brings it back and the data is still there); a client elsewhere is refused; END
// without the token is refused and the server keeps serving.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GenericContainer, Network, Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DockerResources,
  NODE_UID,
  SERVER_IMAGE,
  SERVER_PORT,
  docker,
  dockerOk,
  inspectState,
  runClient,
} from '../support/docker.js';
import { interpolate, readCompose, serviceEnvironment, type ComposeDoc } from './lib/compose.js';
import { clientComposeFile, remoteDir, serverComposeFile } from './lib/paths.js';

const VM = 'tcpkv-vm';
const TOKEN = randomBytes(18).toString('hex');

/** The server image with the compose file's restart policy (testcontainers has no option for it). */
class ServerWithRestartPolicy extends GenericContainer {
  constructor(image: string, private readonly restart: string) {
    super(image);
  }
  protected override async beforeContainerCreated(): Promise<void> {
    this.hostConfig.RestartPolicy = { Name: this.restart, MaximumRetryCount: 0 };
  }
}

async function subnetOf(network: StartedNetwork): Promise<string> {
  return dockerOk(['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', network.getId()]);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('infra/remote recipe: server.compose.yml on a "VM", client.compose.yml at "home"', () => {
  const res = new DockerResources();
  let serverDoc: ComposeDoc;
  let clientDoc: ComposeDoc;
  let home: StartedNetwork;
  let elsewhere: StartedNetwork;
  let homeSubnet: string;
  let serverEnv: Record<string, string>;
  let server: StartedTestContainer;
  let tlsDir: string;

  /** What `docker compose -f client.compose.yml run --rm client [args]` runs, from a network. */
  const client = (network: StartedNetwork, args?: string[], token?: string) => {
    // the plain port (on a VM reached through an SSH tunnel): the compose file's TLS settings left out;
    // the TLS path from home is test/containers/remote-deploy.test.ts
    const env = Object.fromEntries(
      Object.entries(
        serviceEnvironment(clientDoc, 'client', { TCPKV_SERVER: `${VM}:${SERVER_PORT}`, ...(token ? { TCPKV_SHUTDOWN_TOKEN: token } : {}) }),
      ).filter(([k]) => !k.startsWith('TCPKV_CLIENT_')),
    );
    return runClient(args ?? (clientDoc.services.client.command as string[]), { network, env, resources: res });
  };

  beforeAll(async () => {
    serverDoc = readCompose(serverComposeFile);
    clientDoc = readCompose(clientComposeFile);
    home = res.network(await new Network().start());
    elsewhere = res.network(await new Network().start());
    homeSubnet = await subnetOf(home);

    // The three settings a VM owner writes in infra/remote/.env: the name clients use for the VM,
    // the clients' network, the token.
    serverEnv = serviceEnvironment(serverDoc, 'server', {
      TCPKV_ALLOWED_HOSTS: VM,
      TCPKV_ALLOWED_CLIENTS: homeSubnet,
      TCPKV_SHUTDOWN_TOKEN: TOKEN,
    });
    const svc = serverDoc.services.server as ComposeDoc;
    const volume = await res.createVolume('tcpkv-remote-data');
    const dataTarget = String((svc.volumes as string[])[0]).split(':')[1]!;
    // the TLS files the compose file mounts (made as deploy-ssh.sh makes them; readable by the image's uid)
    tlsDir = mkdtempSync(join(tmpdir(), 'tcpkv-remote-recipe-tls-'));
    execFileSync(join(remoteDir, 'make-certs.sh'), [join(tlsDir, 'tls'), VM], { stdio: 'ignore' });
    execFileSync('chown', ['-R', `${NODE_UID}:${NODE_UID}`, join(tlsDir, 'tls')]);
    const tlsTarget = interpolate(String((svc.volumes as string[])[1]), { TCPKV_TLS_DIR: join(tlsDir, 'tls') }).split(':')[1]!;

    const started = await new ServerWithRestartPolicy(SERVER_IMAGE, String(svc.restart))
      .withEnvironment(serverEnv)
      .withNetwork(home)
      .withNetworkAliases(VM)
      .withBindMounts([
        { source: volume, target: dataTarget, mode: 'rw' },
        { source: join(tlsDir, 'tls'), target: tlsTarget, mode: 'ro' },
      ])
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(90_000)
      .start();
    server = res.container(started);
    await dockerOk(['network', 'connect', '--alias', VM, elsewhere.getId(), server.getId()]);
  });

  afterAll(async () => {
    await res.cleanup();
    if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
  });

  it('the server runs with the compose file\'s settings: bound to 0.0.0.0, the allow-lists and token as given, data on the volume', async () => {
    expect(serverEnv['TCPKV_BIND']).toBe('0.0.0.0');
    expect(serverEnv['TCPKV_ALLOWED_HOSTS']).toBe(VM);
    expect(serverEnv['TCPKV_ALLOWED_CLIENTS']!.split(',')).toContain(homeSubnet);
    expect(serverEnv['TCPKV_SHUTDOWN_TOKEN']).toBe(TOKEN);
    expect(serverEnv['TCPKV_DATA_DIR']).toBe('/data');
    const state = await inspectState(server.getId());
    expect(state.Health?.Status).toBe('healthy');
    expect((await dockerOk(['inspect', '--format', '{{.HostConfig.RestartPolicy.Name}}', server.getId()]))).toBe('unless-stopped');
  });

  it('a home client reaches it (HEAD, GET on a fresh store)', async () => {
    const head = await client(home, ['head']);
    expect(head.exitCode, head.output).toBe(0);
    const get = await client(home, ['get']);
    expect(get.exitCode, get.output).toBe(0);
    expect(get.stdout).toContain('No data in DB');
  });

  it('a client on another network, outside TCPKV_ALLOWED_CLIENTS, is refused (403 Client not allowed, or closed)', async () => {
    expect(await subnetOf(elsewhere)).not.toBe(homeSubnet);
    const r = await client(elsewhere, ['get']);
    const refused = /^403\b[\s\S]*Client not allowed: \S+/m.test(r.stdout) || /connection closed by the server without an answer/.test(r.stdout);
    expect(refused, r.output).toBe(true);
    expect(r.stdout).not.toContain('No data in DB');
  });

  it('END without the token is refused (403) and the server keeps serving', async () => {
    const r = await client(home, ['shutdown']);
    expect(r.exitCode, r.output).toBe(1);
    expect(r.stdout).toMatch(/^403\b/);
    const wrong = await client(home, ['shutdown'], 'not-the-token');
    expect(wrong.stdout).toMatch(/^403\b/);
    const state = await inspectState(server.getId());
    expect(state.Running).toBe(true);
    expect((await dockerOk(['inspect', '--format', '{{.RestartCount}}', server.getId()]))).toBe('0');
    const get = await client(home, ['get']);
    expect(get.exitCode, get.output).toBe(0);
  });

  it('the home client\'s scenario (client.compose.yml\'s command) passes; its END with the token stops the server', async () => {
    const run = await client(home, undefined, TOKEN);
    expect(run.exitCode, run.output).toBe(0);
    expect(run.stdout).toMatch(/16\/16 cases passed/);
    // END made the server exit; restart: unless-stopped (from the compose file) starts it again.
    const restarts = await waitFor('the restart after END', async () => {
      const n = Number(await dockerOk(['inspect', '--format', '{{.RestartCount}}', server.getId()]));
      return n >= 1 ? n : undefined;
    });
    expect(restarts).toBeGreaterThanOrEqual(1);
    await waitFor('healthy again', async () => ((await inspectState(server.getId())).Health?.Status === 'healthy' ? true : undefined));
    // The same container, started twice (the log survives restarts).
    const logs = await docker(['logs', server.getId()]);
    expect(`${logs.stdout}${logs.stderr}`.match(/"msg":"listening"/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('after the restart the data written by the scenario is still there (data volume + TCPKV_DATA_DIR log)', async () => {
    const get = await client(home, ['get']);
    expect(get.exitCode, get.output).toBe(0);
    expect(get.stdout).toContain('ID:20180434');
    expect(get.stdout).toContain('final_exam:90');
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
