// Issue 7, acceptance 2: shellcheck passes on every shell script of the repository and on the EC2
// bootstrap as Terraform renders it. A missing shellcheck is a failure, never a skip.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCloudInit, templatefileKeys } from './lib/cloud-init.js';
import { remoteDir, repoRoot, terraformDir } from './lib/paths.js';
import { loadModule } from './lib/terraform.js';

const SKIP_DIRS = new Set(['node_modules', '.git', 'dist', 'coverage', 'test-results', '.terraform']);
const SHELL_SHEBANG = /^#!\s*(?:\/usr\/bin\/env\s+)?(?:\/\S*\/)?(?:ba|da|k)?sh\b/;

/** *.sh files, plus extension-less files that start with a sh/bash shebang (e.g. .ci/run). */
function shellScripts(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) found.push(...shellScripts(path));
    } else if (entry.isFile()) {
      if (entry.name.endsWith('.sh')) found.push(path);
      else if (!entry.name.includes('.') && statSync(path).size < 1_000_000) {
        const head = readFileSync(path, 'utf8').slice(0, 100);
        if (SHELL_SHEBANG.test(head)) found.push(path);
      }
    }
  }
  return found.sort();
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, timeout: 60_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

function shellcheck(file: string) {
  // -x: follow `source`d files; the scripts themselves set any directives they need.
  return run('shellcheck', ['-x', '--severity=style', file]);
}

describe('shellcheck', () => {
  it('is installed (apt-get install -y shellcheck)', () => {
    const r = run('shellcheck', ['--version']);
    expect(r.error, 'shellcheck is missing: apt-get install -y shellcheck').toBeUndefined();
    expect(r.status).toBe(0);
  });

  const scripts = shellScripts(repoRoot);

  it('finds the infra scripts among the shell scripts', () => {
    const names = scripts.map((f) => relative(repoRoot, f));
    expect(names).toEqual(expect.arrayContaining(['infra/remote/deploy-ssh.sh', 'infra/remote/start-server.sh']));
  });

  it.each(scripts.map((f) => [relative(repoRoot, f), f]))('passes on %s', (_name, file) => {
    const r = shellcheck(file);
    expect(r.error, 'shellcheck is missing: apt-get install -y shellcheck').toBeUndefined();
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
  });

  describe('the EC2 bootstrap, rendered from templates/cloud-init.sh.tftpl with sample values', () => {
    let dir: string;
    let rendered: string;

    beforeAll(async () => {
      const m = await loadModule(terraformDir);
      rendered = join((dir = mkdtempSync(join(tmpdir(), 'tcpkv-cloud-init-'))), 'cloud-init.sh');
      writeFileSync(rendered, renderCloudInit(templatefileKeys(String(m.locals['user_data']))).text, { mode: 0o755 });
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('passes shellcheck', () => {
      const r = shellcheck(rendered);
      expect(r.error, 'shellcheck is missing: apt-get install -y shellcheck').toBeUndefined();
      expect(r.out).toBe('');
      expect(r.status).toBe(0);
    });

    it('parses with bash -n and is strict (set -euo pipefail)', () => {
      const r = run('bash', ['-n', rendered]);
      expect(r.out).toBe('');
      expect(r.status).toBe(0);
      expect(readFileSync(rendered, 'utf8')).toMatch(/^set -euo pipefail$/m);
    });

    it('decodes the values Terraform passes base64-encoded back to the originals', () => {
      const text = readFileSync(rendered, 'utf8');
      // Run only the decode() helper and the assignments, not the installation.
      const lines = text.split('\n');
      const decodeFn = lines.find((l) => l.startsWith('decode()'));
      const assignments = lines.filter((l) => /^[A-Z_]+="\$\(decode '[A-Za-z0-9+/=]*'\)"$/.test(l));
      expect(decodeFn).toBeDefined();
      expect(assignments.length).toBeGreaterThanOrEqual(5);
      const script = ['set -euo pipefail', decodeFn!, ...assignments, 'printf "%s|%s|%s\\n" "$ALLOWED_CLIENTS" "$KNOWN_HOSTS" "$SHUTDOWN_TOKEN"'].join('\n');
      const r = run('bash', ['-c', script]);
      expect(r.status, r.out).toBe(0);
      expect(r.out.trim()).toBe('198.51.100.7/32,2001:db8::/64|203.0.113.10,ec2-203-0-113-10.compute-1.amazonaws.com|sample-token-0123456789abcdef');
    });
  });
});

describe('the infra/remote scripts fail early and clearly, before touching Docker or a network', () => {
  const deploy = join(remoteDir, 'deploy-ssh.sh');
  const start = join(remoteDir, 'start-server.sh');
  const env = { ...process.env, PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tcpkv-remote-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('both print their usage with --help (exit 0)', () => {
    for (const script of [deploy, start]) {
      const r = run(script, ['--help'], env);
      expect(r.status, script).toBe(0);
      expect(r.out).toMatch(/^Usage: infra\/remote\/[\w-]+\.sh/);
    }
  });

  it('deploy-ssh.sh without USER@HOST, or with an unknown option, prints usage and exits 2', () => {
    expect(run(deploy, [], env)).toMatchObject({ status: 2, out: expect.stringMatching(/Usage:/) });
    expect(run(deploy, ['--nope', 'x@y'], env)).toMatchObject({ status: 2, out: expect.stringMatching(/unknown option/) });
  });

  it('deploy-ssh.sh refuses a settings file without the required values, or with the example token', () => {
    const partial = join(dir, 'partial.env');
    writeFileSync(partial, 'TCPKV_ALLOWED_HOSTS=203.0.113.10\nTCPKV_SHUTDOWN_TOKEN=abcdefabcdefabcdef\n');
    const r1 = run(deploy, ['--env-file', partial, 'nobody@127.0.0.1'], env);
    expect(r1.status).toBe(1);
    expect(r1.out).toContain('TCPKV_ALLOWED_CLIENTS is not set');
    const r2 = run(deploy, ['--env-file', join(remoteDir, '.env.example'), 'nobody@127.0.0.1'], env);
    expect(r2.status).toBe(1);
    expect(r2.out).toContain('TCPKV_SHUTDOWN_TOKEN is still the example value');
  });

  it('start-server.sh names a missing required setting, and refuses * as client list', () => {
    const partial = join(dir, 'partial.env');
    writeFileSync(partial, 'TCPKV_ALLOWED_HOSTS=203.0.113.10\nTCPKV_ALLOWED_CLIENTS=198.51.100.7/32\n');
    const clean = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('TCPKV_')));
    const r1 = run(start, ['--env-file', partial], clean);
    expect(r1.status).toBe(1);
    expect(r1.out).toContain('TCPKV_SHUTDOWN_TOKEN is not set');
    const star = join(dir, 'star.env');
    writeFileSync(star, 'TCPKV_ALLOWED_HOSTS=a\nTCPKV_ALLOWED_CLIENTS=*\nTCPKV_SHUTDOWN_TOKEN=abcdefabcdefabcdef\n');
    const r2 = run(start, ['--env-file', star], clean);
    expect(r2.status).toBe(1);
    expect(r2.out).toContain('TCPKV_ALLOWED_CLIENTS cannot be *');
  });
});
