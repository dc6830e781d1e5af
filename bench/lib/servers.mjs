// Starting the servers under test on free loopback ports (port 0, read back from their first line).
// Every server runs in an empty working directory (tcpkv reads a `.env` there) and without any
// TCPKV_* variable of the caller's environment, so only what the bench sets applies.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { json, start, waitForLine } from './procs.mjs';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TCPKV_MAIN = join(ROOT, 'dist/services/server/main.js');
const NODE_HTTP = fileURLToPath(new URL('../servers/node-http.mjs', import.meta.url));
const CEILING = fileURLToPath(new URL('../servers/ceiling.mjs', import.meta.url));

let emptyCwd;
function cwd() {
  emptyCwd ??= mkdtempSync(join(tmpdir(), 'tcpkv-bench-cwd-'));
  return emptyCwd;
}

export function removeServerCwd() {
  if (emptyCwd !== undefined) rmSync(emptyCwd, { recursive: true, force: true });
  emptyCwd = undefined;
}

function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TCPKV_') && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, ...extra };
}

/**
 * tcpkv: `node dist/services/server/main.js --port 0`. Logs at `info`, which is start-up and shutdown
 * lines only (access lines are `debug`): the `listening` line gives the port. Resolves with the
 * process, its port, and the milliseconds from spawn to that line.
 */
export async function startTcpkv({ env = {}, args = [], nodeArgs = [], nofile, timeoutMs = 120_000 } = {}) {
  const t0 = performance.now();
  const proc = start(process.execPath, [...nodeArgs, TCPKV_MAIN, '--port', '0', '--log-level', 'info', ...args], {
    env: cleanEnv(env),
    cwd: cwd(),
    nofile,
  });
  proc.name = 'tcpkv';
  const line = await waitForLine(proc, (l) => (json(l)?.msg === 'listening' ? json(l) : undefined), timeoutMs, 'tcpkv to listen');
  proc.startMs = performance.now() - t0;
  proc.port = line.port;
  return proc;
}

async function startScript(file, name, args, { nodeArgs = [], env = {}, nofile } = {}) {
  const proc = start(process.execPath, [...nodeArgs, file, '--port', '0', ...args], { env: cleanEnv(env), cwd: cwd(), nofile });
  proc.name = name;
  const line = await waitForLine(proc, (l) => (json(l)?.port ? json(l) : undefined), 30_000, `${name} to listen`);
  proc.port = line.port;
  proc.info = line;
  return proc;
}

/** `args`: more flags for the script (e.g. `--tls-cert`, `--tls-key`: node:https). */
export function startNodeHttp({ args = [], ...opts } = {}) {
  return startScript(NODE_HTTP, 'node-http', args, opts);
}

/** `bodyBytes`: make each fixed answer's body that long (default: tcpkv's `No data in DB`); `store`: ceiling+Map. */
export function startCeiling({ bodyBytes, store = false, args: extra = [], ...opts } = {}) {
  const args = bodyBytes === undefined ? [...extra] : ['--body-bytes', String(bodyBytes), ...extra];
  if (store) args.push('--store');
  return startScript(CEILING, store ? 'ceiling+Map' : 'ceiling', args, opts);
}
