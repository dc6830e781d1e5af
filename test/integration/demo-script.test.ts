// scripts/demo.sh on a machine that already has Docker and Compose but no apt-get (Docker Desktop on
// macOS, Fedora): it must start the compose demo and install nothing. The machine is simulated with a
// PATH holding only recording `docker` / `docker-compose` stand-ins and the few ordinary tools the
// scripts use — no apt-get, dpkg or sudo — so any attempt to install would fail and show in the record.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT } from '../support/net.js';

const TOOLS = ['bash', 'sh', 'env', 'dirname', 'id', 'sleep', 'cat', 'sed', 'grep', 'timeout', 'pgrep', 'tail', 'seq', 'mkdir', 'rm'];

let dir: string;
let bin: string;
let record: string;

function which(tool: string): string {
  for (const d of ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin']) if (existsSync(join(d, tool))) return join(d, tool);
  throw new Error(`no ${tool} on this machine`);
}

/** A recording stand-in: appends its name and arguments to the record, then runs `body`. */
function shim(name: string, body: string) {
  const path = join(bin, name);
  rmSync(path, { force: true }); // a link to the real tool: replace the link, never write through it
  writeFileSync(path, `#!${which('bash')}\necho "${name} $*" >>"${record}"\n${body}\n`);
  chmodSync(path, 0o755);
}

function runDemo(env: Record<string, string> = {}) {
  const r = spawnSync(which('bash'), [join(ROOT, 'scripts', 'demo.sh')], {
    env: { PATH: bin, HOME: dir, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const calls = existsSync(record) ? readFileSync(record, 'utf8').trim().split('\n') : [];
  return { status: r.status, stderr: r.stderr, stdout: r.stdout, calls };
}

const INSTALLERS = /^(apt-get|apt|dpkg|sudo|brew|dnf|yum|curl|wget|dockerd|systemctl|service)\b/;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tcpkv-demo-shim-'));
  bin = join(dir, 'bin');
  record = join(dir, 'calls.log');
  mkdirSync(bin);
  for (const tool of TOOLS) symlinkSync(which(tool), join(bin, tool));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('scripts/demo.sh with Docker already there and no apt-get', () => {
  it('Compose v2 (`docker compose`): runs the demo with it and installs nothing', () => {
    // docker info answers, the plugin answers, the official Node image is present (no pull, no offline build)
    shim('docker', 'case "$1" in info) [ "${2:-}" = --format ] && echo 27.3.1; exit 0 ;; *) exit 0 ;; esac');
    const r = runDemo();
    expect(r.stderr).not.toMatch(/command not found/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.calls).toContain('docker compose up --build --abort-on-container-exit --exit-code-from client');
    expect(r.calls.filter((c) => INSTALLERS.test(c))).toEqual([]);
    expect(r.calls.some((c) => c.startsWith('docker pull') || c.startsWith('docker build'))).toBe(false);
  });

  it('Compose v1 (`docker-compose`) when the v2 plugin is absent; the demo exit status is the client one', () => {
    shim('docker', 'case "$1" in info) [ "${2:-}" = --format ] && echo 20.10.24; exit 0 ;; compose) echo "unknown command: compose" >&2; exit 1 ;; *) exit 0 ;; esac');
    shim('docker-compose', 'case "$1" in up) exit 7 ;; *) exit 0 ;; esac');
    const r = runDemo();
    expect(r.status, r.stderr).toBe(7);
    expect(r.calls).toContain('docker-compose up --build --abort-on-container-exit --exit-code-from client');
    expect(r.calls.filter((c) => INSTALLERS.test(c))).toEqual([]);
  });

  it('no Docker at all, not Debian with root: a clear message, exit 1, nothing attempted', () => {
    const r = runDemo();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/missing: docker\.io docker-compose — install them \(Docker Engine or Docker Desktop, with Compose\)/);
    expect(r.calls).toEqual([]);
  });

  it('a daemon that is still starting is waited for, not raced by a second dockerd', () => {
    // `docker info` fails twice (the daemon is starting), then answers; a dockerd process exists
    const counter = join(dir, 'info-count');
    shim(
      'docker',
      `case "$1" in info) n=$(cat "${counter}" 2>/dev/null || echo 0); echo $((n+1)) >"${counter}"; [ "$n" -ge 2 ] || exit 1; [ "\${2:-}" = --format ] && echo 27.3.1; exit 0 ;; *) exit 0 ;; esac`,
    );
    shim('pgrep', '[ "$*" = "-x dockerd" ]');
    const r = runDemo();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/dockerd is running but does not answer yet: waiting for it/);
    expect(r.calls.filter((c) => INSTALLERS.test(c))).toEqual([]);
    expect(r.calls).toContain('docker compose up --build --abort-on-container-exit --exit-code-from client');
  });
});
