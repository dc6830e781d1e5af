// The images themselves (issue 4, acceptance 3 and the size budget): non-root, a healthcheck, the
// server's contract environment, exec-form entrypoints, OCI labels, and at most 25 MB over the base.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { CLIENT_IMAGE, DockerResources, NODE_UID, REPO_ROOT, SERVER_IMAGE, SERVER_PORT, dockerOk, processUser, runOneShot, startServer } from '../support/docker.js';

interface ImageConfig {
  User: string;
  Env: string[] | null;
  Entrypoint: string[] | null;
  Cmd: string[] | null;
  ExposedPorts: Record<string, object> | null;
  Volumes: Record<string, object> | null;
  Labels: Record<string, string> | null;
  Healthcheck?: { Test: string[]; Interval?: number } | null;
}

async function imageConfig(image: string): Promise<ImageConfig> {
  return JSON.parse(await dockerOk(['image', 'inspect', '--format', '{{json .Config}}', image])) as ImageConfig;
}
async function imageSize(image: string): Promise<number> {
  return Number(await dockerOk(['image', 'inspect', '--format', '{{.Size}}', image]));
}

const MB = 1_000_000;

describe('images', () => {
  const res = new DockerResources();
  afterAll(async () => {
    await res.cleanup();
  });

  it('server image: USER node, TCPKV_BIND=0.0.0.0, /data volume, ports 10000 and 9464 (admin), healthcheck on /readyz without a Node start, exec-form node entrypoint', async () => {
    const c = await imageConfig(SERVER_IMAGE);
    expect(c.User).toBe('node');
    expect(c.Env).toContain('TCPKV_BIND=0.0.0.0');
    expect(c.Env).toContain('TCPKV_DATA_DIR=/data');
    expect(Object.keys(c.ExposedPorts ?? {})).toContain(`${SERVER_PORT}/tcp`);
    expect(Object.keys(c.Volumes ?? {})).toContain('/data');
    expect(Object.keys(c.ExposedPorts ?? {})).toContain('9464/tcp');
    expect(c.Env).toContain('TCPKV_ADMIN_PORT=9464');
    expect(c.Env).toContain('TCPKV_ADMIN_BIND=0.0.0.0');
    expect(c.Healthcheck?.Test).toEqual(['CMD', '/usr/local/bin/tcpkv-healthcheck']);
    expect(c.Entrypoint).toEqual(['node', '/app/dist/services/server/main.js']);
    expect(c.Labels?.['org.opencontainers.image.title']).toBe('tcpkv-server');
    // one source of the version: package.json, passed as the VERSION build argument
    expect(c.Labels?.['org.opencontainers.image.version']).toBe((JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('client image: USER node, entrypoint tcpkv-client, default command scenario', async () => {
    const c = await imageConfig(CLIENT_IMAGE);
    expect(c.User).toBe('node');
    expect(c.Entrypoint).toEqual(['tcpkv-client']);
    expect(c.Cmd).toEqual(['scenario']);
    expect(c.Labels?.['org.opencontainers.image.title']).toBe('tcpkv-client');
  });

  it('the server process runs as uid 1000 and /data belongs to it', async () => {
    const server = await startServer({ resources: res });
    expect(await processUser(server)).toEqual({ uid: NODE_UID, gid: NODE_UID });
    // 0700: the log holds the data; nobody else in the container (or a volume's other users) reads it
    const stat = await server.exec(['stat', '-c', '%u:%g %a', '/data']);
    expect(stat.output.trim()).toBe(`${NODE_UID}:${NODE_UID} 700`);
  });

  it('the client process runs as uid 1000 and tcpkv-client answers --help', async () => {
    const id = await runOneShot({ entrypoint: ['node', '-e', 'console.log(process.getuid() + ":" + process.getgid())'], command: [], resources: res });
    expect(id.exitCode).toBe(0);
    expect(id.stdout.trim()).toBe(`${NODE_UID}:${NODE_UID}`);
    const help = await runOneShot({ command: ['--help'], resources: res });
    expect(help.exitCode, help.output).toBe(0);
    expect(help.output).toMatch(/scenario/);
  });

  it('runtime layers add at most 25 MB over the base image', async () => {
    const base = inject('tcpkvNodeImage');
    const baseSize = await imageSize(base);
    for (const image of [SERVER_IMAGE, CLIENT_IMAGE]) {
      const added = (await imageSize(image)) - baseSize;
      console.log(`${image}: ${(added / MB).toFixed(1)} MB over ${base}`);
      expect(added).toBeGreaterThan(0);
      expect(added).toBeLessThanOrEqual(25 * MB);
    }
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
