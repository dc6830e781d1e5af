// Reading a compose file the way Compose does, for the settings the end-to-end test reuses:
// YAML through the `yaml` package, then variable interpolation (${VAR}, ${VAR:-default}, ${VAR-default},
// ${VAR:?message}, ${VAR?message}, $VAR, $$) against the given settings.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

/* eslint-disable @typescript-eslint/no-explicit-any -- compose's YAML is untyped */
export type ComposeDoc = Record<string, any>;

export class MissingSettingError extends Error {}

export function interpolate(value: string, settings: Record<string, string | undefined>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
      if (match === '$$') return '$';
      const name = (braced ?? bare)!;
      const v = settings[name];
      const unset = v === undefined;
      const empty = unset || v === '';
      switch (op) {
        case ':-':
          return empty ? (arg ?? '') : v!;
        case '-':
          return unset ? (arg ?? '') : v!;
        case ':?':
          if (empty) throw new MissingSettingError(`${name}: ${arg}`);
          return v!;
        case '?':
          if (unset) throw new MissingSettingError(`${name}: ${arg}`);
          return v!;
        default:
          return v ?? '';
      }
    },
  );
}

export function readCompose(file: string): ComposeDoc {
  return parseYaml(readFileSync(file, 'utf8')) as ComposeDoc;
}

/**
 * A service's `environment` (map or list form) with the settings interpolated. Keys without a value
 * pass the setting of the same name through when it is set, as Compose does with the shell's.
 */
export function serviceEnvironment(doc: ComposeDoc, service: string, settings: Record<string, string | undefined>): Record<string, string> {
  const raw = doc.services?.[service]?.environment as Record<string, unknown> | string[] | undefined;
  const entries: Array<[string, unknown]> = Array.isArray(raw)
    ? raw.map((item) => {
        const i = item.indexOf('=');
        return i < 0 ? [item, null] : [item.slice(0, i), item.slice(i + 1)];
      })
    : Object.entries(raw ?? {});
  const env: Record<string, string> = {};
  for (const [key, value] of entries) {
    if (value === null || value === undefined) {
      const passed = settings[key];
      if (passed !== undefined) env[key] = passed;
    } else {
      env[key] = interpolate(String(value), settings);
    }
  }
  return env;
}
