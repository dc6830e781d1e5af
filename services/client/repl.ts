// The interactive prompt (`tcpkv-client` with no command, on a terminal), in the way of redis-cli:
// one command per line, answers printed, history kept across sessions in ~/.tcpkv_history.

import { appendFileSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ClientError, formatAnswer, type TcpkvClient } from './client.js';

const HISTORY_FILE = join(homedir(), '.tcpkv_history');
const HISTORY_SIZE = 500;

const HELP = `commands:
  get                      list the data
  head                     check the server answers
  create key: value&k: v   store new keys (all or nothing)
  update key: value&k: v   update or add keys
  shutdown                 stop the server (END)
  help                     this text
  quit                     leave (also Ctrl-D)`;

function loadHistory(): string[] {
  try {
    return readFileSync(HISTORY_FILE, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(-HISTORY_SIZE).reverse();
  } catch {
    return [];
  }
}

/** Splits a typed line into a request, or says what is wrong with it. */
export function parseReplLine(line: string): { method: string; path: string; body: string } | { help: true } | { quit: true } | { error: string } | undefined {
  const trimmed = line.trim();
  if (trimmed === '') return undefined;
  const space = trimmed.indexOf(' ');
  const word = (space < 0 ? trimmed : trimmed.slice(0, space)).toLowerCase();
  const rest = space < 0 ? '' : trimmed.slice(space + 1).trim();
  switch (word) {
    case 'get':
      return { method: 'GET', path: '', body: '' };
    case 'head':
      return { method: 'HEAD', path: '', body: '' };
    case 'create':
      return rest ? { method: 'POST', path: 'create', body: rest } : { error: 'usage: create key: value&key2: value2' };
    case 'update':
      return rest ? { method: 'PUT', path: 'update', body: rest } : { error: 'usage: update key: value&key2: value2' };
    case 'shutdown':
    case 'end':
      return { method: 'END', path: '', body: '' };
    case 'help':
    case '?':
      return { help: true };
    case 'quit':
    case 'exit':
      return { quit: true };
    default:
      return { error: `unknown command "${word}" (type help)` };
  }
}

export async function startRepl(client: TcpkvClient): Promise<void> {
  const server = client.options.servers[0]!;
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: `tcpkv ${server.host}:${server.port}> `,
    history: loadHistory(),
    historySize: HISTORY_SIZE,
  });
  process.stdout.write(`tcpkv-client: each command opens its own connection to ${server.host}:${server.port}. Type help.\n`);
  rl.prompt();
  for await (const line of rl) {
    const parsed = parseReplLine(line);
    if (parsed !== undefined && !('quit' in parsed)) {
      try {
        appendFileSync(HISTORY_FILE, line.trim() + '\n');
      } catch {
        // history is a convenience; an unwritable home directory must not stop the prompt
      }
    }
    if (parsed === undefined) {
      // empty line
    } else if ('quit' in parsed) {
      break;
    } else if ('help' in parsed) {
      process.stdout.write(HELP + '\n');
    } else if ('error' in parsed) {
      process.stdout.write(parsed.error + '\n');
    } else {
      try {
        const answer = await client.send(parsed);
        process.stdout.write(formatAnswer(answer));
      } catch (error) {
        process.stdout.write(`error: ${(error as Error).message}${error instanceof ClientError && error.maybeApplied ? ' (the request may have reached the server)' : ''}\n`);
      }
    }
    rl.prompt();
  }
  rl.close();
}
