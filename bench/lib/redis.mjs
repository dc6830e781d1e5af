// Debian's redis-server and redis-benchmark, as the far anchor of the bench: a server on 127.0.0.1
// only, on a free port, with no persistence, stopped with everything else at the end.

import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { start, waitForLine } from './procs.mjs';

/** redis-server's and redis-benchmark's version line, or undefined when either is not installed. */
export function redisVersion() {
  try {
    execFileSync('redis-benchmark', ['--version'], { stdio: 'ignore' });
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** A port on 127.0.0.1 nobody listens on right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** redis-server on 127.0.0.1, no RDB snapshots, no AOF, working in `dir` (a fresh temp dir). */
export async function startRedis(dir) {
  const port = await freePort();
  const proc = start('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes']);
  await waitForLine(proc, (line) => /Ready to accept connections/.test(line), 30_000, 'redis-server to be ready');
  proc.port = port;
  return proc;
}

/**
 * One redis-benchmark run of `test` (`get` or `set`: one fixed key, 3-byte value) with `connections`
 * clients and no pipelining; `requests` in all. Returns the fields wrk's runs have.
 */
export async function runRedisBenchmark({ port, test, connections, requests }) {
  const argv = ['-h', '127.0.0.1', '-p', String(port), '-c', String(connections), '-n', String(requests), '-P', '1', '-d', '3', '-t', test, '--csv'];
  let stdout = '';
  const proc = start('redis-benchmark', argv, { onLine: (line) => (stdout += line + '\n') });
  const { code, signal } = await proc.exited;
  if (code !== 0) throw new Error(`redis-benchmark ${argv.join(' ')} failed (${code ?? signal}): ${proc.stderr.trim()}`);
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  const row = stdout
    .split('\n')
    .map((line) => line.split(',').map((cell) => cell.replace(/^"|"$/g, '')))
    .find((cells) => cells[0] === test.toUpperCase());
  if (row === undefined) throw new Error(`cannot read redis-benchmark's output:\n${stdout}`);
  return { rps: Number(row[1]), requests, p50: Number(row[4]), p99: Number(row[6]), errors: 0 };
}
