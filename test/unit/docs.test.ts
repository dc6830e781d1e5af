// The README is part of the contract: every error code and every setting must be documented there
// (as fastify checks its FST_ERR_* codes), with the default the code actually uses.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProtocolErrors } from '../../services/protocol/errors.js';
import { serverSettings } from '../../services/server/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const rows = readme.split('\n').filter((l) => l.startsWith('| `'));

describe('README', () => {
  it.each(Object.entries(ProtocolErrors))('documents %s with its status', (code, { status }) => {
    const row = rows.find((r) => r.startsWith(`| \`${code}\` |`));
    expect(row, `${code} is missing from the README's error table`).toBeDefined();
    expect(row).toContain(`| ${status} |`);
  });

  it.each(Object.values(serverSettings).map((s) => [s.env, s]))('documents %s with its flag and default', (env, s) => {
    const row = rows.find((r) => r.startsWith(`| \`${env}\` |`));
    expect(row, `${env} is missing from the README's configuration table`).toBeDefined();
    expect(row).toContain(`\`--${s.flag}\``);
    expect(row).toContain(s.default === undefined ? 'unset' : `\`${s.default}\``);
  });

  it('starts with the two commands, and they exist', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    const commands = firstBlock.trim().split('\n').map((l) => l.split('#')[0]!.trim());
    expect(commands).toEqual(['scripts/demo.sh', 'scripts/test.sh']);
    for (const c of commands) expect(() => readFileSync(new URL(`../../${c}`, import.meta.url))).not.toThrow();
  });
});
