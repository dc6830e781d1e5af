// `docker-compose config` (Debian's v1.29.2; the files have no `version:` key,
// so Compose v2 reads them too) accepts infra/remote/*.compose.yml with sample settings, and a missing
// required setting fails loudly with its message. A missing docker-compose is a failure, not a skip.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { clientComposeFile, remoteDir, repoRoot, serverComposeFile } from './lib/paths.js';

const REQUIRED_SERVER = ['TCPKV_ALLOWED_HOSTS', 'TCPKV_ALLOWED_CLIENTS', 'TCPKV_SHUTDOWN_TOKEN'];

/* eslint-disable @typescript-eslint/no-explicit-any -- compose's YAML is untyped */
type Doc = Record<string, any>;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tcpkv-compose-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `docker-compose --env-file <file with settings> -f <file> config`, in an environment without TCPKV_*. */
function composeConfig(file: string, settings: Record<string, string>) {
  const envFile = join(dir, `settings-${Math.random().toString(36).slice(2)}.env`);
  writeFileSync(envFile, Object.entries(settings).map(([k, v]) => `${k}=${v}\n`).join(''));
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TCPKV_') && k !== 'NODE_IMAGE' && !k.startsWith('COMPOSE_')),
  );
  const r = spawnSync('docker-compose', ['--env-file', envFile, '-f', file, 'config'], { encoding: 'utf8', env, cwd: repoRoot, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

/** The settings of infra/remote/.env.example (KEY=value lines). */
function exampleSettings(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(remoteDir, '.env.example'), 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

describe('docker-compose', () => {
  it('is installed (Debian: apt-get install -y docker-compose)', () => {
    const r = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
    expect(r.error, 'docker-compose is missing').toBeUndefined();
    expect(r.status).toBe(0);
  });
});

describe('infra/remote/server.compose.yml', () => {
  it('has no version: key (Compose Specification format, read by v1.27+ and v2)', () => {
    const raw = parseYaml(readFileSync(serverComposeFile, 'utf8')) as Doc;
    expect(raw).not.toHaveProperty('version');
  });

  it('infra/remote/.env.example sets exactly the required settings', () => {
    const s = exampleSettings();
    for (const name of REQUIRED_SERVER) expect(s[name], name).toBeTruthy();
  });

  it('is accepted by docker-compose config with the example settings, with the VM recipe in it', () => {
    const r = composeConfig(serverComposeFile, exampleSettings());
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const server = (parseYaml(r.stdout) as Doc).services.server as Doc;
    const env = server.environment as Record<string, string>;
    const s = exampleSettings();
    expect(env['TCPKV_BIND']).toBe('0.0.0.0');
    expect(env['TCPKV_ALLOWED_HOSTS']).toBe(s['TCPKV_ALLOWED_HOSTS']);
    expect(env['TCPKV_ALLOWED_CLIENTS']!.split(',')).toEqual(expect.arrayContaining(s['TCPKV_ALLOWED_CLIENTS']!.split(',')));
    expect(env['TCPKV_SHUTDOWN_TOKEN']).toBe(s['TCPKV_SHUTDOWN_TOKEN']);
    expect(env['TCPKV_DATA_DIR']).toBe('/data');
    expect(server.restart).toBe('unless-stopped');
    // no release has been published: the default is the image built from this checkout
    expect(server.image).toBe('tcpkv/server:local');
    expect(server.build).toMatchObject({ context: repoRoot, dockerfile: 'Dockerfile.server' });
    // TLS published on every address; the plain port on the VM's loopback only
    // (v1 prints a mapping with a host address in the short form)
    expect(server.ports).toEqual([expect.objectContaining({ target: 10443, published: 10443 }), '127.0.0.1:10000:10000/tcp']);
    expect(env['TCPKV_TLS_PORT']).toBe('10443');
    expect(env['TCPKV_TLS_BIND']).toBe('0.0.0.0');
    expect(env['TCPKV_TLS_CERT_FILE']).toBe('/tls/server.crt');
    expect(env['TCPKV_TLS_KEY_FILE']).toBe('/tls/server.key');
    expect(env['TCPKV_TLS_CLIENT_CA_FILE']).toBe('/tls/ca.crt');
    expect(server.volumes).toEqual([
      expect.stringMatching(/^tcpkv-data:\/data(:rw)?$/),
      `${join(remoteDir, 'tls')}:/tls:ro`,
    ]);
  });

  it('runs a given image instead when TCPKV_SERVER_IMAGE is set', () => {
    const r = composeConfig(serverComposeFile, { ...exampleSettings(), TCPKV_SERVER_IMAGE: 'registry.example/tcpkv-server:1.0' });
    expect(r.status).toBe(0);
    expect((parseYaml(r.stdout) as Doc).services.server.image).toBe('registry.example/tcpkv-server:1.0');
  });

  it.each(REQUIRED_SERVER)('fails loudly without %s, naming it', (name) => {
    const s = exampleSettings();
    delete s[name];
    const r = composeConfig(serverComposeFile, s);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`set ${name} to`);
  });
});

describe('infra/remote/client.compose.yml', () => {
  it('has no version: key', () => {
    expect(parseYaml(readFileSync(clientComposeFile, 'utf8')) as Doc).not.toHaveProperty('version');
  });

  it('is accepted by docker-compose config with TCPKV_SERVER, and runs the scenario by default', () => {
    const r = composeConfig(clientComposeFile, { TCPKV_SERVER: 'ec2-203-0-113-10.compute-1.amazonaws.com:10443', TCPKV_CLIENT_TLS_DIR: '/home/me/tls' });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const client = (parseYaml(r.stdout) as Doc).services.client as Doc;
    expect(client.environment.TCPKV_SERVER).toBe('ec2-203-0-113-10.compute-1.amazonaws.com:10443');
    // TLS with the client certificate, mounted read-only from the directory named
    expect(client.environment).toMatchObject({
      TCPKV_CLIENT_TLS: 'on',
      TCPKV_CLIENT_CA_FILE: '/tls/ca.crt',
      TCPKV_CLIENT_CERT_FILE: '/tls/client.crt',
      TCPKV_CLIENT_KEY_FILE: '/tls/client.key',
    });
    expect(client.volumes).toEqual(['/home/me/tls:/tls:ro']);
    expect(client.user).toBe('1000:1000');
    // no release has been published: the default is the image built from this checkout
    expect(client.image).toBe('tcpkv/client:local');
    expect(client.build).toMatchObject({ context: repoRoot, dockerfile: 'Dockerfile.client' });
    expect(client.command).toEqual(['scenario']);
  });

  it('fails loudly without TCPKV_SERVER', () => {
    const r = composeConfig(clientComposeFile, { TCPKV_CLIENT_TLS_DIR: '/home/me/tls' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('set TCPKV_SERVER to');
  });

  it('fails loudly without TCPKV_CLIENT_TLS_DIR (the client certificate)', () => {
    const r = composeConfig(clientComposeFile, { TCPKV_SERVER: 'vm.example.org:10443' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('set TCPKV_CLIENT_TLS_DIR to');
  });
});

describe('docker-compose.yml (the single-server demo)', () => {
  const file = join(repoRoot, 'docker-compose.yml');

  it('runs every service hardened, with /readyz as the health check and a stop budget over the graceful stop', () => {
    const r = spawnSync('docker-compose', ['-f', file, '--profile', 'monitoring', 'config'], { encoding: 'utf8', cwd: repoRoot, timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const services = (parseYaml(r.stdout) as Doc).services as Record<string, Doc>;
    expect(Object.keys(services).sort()).toEqual(['client', 'prometheus', 'server']);
    for (const [name, s] of Object.entries(services)) {
      expect(s.read_only, name).toBe(true);
      expect(s.tmpfs, name).toContain('/tmp');
      expect(s.cap_drop, name).toEqual(['ALL']);
      expect(s.security_opt, name).toEqual(['no-new-privileges:true']);
      expect(s.pids_limit, name).toBeGreaterThan(0);
      expect(s.mem_limit, name).toBeTruthy();
      expect(s.stop_grace_period, name).toMatch(/^\d+s$/);
    }
    expect(services.server!.healthcheck.test).toEqual(['CMD', '/usr/local/bin/tcpkv-healthcheck']);
    expect(Number(String(services.server!.stop_grace_period).replace(/s$/, ''))).toBeGreaterThan(8);
    expect(services.client!.depends_on).toEqual({ server: { condition: 'service_healthy' } });
    expect(services.prometheus!.ports).toEqual(['127.0.0.1:9090:9090/tcp']);
  });

  it('starts Prometheus only with the monitoring profile', () => {
    // (test/containers/compose.test.ts runs `up` without the profile, where prom/prometheus cannot be pulled)
    const r = spawnSync('docker-compose', ['-f', file, 'config'], { encoding: 'utf8', cwd: repoRoot, timeout: 60_000 });
    expect(r.status).toBe(0);
    const services = (parseYaml(r.stdout) as Doc).services as Record<string, Doc>;
    expect(services.prometheus!.profiles).toEqual(['monitoring']);
    expect(services.server!.profiles).toBeUndefined();
    expect(services.client!.profiles).toBeUndefined();
    const config = parseYaml(readFileSync(join(repoRoot, 'infra/prometheus/single.yml'), 'utf8')) as Doc;
    expect(config.scrape_configs[0].static_configs[0].targets).toEqual(['server:9464']);
  });
});
