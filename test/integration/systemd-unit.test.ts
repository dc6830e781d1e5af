// The systemd unit in infra/systemd: systemd's own checker accepts it (with ExecStart pointed at the
// built server), and what it promises holds for the real server run the way the unit runs it: its
// Environment and EnvironmentFile settings are read, KillSignal is a graceful stop with exit 0 (the
// acknowledged writes are in the log), and RestartPreventExitStatus is the status of a bad setting.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ROOT, runClient, SERVER_BIN, spawnServer } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';

const run = promisify(execFile);
const UNIT_FILE = join(ROOT, 'infra/systemd/tcpkv-server.service');
const tempDir = useTempDirs();

/** `Key=value` lines of one section; a key given twice keeps every value, in order. */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (current !== name) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

const unit = readFileSync(UNIT_FILE, 'utf8');
const service = section(unit, 'Service');
const one = (key: string) => service.get(key)?.[0];

describe('infra/systemd/tcpkv-server.service', () => {
  it('passes systemd-analyze verify with nothing to say', async () => {
    expect(existsSync('/usr/bin/systemd-analyze'), 'systemd-analyze is part of the CI machine (systemd)').toBe(true);
    const dir = tempDir('tcpkv-unit-');
    const local = join(dir, 'tcpkv-server.service');
    writeFileSync(local, unit.replace(/^ExecStart=.*$/m, `ExecStart=${process.execPath} ${SERVER_BIN}`));
    const { stdout, stderr } = await run('systemd-analyze', ['verify', local]);
    expect(stdout + stderr).toBe('');
    // the checker does speak up about a broken line: the test above can fail
    writeFileSync(local, unit.replace('Type=exec', 'Type=bogus').replace(/^ExecStart=.*$/m, `ExecStart=${process.execPath} ${SERVER_BIN}`));
    const broken = await run('systemd-analyze', ['verify', local]);
    expect(broken.stdout + broken.stderr).toContain('bogus');
  });

  it('runs the server as the unit does: its environment, a graceful KillSignal, a data dir that survives', async () => {
    expect(one('ExecStart')).toBe('/usr/local/bin/tcpkv-server');
    expect(one('StateDirectory')).toBe('tcpkv');
    const environment = Object.fromEntries((service.get('Environment') ?? []).map((e) => e.split('=', 2) as [string, string]));
    expect(environment['TCPKV_DATA_DIR']).toBe('/var/lib/tcpkv'); // = /var/lib/<StateDirectory>
    // the unit's environment, with the state directory in a temp dir
    const env = { ...environment, TCPKV_DATA_DIR: tempDir('tcpkv-state-') };
    const first = await spawnServer(env);
    const put = await runClient(['--server', `127.0.0.1:${first.port}`, 'put', 'k', 'v']);
    expect(put.code).toBe(0);
    first.kill(one('KillSignal') as NodeJS.Signals);
    expect(await first.exited).toBe(0);
    const second = await spawnServer(env);
    const get = await runClient(['--server', `127.0.0.1:${second.port}`, 'get', 'k']);
    expect(get.stdout.trim().split('\n').at(-1)).toBe('v');
    second.kill('SIGTERM');
    await second.exited;
  });

  it('does not restart a configuration error: RestartPreventExitStatus is the bad-setting exit status', async () => {
    expect(one('Restart')).toBe('on-failure');
    const prevent = Number(one('RestartPreventExitStatus'));
    const result = await run(process.execPath, [SERVER_BIN, '--port', 'not-a-port'], { env: { PATH: process.env.PATH ?? '' } }).catch((e: { code: number }) => e);
    expect((result as { code: number }).code).toBe(prevent);
  });
});
