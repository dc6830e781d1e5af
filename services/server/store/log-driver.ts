// The append-only log store's driver: TCPKV_DATA_DIR and the log's own settings.

import { integer, oneOf, path, setting } from '../../common/settings.js';
import { SERVER_SETTING_NAMES } from '../../common/setting-names.js';
import { ConfigError } from '../../common/settings.js';
import { storeDriver } from './driver.js';

const MIB = 1024 * 1024;

function factor(raw: string): number {
  const n = Number(raw.trim());
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(n >= 1.1 && n <= 1000)) throw new Error('must be a number from 1.1 to 1000');
  return n;
}

export const logSettings = {
  dataDir: setting({ ...SERVER_SETTING_NAMES.dataDir, flag: 'data-dir', valueName: 'dir', describe: 'directory of the append-only log; unset = memory only', parse: path }),
  fsync: setting({ ...SERVER_SETTING_NAMES.fsync, flag: 'fsync', valueName: 'policy', describe: 'when the log is fsynced: always, everysec or no', parse: oneOf('always', 'everysec', 'no') }),
  logRepair: setting({ ...SERVER_SETTING_NAMES.logRepair, flag: 'log-repair', valueName: 'off|truncate', describe: 'a damaged record inside the log: off refuses to start; truncate cuts the log there, losing what follows (--check-log shows what)', parse: oneOf('off', 'truncate') }),
  compactFactor: setting({ ...SERVER_SETTING_NAMES.compactFactor, flag: 'compact-factor', valueName: 'x', describe: 'rewrite the log when it is this many times the size of the live data', parse: factor }),
  compactMinBytes: setting({ ...SERVER_SETTING_NAMES.compactMinBytes, flag: 'compact-min-bytes', valueName: 'bytes', describe: 'no rewrite below this log size', parse: integer(0, 1024 * 1024 * MIB) }),
  maxLogRecordBytes: setting({ ...SERVER_SETTING_NAMES.maxLogRecordBytes, flag: 'max-log-record-bytes', valueName: 'bytes', describe: 'largest log record one write may need (its pairs as UTF-8 JSON; 413 above); replay loads records up to 256 MiB', parse: integer(1024, 256 * MIB) }),
};

export const logDriver = storeDriver({
  name: 'log',
  settings: logSettings,
  impliedBy: (config) => config.dataDir !== undefined,
  settingsProblem: (config) => (config.dataDir === undefined ? 'TCPKV_STORE=log needs TCPKV_DATA_DIR: the directory of the log' : undefined),
  async open(config, { limits, logger, events, feedLimits }) {
    const dir = config.dataDir!;
    const { LogOpenError, LogStore } = await import('./log-store.js');
    const { DirectoryLockedError } = await import('./dir-lock.js');
    try {
      return await LogStore.open({
        dir,
        fsync: config.fsync,
        compactFactor: config.compactFactor,
        compactMinBytes: config.compactMinBytes,
        maxRecordBytes: config.maxLogRecordBytes,
        limits,
        ...(events ? { events } : {}),
        repair: config.logRepair,
        logger,
        feedLimits,
      });
    } catch (error) {
      if (error instanceof LogOpenError || error instanceof DirectoryLockedError) throw new ConfigError(`TCPKV_DATA_DIR: ${error.message}`, 'TCPKV_DATA_DIR', { cause: error });
      const e = error as NodeJS.ErrnoException;
      if (e.code === 'EACCES' || e.code === 'EROFS' || e.code === 'ENOTDIR') throw new ConfigError(`TCPKV_DATA_DIR=${dir}: ${e.code}: ${e.message}`, 'TCPKV_DATA_DIR', { cause: error });
      throw error;
    }
  },
  location: (config) => `in TCPKV_DATA_DIR=${config.dataDir}`,
});
