// Temporary directories for one test file, removed when the file is done (the log tests' directories
// hold up to hundreds of megabytes). Call at the top level of a test file: it registers the afterAll.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** Returns `tempDir(prefix)`, which makes a fresh directory under the OS temp dir. */
export function useTempDirs(): (prefix: string) => string {
  const created: string[] = [];
  afterAll(() => {
    for (const dir of created) rmSync(dir, { recursive: true, force: true });
  });
  return (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    created.push(dir);
    return dir;
  };
}
