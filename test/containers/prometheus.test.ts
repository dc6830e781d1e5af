// Prometheus as the compose files run it. docker-compose.cluster.yml: the three replicas, three
// etcd members and Prometheus come up; Prometheus's own HTTP API (through its port published on
// 127.0.0.1) reports `up == 1` for the three replicas' admin ports; after the client's scenario the
// request rate it computes from their /metrics is above zero. docker-compose.yml's monitoring
// profile: Prometheus scrapes the single server. Prometheus is the offline image (Debian's package)
// here, prom/prometheus where a registry is reachable: PROMETHEUS_IMAGE chooses.

import { afterAll, describe, expect, inject, it } from 'vitest';
import { ETCD_IMAGE, sleep } from '../support/cluster.js';
import { DockerResources, REPO_ROOT, composeCommand, runStreaming, uniqueName } from '../support/docker.js';
import { freePort } from '../support/net.js';

const PROMETHEUS_IMAGE = process.env.PROMETHEUS_IMAGE?.trim() || 'tcpkv/prometheus:local';
const FILE = 'docker-compose.cluster.yml';
const COMPOSE = composeCommand();
const REPLICAS = ['tcpkv1', 'tcpkv2', 'tcpkv3'];

async function compose(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  let output = '';
  const code = await runStreaming(COMPOSE.cmd, [...COMPOSE.pre, ...args], { cwd: REPO_ROOT, env, onOutput: (chunk) => (output += chunk) });
  return { code, output };
}

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query through Prometheus's HTTP API on 127.0.0.1; [] while Prometheus is not up yet. */
async function query(port: number, promql: string): Promise<Series[]> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`, { signal: AbortSignal.timeout(5_000) });
    const body = (await r.json()) as { status: string; data?: { result: Series[] } };
    return body.status === 'success' ? (body.data?.result ?? []) : [];
  } catch {
    return [];
  }
}

async function until(port: number, promql: string, holds: (result: Series[]) => boolean, timeoutMs: number): Promise<Series[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await query(port, promql);
    if (holds(result)) return result;
    if (Date.now() > deadline) throw new Error(`${promql} did not hold within ${timeoutMs} ms: ${JSON.stringify(result)}`);
    await sleep(1_000);
  }
}

describe('docker-compose.cluster.yml with Prometheus', () => {
  const res = new DockerResources();
  let down: (() => Promise<unknown>) | undefined;

  afterAll(async () => {
    await down?.();
    await res.cleanup();
  });

  it('Prometheus scrapes the three replicas (up == 1) and sees the scenario\'s requests (rate > 0)', async () => {
    const project = uniqueName('tcpkvtest');
    res.addComposeProject(project);
    const promPort = await freePort();
    const env = {
      ...process.env,
      NODE_IMAGE: inject('tcpkvNodeImage'),
      ETCD_IMAGE,
      PROMETHEUS_IMAGE,
      PROMETHEUS_PUBLISH: `127.0.0.1:${promPort}`,
      TCPKV_SHUTDOWN_TOKEN: 'prometheus-test-token',
    };
    down = () => compose(['-p', project, '-f', FILE, 'down', '-v', '--timeout', '0'], env);

    // everything but the client: compose waits for the members to be healthy before the replicas
    const up = await compose(['-p', project, '-f', FILE, 'up', '-d', '--build', 'etcd1', 'etcd2', 'etcd3', ...REPLICAS, 'prometheus'], env);
    expect(up.code, up.output.slice(-4000)).toBe(0);

    const targets = await until(promPort, 'up{job="tcpkv"}', (r) => r.length === 3 && r.every((s) => s.value[1] === '1'), 90_000);
    expect(targets.map((s) => s.metric.instance).sort()).toEqual(REPLICAS.map((r) => `${r}:9464`));

    // the demo's client, as `up` would run it: the scenario spread over the replicas, END stops tcpkv1
    const run = await compose(['-p', project, '-f', FILE, 'run', '--rm', 'client'], env);
    expect(run.code, run.output.slice(-4000)).toBe(0);
    expect(run.output).toMatch(/16\/16 cases passed/);

    // the duration histogram's count: its series exist from the start, so rate() sees every request
    const rate = await until(promPort, 'sum(rate(tcpkv_request_duration_seconds_count[30s]))', (r) => r.length === 1 && Number(r[0]!.value[1]) > 0, 60_000);
    expect(Number(rate[0]!.value[1])).toBeGreaterThan(0);
    // every replica answered part of the scenario
    const perReplica = await until(promPort, 'sum by (instance) (tcpkv_requests_total)', (r) => r.length >= 2, 30_000);
    for (const s of perReplica) expect(Number(s.value[1]), s.metric.instance).toBeGreaterThan(0);
    // the replicas' calls to etcd, timed
    const etcdCalls = await until(promPort, 'sum by (instance) (tcpkv_etcd_request_duration_seconds_count)', (r) => r.length >= 2, 30_000);
    for (const s of etcdCalls) expect(Number(s.value[1]), s.metric.instance).toBeGreaterThan(0);
    // the replicas that were not stopped report a store that takes writes
    const ready = await until(promPort, 'tcpkv_store_ready{instance=~"tcpkv[23]:9464"}', (r) => r.length === 2, 30_000);
    for (const s of ready) expect(s.value[1], s.metric.instance).toBe('1');

    const stopped = await compose(['-p', project, '-f', FILE, 'down', '-v', '--timeout', '0'], env);
    expect(stopped.code, stopped.output).toBe(0);
    down = undefined;
  });

  it('docker-compose.yml with the monitoring profile: Prometheus scrapes the single server (up == 1)', async () => {
    const project = uniqueName('tcpkvtest');
    res.addComposeProject(project);
    const promPort = await freePort();
    const env = { ...process.env, NODE_IMAGE: inject('tcpkvNodeImage'), PROMETHEUS_IMAGE, PROMETHEUS_PUBLISH: `127.0.0.1:${promPort}` };
    const file = 'docker-compose.yml';
    down = () => compose(['-p', project, '-f', file, '--profile', 'monitoring', 'down', '-v', '--timeout', '0'], env);
    const up = await compose(['-p', project, '-f', file, '--profile', 'monitoring', 'up', '-d', '--build', 'server', 'prometheus'], env);
    expect(up.code, up.output.slice(-4000)).toBe(0);
    const targets = await until(promPort, 'up{job="tcpkv"}', (r) => r.length === 1 && r[0]!.value[1] === '1', 60_000);
    expect(targets[0]!.metric.instance).toBe('server:9464');
    await until(promPort, 'tcpkv_store_ready', (r) => r.length === 1 && r[0]!.value[1] === '1', 30_000);
    const stopped = await down();
    expect((stopped as { code: number }).code).toBe(0);
    down = undefined;
  });

  it('leaves no containers, networks or volumes behind', async () => {
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
