// The README is what a newcomer reads first: short, starting with the two commands. Every error code
// is documented in docs/errors.md with its status (as fastify checks its FST_ERR_* codes). The
// settings are checked against docs/configuration.md by configuration-doc.test.ts, and every command,
// path and link of the README and docs/ by test/infra/readme.test.ts.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProtocolErrors } from '../../services/protocol/errors.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const errors = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const rows = errors.split('\n').filter((l) => l.startsWith('| `'));

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
  it.each(Object.entries(ProtocolErrors))('documents %s with its status', (code, { status }) => {
    const row = rows.find((r) => r.startsWith(`| \`${code}\` |`));
    expect(row, `${code} is missing from docs/errors.md`).toBeDefined();
    expect(row).toContain(`| ${status} |`);
  });
});
