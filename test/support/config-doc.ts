// Renders the settings tables of both programs as the Markdown tables of docs/configuration.md, so
// the document is checked against the code (and rewritten from it with UPDATE_DOCS=1).

import { clientSettings } from '../../services/client/client-settings.js';
import { settingValueText, type Setting } from '../../services/common/settings.js';
import { serverSettingGroup, serverSettings } from '../../services/server/config.js';

const cell = (text: string) => text.replace(/\|/g, '\\|');

function rows(settings: Record<string, Setting<unknown>>, keys: string[]): string[] {
  return keys.map((key) => {
    const s = settings[key]!;
    const choices = (s.parse as { choices?: readonly string[] }).choices;
    const what = cell(s.describe) + (choices ? ` (one of ${choices.map((c) => `\`${c}\``).join(', ')})` : '');
    return `| \`${s.env}\` | \`--${s.flag} ${cell(settingValueText(s))}\` | ${s.default === undefined ? 'unset' : `\`${cell(s.default)}\``} | ${what} |`;
  });
}

const HEADER = ['| variable | flag | default | meaning |', '|---|---|---|---|'];

/** The generated part of docs/configuration.md: the server's settings by help group, then the client's. */
export function renderSettingsTables(): string {
  const groups = new Map<string, string[]>(serverSettingGroup.order.map((g) => [g.replace(/:$/, ''), []]));
  // a hidden row (a test switch) is honoured but documented nowhere users look
  for (const key of Object.keys(serverSettings).filter((k) => !serverSettings[k as keyof typeof serverSettings].hidden)) {
    const group = serverSettingGroup(key).replace(/:$/, '');
    groups.set(group, [...(groups.get(group) ?? []), key]);
  }
  const out: string[] = [];
  for (const [group, keys] of groups) if (keys.length) out.push(`### tcpkv-server: ${group.toLowerCase()}`, '', ...HEADER, ...rows(serverSettings, keys), '');
  out.push('### tcpkv-client', '', ...HEADER, ...rows(clientSettings, Object.keys(clientSettings)), '');
  return out.join('\n');
}

export const BEGIN = '<!-- generated from the settings tables: begin -->';
export const END = '<!-- generated from the settings tables: end -->';
