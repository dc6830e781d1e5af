#!/usr/bin/env node
// `tcpkv-client`: one-shot commands, the seed's scenario, raw bytes, and the prompt (no command; on a
// terminal interactive, otherwise commands read from stdin, one per line).
// Exit status (docs/client.md): 0 an answer in 2xx (the seed dialect's 100 to HEAD; for END also a closed
// connection), 1 an answer in 4xx or a failed scenario case, 2 bad usage or configuration, 3 no
// answer (cannot connect, timed out, reset, closed without an answer), 4 an answer in 5xx.

import { CommanderError } from 'commander';
import { KNOWN_ENV_NAMES } from '../common/setting-names.js';
import { ConfigError, expandBareFlags, isHelpOrVersion, prepareEnvironment, settingWarnings } from '../common/settings.js';
import { refuseUnsupportedNode } from '../common/node-version.js';
import { formatAddress } from './client.js';
import { clientSettings } from './client-settings.js';
import { buildProgram, PROGRAM, type Io } from './commands.js';
import { startPrompt } from './repl.js';

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

const io: Io = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  outBytes: (bytes) => void process.stdout.write(bytes),
};

async function main(): Promise<number> {
  refuseUnsupportedNode(PROGRAM);
  // A reader that goes away (`tcpkv-client get | head -1`) ends the client quietly, not with a trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  let fromDotenv: Set<string>;
  try {
    fromDotenv = prepareEnvironment();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.err(`${PROGRAM}: invalid configuration: ${error.message}\n`);
    return 2;
  }
  const startArgs = expandBareFlags(process.argv.slice(2), clientSettings);
  let code = 0;
  const program = buildProgram({
    io,
    setExit: (c) => (code = c),
    atPrompt: false,
    readStdin,
    startPrompt: async (config) => {
      // the prompt re-reads each line with the flags given here, so `--server` holds for every line
      code = await startPrompt(startArgs, io, formatAddress(config.server[0]!));
    },
  });
  program.hook('preAction', () => {
    // every name of both programs is known (a .env shared with a server holds the server's)
    for (const warning of settingWarnings(program, clientSettings, KNOWN_ENV_NAMES, fromDotenv)) io.err(`${PROGRAM}: warning: ${warning}\n`);
  });
  try {
    await program.parseAsync(startArgs, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return isHelpOrVersion(error) ? 0 : 2;
    throw error;
  }
  return code;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${PROGRAM}: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
