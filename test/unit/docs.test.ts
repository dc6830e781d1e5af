// The README is what a newcomer reads first: short, starting with the two commands. Every error code
// is documented in docs/errors.md with its status, and nothing documented there is missing from the
// code (both ways, as fastify checks its FST_ERR_* codes). The
// settings are checked against docs/configuration.md by configuration-doc.test.ts, and every command,
// path and link of the README and docs/ by test/infra/readme.test.ts.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StartupErrors } from '../../services/common/errors.js';
import { ClientErrors, ProtocolErrors } from '../../services/protocol/errors.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const errors = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const clientSection = errors.indexOf('## Client error codes');
const serverRows = errors.slice(0, clientSection).split('\n').filter((l) => l.startsWith('| `'));
const startupSection = errors.indexOf('## Start-up error codes');
const clientRows = errors.slice(clientSection, startupSection).split('\n').filter((l) => l.startsWith('| `'));
const startupRows = errors.slice(startupSection).split('\n').filter((l) => l.startsWith('| `'));
const codeOf = (row: string) => /^\| `([A-Z0-9_]+)` \|/.exec(row)?.[1];

describe('README', () => {
  it('is under 10 KB', () => {
    expect(Buffer.byteLength(readme)).toBeLessThan(10 * 1024);
  });

  it('starts with the two commands, and they exist', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    const commands = firstBlock.trim().split('\n').map((l) => l.split('#')[0]!.trim());
    expect(commands).toEqual(['scripts/demo.sh', 'scripts/test.sh']);
    for (const c of commands) expect(() => readFileSync(new URL(`../../${c}`, import.meta.url))).not.toThrow();
  });

  it('shows the client library in five lines, importing the package', () => {
    const ts = /```ts\n([\s\S]*?)```/.exec(readme)![1]!;
    const lines = ts.split('\n').filter((l) => l.trim() !== '');
    expect(lines.length).toBeLessThanOrEqual(5);
    expect(ts).toMatch(/from 'tcpkv'/);
  });
});

describe('docs/errors.md', () => {
  it.each(Object.entries(ProtocolErrors))('documents %s with its status (— when nothing is answered)', (code, spec) => {
    const row = serverRows.find((r) => codeOf(r) === code);
    expect(row, `${code} is missing from the first table of docs/errors.md`).toBeDefined();
    expect(row).toContain('answered' in spec && spec.answered === false ? '| — |' : `| ${spec.status} |`);
  });

  it.each(Object.entries(ClientErrors))('documents the client code %s with its exit status', (code, { status }) => {
    const row = clientRows.find((r) => codeOf(r) === code);
    expect(row, `${code} is missing from the client table of docs/errors.md`).toBeDefined();
    expect(row).toContain(`| ${status} |`);
  });

  it.each(Object.keys(StartupErrors))('documents the start-up code %s with exit status 2', (code) => {
    const row = startupRows.find((r) => codeOf(r) === code);
    expect(row, `${code} is missing from the start-up table of docs/errors.md`).toBeDefined();
    expect(row).toContain('| 2 |');
  });

  it('documents no code that does not exist', () => {
    expect(clientSection).toBeGreaterThan(0);
    expect(startupSection).toBeGreaterThan(clientSection);
    const documentedStartup = startupRows.map(codeOf);
    expect(documentedStartup.filter((c) => c === undefined || !(c in StartupErrors))).toEqual([]);
    expect(new Set(documentedStartup).size).toBe(documentedStartup.length);
    const documentedServer = serverRows.map(codeOf);
    const documentedClient = clientRows.map(codeOf);
    expect(documentedServer.filter((c) => c === undefined || !(c in ProtocolErrors))).toEqual([]);
    expect(documentedClient.filter((c) => c === undefined || !(c in ClientErrors))).toEqual([]);
    expect(new Set(documentedServer).size).toBe(documentedServer.length);
    expect(new Set(documentedClient).size).toBe(documentedClient.length);
  });
});
