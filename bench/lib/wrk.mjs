// Runs wrk (always with --latency) and parses what it prints.

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { start } from './procs.mjs';

export const SCRIPTS = fileURLToPath(new URL('../wrk/', import.meta.url));

export function wrkVersion() {
  try {
    const out = execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return /^wrk \S+/.exec(out)?.[0] ?? out.split('\n')[0].trim();
  } catch (error) {
    // `wrk -v` prints its banner and exits 1
    const out = `${error.stdout ?? ''}${error.stderr ?? ''}`;
    if (/wrk/.test(out)) return /^wrk \S+/.exec(out)?.[0] ?? out.split('\n')[0].trim();
    return undefined;
  }
}

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]];
}

export function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const pct = (p) => {
    const m = new RegExp(`^\\s*${p}%\\s+(\\S+)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1]) : undefined;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const requests = /(\d+) requests in ([\d.]+\w+)/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: requests ? Number(requests[1]) : undefined,
    p50: pct(50),
    p75: pct(75),
    p90: pct(90),
    p99: pct(99),
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) ?? 0,
    socketErrors: sock ? { connect: +sock[1], read: +sock[2], write: +sock[3], timeout: +sock[4] } : undefined,
  };
}

/**
 * One wrk run against 127.0.0.1:port. `script` is a file in bench/wrk/ (or undefined for a plain GET
 * of `path`); `args` go to the script's init(). Killed if it overruns its duration by 30 s.
 */
export async function runWrk({ port, scheme = 'http', path = '/', connections, threads, durationS, script, args = [], timeoutS = 10 }) {
  const t = Math.max(1, Math.min(threads, connections));
  const argv = ['-t', String(t), '-c', String(connections), '-d', `${durationS}s`, '--latency', '--timeout', `${timeoutS}s`];
  if (script) argv.push('-s', SCRIPTS + script);
  argv.push(`${scheme}://127.0.0.1:${port}${path}`);
  if (args.length > 0) argv.push('--', ...args.map(String));
  let stdout = '';
  const proc = start('wrk', argv, { onLine: (line) => (stdout += line + '\n') });
  const overrun = setTimeout(() => {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, (durationS + 30) * 1000);
  const { code, signal } = await proc.exited;
  clearTimeout(overrun);
  if (code !== 0) throw new Error(`wrk ${argv.join(' ')} failed (${code ?? signal}): ${proc.stderr.trim()}\n${stdout}`);
  const result = parseWrk(stdout);
  if (result.rps === undefined) throw new Error(`cannot read wrk's output:\n${stdout}`);
  const errors = result.socketErrors;
  result.errors = result.non2xx + (errors ? errors.connect + errors.read + errors.write + errors.timeout : 0);
  return result;
}
