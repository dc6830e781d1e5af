// A program on a real pseudo-terminal (util-linux `script`), driven as a person types: waits for a
// prompt, sends each line (a key press such as Tab or an arrow arrives on its own before Enter),
// then `quit`. Returns everything the terminal showed.

import { spawn } from 'node:child_process';
import { expect } from 'vitest';
import { sleep } from './sleep.js';

export async function ptySession(commandLine: string, env: Record<string, string>, lines: string[]): Promise<string> {
  const proc = spawn('script', ['-qfec', commandLine, '/dev/null'], { env: { PATH: process.env.PATH ?? '', TERM: 'xterm', ...env } });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => proc.on('exit', r));
  for (let i = 0; i < 50 && !out.includes('> '); i++) await sleep(100);
  for (const keys of lines) {
    const before = out.length;
    const [head, ...rest] = keys.split(/(?=[\t\x1b])/); // eslint-disable-line no-control-regex
    proc.stdin.write(head!);
    for (const part of rest) {
      await sleep(200);
      proc.stdin.write(part);
    }
    await sleep(200);
    proc.stdin.write('\r');
    for (let i = 0; i < 60 && (out.length === before || !out.slice(before).includes('> ')); i++) await sleep(50);
  }
  proc.stdin.write('quit\r');
  expect(await exited).toBe(0);
  return out;
}
