// Child processes of the bench: every one is registered, and whatever is still running when the bench
// ends — normally, by an error, or by Ctrl-C — is killed by its pid (never by name).

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const live = new Set();

function killAll(signal) {
  for (const child of live) {
    try {
      process.kill(child.pid, signal);
    } catch {
      // already gone
    }
  }
}

process.on('exit', () => killAll('SIGKILL'));
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping every child\n`);
    killAll('SIGKILL');
    process.exit(130);
  });
}

/**
 * Spawns a registered child. stdout is read line by line (`onLine`); stderr is kept (last 8 KiB) for
 * error messages. `nofile` raises the open-file limit first, through the shell's `ulimit`, keeping
 * the pid (`exec`).
 */
export function start(command, args, { env, onLine, nofile, cwd } = {}) {
  let file = command;
  let argv = args;
  if (nofile !== undefined) {
    const quoted = [command, ...args].map((a) => `'${String(a).replaceAll("'", "'\\''")}'`).join(' ');
    file = '/bin/sh';
    argv = ['-c', `ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${quoted}`];
  }
  const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd });
  live.add(child);
  const proc = {
    child,
    pid: child.pid,
    stderr: '',
    stdoutLines: [],
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
    }),
    exitCode: undefined,
    lineListeners: new Set(),
  };
  child.on('error', (error) => {
    proc.stderr += `spawn error: ${error.message}\n`;
  });
  proc.exited.then((r) => (proc.exitCode = r));
  child.stderr.on('data', (chunk) => {
    proc.stderr = (proc.stderr + chunk.toString('utf8')).slice(-8192);
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    proc.stdoutLines.push(line);
    if (proc.stdoutLines.length > 200) proc.stdoutLines.shift();
    onLine?.(line);
    for (const listener of proc.lineListeners) listener(line);
  });
  return proc;
}

/** Waits for a stdout line for which `test` returns something truthy, and returns that. */
export function waitForLine(proc, test, timeoutMs = 30_000, what = 'a line') {
  return new Promise((resolve, reject) => {
    for (const line of proc.stdoutLines) {
      const r = test(line);
      if (r) return resolve(r);
    }
    const onLine = (line) => {
      const r = test(line);
      if (r) finish(null, r);
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    const onExit = () => finish(new Error(`exited (${JSON.stringify(proc.exitCode)}) before ${what}; stderr: ${proc.stderr.trim()}`));
    proc.lineListeners.add(onLine);
    proc.exited.then(() => setImmediate(onExit));
    function finish(error, value) {
      clearTimeout(timer);
      proc.lineListeners.delete(onLine);
      if (error) reject(error);
      else resolve(value);
    }
  });
}

/** Parses a JSON line, or undefined. */
export function json(line) {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stop(proc, graceMs = 5000) {
  if (proc === undefined || proc.exitCode !== undefined) return;
  try {
    process.kill(proc.pid, 'SIGTERM');
  } catch {
    return;
  }
  const done = await Promise.race([proc.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
    await proc.exited;
  }
}

export async function stopAll(procs) {
  await Promise.all(procs.filter(Boolean).map((p) => stop(p)));
}
