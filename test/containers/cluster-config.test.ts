// The cluster's compose files as Compose reads them (`docker-compose config`, Debian's v1.29;
// no `version:` key, so v2 reads them too): docker-compose.cluster.yml, and infra/cluster/'s one-VM
// trial (vm.compose.yml) and one-of-three-machines file (node.compose.yml) with their example
// settings. A missing required setting must stop compose with its message. Nothing is started here;
// test/containers/cluster-compose.test.ts brings the first two up.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../support/docker.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- compose's YAML is untyped */
type Doc = Record<string, any>;

const CLUSTER_FILE = join(REPO_ROOT, 'docker-compose.cluster.yml');
const VM_FILE = join(REPO_ROOT, 'infra/cluster/vm.compose.yml');
const NODE_FILE = join(REPO_ROOT, 'infra/cluster/node.compose.yml');
const VM_REQUIRED = ['TCPKV_ALLOWED_HOSTS', 'TCPKV_ALLOWED_CLIENTS', 'TCPKV_SHUTDOWN_TOKEN'];
const NODE_REQUIRED = [...VM_REQUIRED, 'ETCD_NAME', 'NODE_PRIVATE_IP', 'ETCD_INITIAL_CLUSTER', 'TCPKV_ETCD_ENDPOINTS'];
const MEMBERS = ['etcd1', 'etcd2', 'etcd3'];
const REPLICAS = ['tcpkv1', 'tcpkv2', 'tcpkv3'];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tcpkv-cluster-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `docker-compose [--env-file <settings>] -f <file> config`, in an environment without the settings. */
function composeConfig(file: string, settings: Record<string, string> | undefined) {
  const args = ['-f', file, 'config'];
  if (settings) {
    const envFile = join(dir, `settings-${Math.random().toString(36).slice(2)}.env`);
    writeFileSync(envFile, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(''));
    args.unshift('--env-file', envFile);
  }
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(TCPKV_|ETCD_|NODE_|RUNTIME_|PROMETHEUS_|COMPOSE_)/.test(k)),
  );
  const r = spawnSync('docker-compose', args, { encoding: 'utf8', env, cwd: REPO_ROOT, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

/** KEY=value lines of an example settings file. */
function exampleSettings(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(REPO_ROOT, file), 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function accepted(file: string, settings: Record<string, string> | undefined): Doc {
  const r = composeConfig(file, settings);
  expect(r.error).toBeUndefined();
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return parseYaml(r.stdout) as Doc;
}

const command = (service: Doc) => (service.command as string[]).join(' ');

/** Every service: read-only root with a tmpfs, no capabilities, no privilege gain, memory/pid limits, a stop budget. */
function expectHardened(name: string, s: Doc): void {
  expect(s.read_only, `${name}: read_only`).toBe(true);
  expect(s.tmpfs, `${name}: tmpfs`).toContain('/tmp');
  expect(s.cap_drop, `${name}: cap_drop`).toEqual(['ALL']);
  expect(s.security_opt, `${name}: security_opt`).toEqual(['no-new-privileges:true']);
  expect(s.pids_limit, `${name}: pids_limit`).toBeGreaterThan(0);
  expect(s.mem_limit, `${name}: mem_limit`).toBeTruthy();
  expect(s.stop_grace_period, `${name}: stop_grace_period`).toMatch(/^\d+s$/);
}

/** A replica's stop budget exceeds its graceful stop (8 s by default). */
function expectStopBudget(s: Doc): void {
  expect(Number(String(s.stop_grace_period).replace(/s$/, ''))).toBeGreaterThan(8);
}

describe('docker-compose.cluster.yml', () => {
  it('has no version: key', () => {
    expect(parseYaml(readFileSync(CLUSTER_FILE, 'utf8')) as Doc).not.toHaveProperty('version');
  });

  it('is accepted by docker-compose config without any setting: 3 members, 3 replicas, the spread scenario', () => {
    const doc = accepted(CLUSTER_FILE, undefined);
    expect(Object.keys(doc.services).sort()).toEqual(['client', ...MEMBERS, ...REPLICAS, 'prometheus'].sort());
    for (const [name, service] of Object.entries(doc.services as Record<string, Doc>)) expectHardened(name, service);
    for (const m of MEMBERS) {
      const s = doc.services[m] as Doc;
      expect(s.image).toBe('quay.io/coreos/etcd:v3.5.17');
      expect(command(s)).toContain(`--name=${m} `);
      expect(command(s)).toContain(`--advertise-client-urls=http://${m}:2379`);
      expect(command(s)).toContain('--listen-client-urls=http://0.0.0.0:2379');
      expect(command(s)).toContain('--initial-cluster=etcd1=http://etcd1:2380,etcd2=http://etcd2:2380,etcd3=http://etcd3:2380');
      expect(s.volumes).toEqual([`${m}-data:/var/lib/etcd:rw`]);
      expect(s.healthcheck.test.join(' ')).toContain('etcdctl');
      expect(s.ports).toBeUndefined();
    }
    for (const r of REPLICAS) {
      const s = doc.services[r] as Doc;
      expect(s.build).toMatchObject({ context: REPO_ROOT, dockerfile: 'Dockerfile.server', args: { NODE_IMAGE: 'node:24-bookworm-slim' } });
      expect(s.environment).toMatchObject({ TCPKV_ETCD_ENDPOINTS: 'http://etcd1:2379,http://etcd2:2379,http://etcd3:2379', TCPKV_DATA_DIR: '', TCPKV_SHUTDOWN_TOKEN: 'cluster-demo-token' });
      expect(s.environment.TCPKV_ALLOWED_HOSTS.split(',')).toEqual(expect.arrayContaining(REPLICAS));
      expect(Object.keys(s.depends_on).sort()).toEqual(MEMBERS);
      for (const m of MEMBERS) expect(s.depends_on[m]).toEqual({ condition: 'service_healthy' });
      // healthy = /readyz on the admin port, without starting Node
      expect(s.healthcheck.test).toEqual(['CMD', '/usr/local/bin/tcpkv-healthcheck']);
      expectStopBudget(s);
    }
    const client = doc.services.client as Doc;
    expect(client.build).toMatchObject({ dockerfile: 'Dockerfile.client' });
    // the token by environment: never on a command line (ps, docker inspect)
    expect(client.command).toEqual(['--server', 'tcpkv1:10000,tcpkv2:10000,tcpkv3:10000', 'scenario', '--spread']);
    expect(client.environment.TCPKV_SHUTDOWN_TOKEN).toBe('cluster-demo-token');
    for (const r of REPLICAS) expect(client.depends_on[r]).toEqual({ condition: 'service_healthy' });
    const prometheus = doc.services.prometheus as Doc;
    expect(prometheus.image).toBe('prom/prometheus:v2.53.2');
    expect(prometheus.ports).toEqual(['127.0.0.1:9090:9090/tcp']);
    expect(prometheus.volumes).toEqual(expect.arrayContaining([`${join(REPO_ROOT, 'infra/prometheus/cluster.yml')}:/etc/prometheus/prometheus.yml:ro`]));
  });

  it('infra/prometheus/cluster.yml scrapes the admin port of the three replicas', () => {
    const config = parseYaml(readFileSync(join(REPO_ROOT, 'infra/prometheus/cluster.yml'), 'utf8')) as Doc;
    const targets = (config.scrape_configs as Doc[]).flatMap((job) => (job.static_configs as Doc[]).flatMap((c) => c.targets as string[]));
    expect(targets.sort()).toEqual(REPLICAS.map((r) => `${r}:9464`));
  });

  it('takes the images and the token from the environment', () => {
    const doc = accepted(CLUSTER_FILE, { ETCD_IMAGE: 'tcpkv/etcd:local', NODE_IMAGE: 'tcpkv/node-base:local', TCPKV_SHUTDOWN_TOKEN: 'other' });
    expect(doc.services.etcd2.image).toBe('tcpkv/etcd:local');
    expect(doc.services.tcpkv3.build.args.NODE_IMAGE).toBe('tcpkv/node-base:local');
    expect(doc.services.client.environment.TCPKV_SHUTDOWN_TOKEN).toBe('other');
    expect(doc.services.client.command).not.toContain('other');
    expect(doc.services.tcpkv1.environment.TCPKV_SHUTDOWN_TOKEN).toBe('other');
  });
});

describe('infra/cluster/vm.compose.yml (one machine, for a trial)', () => {
  const example = () => exampleSettings('infra/cluster/.env.example');

  it('has no version: key; .env.example sets the required settings', () => {
    expect(parseYaml(readFileSync(VM_FILE, 'utf8')) as Doc).not.toHaveProperty('version');
    for (const name of VM_REQUIRED) expect(example()[name], name).toBeTruthy();
  });

  it('is accepted with the example settings: etcd stays inside Docker, the replicas are published on 10001-10003', () => {
    const doc = accepted(VM_FILE, example());
    expect(Object.keys(doc.services).sort()).toEqual([...MEMBERS, ...REPLICAS].sort());
    for (const [name, service] of Object.entries(doc.services as Record<string, Doc>)) expectHardened(name, service);
    for (const m of MEMBERS) {
      const s = doc.services[m] as Doc;
      expect(s.ports, `${m} must not be published`).toBeUndefined();
      expect(s.restart).toBe('unless-stopped');
      expect(command(s)).toContain(`--advertise-client-urls=http://${m}:2379`);
      expect(s.volumes).toEqual([`${m}-data:/var/lib/etcd:rw`]);
    }
    REPLICAS.forEach((r, i) => {
      const s = doc.services[r] as Doc;
      const env = s.environment as Record<string, string>;
      expect(s.ports).toEqual([expect.objectContaining({ target: 10000, published: 10001 + i })]);
      expect(s.restart).toBe('unless-stopped');
      expect(s.image).toBe('tcpkv/server:local');
      expect(env).toMatchObject({ TCPKV_BIND: '0.0.0.0', TCPKV_DATA_DIR: '', TCPKV_ETCD_ENDPOINTS: 'http://etcd1:2379,http://etcd2:2379,http://etcd3:2379' });
      expect(env.TCPKV_ALLOWED_HOSTS).toBe(example().TCPKV_ALLOWED_HOSTS);
      expect(env.TCPKV_ALLOWED_CLIENTS!.split(',')).toEqual(expect.arrayContaining(['127.0.0.1', ...example().TCPKV_ALLOWED_CLIENTS!.split(',')]));
      expect(env.TCPKV_SHUTDOWN_TOKEN).toBe(example().TCPKV_SHUTDOWN_TOKEN);
      expectStopBudget(s);
    });
  });

  it.each(VM_REQUIRED)('fails loudly without %s, naming it', (name) => {
    const s = example();
    delete s[name];
    const r = composeConfig(VM_FILE, s);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`set ${name} to`);
  });
});

describe('infra/cluster/node.compose.yml (one of three machines)', () => {
  const example = () => exampleSettings('infra/cluster/node.env.example');

  it('has no version: key; node.env.example sets the required settings', () => {
    expect(parseYaml(readFileSync(NODE_FILE, 'utf8')) as Doc).not.toHaveProperty('version');
    for (const name of NODE_REQUIRED) expect(example()[name], name).toBeTruthy();
  });

  it('is accepted with the example settings: etcd published on the private address only, the replica given all three members', () => {
    const s = example();
    const doc = accepted(NODE_FILE, s);
    const etcd = doc.services.etcd as Doc;
    expect(command(etcd)).toContain(`--name=${s.ETCD_NAME} `);
    expect(command(etcd)).toContain(`--advertise-client-urls=http://${s.NODE_PRIVATE_IP}:2379`);
    expect(command(etcd)).toContain(`--initial-advertise-peer-urls=http://${s.NODE_PRIVATE_IP}:2380`);
    expect(command(etcd)).toContain(`--initial-cluster=${s.ETCD_INITIAL_CLUSTER}`);
    expect(command(etcd)).toContain('--initial-cluster-state=new');
    expect(etcd.ports).toEqual([`${s.NODE_PRIVATE_IP}:2379:2379/tcp`, `${s.NODE_PRIVATE_IP}:2380:2380/tcp`]);
    expect(s.ETCD_INITIAL_CLUSTER!.split(',')).toHaveLength(3);
    expect(s.ETCD_INITIAL_CLUSTER).toContain(`${s.ETCD_NAME}=http://${s.NODE_PRIVATE_IP}:2380`);
    const tcpkv = doc.services.tcpkv as Doc;
    expect(tcpkv.environment).toMatchObject({ TCPKV_BIND: '0.0.0.0', TCPKV_DATA_DIR: '', TCPKV_ETCD_ENDPOINTS: s.TCPKV_ETCD_ENDPOINTS });
    expect(s.TCPKV_ETCD_ENDPOINTS!.split(',')).toHaveLength(3);
    // the data port everywhere allowed; the admin port on the private address only
    expect(tcpkv.ports).toEqual([
      expect.objectContaining({ target: 10000, published: 10000 }),
      `${s.NODE_PRIVATE_IP}:9464:9464/tcp`,
    ]);
    expect(tcpkv.restart).toBe('unless-stopped');
    expectHardened('etcd', etcd);
    expectHardened('tcpkv', tcpkv);
    expectStopBudget(tcpkv);
  });

  it('joins an existing cluster when told (replacing a dead member)', () => {
    const doc = accepted(NODE_FILE, { ...example(), ETCD_INITIAL_CLUSTER_STATE: 'existing' });
    expect(command(doc.services.etcd)).toContain('--initial-cluster-state=existing');
  });

  it.each(NODE_REQUIRED)('fails loudly without %s, naming it', (name) => {
    const s = example();
    delete s[name];
    const r = composeConfig(NODE_FILE, s);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`set ${name} to`);
  });
});
