#!/usr/bin/env node
// `tcpkv-client`: the seed's scenario, one-shot commands, raw bytes, and an interactive prompt.
// Exit status: 0 success (status < 400), 1 the server answered an error (≥ 400) or a scenario case
// failed, 2 bad usage or configuration, 3 no answer (connection or timeout).

import { Command } from 'commander';
import { addSettingOptions, ConfigError, exitWithConfigError, integer, nonBlank, oneOf, parseCommandLine, readDotenv, resolveSettings, setting, type SettingValues } from '../common/settings.js';
import { packageVersion } from '../common/version.js';
import { ClientError, formatAnswer, parseServerList, TcpkvClient, type Answer, type Dialect } from './client.js';
import { startRepl } from './repl.js';
import { formatTable, runScenario } from './scenario.js';

const PROGRAM = 'tcpkv-client';

export const clientSettings = {
  server: setting({ env: 'TCPKV_SERVER', flag: 'server', valueName: 'host:port[,host:port…]', default: '127.0.0.1:10000', describe: 'server address; several = try the next when one cannot be reached', parse: parseServerList }),
  targetHost: setting({ env: 'TCPKV_TARGET_HOST', flag: 'target-host', valueName: 'name', default: undefined, describe: "host named in requests (default: the server's host)", parse: nonBlank }),
  dialect: setting({ env: 'TCPKV_DIALECT', flag: 'dialect', valueName: 'seed|standard', default: undefined, describe: 'request dialect (default: seed for scenario, standard otherwise)', parse: oneOf('seed', 'standard') }),
  token: setting({ env: 'TCPKV_SHUTDOWN_TOKEN', flag: 'token', valueName: 'token', default: undefined, describe: 'shutdown token sent with END', parse: nonBlank }),
  timeout: setting({ env: 'TCPKV_TIMEOUT_MS', flag: 'timeout', valueName: 'ms', default: '5000', describe: 'connect and answer timeout', parse: integer(1, 3_600_000) }),
};

type ClientConfig = SettingValues<typeof clientSettings>;

/** Prints the answer; the exit status: 1 for an error answer (≥ 400), else 0. */
function printAnswer(answer: Answer): number {
  process.stdout.write(formatAnswer(answer));
  return answer.kind === 'response' && answer.response.status >= 400 ? 1 : 0;
}

function makeClient(config: ClientConfig, defaultDialect: Dialect): TcpkvClient {
  return new TcpkvClient({
    servers: config.server,
    targetHost: config.targetHost,
    dialect: config.dialect ?? defaultDialect,
    token: config.token,
    timeoutMs: config.timeout,
  });
}

async function readStdin(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function run(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command(PROGRAM)
    .description('tcpkv client: run the seed scenario, send one request, or talk interactively (no command)')
    .version(packageVersion(), '-v, --version')
    .helpOption('-h, --help')
    .showHelpAfterError()
    .exitOverride(); // before .command(): subcommands copy it, so their usage errors exit 2 too
  addSettingOptions(program, clientSettings);

  const config = (): ClientConfig => {
    try {
      return resolveSettings(clientSettings, program.opts(), { ...readDotenv(), ...process.env });
    } catch (error) {
      if (error instanceof ConfigError) exitWithConfigError(PROGRAM, error);
      throw error;
    }
  };
  const oneShot = async (method: string, path: string, body?: string) => {
    const answer = await makeClient(config(), 'standard').send({ method, path, body: body ?? '' });
    exitCode = printAnswer(answer);
  };

  program
    .command('scenario')
    .description("run the seed's 16 requests (SPEC §5) and print case / request / expected / got")
    .option('--json', 'print the results as JSON')
    .option('--spread', 'send case n to server n mod k of --server (replicas over one store answer as one)')
    .action(async (opts: { json?: boolean; spread?: boolean }) => {
      const results = await runScenario(makeClient(config(), 'seed'), undefined, { spread: opts.spread === true });
      const failed = results.filter((r) => !r.ok).length;
      if (opts.json) process.stdout.write(JSON.stringify({ passed: results.length - failed, failed, cases: results }, null, 2) + '\n');
      else process.stdout.write(formatTable(results) + '\n');
      // The scenario needs an empty store; a durable server keeps the last run's data on purpose.
      const second = results.find((r) => r.n === 2);
      if (second && !second.ok && second.got.startsWith('200')) {
        process.stderr.write(
          'hint: the server already held data when the scenario began. A server with a data volume keeps the last run\'s\n' +
            'data (that is the point of it): reset it with `docker compose down -v`, or point the scenario at a fresh server.\n',
        );
      }
      exitCode = failed === 0 ? 0 : 1;
    });
  program.command('get').description('list the data (GET)').action(() => oneShot('GET', ''));
  program
    .command('head')
    .description('check the server answers (HEAD); exit 0 if it does — used as the image health check')
    .action(() => oneShot('HEAD', ''));
  program
    .command('create')
    .argument('<pairs...>', '"key: value" pairs; several arguments are joined with &')
    .description('store new keys (POST /create); all or nothing')
    .action((pairs: string[]) => oneShot('POST', 'create', pairs.join('&')));
  program
    .command('update')
    .argument('<pairs...>', '"key: value" pairs; several arguments are joined with &')
    .description('update or add keys (PUT /update)')
    .action((pairs: string[]) => oneShot('PUT', 'update', pairs.join('&')));
  program.command('shutdown').description('stop the server (END; needs --token or loopback)').action(() => oneShot('END', ''));
  program
    .command('raw')
    .description('send the bytes read from stdin as they are and print what the server answers')
    .action(async () => {
      const bytes = await readStdin();
      const answer = await makeClient(config(), 'standard').raw(bytes);
      process.stdout.write(answer);
      exitCode = answer.length > 0 ? 0 : 3;
    });
  program.action(async () => {
    if (!process.stdin.isTTY) {
      program.outputHelp();
      exitCode = 2;
      return;
    }
    await startRepl(makeClient(config(), 'standard'));
  });

  await parseCommandLine(program, argv);
  return exitCode;
}

async function main(): Promise<void> {
  try {
    process.exitCode = await run(process.argv);
  } catch (error) {
    if (error instanceof ClientError) {
      process.stderr.write(`${PROGRAM}: ${error.message}${error.maybeApplied ? ' (the request may have reached the server)' : ''}\n`);
      process.exitCode = 3;
      return;
    }
    process.stderr.write(`${PROGRAM}: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}

void main();
