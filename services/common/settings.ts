// One table per program drives its environment variables, its CLI flags, its --help and the README's
// configuration table, so the four cannot drift apart. Values are read once at start, validated and
// frozen (as fastify does with its options); a bad one stops the program with one line naming the
// setting and exit status 2 (SPEC §6).
//
// Precedence: command-line flag, then the process environment, then `.env` in the working directory.

import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { parse as parseDotenv } from 'dotenv';

export interface Setting<T> {
  /** TCPKV_… */
  readonly env: string;
  /** flag name without dashes */
  readonly flag: string;
  readonly valueName: string;
  /** raw text, parsed like any other value; undefined = unset */
  readonly default: string | undefined;
  readonly describe: string;
  /** validates and converts; throws an Error whose message says what is wrong */
  parse(raw: string): T;
}

export type SettingValues<S extends Record<string, Setting<unknown>>> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T> ? (S[K]['default'] extends string ? T : T | undefined) : never;
};

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Declares a setting; keeps whether it has a default in its type, so defaulted values are never undefined. */
export function setting<T, D extends string | undefined>(s: Setting<T> & { readonly default: D }): Setting<T> & { readonly default: D } {
  return s;
}

/** Reads `.env` from the working directory, if there is one. */
export function readDotenv(path = '.env'): Record<string, string> {
  try {
    return parseDotenv(readFileSync(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
}

/** `max-body-bytes` → `maxBodyBytes`: the attribute commander stores a flag under. */
function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Adds one `--flag <value>` option per setting to a commander program. Keys must be the flags' camelCase. */
export function addSettingOptions(program: Command, settings: Record<string, Setting<unknown>>): void {
  for (const [key, s] of Object.entries(settings)) {
    if (camelCase(s.flag) !== key) throw new Error(`setting ${key}: flag --${s.flag} must be its kebab-case`);
    const def = s.default === undefined ? 'unset' : s.default;
    program.addOption(new Option(`--${s.flag} <${s.valueName}>`, `${s.describe} [${s.env}; default: ${def}]`));
  }
}

/** Resolves every setting: flag, else environment, else `.env`, else default. Throws ConfigError. */
export function resolveSettings<S extends Record<string, Setting<unknown>>>(
  settings: S,
  flags: Record<string, unknown>,
  env: Record<string, string | undefined>,
): SettingValues<S> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(settings)) {
    const fromFlag = flags[key];
    const raw = typeof fromFlag === 'string' ? fromFlag : env[s.env] !== undefined && env[s.env] !== '' ? env[s.env] : s.default;
    const origin = typeof fromFlag === 'string' ? `--${s.flag}` : env[s.env] !== undefined && env[s.env] !== '' ? s.env : `default of ${s.env}`;
    if (raw === undefined) {
      out[key] = undefined;
      continue;
    }
    try {
      out[key] = s.parse(raw);
    } catch (error) {
      throw new ConfigError(`${origin}=${JSON.stringify(raw)}: ${(error as Error).message}`);
    }
  }
  return Object.freeze(out) as SettingValues<S>;
}

/**
 * Runs commander for a program: `--help` and `--version` exit 0, a usage error exits 2 with commander's
 * message, as a bad setting does.
 */
export async function parseCommandLine(program: Command, argv: readonly string[]): Promise<void> {
  program.exitOverride();
  try {
    await program.parseAsync(argv as string[]);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
        process.exit(0);
      }
      process.exit(2);
    }
    throw error;
  }
}

/** Prints `<program>: <message>` and exits 2: the one clear line SPEC §6 asks for. */
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

export function oneOf<T extends string>(...values: T[]): (raw: string) => T {
  return (raw) => {
    const v = raw.trim().toLowerCase();
    if (!(values as string[]).includes(v)) throw new Error(`must be one of ${values.join(', ')}`);
    return v as T;
  };
}

export function nonBlank(raw: string): string {
  if (raw.trim() === '' || /\s/.test(raw.trim())) throw new Error('must be non-empty text without spaces');
  return raw.trim();
}
