// docs/configuration.md against the code: its generated tables are exactly what the settings tables
// render, every TCPKV_* name it mentions exists, and every server setting has a --help group.

import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLIENT_ENV_NAMES } from '../../services/client/client-settings.js';
import { SECRET_ENV } from '../../services/common/settings.js';
import { serverSettingGroup, serverSettings } from '../../services/server/config.js';
import { BEGIN, END, renderSettingsTables } from '../support/config-doc.js';

const DOC = new URL('../../docs/configuration.md', import.meta.url);

describe('docs/configuration.md', () => {
  it('holds the tables the settings render', () => {
    const doc = readFileSync(DOC, 'utf8');
    const start = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    expect(start).toBeGreaterThan(0);
    const expected = `${BEGIN}\n${renderSettingsTables()}${END}`;
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, doc.slice(0, start) + expected + doc.slice(end + END.length));
    else expect(doc.slice(start, end + END.length)).toBe(expected);
  });

  it('names only variables that exist', () => {
    const known = new Set([...Object.values(serverSettings).map((s) => s.env), ...CLIENT_ENV_NAMES, ...SECRET_ENV.map((n) => `${n}_FILE`)]);
    const deployment = /^TCPKV_(SERVER_IMAGE|CLIENT_IMAGE|COMPOSE_PROJECT|PUBLISH)$/;
    const examples = new Set(['TCPKV_PROT']); // the misspelling the warning example shows
    for (const name of readFileSync(DOC, 'utf8').match(/TCPKV_[A-Z0-9_]*[A-Z0-9]/g) ?? []) {
      expect(known.has(name) || deployment.test(name) || examples.has(name), name).toBe(true);
    }
  });

  it('puts every server setting in a --help group', () => {
    for (const key of Object.keys(serverSettings)) expect([key, serverSettingGroup(key)]).not.toEqual([key, 'Other:']);
  });
});
