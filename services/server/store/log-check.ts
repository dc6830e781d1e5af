// `tcpkv-server --check-log FILE`: reads a log (a backup copy, or the live file) the way a starting
// server would, without locking its directory or writing anything, and says whether a server would
// load it — and, for damage, what TCPKV_LOG_REPAIR=truncate would cut (after redis-check-aof, which
// shows what it would drop before it drops it).

import { closeSync, fstatSync, openSync } from 'node:fs';
import { fileSource, FORMAT_VERSION, replay, surveyDamage, type DamageSurvey, type FormatVersion } from './log-format.js';

export type LogCheck =
  | { readonly outcome: 'empty'; readonly file: string }
  | { readonly outcome: 'clean'; readonly file: string; readonly bytes: number; readonly version: FormatVersion; readonly records: number; readonly keys: number }
  /** a torn last write: a server loads everything before it and cuts it off */
  | { readonly outcome: 'torn'; readonly file: string; readonly bytes: number; readonly version: FormatVersion; readonly records: number; readonly keys: number; readonly offset: number }
  /** a server refuses it; truncate would cut at `offset` and lose `lost` */
  | {
      readonly outcome: 'damaged';
      readonly file: string;
      readonly bytes: number;
      readonly version: FormatVersion;
      readonly records: number;
      readonly keys: number;
      readonly offset: number;
      readonly reason: string;
      readonly lost: DamageSurvey;
    }
  | { readonly outcome: 'not-a-log'; readonly file: string; readonly reason: string };

/** Reads `file` read-only; an error opening or reading it (ENOENT, EACCES, EISDIR…) is thrown. */
export function checkLogFile(file: string): LogCheck {
  const fd = openSync(file, 'r');
  try {
    const bytes = fstatSync(fd).size;
    const source = fileSource(fd, bytes);
    const live = new Set<string>();
    const result = replay(source, {
      set: (pairs) => {
        for (const [key] of pairs) live.add(key);
      },
      delete: (keys) => {
        for (const key of keys) live.delete(key);
      },
    });
    switch (result.kind) {
      case 'empty':
        return { outcome: 'empty', file };
      case 'ok':
        return { outcome: 'clean', file, bytes, version: result.version, records: result.records, keys: live.size };
      case 'truncated':
        return { outcome: 'torn', file, bytes, version: result.version, records: result.records, keys: live.size, offset: result.goodBytes };
      case 'corrupt':
        return { outcome: 'damaged', file, bytes, version: result.version, records: result.records, keys: live.size, offset: result.offset, reason: result.reason, lost: surveyDamage(source, result.offset) };
      case 'failed':
        return { outcome: 'not-a-log', file, reason: result.reason };
    }
  } finally {
    closeSync(fd);
  }
}

const KEYS_SHOWN = 20;

/** The report a person reads, and the exit status: 0 a server would load the file, 1 it would refuse it. */
export function describeLogCheck(check: LogCheck): { text: string; exitCode: 0 | 1 } {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const upgrade = (version: FormatVersion) => (version === FORMAT_VERSION ? '' : `; it is rewritten in format v${FORMAT_VERSION} at start`);
  switch (check.outcome) {
    case 'empty':
      return { text: `${check.file}: empty (no log yet): a server starts it afresh\n`, exitCode: 0 };
    case 'not-a-log':
      return { text: `${check.file}: ${check.reason}: a server refuses to start on it\n`, exitCode: 1 };
    case 'clean':
      return { text: `${check.file}: log format v${check.version}, ${check.bytes} bytes\nok: ${plural(check.records, 'record')}, ${plural(check.keys, 'key')}; a server loads it as it is${upgrade(check.version)}\n`, exitCode: 0 };
    case 'torn':
      return {
        text:
          `${check.file}: log format v${check.version}, ${check.bytes} bytes\n` +
          `ok: ${plural(check.records, 'record')}, ${plural(check.keys, 'key')}, then a torn last write at offset ${check.offset} ` +
          `(${check.bytes - check.offset} bytes: a write cut short by a crash or a full disk, or still being written when the file was copied); a server loads the records and cuts those bytes off${upgrade(check.version)}\n`,
        exitCode: 0,
      };
    case 'damaged': {
      const keys = [...check.lost.keys];
      const shown = keys.slice(0, KEYS_SHOWN).map((k) => JSON.stringify(k)).join(', ');
      const more = keys.length > KEYS_SHOWN ? `, and ${keys.length - KEYS_SHOWN} more` : '';
      return {
        text:
          `${check.file}: log format v${check.version}, ${check.bytes} bytes\n` +
          `DAMAGED at offset ${check.offset} (${check.reason}), after ${plural(check.records, 'good record')} (${plural(check.keys, 'key')})\n` +
          `a server refuses to start on it (exit 2)\n` +
          `TCPKV_LOG_REPAIR=truncate would cut it at offset ${check.offset}: ${check.lost.bytes} bytes, the damaged record and ` +
          `${plural(check.lost.readableRecords, 'readable record')} after it, which write or delete ${plural(keys.length, 'key')}${keys.length > 0 ? `: ${shown}${more}` : ''}\n` +
          `copy the file before repairing it\n`,
        exitCode: 1,
      };
    }
  }
}
