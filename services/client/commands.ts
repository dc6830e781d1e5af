// The command grammar of tcpkv-client, shared by the command line and the interactive prompt: one
// commander program, built afresh for each command line (commander keeps parsed state), so a line
// typed at the prompt means exactly what it means after `tcpkv-client` in a shell.

import { isUtf8 } from 'node:buffer';
import { Command, CommanderError, Option } from 'commander';
import { addSettingOptions, expandBareFlags, isHelpOrVersion, settingValues } from '../common/settings.js';
import { packageVersion } from '../common/version.js';
import { readFileSync } from 'node:fs';
import { keyRefusal, readableKeyRefusal } from '../protocol/key-grammar.js';
import { ClientSideError } from '../protocol/errors.js';
import { ClientError, exitStatus, formatAddress, formatAnswer, TcpkvClient, type Answer, type ClientTlsOptions, type Dialect, type TraceEvent } from './client.js';
import { dump, DumpFormatError, readDump, restore, RestoreError } from './backup.js';
import { clientSettings, type ClientConfig } from './client-settings.js';
import { formatTable, runScenario } from './scenario.js';
import { watchChanges, WatchAnswerError } from './watch.js';
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { acquireLock, LockAbortedError, LockRefusedError, LockTimeoutError, MAX_LOCK_TTL_SECONDS, type HeldLock, type LockEvent } from './lock.js';

export const PROGRAM = 'tcpkv-client';

/** Where a command's output goes: the process's streams, or the prompt's. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** bytes as they came (raw); where absent, written as UTF-8 text */
  outBytes?(bytes: Buffer): void;
}

export interface ProgramHooks {
  readonly io: Io;
  /** each command reports its exit status here (0 / 1 / 2 / 3 / 4: docs/client.md, "Exit status") */
  setExit(code: number): void;
  /** true at the prompt: no nested prompt, no stdin reads */
  readonly atPrompt: boolean;
  /** the command line had no command: start the prompt (CLI only) */
  startPrompt?(config: ClientConfig, output: OutputMode): Promise<void>;
  readStdin?(): Promise<Buffer>;
}

export interface OutputMode {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
}

/** Names of the commands, for completion at the prompt. */
export const COMMAND_NAMES = Object.freeze(['get', 'put', 'delete', 'keys', 'watch', 'lock', 'head', 'create', 'update', 'shutdown', 'raw', 'scenario', 'dump', 'restore', 'help']);

/** Thrown by a command for a usage problem the parser cannot see (exit 2). */
class UsageError extends ClientSideError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** What `--json` prints for one answer (documented in docs/client.md). */
export function answerJson(answer: Answer): Record<string, unknown> {
  const server = formatAddress(answer.server);
  if (answer.kind === 'closed') return { server, closed: true };
  const headers: Record<string, string> = {};
  for (const [name, value] of answer.response.headers) headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  const { status, reason, body } = answer.response;
  return { server, status, reason, headers, body };
}

function errorJson(error: ClientError | UsageError): Record<string, unknown> {
  if (error instanceof ClientError) return { error: { code: error.code, message: error.message, maybeApplied: error.maybeApplied } };
  return { error: { code: error.code, message: error.message } };
}

/** A refused or unreachable server, said so a person knows what to try. */
export function describeClientError(error: ClientError): string {
  let text = error.message;
  if (error.maybeApplied) text += ' (the request may have reached the server)';
  if (error.code === 'CONNECT_FAILED') text += ' — is the server running there? Set its address with --server host:port or TCPKV_SERVER';
  return text;
}

/**
 * Hints for a 400 answer to create/update, computed from the pairs the user gave: which pair is
 * malformed and why. The server's texts are the seed's and name no pair.
 */
export function pairHints(body: string): string[] {
  const hints: string[] = [];
  const seen = new Set<string>();
  const pairs = body.split('&');
  pairs.forEach((pair, i) => {
    const where = `pair ${i + 1} of ${pairs.length} ${JSON.stringify(pair)}`;
    const colon = pair.indexOf(':');
    if (pair.trim() === '') hints.push(`${where} is empty (an extra "&"?)`);
    else if (colon < 0) hints.push(`${where} has no ":" — write it as "key: value"`);
    else if (pair.slice(0, colon).trim() === '') hints.push(`${where} has a blank key`);
    // eslint-disable-next-line no-control-regex -- control characters are what this looks for
    else if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(pair)) hints.push(`${where} holds a line break or another control character`);
    if (colon > 0) {
      const key = pair.slice(0, colon).trim();
      if (seen.has(key)) hints.push(`key ${JSON.stringify(key)} is given twice`);
      seen.add(key);
    }
  });
  return hints;
}

/**
 * The TLS options of the settings: undefined = plain TCP. TLS is on with --tls, or when a TLS file
 * or --servername is given (unless --tls off). The files are read here: one that cannot be read is
 * a usage problem (exit 2), not a connection failure.
 */
export function tlsOptions(c: ClientConfig): ClientTlsOptions | undefined {
  const on = c.tls ?? (c.caFile !== undefined || c.certFile !== undefined || c.keyFile !== undefined || c.servername !== undefined);
  if (!on) return undefined;
  if ((c.certFile === undefined) !== (c.keyFile === undefined)) throw new UsageError('--cert-file and --key-file go together (TCPKV_CLIENT_CERT_FILE, TCPKV_CLIENT_KEY_FILE)');
  const read = (file: string | undefined, flag: string): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new UsageError(`${flag} ${file}: cannot read it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  return { ca: read(c.caFile, '--ca-file'), cert: read(c.certFile, '--cert-file'), key: read(c.keyFile, '--key-file'), servername: c.servername };
}

const kvTarget = (key: string) => `/kv/${encodeURIComponent(key)}`;

/**
 * Where `bytes` stop being UTF-8: the offset of the first byte that does not begin a well-formed
 * character (overlong forms, surrogates and code points above U+10FFFF included), or -1.
 */
export function firstNonUtf8Byte(bytes: Buffer): number {
  if (isUtf8(bytes)) return -1;
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i += 1;
      continue;
    }
    // the lead byte's width and the range its first continuation byte must fall in (RFC 3629 §4)
    const [width, low, high] =
      b >= 0xc2 && b <= 0xdf ? [2, 0x80, 0xbf]
      : b === 0xe0 ? [3, 0xa0, 0xbf]
      : b === 0xed ? [3, 0x80, 0x9f]
      : b >= 0xe1 && b <= 0xef ? [3, 0x80, 0xbf]
      : b === 0xf0 ? [4, 0x90, 0xbf]
      : b >= 0xf1 && b <= 0xf3 ? [4, 0x80, 0xbf]
      : b === 0xf4 ? [4, 0x80, 0x8f]
      : [0, 0, 0];
    if (width === 0 || i + width > bytes.length) return i;
    if (bytes[i + 1]! < low || bytes[i + 1]! > high) return i;
    for (let k = 2; k < width; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return i;
    i += width;
  }
  return -1;
}

/**
 * The value `put KEY -` reads: stdin's bytes as they are, one trailing line break dropped. They must
 * be UTF-8 (values are text): anything else is refused rather than turned into U+FFFD.
 */
function stdinValue(bytes: Buffer): Buffer {
  const bad = firstNonUtf8Byte(bytes);
  if (bad >= 0) {
    throw new UsageError(`put: stdin is not valid UTF-8 (byte ${bad} of ${bytes.length} is 0x${bytes[bad]!.toString(16).padStart(2, '0')}); a value is UTF-8 text`);
  }
  const end = bytes.at(-1) === 0x0a ? (bytes.at(-2) === 0x0d ? bytes.length - 2 : bytes.length - 1) : bytes.length;
  return bytes.subarray(0, end);
}

/**
 * The key grammar the server applies (services/protocol/key-grammar.ts), checked before sending: a
 * write follows all of it but the byte limit (the server's own setting decides that); a read or
 * delete may name any key a write could ever have stored.
 */
function checkKey(key: string, write: boolean): void {
  const refusal = write ? keyRefusal(key, Infinity) : readableKeyRefusal(key);
  if (refusal !== undefined) throw new UsageError(`${refusal.text} (key ${JSON.stringify(key)})`);
}

function traceTo(io: Io): (event: TraceEvent) => void {
  return (event) => {
    if (event.kind === 'request') io.err(event.head.split('\n').map((l) => `> ${l}`).join('\n') + '\n>\n');
    else if (event.kind === 'response') io.err(event.head.split('\n').map((l) => `< ${l}`).join('\n') + '\n<\n');
    else io.err(`* ${formatAddress(event.from)} cannot be reached (${event.reason}); trying ${formatAddress(event.to)}\n`);
  };
}

/** Builds the program for one command line. */
export function buildProgram(hooks: ProgramHooks): Command {
  const { io } = hooks;
  const program = new Command(PROGRAM)
    .description(
      'tcpkv client: read and write keys, run the seed scenario, or talk interactively (no command).\n' +
        'Each setting can also come from the variable named in its help, or from .env; a flag wins.',
    )
    .version(packageVersion(), '-V, --version')
    .helpOption('-h, --help', 'show help (for a command: tcpkv-client help <command>)')
    .helpCommand(true)
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .showHelpAfterError('(tcpkv-client --help shows the commands and options)')
    .exitOverride();
  addSettingOptions(program, clientSettings);
  program
    .addOption(new Option('--json', 'print each answer as one JSON document (status, headers, body or items)'))
    .addOption(new Option('-q, --quiet', 'print only the value (or the keys); errors go to stderr'))
    .addOption(new Option('-v, --verbose', 'show request and response heads, and moves to the next server, on stderr'));

  const output = (): OutputMode => {
    const o = program.opts<{ json?: boolean; quiet?: boolean; verbose?: boolean }>();
    return { json: o.json === true, quiet: o.quiet === true, verbose: o.verbose === true };
  };
  const config = (): ClientConfig => settingValues(program, clientSettings);
  const client = (defaultDialect: Dialect): TcpkvClient => {
    const c = config();
    return new TcpkvClient({
      servers: c.server,
      targetHost: c.targetHost,
      dialect: c.dialect ?? defaultDialect,
      token: c.token,
      timeoutMs: c.timeout,
      tls: tlsOptions(c),
      trace: output().verbose ? traceTo(io) : undefined,
    });
  };
  const needStandard = (command: string) => {
    if (config().dialect === 'seed') throw new UsageError(`${command} uses the one-key routes of the standard dialect; the seed dialect has none (drop --dialect seed)`);
  };

  /** Prints an answer as the output mode says; returns the exit status. */
  const print = (answer: Answer, method: string, valueOnly = false): number => {
    const mode = output();
    const code = exitStatus(answer, method);
    if (mode.json) io.out(JSON.stringify(answerJson(answer)) + '\n');
    else if (mode.quiet) {
      if (answer.kind === 'response' && code === 0) {
        if (valueOnly || method === 'GET') printBody(answer.response.bodyBytes);
      } else if (code !== 0) io.err(formatAnswer(answer));
    } else if (answer.kind === 'response') {
      io.out(`${answer.response.status} ${answer.response.reason}\n`);
      printBody(answer.response.bodyBytes);
    } else io.out(formatAnswer(answer));
    return code;
  };
  /** If-Match / If-None-Match for --if-version and --create. */
  const conditionHeaders = (opts: { ifVersion?: string; create?: boolean }): [string, string][] => {
    if (opts.ifVersion !== undefined) {
      if (!/^[1-9][0-9]{0,15}$/.test(opts.ifVersion)) throw new UsageError(`--if-version takes a version number (the ETag of get or put: --json shows it), not ${JSON.stringify(opts.ifVersion)}`);
      return [['If-Match', `"${opts.ifVersion}"`]];
    }
    return opts.create === true ? [['If-None-Match', '*']] : [];
  };
  /** A body as formatAnswer prints it (a line break added if it lacks one), its bytes as they came. */
  const printBody = (bytes: Buffer) => {
    if (bytes.length === 0) return;
    if (io.outBytes) io.outBytes(bytes);
    else io.out(bytes.toString('utf8'));
    if (bytes.at(-1) !== 0x0a) io.out('\n');
  };

  /** Runs a command body: its exit status, or 3 for no answer, 2 for a usage problem. */
  const act = (body: () => Promise<number>) => async () => {
    try {
      hooks.setExit(await body());
    } catch (error) {
      if (error instanceof ClientError || error instanceof UsageError) {
        if (output().json) io.out(JSON.stringify(errorJson(error)) + '\n');
        io.err(`${PROGRAM}: ${error instanceof ClientError ? describeClientError(error) : error.message}\n`);
        hooks.setExit(error.status);
        return;
      }
      throw error;
    }
  };

  const sendPairs = async (method: 'POST' | 'PUT', path: 'create' | 'update', pairs: string[]) => {
    const body = pairs.join('&');
    const c = client('standard');
    const answer = await c.send({ method, path, body });
    const code = print(answer, method);
    if (code === 1 && !output().json) {
      const hints = pairHints(body);
      if (hints.length === 0 && answer.kind === 'response' && /already exists/.test(answer.response.body)) hints.push(...(await storedKeys(c, body)));
      for (const hint of hints) io.err(`hint: ${hint}\n`);
    }
    return code;
  };

  /** Which of the body's keys are stored (standard dialect: one GET /kv/<key> each, at most 20). */
  const storedKeys = async (c: TcpkvClient, body: string): Promise<string[]> => {
    const keys = body.split('&').map((p) => p.slice(0, p.indexOf(':')).trim()).filter((k) => k !== '');
    if (c.options.dialect !== 'standard' || keys.length > 20) return [`one of ${keys.map((k) => JSON.stringify(k)).join(', ')} is already stored; update changes stored keys`];
    const found: string[] = [];
    for (const key of keys) {
      const a = await c.send({ method: 'GET', path: '', target: kvTarget(key) }).catch(() => undefined);
      if (a?.kind === 'response' && a.response.status === 200) found.push(key);
    }
    return found.map((k) => `key ${JSON.stringify(k)} is already stored; update (or put) changes it`);
  };

  program
    .command('get')
    .argument('[key]', 'one key (standard dialect); without it, the whole listing')
    .description('read one key, or list all the data (GET)')
    .action((key?: string) =>
      act(async () => {
        if (key === undefined) return print(await client('standard').send({ method: 'GET', path: '' }), 'GET');
        needStandard('get KEY');
        checkKey(key, false);
        return print(await client('standard').send({ method: 'GET', path: '', target: kvTarget(key) }), 'GET', true);
      })(),
    );
  program
    .command('put')
    .argument('<key>')
    .argument('[value]', 'the value as it is (may hold & and :); - or absent: read it from stdin')
    .addOption(new Option('--if-version <version>', 'write only if the key is at this version (If-Match; 412 and exit 1 if not)').conflicts('create'))
    .addOption(new Option('--create', 'write only if the key does not exist yet (If-None-Match: *; 412 and exit 1 if it does)'))
    .addOption(new Option('--ttl <seconds>', 'the key expires this many seconds after the write (?ttl=; 1 to a year); without it, it never does'))
    .description('store one key, new or not (PUT /kv/<key>); the answer\'s ETag is its new version')
    .action((key: string, value: string | undefined, opts: { ifVersion?: string; create?: boolean; ttl?: string }) =>
      act(async () => {
        needStandard('put');
        checkKey(key, true);
        const headers = conditionHeaders(opts);
        // the range is the server's to check (its 400 names it); a number is ours
        if (opts.ttl !== undefined && !/^[1-9][0-9]{0,11}$/.test(opts.ttl)) throw new UsageError(`--ttl takes a whole number of seconds, not ${JSON.stringify(opts.ttl)}`);
        const target = opts.ttl === undefined ? kvTarget(key) : `${kvTarget(key)}?ttl=${opts.ttl}`;
        let body: string | Buffer;
        if (value !== undefined && value !== '-') body = value;
        else if (hooks.atPrompt || !hooks.readStdin) throw new UsageError('put at the prompt needs the value: put KEY VALUE');
        else body = stdinValue(await hooks.readStdin());
        return print(await client('standard').send({ method: 'PUT', path: '', target, body, headers }), 'PUT');
      })(),
    );
  program
    .command('delete')
    .argument('<key>')
    .addOption(new Option('--if-version <version>', 'delete only if the key is at this version (If-Match; 412 and exit 1 if not)'))
    .description('remove one key (DELETE /kv/<key>)')
    .action((key: string, opts: { ifVersion?: string }) =>
      act(async () => {
        needStandard('delete');
        checkKey(key, false);
        return print(await client('standard').send({ method: 'DELETE', path: '', target: kvTarget(key), headers: conditionHeaders(opts) }), 'DELETE');
      })(),
    );
  program
    .command('keys')
    .option('--prefix <prefix>', 'only keys starting with this', '')
    .option('--page <n>', 'keys asked for per request (at most 1000)', '100')
    .description('list keys in insertion order, page by page (GET /kv?prefix=&after=&limit=)')
    .action((opts: { prefix: string; page: string }) =>
      act(async () => {
        needStandard('keys');
        const limit = Number(opts.page);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--page must be a whole number from 1 to 1000');
        const c = client('standard');
        const items: { key: string; value: string }[] = [];
        let after: string | null = null;
        let pages = 0;
        for (;;) {
          const query = `prefix=${encodeURIComponent(opts.prefix)}&limit=${limit}${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
          const answer = await c.send({ method: 'GET', path: '', target: `/kv?${query}` });
          pages += 1;
          if (answer.kind !== 'response' || answer.response.status !== 200) return print(answer, 'GET');
          let page: { items: { key: string; value: string }[]; next: string | null };
          try {
            page = JSON.parse(answer.response.body) as typeof page;
            if (!Array.isArray(page.items)) throw new Error('no items');
          } catch {
            throw new ClientError('BAD_RESPONSE', `${formatAddress(answer.server)}: the page is not the JSON {"items":[…],"next":…}`, false);
          }
          items.push(...page.items);
          if (!output().json) for (const item of page.items) io.out(item.key + '\n');
          if (page.next === null || page.next === undefined || page.next === after) {
            if (output().json) io.out(JSON.stringify({ server: formatAddress(answer.server), status: 200, items, pages }) + '\n');
            return 0;
          }
          after = page.next;
        }
      })(),
    );
  program
    .command('watch')
    .argument('[prefix]', 'only keys starting with this', '')
    .option('--since <revision>', 'changes after this revision (a listing\'s or an earlier watch\'s); default: from now')
    .option('--wait <seconds>', 'how long each request waits for a change before asking again', '30')
    .option('--count <n>', 'stop after this many changes (default: watch until interrupted)')
    .description('print each change under a prefix as it happens, one line each: REVISION PUT key: value, or REVISION DELETE key (GET /kv?watch)')
    .action((prefix: string, opts: { since?: string; wait: string; count?: string }) =>
      act(async () => {
        needStandard('watch');
        const whole = (flag: string, text: string | undefined, min: number) => {
          if (text === undefined) return undefined;
          if (!/^[0-9]{1,15}$/.test(text) || Number(text) < min) throw new UsageError(`${flag} takes a whole number${min > 0 ? ` of at least ${min}` : ''}, not ${JSON.stringify(text)}`);
          return Number(text);
        };
        const since = whole('--since', opts.since, 0);
        const count = whole('--count', opts.count, 1);
        if (!/^[0-9]{1,5}(\.[0-9]{1,3})?$/.test(opts.wait)) throw new UsageError(`--wait takes seconds (e.g. 30 or 0.5), not ${JSON.stringify(opts.wait)}`);
        const waitMs = Math.round(Number(opts.wait) * 1000);
        let printed = 0;
        try {
          for await (const change of watchChanges(client('standard'), { prefix, since, waitMs, onRetry: (reason) => io.err(`${PROGRAM}: watch: ${reason}; asking again\n`) })) {
            if (output().json) io.out(JSON.stringify(change) + '\n');
            else io.out(change.deleted === true ? `${change.version} DELETE ${change.key}\n` : `${change.version} PUT ${change.key}: ${change.value ?? ''}\n`);
            if (count !== undefined && ++printed >= count) return 0;
          }
        } catch (error) {
          if (error instanceof WatchAnswerError) return print(error.answer, 'GET');
          throw error;
        }
        return 0;
      })(),
    );
  program
    .command('lock')
    .argument('<name>', 'the key that is the lock')
    .argument('[command...]', 'run this while the lock is held (write it after --)')
    .option('--ttl <seconds>', 'the lease: the key expires this long after each renewal (renewed every third of it); a holder that dies frees the lock after about this long', '10')
    .option('--wait <seconds>', 'give up waiting for the lock after this long (exit 1); default: wait as long as it takes')
    .description('hold a lock (docs/locks.md): run COMMAND while holding it and release it when it ends, or without one hold it until interrupted')
    .action((name: string, command: string[], opts: { ttl: string; wait?: string }) =>
      act(async () => {
        needStandard('lock');
        if (hooks.atPrompt) throw new UsageError('lock holds a lock while a command runs: run it from a shell');
        checkKey(name, true);
        if (!/^[1-9][0-9]{0,7}$/.test(opts.ttl) || Number(opts.ttl) > MAX_LOCK_TTL_SECONDS) throw new UsageError(`--ttl takes a whole number of seconds from 1 to ${MAX_LOCK_TTL_SECONDS}, not ${JSON.stringify(opts.ttl)}`);
        if (opts.wait !== undefined && !/^[0-9]{1,7}(\.[0-9]{1,3})?$/.test(opts.wait)) throw new UsageError(`--wait takes seconds (e.g. 30 or 0.5), not ${JSON.stringify(opts.wait)}`);
        return runLock(name, command, Number(opts.ttl), opts.wait === undefined ? undefined : Math.round(Number(opts.wait) * 1000));
      })(),
    );
  /**
   * The lock command: acquire (stopped by SIGINT/SIGTERM), then run the command or wait for a signal,
   * then release. Exit status: the command's (128 + N when a signal N ended it), 5 when the lock was
   * lost (the command is sent SIGTERM), 1 when --wait ran out or the server refused the lock.
   */
  const runLock = async (name: string, command: string[], ttlSeconds: number, waitMs: number | undefined): Promise<number> => {
    const mode = output();
    const wall = (performanceMs: number) => Math.round(Date.now() + (performanceMs - performance.now()));
    const report = (event: string, fields: Record<string, unknown> = {}) => {
      if (mode.json) io.out(JSON.stringify({ event, key: name, ...fields, at: Date.now() }) + '\n');
    };
    const onEvent = (e: LockEvent) => {
      if (e.kind === 'acquired' || e.kind === 'renewed') report(e.kind, { version: e.version, validUntil: wall(e.validUntil) });
      else if (e.kind === 'lost') report('lost', { reason: e.reason });
      else if (e.kind === 'released') report('released', { deleted: e.deleted });
      else if (e.kind === 'retry' && !mode.quiet) io.err(`${PROGRAM}: lock ${e.phase}: ${e.reason}; trying again\n`);
    };
    const interrupt = new AbortController();
    let signalled: NodeJS.Signals | undefined;
    let child: ReturnType<typeof spawn> | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      signalled ??= signal;
      interrupt.abort();
      // the command decides how to stop; the lock is released once it has
      child?.kill(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const signalStatus = (signal: NodeJS.Signals) => 128 + (osConstants.signals[signal] ?? 0);
    let lock: HeldLock | undefined;
    try {
      try {
        lock = await acquireLock(client('standard'), { key: name, ttlSeconds, timeoutMs: waitMs, signal: interrupt.signal, onEvent });
      } catch (error) {
        if (error instanceof LockAbortedError) return signalStatus(signalled ?? 'SIGINT');
        if (error instanceof LockTimeoutError) {
          io.err(`${PROGRAM}: ${error.message}\n`);
          return 1;
        }
        if (error instanceof LockRefusedError) return print(error.answer, 'PUT');
        throw error;
      }
      // without a command the line is the output; with one, stdout is the command's
      const holding = `holding lock ${JSON.stringify(name)} (version ${lock.version}, renewed every ${Math.round((ttlSeconds * 1000) / 3)} ms)`;
      if (command.length === 0 && !mode.json) io.out(`${holding}; SIGINT or SIGTERM releases it\n`);
      else if (!mode.json && !mode.quiet) io.err(`${PROGRAM}: ${holding}\n`);
      const held = lock;
      const lost = held.lost.then((l) => {
        io.err(`${PROGRAM}: lock ${JSON.stringify(name)} lost: ${l.reason}${child ? '; stopping the command (SIGTERM)' : ''}\n`);
        child?.kill('SIGTERM');
        return 'lost' as const;
      });
      let status: number;
      if (command.length === 0) {
        const interrupted = new Promise<'signal'>((resolve) => interrupt.signal.addEventListener('abort', () => resolve('signal'), { once: true }));
        status = (await Promise.race([lost, interrupted])) === 'lost' ? 5 : 0;
      } else {
        const started = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
        child = started;
        const ended = new Promise<number>((resolve) => {
          started.once('error', (error: NodeJS.ErrnoException) => {
            io.err(`${PROGRAM}: cannot run ${JSON.stringify(command[0])}: ${error.code ?? error.message}\n`);
            resolve(error.code === 'ENOENT' ? 127 : 126);
          });
          started.once('exit', (code, signal) => resolve(code ?? signalStatus(signal ?? 'SIGTERM')));
        });
        const first = await Promise.race([lost, ended]);
        const code = await ended;
        status = first === 'lost' ? 5 : code;
      }
      report('releasing');
      await held.release();
      return status;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // a wait for the lock stopped by a signal may leave its long poll open: do not linger for it
      if (signalled !== undefined && lock === undefined) setTimeout(() => process.exit(), 100).unref();
    }
  };
  program
    .command('head')
    .argument('[key]', 'one key (standard dialect)')
    .description('check the server answers (HEAD); exit 0 if it does — the image health check')
    .action((key?: string) =>
      act(async () => {
        if (key !== undefined) {
          needStandard('head KEY');
          checkKey(key, false);
        }
        return print(await client('standard').send({ method: 'HEAD', path: '', ...(key === undefined ? {} : { target: kvTarget(key) }) }), 'HEAD');
      })(),
    );
  program
    .command('create')
    .argument('<pairs...>', '"key: value" pairs; several arguments are joined with &')
    .description('store new keys (POST /create); all or nothing')
    .action((pairs: string[]) => act(() => sendPairs('POST', 'create', pairs))());
  program
    .command('update')
    .argument('<pairs...>', '"key: value" pairs; several arguments are joined with &')
    .description('update or add keys (PUT /update)')
    .action((pairs: string[]) => act(() => sendPairs('PUT', 'update', pairs))());
  program
    .command('shutdown')
    .description('stop the server (END; needs --token or loopback)')
    .action(() => act(async () => print(await client('standard').send({ method: 'END', path: '' }), 'END'))());
  program
    .command('raw')
    .description('send the bytes read from stdin as they are and print what the server answers')
    .action(() =>
      act(async () => {
        if (hooks.atPrompt || !hooks.readStdin) throw new UsageError('raw reads stdin: run it from a shell');
        const answer = await client('standard').raw(await hooks.readStdin());
        if (io.outBytes) io.outBytes(answer);
        else io.out(answer.toString('utf8'));
        return answer.length > 0 ? 0 : 3;
      })(),
    );
  program
    .command('dump')
    .description('write every key and value, as one point in time, to stdout (docs/backup.md)')
    .action(() =>
      act(async () => {
        needStandard('dump');
        if (hooks.atPrompt) throw new UsageError('dump writes a file: run it from a shell (tcpkv-client dump > file)');
        try {
          const trailer = await dump(client('standard'), (text) => io.out(text));
          io.err(`dumped ${trailer.keys} keys (sha256 ${trailer.sha256})\n`);
          return 0;
        } catch (error) {
          if (error instanceof RestoreError) throw new ClientError('BAD_RESPONSE', error.message, false);
          throw error;
        }
      })(),
    );
  program
    .command('restore')
    .description('write the dump read from stdin into the server: an empty one, or one an interrupted restore of it left (docs/backup.md)')
    .option('--merge', "also into a server holding other keys: adds the dump's keys and sets colliding ones to the dump's values")
    .option('--replace', 'as --merge, then deletes the keys the dump does not hold')
    .option('--batch <n>', 'keys per POST /create (each batch all or nothing; one the server refuses as too large is split)', '50')
    .action((opts: { merge?: boolean; replace?: boolean; batch: string }) =>
      act(async () => {
        needStandard('restore');
        if (hooks.atPrompt || !hooks.readStdin) throw new UsageError('restore reads the dump from stdin: run it from a shell (tcpkv-client restore < file)');
        if (opts.merge === true && opts.replace === true) throw new UsageError('--merge and --replace exclude each other');
        const batchKeys = Number(opts.batch);
        if (!Number.isInteger(batchKeys) || batchKeys < 1 || batchKeys > 10_000) throw new UsageError('--batch must be a whole number from 1 to 10000');
        let entries;
        try {
          ({ entries } = readDump(await hooks.readStdin()));
        } catch (error) {
          if (error instanceof DumpFormatError) {
            io.err(`${PROGRAM}: nothing restored: ${error.message}\n`);
            return error.status;
          }
          throw error;
        }
        try {
          const mode = opts.replace === true ? 'replace' : opts.merge === true ? 'merge' : 'empty';
          const summary = await restore(client('standard'), entries, { mode, batchKeys, batchBytes: 512 * 1024, progress: (line) => io.err(line + '\n') });
          io.err(`restore done: ${summary.written} written, ${summary.updated} updated, ${summary.skipped} already there, ${summary.deleted} deleted\n`);
          return 0;
        } catch (error) {
          if (error instanceof RestoreError) {
            io.err(`${PROGRAM}: ${error.message}\n`);
            return error.status;
          }
          throw error;
        }
      })(),
    );
  program
    .command('scenario')
    .description("run the seed's 16 requests and print case / request / expected / got")
    .option('--spread', 'send case n to server n mod k of --server (replicas over one store answer as one)')
    .action((opts: { spread?: boolean }) =>
      act(async () => {
        const results = await runScenario(client('seed'), undefined, { spread: opts.spread === true });
        const failed = results.filter((r) => !r.ok).length;
        if (output().json) io.out(JSON.stringify({ passed: results.length - failed, failed, cases: results }) + '\n');
        else io.out(formatTable(results) + '\n');
        // The scenario needs an empty store; a durable server keeps the last run's data on purpose.
        const second = results.find((r) => r.n === 2);
        if (second && !second.ok && second.got.startsWith('200')) {
          io.err(
            "hint: the server already held data when the scenario began. A server with a data volume keeps the last run's\n" +
              'data (that is the point of it): reset it with `docker compose down -v`, or point the scenario at a fresh server.\n',
          );
        }
        if (failed === 0) return 0;
        // no answer at all (a server that is down): 3, as for any other command
        return results.some((r) => !r.ok && !r.answered) ? 3 : 1;
      })(),
    );

  // No command: the prompt. A word that is no command: commander's "unknown command" with its
  // "did you mean" (the prompt's action must not swallow it).
  program.allowExcessArguments(true).action(async () => {
    // commander's own "unknown command … (Did you mean …?)"; untyped in its .d.ts, public in its code
    if (program.args.length > 0) (program as unknown as { unknownCommand(): never }).unknownCommand();
    if (hooks.atPrompt || !hooks.startPrompt) {
      io.err('type a command (help lists them)\n');
      return;
    }
    await hooks.startPrompt(config(), output());
  });
  return program;
}

/** Parses and runs one command line; returns its exit status. Never exits the process. */
export async function runCommandLine(args: readonly string[], hooks: Omit<ProgramHooks, 'setExit'>): Promise<number> {
  let code = 0;
  const program = buildProgram({ ...hooks, setExit: (c) => (code = c) });
  try {
    await program.parseAsync(expandBareFlags(args, clientSettings), { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return isHelpOrVersion(error) ? 0 : 2;
    throw error;
  }
  return code;
}
