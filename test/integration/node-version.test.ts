// Both programs refuse a Node.js line tcpkv does not support with one line and exit 2, before reading
// any setting; the supported lines start. The old line is played by overriding `process.version` in a
// preload, so the real entry points run on whatever Node.js runs the suite.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { nodeVersionProblem } from '../../services/common/node-version.js';
import { CLIENT_BIN, SERVER_BIN } from '../support/net.js';

const run = promisify(execFile);

function pretend(version: string): string {
  const code = `Object.defineProperty(process, 'version', { value: ${JSON.stringify(version)} });`;
  return `data:text/javascript,${encodeURIComponent(code)}`;
}

async function runAs(version: string, bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', pretend(version), bin, ...args], { env: { PATH: process.env.PATH ?? '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('supported Node.js lines', () => {
  it.each([
    ['v20.20.2', false],
    ['v22.11.0', false],
    ['v23.9.0', false],
    ['v18.0.0', false],
    ['v22.12.0', true],
    ['v22.20.1', true],
    ['v24.0.0', true],
    ['v25.1.0', true],
  ])('%s supported: %s', (version, supported) => {
    expect(nodeVersionProblem(version) === undefined).toBe(supported);
  });

  it.each([
    ['tcpkv-server', SERVER_BIN],
    ['tcpkv-client', CLIENT_BIN],
  ])('%s on Node 20: one line naming the versions, exit 2', async (program, bin) => {
    const result = await runAs('v20.20.2', bin, ['--version']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`${program}: Node.js v20.20.2 is not supported: tcpkv needs Node.js 22.12 or newer (22 or 24 LTS)\n`);
  });

  it.each([SERVER_BIN, CLIENT_BIN])('%s on a supported line starts', async (bin) => {
    const result = await runAs('v24.1.0', bin, ['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
