// services/common/setting-names.ts against the programs' settings tables: one entry per row, the same
// variable and default (so a default is written once), and the hidden test switch honoured, yet
// absent from --help, never called unknown, and refused from a .env file.

import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { clientSettings } from '../../services/client/client-settings.js';
import { CLIENT_SETTING_NAMES, KNOWN_ENV_NAMES, SERVER_SETTING_NAMES } from '../../services/common/setting-names.js';
import { addSettingOptions, ConfigError, prepareEnvironment, settingValues, settingWarnings, type Setting } from '../../services/common/settings.js';
import { serverSettingGroup, serverSettings } from '../../services/server/config.js';

const envAndDefault = (rows: Record<string, Setting<unknown> | { env: string; default: string | undefined }>) =>
  Object.fromEntries(Object.entries(rows).map(([key, s]) => [key, { env: s.env, default: s.default }]));

function serverProgram(env: NodeJS.ProcessEnv, args: string[] = []) {
  const program = new Command('tcpkv-server').exitOverride();
  addSettingOptions(program, serverSettings, serverSettingGroup);
  const saved = { ...process.env };
  try {
    for (const name of Object.keys(process.env)) if (name.startsWith('TCPKV_')) delete process.env[name];
    Object.assign(process.env, env);
    program.parse(args, { from: 'user' });
    return { program, config: settingValues(program, serverSettings) };
  } finally {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
  }
}

describe('setting names', () => {
  it("list exactly each program's rows, with the rows' variables and defaults", () => {
    expect(envAndDefault(serverSettings)).toEqual(envAndDefault(SERVER_SETTING_NAMES));
    expect(envAndDefault(clientSettings)).toEqual(envAndDefault(CLIENT_SETTING_NAMES));
  });

  it('KNOWN_ENV_NAMES holds every variable of both programs', () => {
    for (const s of [...Object.values(serverSettings), ...Object.values(clientSettings)]) expect(KNOWN_ENV_NAMES).toContain(s.env);
  });
});

describe('the hidden test switch TCPKV_TEST_ONLY_UNSAFE_READS', () => {
  it('is honoured from the environment and not called unknown', () => {
    const { program, config } = serverProgram({ TCPKV_TEST_ONLY_UNSAFE_READS: 'no-barrier' });
    expect(config.testOnlyUnsafeReads).toBe('no-barrier');
    expect(settingWarnings(program, serverSettings, KNOWN_ENV_NAMES, new Set(), { TCPKV_TEST_ONLY_UNSAFE_READS: 'no-barrier', TCPKV_PROT: '1' })).toEqual([
      'unknown environment variable TCPKV_PROT is ignored; did you mean TCPKV_PORT?',
    ]);
  });

  it('is absent from --help, which shows the rows beside it', () => {
    const { program } = serverProgram({});
    const help = program.helpInformation();
    expect(help).toContain('--etcd-max-request-bytes');
    expect(help).not.toMatch(/UNSAFE|unsafe-reads/i);
  });

  it('is refused from .env, naming it', () => {
    const env: NodeJS.ProcessEnv = {};
    expect(() => prepareEnvironment(env, { TCPKV_TEST_ONLY_UNSAFE_READS: 'no-barrier' })).toThrow(ConfigError);
    expect(() => prepareEnvironment(env, { TCPKV_TEST_ONLY_UNSAFE_READS: 'no-barrier' })).toThrow(/TCPKV_TEST_ONLY_UNSAFE_READS in \.env/);
    expect(env.TCPKV_TEST_ONLY_UNSAFE_READS).toBeUndefined();
  });
});
