// infra/remote/start-server.sh's decisions, with a recording `docker` stand-in on PATH (the real
// Docker runs in test/infra/start-server.test.ts): settings files read literally, the example token
// refused, new settings tried before the running server is touched, a taken port refused, and the last
// good settings started again when the replacement does not become healthy.

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ROOT } from '../support/net.js';

const SCRIPT = join(ROOT, 'infra', 'remote', 'start-server.sh');

let dir: string;
let record: string;
/** the recipe's TLS files (TLS is on by default), made once the way deploy-ssh.sh makes them */
let tlsDir: string;

// docker compose … : `ps -q server` names the running server (main1), `run -d --name N` makes the
// trial, `up` records the settings it was given. docker inspect answers from SHIM_HEALTH_<name>.
const DOCKER = `#!/bin/bash
rec() { echo "$*" >>"$SHIM_RECORD"; }
if [ "$1" = compose ]; then
  shift
  [ "$1" = version ] && exit 0
  while [ "\${1#-}" != "$1" ]; do shift 2; done
  case "$1" in
    up) rec "up hosts=[$TCPKV_ALLOWED_HOSTS] clients=[$TCPKV_ALLOWED_CLIENTS] token=[$TCPKV_SHUTDOWN_TOKEN]"; n=$(cat "$SHIM_DIR/ups" 2>/dev/null || echo 0); echo $((n+1)) >"$SHIM_DIR/ups"; exit 0 ;;
    run) rec "trial hosts=[$TCPKV_ALLOWED_HOSTS] clients=[$TCPKV_ALLOWED_CLIENTS]"; exit 0 ;;
    ps) echo main1; exit 0 ;;
    *) rec "compose $1"; exit 0 ;;
  esac
fi
case "$1" in
  inspect)
    name="\${@: -1}"
    if [ "$name" = main1 ]; then
      n=$(cat "$SHIM_DIR/ups" 2>/dev/null || echo 0)
      v="SHIM_HEALTH_main_$n"; echo "\${!v:-healthy}"
    else
      echo "\${SHIM_HEALTH_trial:-healthy}"
    fi ;;
  ps) echo "\${SHIM_PORT_HOLDER:-}" ;;
  logs) echo "(logs of $2)" ;;
  *) exit 0 ;;
esac
`;

function run(settings: string[], env: Record<string, string> = {}, args: string[] = []) {
  const file = join(dir, 'server.env');
  writeFileSync(file, settings.join('\n') + '\n');
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TCPKV_')));
  const r = spawnSync('bash', [SCRIPT, '--env-file', file, ...args], {
    env: {
      ...clean,
      PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
      SHIM_RECORD: record,
      SHIM_DIR: dir,
      TCPKV_COMPOSE_PROJECT: 'shimproject',
      TCPKV_LAST_GOOD_SETTINGS: join(dir, 'last-good.env'),
      TCPKV_TLS_DIR: tlsDir,
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const calls = existsSync(record) ? readFileSync(record, 'utf8').trim().split('\n') : [];
  return { status: r.status, out: `${r.stdout}${r.stderr}`, calls };
}

const GOOD = ['TCPKV_ALLOWED_HOSTS=203.0.113.10', 'TCPKV_ALLOWED_CLIENTS=198.51.100.7/32', 'TCPKV_SHUTDOWN_TOKEN=0123456789abcdef0123', 'TCPKV_PUBLISH=127.0.0.1:'];

beforeAll(() => {
  tlsDir = join(mkdtempSync(join(tmpdir(), 'tcpkv-start-tls-')), 'tls');
  execFileSync(join(ROOT, 'infra', 'remote', 'make-certs.sh'), [tlsDir, '127.0.0.1'], { stdio: 'ignore' });
});
afterAll(() => rmSync(join(tlsDir, '..'), { recursive: true, force: true }));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tcpkv-start-shim-'));
  record = join(dir, 'calls.log');
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'docker'), DOCKER);
  chmodSync(join(dir, 'bin', 'docker'), 0o755);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('infra/remote/start-server.sh settings and replacement', () => {
  it('reads the settings file literally: spaces after commas and $ stay as written, nothing runs', () => {
    const marker = join(dir, 'ran');
    const r = run([
      '# a comment',
      '',
      'TCPKV_ALLOWED_HOSTS=127.0.0.1, localhost',
      'TCPKV_ALLOWED_CLIENTS=198.51.100.7/32',
      `TCPKV_SHUTDOWN_TOKEN=a$HOME$(touch ${marker})\`touch ${marker}\`b`,
      'TCPKV_PUBLISH=127.0.0.1:',
    ]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).not.toMatch(/command not found/);
    expect(existsSync(marker)).toBe(false);
    expect(r.calls).toContain(`up hosts=[127.0.0.1, localhost] clients=[198.51.100.7/32] token=[a$HOME$(touch ${marker})\`touch ${marker}\`b]`);
  });

  it('a line that is not NAME=value is an error naming the line, before Docker is asked anything', () => {
    const r = run([...GOOD, 'export TCPKV_LOG_LEVEL=debug']);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/line 5 is not NAME=value: export TCPKV_LOG_LEVEL=debug/);
    expect(r.calls).toEqual([]);
  });

  it.each(['change-me-to-a-long-random-string', 'replace-with-the-output-of-openssl-rand-hex-24'])('refuses the example token %s', (token) => {
    const settings = [...GOOD.filter((l) => !l.startsWith('TCPKV_SHUTDOWN_TOKEN')), `TCPKV_SHUTDOWN_TOKEN=${token}`];
    const r = run(settings);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/TCPKV_SHUTDOWN_TOKEN is still the example value/);
    expect(r.calls).toEqual([]);
    const check = run(settings, {}, ['--check']);
    expect(check.status).toBe(1);
    expect(check.out).toMatch(/TCPKV_SHUTDOWN_TOKEN is still the example value/);
    expect(run(GOOD, {}, ['--check']).out).toMatch(/settings are usable/);
  });

  it('settings whose trial does not become healthy never replace the running server', () => {
    const r = run(GOOD, { SHIM_HEALTH_trial: 'exited' });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/these settings do not give a healthy server .* the running server \(if any\) is unchanged/);
    expect(r.calls.some((c) => c.startsWith('trial '))).toBe(true);
    expect(r.calls.some((c) => c.startsWith('up '))).toBe(false);
  });

  it('a host port published by another container: refused, the running server untouched', () => {
    const r = run([...GOOD.filter((l) => !l.startsWith('TCPKV_PUBLISH')), 'TCPKV_PUBLISH=10999'], { SHIM_PORT_HOLDER: 'other999' });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/port 10999 is already published by container other999/);
    expect(r.calls.some((c) => c.startsWith('up '))).toBe(false);
  });

  it('a replacement that does not become healthy: the last good settings are started again', () => {
    expect(run(GOOD).status).toBe(0); // healthy: remembered as the last good settings
    rmSync(record);
    const newer = GOOD.map((l) => (l.startsWith('TCPKV_ALLOWED_HOSTS') ? 'TCPKV_ALLOWED_HOSTS=203.0.113.99' : l));
    // the trial is healthy, but the replacement (2nd up) is not; the 3rd up (the old settings) is
    const r = run(newer, { SHIM_HEALTH_main_2: 'unhealthy' });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/starting it again with the last settings that worked/);
    const ups = r.calls.filter((c) => c.startsWith('up '));
    expect(ups).toHaveLength(2);
    expect(ups[0]).toContain('hosts=[203.0.113.99]');
    expect(ups[1]).toContain('hosts=[203.0.113.10]');
  });
});
