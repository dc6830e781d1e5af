// One table per program drives its environment variables, its CLI flags, its --help and the
// configuration reference (docs/configuration.md, checked against the tables by a test), so they
// cannot drift apart. commander does the reading: each setting is an Option with .env() (the
// variable), .default() (shown in --help) and .choices() or a parser; a bad value stops the program
// with one line naming the flag or variable and exit status 2 (docs/configuration.md).
//
// Precedence, highest first: command-line flag, process environment, `.env` in the working
// directory, default. An EMPTY variable counts as unset — in the environment and in `.env` alike —
// so `TCPKV_PORT=` in a shell or `TCPKV_DATA_DIR: ""` in a compose file never hides a value below it.
// A secret (the shutdown token, the etcd password) may instead be read from the file named by
// `<NAME>_FILE` (Docker secrets), so it appears neither in `ps` nor in `docker inspect`.

import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parse as parseDotenv } from 'dotenv';
import { StartupError } from './errors.js';
import { CLIENT_SETTING_NAMES, SERVER_SETTING_NAMES, type SettingName } from './setting-names.js';

export interface Setting<T> {
  /** TCPKV_… */
  readonly env: string;
  /** flag name without dashes */
  readonly flag: string;
  readonly valueName: string;
  /** raw text, parsed like any other value; undefined = unset */
  readonly default: string | undefined;
  readonly describe: string;
  /** set = the value may be left out (`--tls` alone), and then it is this */
  readonly bareValue?: string;
  /** honoured, but left out of --help and docs/configuration.md (a test switch) */
  readonly hidden?: true;
  /** validates and converts; throws an Error whose message says what is wrong */
  parse(raw: string): T;
}

export type SettingValues<S extends Record<string, Setting<unknown>>> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T> ? (S[K]['default'] extends string ? T : T | undefined) : never;
};

/** A setting (or a combination of settings) a program cannot start with; `setting` names it when one does. */
export class ConfigError extends StartupError {
  constructor(message: string, setting?: string, options?: ErrorOptions) {
    super('TCPKV_ERR_CONFIG', message, setting, options);
  }
}

/** Declares a setting; keeps whether it has a default in its type, so defaulted values are never undefined. */
export function setting<T, D extends string | undefined>(s: Setting<T> & { readonly default: D }): Setting<T> & { readonly default: D } {
  return s;
}

/** Variables holding secrets: each may be given as `<NAME>_FILE` instead, and a flag for it draws a warning. */
export const SECRET_ENV = Object.freeze(['TCPKV_SHUTDOWN_TOKEN', 'TCPKV_ETCD_PASSWORD']);

/** Test switches: honoured from the process environment only, never from a `.env` file left behind. */
const HIDDEN_ENV: ReadonlySet<string> = new Set(
  ([...Object.values(SERVER_SETTING_NAMES), ...Object.values(CLIENT_SETTING_NAMES)] as SettingName[]).filter((s) => s.hidden).map((s) => s.env),
);

/** Names used by the compose files and deployment scripts, not by either program: never "unknown". */
const DEPLOYMENT_ENV = /^TCPKV_(SERVER_IMAGE|CLIENT_IMAGE|COMPOSE_PROJECT|PUBLISH(_\d+)?)$/;

/** Reads `.env` from the working directory, if there is one. */
export function readDotenv(path = '.env'): Record<string, string> {
  try {
    return parseDotenv(readFileSync(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** `<port>`, or `[on|off]` for a value that may be left out. */
export function settingValueText(s: Setting<unknown>): string {
  return s.bareValue !== undefined ? `[${s.valueName}]` : `<${s.valueName}>`;
}

/**
 * A flag whose value may be left out (`--tls`) would take the next word as its value (`--tls get`):
 * written `--tls=on` here unless that word is a value it accepts.
 */
export function expandBareFlags(args: readonly string[], settings: Record<string, Setting<unknown>>): string[] {
  const bare = new Map<string, Setting<unknown>>(Object.values(settings).filter((s) => s.bareValue !== undefined).map((s) => [`--${s.flag}`, s] as const));
  return args.map((arg, i) => {
    const s = bare.get(arg);
    if (s === undefined) return arg;
    const next = args[i + 1];
    if (next !== undefined && !next.startsWith('-')) {
      try {
        s.parse(next);
        return arg;
      } catch {
        // not a value of this flag: the next command-line word
      }
    }
    return `${arg}=${s.bareValue}`;
  });
}

/** `max-body-bytes` → `maxBodyBytes`: the attribute commander stores a flag under. */
function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The parser of a setting that takes one of a few words, marked so --help can list them. */
type ChoiceParser<T extends string> = ((raw: string) => T) & { readonly choices: readonly T[] };

function choicesOf(parse: (raw: string) => unknown): readonly string[] | undefined {
  return (parse as Partial<ChoiceParser<string>>).choices;
}

/**
 * Adds one `--flag <value>` option per setting to a commander program, read from its variable when the
 * flag is absent, with its default and (for word settings) its choices shown by --help. `groupOf`
 * names the help group of each setting (commander's option help groups), listed in `groupOf.order`.
 * Keys must be the flags' camelCase.
 */
export function addSettingOptions(program: Command, settings: Record<string, Setting<unknown>>, groupOf?: ((key: string) => string) & { readonly order?: readonly string[] }): void {
  let entries = Object.entries(settings);
  // --help lists groups in the order options are added: add them group by group
  const order = groupOf?.order;
  if (groupOf && order) entries = entries.map((e, i) => [e, order.indexOf(groupOf(e[0])), i] as const).sort((a, b) => a[1] - b[1] || a[2] - b[2]).map(([e]) => e);
  for (const [key, s] of entries) {
    if (camelCase(s.flag) !== key) throw new Error(`setting ${key}: flag --${s.flag} must be its kebab-case`);
    const option = new Option(`--${s.flag} ${settingValueText(s)}`, s.describe).env(s.env);
    if (s.bareValue !== undefined) option.preset(s.bareValue);
    const choices = choicesOf(s.parse);
    if (choices) option.choices(choices);
    option.argParser((raw: string) => {
      try {
        return s.parse(raw);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    });
    if (s.default !== undefined) option.default(s.parse(s.default), s.default);
    if (groupOf) option.helpGroup(groupOf(key));
    if (s.hidden) option.hideHelp();
    program.addOption(option);
  }
}

/**
 * Makes `process.env` what commander should read: `.env` fills the `TCPKV_*` variables the environment
 * leaves unset or empty, empty `TCPKV_*` variables are removed (unset), and each `<SECRET>_FILE` is read into its variable.
 * Returns the names that came from `.env`, for the warnings. Throws ConfigError.
 */
export function prepareEnvironment(env: NodeJS.ProcessEnv = process.env, dotenv: Record<string, string> = readDotenv()): Set<string> {
  const fromDotenv = new Set<string>();
  for (const [name, value] of Object.entries(dotenv)) {
    // only tcpkv's own names: a .env shared with other tools must not change this process otherwise
    if (HIDDEN_ENV.has(name)) throw new ConfigError(`${name} in .env: a test switch is read from the environment only`, name);
    if (name.startsWith('TCPKV_') && (env[name] === undefined || env[name] === '') && value !== '') {
      env[name] = value;
      fromDotenv.add(name);
    }
  }
  for (const name of Object.keys(env)) if (name.startsWith('TCPKV_') && env[name] === '') delete env[name];
  for (const name of SECRET_ENV) {
    const file = env[`${name}_FILE`];
    if (file === undefined) continue;
    if (env[name] !== undefined) throw new ConfigError(`${name} and ${name}_FILE are both set: keep one`);
    let text: string;
    try {
      text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new ConfigError(`${name}_FILE=${file}: cannot read it: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (text === '') throw new ConfigError(`${name}_FILE=${file}: the file is empty`);
    env[name] = text;
  }
  return fromDotenv;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** The known name closest to `name`. */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

/**
 * Warnings a person should see at start: a `TCPKV_*` name no program knows (a typo silently does
 * nothing), with the closest known one; a secret given as a flag (visible to every user in `ps`).
 * `known`: every variable of both programs (a shared `.env` holds both).
 */
export function settingWarnings(
  program: Command,
  settings: Record<string, Setting<unknown>>,
  known: Iterable<string>,
  fromDotenv: ReadonlySet<string>,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const names = new Set([...known, ...SECRET_ENV.map((n) => `${n}_FILE`)]);
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('TCPKV_') || names.has(name) || DEPLOYMENT_ENV.test(name)) continue;
    const where = fromDotenv.has(name) ? '.env key' : 'environment variable';
    warnings.push(`unknown ${where} ${name} is ignored; did you mean ${closestName(name, names)}?`);
  }
  for (const [key, s] of Object.entries(settings)) {
    if (SECRET_ENV.includes(s.env) && program.getOptionValueSource(key) === 'cli') {
      warnings.push(`--${s.flag} is visible to other users of this machine (ps); prefer ${s.env}_FILE or ${s.env}`);
    }
  }
  return warnings;
}

/** The settings' values as commander resolved them. */
export function settingValues<S extends Record<string, Setting<unknown>>>(program: Command, settings: S): SettingValues<S> {
  const opts = program.opts();
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(settings)) out[key] = opts[key];
  return Object.freeze(out) as SettingValues<S>;
}

/** commander's outcomes that are not errors: help and version were asked for. */
export function isHelpOrVersion(error: CommanderError): boolean {
  return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help';
}

/**
 * Runs commander for a program: `--help` and `--version` exit 0, a usage error or a bad setting exits
 * 2 with commander's one-line message.
 */
export async function parseCommandLine(program: Command, argv: readonly string[]): Promise<void> {
  program.exitOverride();
  try {
    await program.parseAsync(argv as string[]);
  } catch (error) {
    if (error instanceof CommanderError) process.exit(isHelpOrVersion(error) ? 0 : 2);
    throw error;
  }
}

/** Prints `<program>: <message>` and exits 2: the one clear line docs/configuration.md promises. */
export function exitWithConfigError(programName: string, error: unknown): never {
  process.stderr.write(`${programName}: invalid configuration: ${(error as Error).message}\n`);
  process.exit(2);
}

// ---- parsers shared by both programs --------------------------------------------------------------

export function integer(min: number, max: number): (raw: string) => number {
  return (raw) => {
    if (!/^\d+$/.test(raw.trim())) throw new Error(`must be a whole number from ${min} to ${max}`);
    const n = Number(raw.trim());
    if (n < min || n > max) throw new Error(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** One of a few words (compared as given: --help lists them, commander checks them). */
export function oneOf<T extends string>(...values: T[]): ChoiceParser<T> {
  const parse = (raw: string): T => {
    const v = raw.trim().toLowerCase();
    if (!(values as string[]).includes(v)) throw new Error(`must be one of ${values.join(', ')}`);
    return v as T;
  };
  return Object.assign(parse, { choices: Object.freeze([...values]) });
}

export function onOff(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (v === 'on' || v === 'true' || v === '1') return true;
  if (v === 'off' || v === 'false' || v === '0') return false;
  throw new Error('must be on or off');
}

/**
 * A file or directory name: any text but blank, and no control characters (a line break in a path is
 * almost always a mistake in a compose file). Spaces inside are kept (`/srv/tcpkv data`); spaces
 * around it are trimmed, as in every setting.
 */
export function path(raw: string): string {
  const v = raw.trim();
  if (v === '') throw new Error('must name a path');
  // eslint-disable-next-line no-control-regex -- control characters are what this refuses
  if (/[\x00-\x1f\x7f]/.test(v)) throw new Error('must be a path without line breaks or control characters');
  return v;
}

export function nonBlank(raw: string): string {
  if (raw.trim() === '' || /\s/.test(raw.trim())) throw new Error('must be non-empty text without spaces');
  return raw.trim();
}
