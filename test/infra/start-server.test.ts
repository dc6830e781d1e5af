// infra/remote/start-server.sh for real, with this machine's Compose (v1 here; v2 elsewhere): what the
// EC2 bootstrap, its boot-time systemd unit and deploy-ssh.sh run on the VM. The port is published on
// 127.0.0.1 only (TCPKV_PUBLISH), and the requests come from this host through Docker's port mapping,
// i.e. from the compose network's gateway address, as traffic from outside reaches a VM's container.
//   1. settings that do not list that address: healthy, bound to 0.0.0.0, the request gets 403;
//   2. the same run again with the gateway added (re-applying settings, as at boot): 200;
//   3. a run with settings the server refuses: the running server is kept, same container, still healthy.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DockerResources, dockerOk, parseResponse, publishedPort, sendOnce, uniqueName } from '../support/docker.js';
import { remoteDir, repoRoot } from './lib/paths.js';

const TOKEN = 'start-server-test-token-0123';

function startServer(envFile: string, project: string): Promise<{ code: number; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TCPKV_')));
    const child = spawn(join(remoteDir, 'start-server.sh'), ['--build', '--env-file', envFile], {
      cwd: repoRoot,
      env: { ...env, TCPKV_COMPOSE_PROJECT: project, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? 1, output }));
  });
}

const get = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';

describe('infra/remote/start-server.sh with Compose and server.compose.yml', () => {
  const res = new DockerResources();
  const project = uniqueName('tcpkvstart').replace(/-/g, '');
  let dir: string;
  const settings = (clients: string) => {
    const file = join(dir, 'server.env');
    writeFileSync(
      file,
      [
        'TCPKV_ALLOWED_HOSTS=127.0.0.1',
        `TCPKV_ALLOWED_CLIENTS=${clients}`,
        `TCPKV_SHUTDOWN_TOKEN=${TOKEN}`,
        'TCPKV_PUBLISH=127.0.0.1:',
        'TCPKV_TLS_PUBLISH=127.0.0.1:',
        `TCPKV_TLS_DIR=${join(dir, 'tls')}`,
        `NODE_IMAGE=${inject('tcpkvNodeImage')}`,
        '',
      ].join('\n'),
    );
    return file;
  };
  const container = async () => dockerOk(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=server']);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tcpkv-start-server-'));
    // the recipe's TLS files (server.compose.yml mounts them), made the way deploy-ssh.sh makes them
    execFileSync(join(remoteDir, 'make-certs.sh'), [join(dir, 'tls'), '127.0.0.1'], { stdio: 'ignore' });
    res.addComposeProject(project);
    res.addComposeProject(`${project}-trial`);
  });
  afterAll(async () => {
    await res.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('builds, starts and waits until healthy; bound to 0.0.0.0, restart unless-stopped, data volume, published on loopback', async () => {
    const r = await startServer(settings('198.51.100.7/32'), project);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('tcpkv is up (healthy)');
    const id = await container();
    expect(id).not.toBe('');
    const info = JSON.parse(await dockerOk(['inspect', id])) as Array<{
      Config: { Env: string[] };
      HostConfig: { RestartPolicy: { Name: string }; PortBindings: Record<string, Array<{ HostIp: string }>> };
      Mounts: Array<{ Type: string; Destination: string }>;
    }>;
    const c = info[0]!;
    expect(c.Config.Env).toContain('TCPKV_BIND=0.0.0.0');
    expect(c.Config.Env).toContain('TCPKV_ALLOWED_CLIENTS=127.0.0.1,::1,198.51.100.7/32');
    expect(c.HostConfig.RestartPolicy.Name).toBe('unless-stopped');
    expect(c.HostConfig.PortBindings['10000/tcp']?.[0]?.HostIp).toBe('127.0.0.1');
    expect(c.Config.Env).toContain('TCPKV_TLS_PORT=10443');
    expect(c.Config.Env).toContain('TCPKV_TLS_CLIENT_CA_FILE=/tls/ca.crt');
    expect(c.Mounts).toEqual(expect.arrayContaining([expect.objectContaining({ Type: 'volume', Destination: '/data' })]));
  });

  it('a connection through the port mapping from an address outside TCPKV_ALLOWED_CLIENTS gets 403', async () => {
    const resp = parseResponse(await sendOnce(await publishedPort(await container()), get));
    expect(resp.status).toBe(403);
    expect(resp.body).toMatch(/^Client not allowed: \S+/);
  });

  it('run again with that address allowed, it re-applies the settings, and the same request gets 200', async () => {
    const network = await dockerOk(['inspect', '--format', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}', await container()]);
    const gateway = await dockerOk(['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', network]);
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const r = await startServer(settings(`198.51.100.7/32,${gateway}/32`), project);
    expect(r.code, r.output).toBe(0);
    const resp = parseResponse(await sendOnce(await publishedPort(await container()), get));
    expect(resp.status, resp.body).toBe(200);
    expect(resp.body).toContain('No data in DB');
  });

  it('settings the server refuses (a bad TCPKV_ALLOWED_CLIENTS) leave the running server as it was', async () => {
    const before = await container();
    const r = await startServer(settings('198.51.100.7/33'), project);
    expect(r.code, r.output).toBe(1);
    expect(r.output).toMatch(/these settings do not give a healthy server/);
    expect(await container()).toBe(before);
    expect(await dockerOk(['inspect', '-f', '{{.State.Health.Status}}', before])).toBe('healthy');
    const resp = parseResponse(await sendOnce(await publishedPort(before), get));
    expect(resp.status, resp.body).toBe(200);
    // the trial container and its volume are gone
    expect(await dockerOk(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}-trial`])).toBe('');
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
