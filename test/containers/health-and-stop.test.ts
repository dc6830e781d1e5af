// The server image as an operator runs it (read-only root, a tmpfs, no capabilities): its
// HEALTHCHECK asks /readyz on the admin port without starting Node, at a small fraction of the CPU
// the client's HEAD cost (measured in the container's own cgroup); and `docker stop` with a client
// stalled in the middle of a body ends inside Docker's 10 s: exit 0, the log flushed and closed.

import { readFileSync, existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { CLIENT_JS, DockerResources, SERVER_IMAGE, SERVER_PORT, containerLogs, docker, dockerOk, inspectState, publishedPort, uniqueName } from '../support/docker.js';
import { sleep } from '../support/net.js';

const HARDENED = ['--read-only', '--tmpfs', '/tmp', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges:true', '--pids-limit', '256', '--memory', '512m'];

async function startServer(res: DockerResources, env: string[] = []): Promise<string> {
  const name = uniqueName('tcpkv-ops');
  const id = await dockerOk(['run', '-d', '--name', name, ...HARDENED, '-p', `127.0.0.1::${SERVER_PORT}`, ...env, SERVER_IMAGE]);
  res.addContainer(id);
  return id;
}

async function waitHealthy(id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await dockerOk(['inspect', '--format', '{{.State.Health.Status}}', id]);
    if (status === 'healthy') return;
    if (Date.now() > deadline) throw new Error(`not healthy within ${timeoutMs} ms (${status}): ${await containerLogs(id)}`);
    await sleep(250);
  }
}

/** The container's CPU time so far, in microseconds, from its cgroup (v1 cpuacct or v2 cpu.stat). */
function cgroupCpuMicros(id: string): number {
  const v1 = `/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`;
  if (existsSync(v1)) return Number(readFileSync(v1, 'utf8')) / 1000;
  for (const v2 of [`/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`, `/sys/fs/cgroup/docker/${id}/cpu.stat`]) {
    if (existsSync(v2)) return Number(/usage_usec (\d+)/.exec(readFileSync(v2, 'utf8'))![1]);
  }
  throw new Error(`no cgroup CPU accounting found for container ${id}`);
}

/** CPU microseconds per run of `command` inside the container (median of per-run costs). */
async function cpuPerExec(id: string, command: string[], runs: number): Promise<number> {
  const costs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const before = cgroupCpuMicros(id);
    const r = await docker(['exec', id, ...command]);
    expect(r.code, `${command.join(' ')}: ${r.stderr}`).toBe(0);
    costs.push(cgroupCpuMicros(id) - before);
  }
  costs.sort((a, b) => a - b);
  return costs[Math.floor(costs.length / 2)]!;
}

describe('the server image, operated', () => {
  const res = new DockerResources();
  afterAll(() => res.cleanup());

  it('its health check is /readyz on the admin port, and costs a fraction of the client HEAD it replaces', async () => {
    const config = JSON.parse(await dockerOk(['image', 'inspect', '--format', '{{json .Config}}', SERVER_IMAGE])) as {
      Healthcheck: { Test: string[] };
      ExposedPorts: Record<string, object>;
      Env: string[];
    };
    expect(config.Healthcheck.Test).toEqual(['CMD', '/usr/local/bin/tcpkv-healthcheck']);
    expect(Object.keys(config.ExposedPorts)).toEqual(expect.arrayContaining(['10000/tcp', '9464/tcp']));
    expect(config.Env).toEqual(expect.arrayContaining(['TCPKV_ADMIN_PORT=9464', 'TCPKV_ADMIN_BIND=0.0.0.0']));

    const id = await startServer(res, ['-e', 'TCPKV_DATA_DIR=']);
    await waitHealthy(id, 60_000);

    const runs = 9;
    const baseline = await cpuPerExec(id, ['true'], runs);
    const check = await cpuPerExec(id, ['/usr/local/bin/tcpkv-healthcheck'], runs);
    const head = await cpuPerExec(id, ['node', CLIENT_JS, 'head', '--server', `127.0.0.1:${SERVER_PORT}`, '--timeout', '3000'], runs);
    const checkNet = Math.max(0, check - baseline);
    const headNet = head - baseline;
    console.log(`CPU per health check (median of ${runs}, net of a docker exec of true = ${(baseline / 1000).toFixed(1)} ms): /readyz ${(checkNet / 1000).toFixed(1)} ms, client HEAD ${(headNet / 1000).toFixed(1)} ms`);
    expect(headNet).toBeGreaterThan(0);
    expect(checkNet).toBeLessThan(headNet / 5);

    // nothing answering on the admin port: the check fails
    const refused = await docker(['exec', id, 'sh', '-c', 'TCPKV_ADMIN_PORT=1 /usr/local/bin/tcpkv-healthcheck']);
    expect(refused.code).not.toBe(0);
  });

  it('`docker stop` with a client stalled mid-body: exit 0 inside 10 s, the log flushed and closed', async () => {
    const id = await startServer(res);
    await waitHealthy(id, 60_000);
    const port = await publishedPort(id);
    const stalled = new Socket();
    await new Promise<void>((resolve, reject) => stalled.connect(port, '127.0.0.1', resolve).once('error', reject));
    stalled.on('error', () => undefined);
    stalled.write('PUT /kv/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nthe first bytes of a body that never ends');
    await sleep(500);

    const started = Date.now();
    const stop = await docker(['stop', id], { timeoutMs: 30_000 });
    const tookMs = Date.now() - started;
    stalled.destroy();
    expect(stop.code, stop.stderr).toBe(0);
    const state = await inspectState(id);
    const logs = await containerLogs(id);
    expect(state.ExitCode, logs).toBe(0);
    expect(tookMs).toBeLessThan(10_000);
    expect(logs).toContain('shutdown timeout: closing the rest');
    expect(logs).toContain('log flushed and closed');
  });

  it('leaves no containers behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
