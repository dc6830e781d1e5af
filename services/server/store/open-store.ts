// Picks the store the configuration asks for.

import type { Logger } from 'pino';
import { ConfigError } from '../../common/settings.js';
import type { ServerConfig } from '../config.js';
import { MemoryStore } from './memory-store.js';
import type { Store } from './store.js';

export async function openStore(config: ServerConfig, logger: Logger): Promise<Store> {
  if (config.etcdEndpoints !== undefined) {
    throw new ConfigError('TCPKV_ETCD_ENDPOINTS: the etcd store is not part of this version yet; unset it');
  }
  if (config.dataDir !== undefined) {
    logger.warn({ dataDir: config.dataDir }, 'TCPKV_DATA_DIR is set, but this version keeps data in memory only');
  }
  return new MemoryStore();
}
