// Picks the store the configuration asks for: memory, or the append-only log in TCPKV_DATA_DIR.

import type { Logger } from 'pino';
import { ConfigError } from '../../common/settings.js';
import type { ServerConfig } from '../config.js';
import { DirectoryLockedError } from './dir-lock.js';
import { LogOpenError, LogStore } from './log-store.js';
import { MemoryStore } from './memory-store.js';
import type { Store } from './store.js';

/** Opens the store; a refusal to start (bad setting, damaged log, directory in use) is a ConfigError. */
export async function openStore(config: ServerConfig, logger: Logger): Promise<Store> {
  if (config.etcdEndpoints !== undefined) {
    throw new ConfigError('TCPKV_ETCD_ENDPOINTS: the etcd store is not part of this version yet; unset it');
  }
  if (config.dataDir === undefined) return new MemoryStore();
  try {
    return await LogStore.open({
      dir: config.dataDir,
      fsync: config.fsync,
      compactFactor: config.compactFactor,
      compactMinBytes: config.compactMinBytes,
      repair: config.logRepair,
      logger,
    });
  } catch (error) {
    if (error instanceof LogOpenError || error instanceof DirectoryLockedError) throw new ConfigError(`TCPKV_DATA_DIR: ${error.message}`);
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EROFS' || e.code === 'ENOTDIR') throw new ConfigError(`TCPKV_DATA_DIR=${config.dataDir}: ${e.code}: ${e.message}`);
    throw error;
  }
}
