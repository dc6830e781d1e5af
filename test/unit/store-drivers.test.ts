// The store drivers (services/server/store/drivers.ts) and docs/store.md's "Adding a store": every
// driver file is in the one list, nothing else in services/ imports a driver, and the example driver
// (SQLite) is named by exactly the files the walk-through lists — so the walk-through stays true.

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVER_SETTING_NAMES } from '../../services/common/setting-names.js';
import { serverSettings } from '../../services/server/config.js';
import { STORE_DRIVERS } from '../../services/server/store/drivers.js';
import { ROOT } from '../support/net.js';

const STORE_DIR = join(ROOT, 'services/server/store');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}
const services = sourceFiles(join(ROOT, 'services')).map((file) => ({ path: relative(ROOT, file), text: readFileSync(file, 'utf8') }));

/** The file paths docs/store.md's "Adding a store" lists, with `<name>` in place of the driver's name. */
function walkThroughFiles(): string[] {
  const doc = readFileSync(join(ROOT, 'docs/store.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Adding a store'));
  return [...section.matchAll(/^\d+\. `([^`]+)`/gm)].map((m) => m[1]!);
}

describe('store drivers', () => {
  it('every *-driver.ts file is in STORE_DRIVERS, under its own name, and names are unique', async () => {
    const files = readdirSync(STORE_DIR).filter((f) => f.endsWith('-driver.ts'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const file of files) {
      const module = (await import(join(STORE_DIR, file))) as Record<string, unknown>;
      const drivers = Object.values(module).filter((v) => (STORE_DRIVERS as readonly unknown[]).includes(v));
      expect([file, drivers.length]).toEqual([file, 1]);
      expect(`${(drivers[0] as { name: string }).name}-driver.ts`).toBe(file);
    }
    expect(new Set(STORE_DRIVERS.map((d) => d.name)).size).toBe(STORE_DRIVERS.length);
  });

  it('drivers.ts is the only file in services/ that imports a driver', () => {
    const importers = services.filter((f) => /from '\.\/[a-z]+-driver\.js'/.test(f.text) || /from '[^']*store\/[a-z]+-driver\.js'/.test(f.text)).map((f) => f.path);
    expect(importers).toEqual(['services/server/store/drivers.ts']);
  });

  it("each driver's settings are rows of the server's table, with their names in services/common/setting-names.ts", () => {
    const names = new Set(Object.values(SERVER_SETTING_NAMES).map((n) => n.env));
    for (const driver of STORE_DRIVERS) {
      for (const [key, row] of Object.entries(driver.settings)) {
        expect(serverSettings).toHaveProperty(key, row);
        expect(names.has(row.env), row.env).toBe(true);
      }
    }
  });

  it('the walk-through lists the driver file, drivers.ts, setting-names.ts and the contract test', () => {
    expect(walkThroughFiles()).toEqual([
      'services/server/store/<name>-driver.ts',
      'services/server/store/drivers.ts',
      'services/common/setting-names.ts',
      'test/integration/<name>-store.test.ts',
    ]);
  });

  it('the SQLite store is named in services/ only by the files the walk-through lists', () => {
    const allowed = walkThroughFiles().map((f) => f.replace('<name>', 'sqlite')).filter((f) => f.startsWith('services/'));
    const naming = services.filter((f) => /sqlite/i.test(f.text)).map((f) => f.path);
    expect(naming.filter((f) => !allowed.includes(f))).toEqual([]);
    expect(naming).toContain('services/server/store/sqlite-driver.ts');
  });
});
