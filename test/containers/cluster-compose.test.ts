// The cluster's compose files brought up as their comments say.
//   1. docker-compose.cluster.yml with `up --build --abort-on-container-exit --exit-code-from client`:
//      3 etcd members, 3 replicas, the client's scenario spread over the replicas passes (exit 0), and
//      its END stopped tcpkv1 only.
//   2. infra/cluster/vm.compose.yml (the one-VM trial) with `up -d --build`, its replicas published
//      on 127.0.0.1: the scenario from "home" passes through the three published ports; END stops the
//      replica it reaches and Docker starts it again (restart: unless-stopped), serving the same data;
//      then a log-store server's data moves onto the cluster with dump and restore.
// compose v1 (docker-compose) is all there is here; with only v2 installed, `docker compose` is used.

import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ETCD_IMAGE, clientFor, listData, request, sleep, type Reachable } from '../support/cluster.js';
import { DockerResources, REPO_ROOT, composeCommand, dockerOk, runStreaming, uniqueName, waitForExit } from '../support/docker.js';
import { freePort, spawnServer } from '../support/net.js';

const TOKEN = 'cluster-compose-token';
const PROMETHEUS_IMAGE = process.env.PROMETHEUS_IMAGE?.trim() || 'tcpkv/prometheus:local';
const CLI = join(REPO_ROOT, 'dist/services/client/cli.js');

const COMPOSE = composeCommand();

async function compose(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  let output = '';
  const code = await runStreaming(COMPOSE.cmd, [...COMPOSE.pre, ...args], { cwd: REPO_ROOT, env, onOutput: (chunk) => (output += chunk) });
  return { code, output };
}

async function serviceContainer(project: string, service: string): Promise<string> {
  const ids = (await dockerOk(['ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`]))
    .split(/\s+/)
    .filter(Boolean);
  expect(ids, `containers of ${project}/${service}`).toHaveLength(1);
  return ids[0]!;
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 60_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, TCPKV_SHUTDOWN_TOKEN: '' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: stdout.toString(), stderr: stderr.toString() });
    });
  });
}

function runCliWithInput(args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 120_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, TCPKV_SHUTDOWN_TOKEN: '' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout: stdout.toString(), stderr: stderr.toString() });
    });
    child.stdin!.end(input);
  });
}

/** A replica published on a fixed host port. */
const published = (name: string, port: number): Reachable => ({ name, port: () => port });

/** Polls a HEAD (it reads through etcd) until the replica answers 200. */
async function waitAnswering(replica: Reachable, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const o = await request(clientFor([replica], { timeoutMs: 5_000 }), 'HEAD', '');
    if (o.status === 200) return;
    if (Date.now() > deadline) throw new Error(`${replica.name} did not answer within ${timeoutMs} ms: ${o.status} ${o.body}`);
    await sleep(500);
  }
}

describe('the cluster compose files, brought up', () => {
  const res = new DockerResources();
  const projects: Array<{ project: string; file: string; env: NodeJS.ProcessEnv }> = [];

  afterAll(async () => {
    for (const p of projects) await compose(['-p', p.project, '-f', p.file, 'down', '-v', '--timeout', '0'], p.env);
    await res.cleanup();
  });

  it('docker-compose.cluster.yml: `up --build --abort-on-container-exit --exit-code-from client` exits 0; the scenario spread over 3 replicas passes', async () => {
    const project = uniqueName('tcpkvtest');
    res.addComposeProject(project);
    // its Prometheus comes up too (and scrapes nothing it needs here): an image that exists here
    const env = { ...process.env, NODE_IMAGE: inject('tcpkvNodeImage'), ETCD_IMAGE, PROMETHEUS_IMAGE, PROMETHEUS_PUBLISH: `127.0.0.1:${await freePort()}`, TCPKV_SHUTDOWN_TOKEN: TOKEN };
    projects.push({ project, file: 'docker-compose.cluster.yml', env });
    const up = await compose(['-p', project, '-f', 'docker-compose.cluster.yml', 'up', '--build', '--abort-on-container-exit', '--exit-code-from', 'client'], env);
    expect(up.code, up.output.slice(-4000)).toBe(0);
    expect(up.output).toMatch(/16\/16 cases passed/);
    for (const [n, replica] of [
      [1, 'tcpkv1'],
      [2, 'tcpkv2'],
      [3, 'tcpkv3'],
      [16, 'tcpkv1'],
    ] as const) {
      expect(up.output).toMatch(new RegExp(`\\b${n}\\s+\\S+ \\S+ → ${replica}:10000`));
    }
    // END (case 16 → tcpkv1) stopped that replica cleanly; compose stopped the rest afterwards
    expect(await waitForExit(await serviceContainer(project, 'tcpkv1'), 10_000)).toBe(0);
    const down = await compose(['-p', project, '-f', 'docker-compose.cluster.yml', 'down', '-v', '--timeout', '0'], env);
    expect(down.code, down.output).toBe(0);
  });

  it('infra/cluster/vm.compose.yml: up -d; the scenario from "home" through the 3 published ports; END stops one replica and Docker starts it again', async () => {
    const project = uniqueName('tcpkvtest');
    res.addComposeProject(project);
    const ports = [await freePort(), await freePort(), await freePort()];
    const env = {
      ...process.env,
      NODE_IMAGE: inject('tcpkvNodeImage'),
      ETCD_IMAGE,
      TCPKV_ALLOWED_HOSTS: '127.0.0.1',
      // through a published port the server sees the network's gateway as the peer
      TCPKV_ALLOWED_CLIENTS: '0.0.0.0/0',
      TCPKV_SHUTDOWN_TOKEN: TOKEN,
      TCPKV_PUBLISH_1: `127.0.0.1:${ports[0]}`,
      TCPKV_PUBLISH_2: `127.0.0.1:${ports[1]}`,
      TCPKV_PUBLISH_3: `127.0.0.1:${ports[2]}`,
    };
    const file = 'infra/cluster/vm.compose.yml';
    projects.push({ project, file, env });
    const up = await compose(['-p', project, '-f', file, 'up', '-d', '--build'], env);
    expect(up.code, up.output.slice(-4000)).toBe(0);
    const replicas = ports.map((p, i) => published(`tcpkv${i + 1}`, p));
    for (const r of replicas) await waitAnswering(r, 60_000);

    const run = await runCli(['--server', ports.map((p) => `127.0.0.1:${p}`).join(','), '--token', TOKEN, 'scenario', '--spread']);
    expect(run.code, `${run.stdout}${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/16\/16 cases passed/);

    // END reached tcpkv1: it exits 0, restart: unless-stopped brings it back on the same port
    const tcpkv1 = await serviceContainer(project, 'tcpkv1');
    const restartCount = async () => Number(await dockerOk(['inspect', '--format', '{{.RestartCount}}', tcpkv1]));
    for (let i = 0; i < 60 && (await restartCount()) < 1; i++) await sleep(500);
    expect(await restartCount()).toBeGreaterThanOrEqual(1);
    await waitAnswering(replicas[0]!, 60_000);
    const data = await listData(clientFor([replicas[0]!]));
    expect([...data.keys()]).toEqual(['ID', 'Subject', 'Grade', 'final_exam']);
    expect(await listData(clientFor([replicas[2]!]))).toEqual(data);

    // Moving a log store's data onto the cluster (docs/backup.md): dump a log-store server, restore
    // through one replica with --replace (the scenario's keys go), and every replica lists exactly
    // what the log server listed.
    const logServer = await spawnServer({ TCPKV_DATA_DIR: mkdtempSync(join(tmpdir(), 'tcpkv-move-')) });
    try {
      const at = ['--server', `127.0.0.1:${logServer.port}`];
      for (let i = 0; i < 2_000; i += 500) {
        const pairs = Array.from({ length: 500 }, (_, j) => `학생-${i + j}: 컴퓨터네트워크 ${i + j}점 🙂`);
        expect((await runCli([...at, 'create', pairs.join('&')])).code).toBe(0);
      }
      expect((await runCli([...at, 'put', 'url', 'https://example.com/?a=1&b=2'])).code).toBe(0);
      const dumped = await runCli([...at, 'dump']);
      expect(dumped.code, dumped.stderr).toBe(0);
      expect(dumped.stderr).toContain('dumped 2001 keys');
      const moved = await runCliWithInput(['--server', `127.0.0.1:${ports[0]}`, 'restore', '--replace'], dumped.stdout);
      expect(moved.code, moved.stderr).toBe(0);
      expect(moved.stderr).toContain('restore done: 2001 written, 0 updated, 0 already there, 4 deleted');
      const want = (await runCli([...at, '--quiet', 'get'])).stdout;
      for (const p of ports) expect((await runCli(['--server', `127.0.0.1:${p}`, '--quiet', 'get'])).stdout).toBe(want);
    } finally {
      logServer.kill('SIGKILL');
      await logServer.exited;
    }

    const down = await compose(['-p', project, '-f', file, 'down', '-v', '--timeout', '0'], env);
    expect(down.code, down.output).toBe(0);
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
