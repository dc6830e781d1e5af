// The import graph of services/ is a clean stack (docs/design.md): services/common and
// services/protocol at the bottom, importing neither program; tcpkv-server (services/server) and
// tcpkv-client (services/client) beside each other, with no import between them; no import cycle.
// madge reads the graph (type-only imports included); the same check run on a small tree with a cycle
// and a cross-program import must find both, so this test can fail.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/net.js';

interface MadgeResult {
  obj(): Record<string, string[]>;
  circular(): string[][];
}
type Madge = (path: string, config: Record<string, unknown>) => Promise<MadgeResult>;
const madge = createRequire(import.meta.url)('madge') as Madge;

/** What is under services/: common, protocol, server or client. */
const layerOf = (file: string) => file.split('/')[0]!;
/** Which layers each layer may import (itself always). */
const ALLOWED: Record<string, readonly string[]> = {
  common: [],
  protocol: ['common'],
  server: ['common', 'protocol'],
  client: ['common', 'protocol'],
};

/** Cycles and forbidden imports among the .ts files under `dir` (paths relative to it). */
async function importProblems(dir: string): Promise<string[]> {
  const result = await madge(dir, { fileExtensions: ['ts'], tsConfig: join(ROOT, 'tsconfig.json'), detectiveOptions: { ts: { skipTypeImports: false }, es6: { skipTypeImports: false } } });
  const problems = result.circular().map((cycle) => `cycle: ${[...cycle, cycle[0]].join(' → ')}`);
  for (const [file, imports] of Object.entries(result.obj())) {
    for (const imported of imports) {
      const from = layerOf(file);
      const to = layerOf(imported);
      if (from !== to && !(ALLOWED[from] ?? []).includes(to)) problems.push(`${file} imports ${imported}: ${from} must not import ${to}`);
    }
  }
  return problems;
}

const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('the import graph of services/', () => {
  it('has no cycle and no import between the programs; common and protocol import neither', async () => {
    const problems = await importProblems(join(ROOT, 'services'));
    expect(problems).toEqual([]);
  });

  it('the check finds a cycle and a cross-program import when there are some (negative control)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tcpkv-imports-'));
    scratch.push(dir);
    const files: Record<string, string> = {
      'server/main.ts': "import { b } from './b.js';\nimport { names } from '../client/names.js';\nexport const a = b + names;\n",
      'server/b.ts': "import { a } from './main.js';\nexport const b = String(a);\n",
      'client/names.ts': "export const names = 'x';\n",
      'common/base.ts': "import type { a } from '../server/main.js';\nexport type A = typeof a;\n",
    };
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    }
    const problems = await importProblems(dir);
    expect(problems.some((p) => p.startsWith('cycle:') && p.includes('server/main.ts') && p.includes('server/b.ts'))).toBe(true);
    expect(problems).toContain('server/main.ts imports client/names.ts: server must not import client');
    expect(problems).toContain('common/base.ts imports server/main.ts: common must not import server');
  });
});
