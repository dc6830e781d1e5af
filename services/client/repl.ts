// The prompt (`tcpkv-client` with no command), in the way of redis-cli: each line is a command line
// of the CLI's own grammar (split as a shell splits it, so `create "a: 1" "b: 2"` stores two keys),
// answered on its own connection. On a terminal it is interactive, with tab completion of commands
// and a history file (mode 0600, trimmed); otherwise it runs the lines of stdin, like a script.

import { chmodSync, closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Completer } from 'node:readline';
import { COMMAND_NAMES, runCommandLine, type Io } from './commands.js';

export const HISTORY_SIZE = 500;

export function historyFile(): string {
  return join(homedir(), '.tcpkv_history');
}

/** Splits a line as a POSIX shell splits words: quotes, backslash escapes; no expansion. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error("unterminated ' quote");
      word += line.slice(i + 1, end);
      inWord = true;
      i = end;
    } else if (c === '"') {
      inWord = true;
      for (i++; ; i++) {
        if (i >= line.length) throw new Error('unterminated " quote');
        const d = line[i]!;
        if (d === '"') break;
        if (d === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) word += line[++i];
        else word += d;
      }
    } else if (c === '\\') {
      if (i + 1 < line.length) word += line[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Completes the command word (and the word after `help`). */
export const completeCommand: Completer = (line: string) => {
  const words = line.trimStart().split(/\s+/);
  const choices = [...COMMAND_NAMES, 'quit'];
  if (words.length === 1) {
    const hits = choices.filter((c) => c.startsWith(words[0]!));
    return [hits.length ? hits.map((h) => h + ' ') : [], words[0]!];
  }
  if (words.length === 2 && words[0] === 'help') {
    const hits = COMMAND_NAMES.filter((c) => c.startsWith(words[1]!));
    return [hits, words[1]!];
  }
  return [[], line];
};

/** The last HISTORY_SIZE lines, rewritten with mode 0600 (a line may hold a value). */
function loadHistory(file: string): string[] {
  let lines: string[] = [];
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_SIZE);
    writeFileSync(file, lines.map((l) => l + '\n').join(''), { mode: 0o600 });
    chmodSync(file, 0o600);
  } catch {
    // no history yet, or none can be kept: the prompt works without it
  }
  return lines.reverse();
}

function remember(file: string, line: string): void {
  try {
    const fd = openSync(file, 'a', 0o600);
    try {
      writeSync(fd, line + '\n');
    } finally {
      closeSync(fd);
    }
  } catch {
    // history is a convenience; an unwritable home directory must not stop the prompt
  }
}

/**
 * Runs the prompt until `quit`, Ctrl-D or the end of stdin. `startArgs`: the flags the client was
 * started with, applied to every line (a line's own flags win). Returns the exit status: 0 at a
 * terminal; from stdin, the status of the last command, like a shell script.
 */
export async function startPrompt(startArgs: readonly string[], io: Io, server: string): Promise<number> {
  const interactive = process.stdin.isTTY === true;
  const file = historyFile();
  const rl = createInterface({
    input: process.stdin,
    output: interactive ? process.stdout : undefined,
    terminal: interactive,
    completer: interactive ? completeCommand : undefined,
    history: interactive ? loadHistory(file) : [],
    historySize: HISTORY_SIZE,
    prompt: `tcpkv ${server}> `,
  });
  if (interactive) {
    io.out(`tcpkv-client: each command opens its own connection to ${server}. Type help, or quit to leave.\n`);
    rl.prompt();
  }
  let last = 0;
  for await (const line of rl) {
    let words: string[] = [];
    try {
      words = splitWords(line.trim());
    } catch (error) {
      io.err(`${(error as Error).message}\n`);
      last = 2;
    }
    if (words[0] === 'quit' || words[0] === 'exit') break;
    if (words.length > 0) {
      if (interactive) remember(file, line.trim());
      last = await runCommandLine([...startArgs, ...words], { io, atPrompt: true });
    }
    if (interactive) rl.prompt();
  }
  rl.close();
  return interactive ? 0 : last;
}
