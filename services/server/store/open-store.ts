// Picks the store the configuration asks for: memory, the append-only log in TCPKV_DATA_DIR, or etcd.

import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError } from '../../common/settings.js';
import type { ServerConfig } from '../config.js';
import { DirectoryLockedError } from './dir-lock.js';
import { LogOpenError, LogStore } from './log-store.js';
import { defaultStoreLimits, MemoryStore } from './memory-store.js';
import type { StoreEvents } from '../events.js';
import type { Store, StoreLimits } from './store.js';

/**
 * The store limits (docs/store.md, Limits): the settings, or defaults derived from the heap this
 * process has (see defaultStoreLimits), logged at start so an operator sees what applies.
 */
export function storeLimits(config: Pick<ServerConfig, 'maxKeys' | 'maxDataBytes'>, logger: Logger): StoreLimits {
  const defaults = defaultStoreLimits();
  const limits = { maxKeys: config.maxKeys ?? defaults.maxKeys, maxDataBytes: config.maxDataBytes ?? defaults.maxDataBytes };
  logger.info({ maxKeys: limits.maxKeys, maxDataBytes: limits.maxDataBytes, derivedFromHeap: config.maxKeys === undefined || config.maxDataBytes === undefined }, 'store limits');
  return limits;
}

/** A store loaded from disk past its limits starts anyway, read-only for growth: say so clearly. */
export function warnIfOverLimits(store: Store, limits: StoreLimits, logger: Logger): void {
  const usage = store.usage();
  if (usage === undefined) return;
  const over = usage.keys > limits.maxKeys ? `TCPKV_MAX_KEYS=${limits.maxKeys}` : usage.dataBytes > limits.maxDataBytes ? `TCPKV_MAX_DATA_BYTES=${limits.maxDataBytes}` : undefined;
  if (over !== undefined) {
    logger.warn({ keys: usage.keys, dataBytes: usage.dataBytes, limit: over }, `the stored data is over ${over}: writes that grow the store answer 507 until keys are deleted or the limit is raised`);
  }
}

/** Opens the store; a refusal to start (bad setting, damaged log, directory in use) is a ConfigError. */
export async function openStore(config: ServerConfig, logger: Logger, events?: StoreEvents): Promise<Store> {
  const limits = storeLimits(config, logger);
  if (config.etcdEndpoints !== undefined) {
    // The server image sets TCPKV_DATA_DIR=/data for the log store; etcd keeps the data itself.
    if (config.dataDir !== undefined) logger.warn({ dataDir: config.dataDir }, 'TCPKV_DATA_DIR is ignored: with TCPKV_ETCD_ENDPOINTS the data lives in etcd');
    if ((config.etcdCertFile === undefined) !== (config.etcdKeyFile === undefined)) throw new ConfigError('TCPKV_ETCD_CERT_FILE and TCPKV_ETCD_KEY_FILE go together');
    if (config.etcdPassword !== undefined && config.etcdUsername === undefined) throw new ConfigError('TCPKV_ETCD_PASSWORD needs TCPKV_ETCD_USERNAME');
    for (const [name, file] of [['TCPKV_ETCD_CA_FILE', config.etcdCaFile], ['TCPKV_ETCD_CERT_FILE', config.etcdCertFile], ['TCPKV_ETCD_KEY_FILE', config.etcdKeyFile]] as const) {
      if (file !== undefined && !existsSync(file)) throw new ConfigError(`${name}=${file}: no such file`);
    }
    // loaded only when asked for: gRPC and protobuf cost the other stores start-up time and memory
    const { EtcdStore } = await import('./etcd-store.js').catch((error: NodeJS.ErrnoException) => {
      // etcd3 is an optional dependency: a client-only install (--omit=optional) does not have it
      if (error.code === 'ERR_MODULE_NOT_FOUND' && /'etcd3'/.test(error.message)) throw new ConfigError('TCPKV_ETCD_ENDPOINTS needs the optional package etcd3, which is not installed (npm install etcd3)');
      throw error;
    });
    const { checkEtcdPrefix, checkEtcdTls, EtcdStartError } = await import('./etcd-store.js');
    const prefixProblem = checkEtcdPrefix(config.etcdPrefix);
    if (prefixProblem !== undefined) throw new ConfigError(`TCPKV_ETCD_PREFIX=${config.etcdPrefix}: ${prefixProblem}`);
    const tlsProblem = checkEtcdTls(config.etcdEndpoints, config.etcdCaFile);
    if (tlsProblem !== undefined) throw new ConfigError(tlsProblem);
    const store = new EtcdStore({
      endpoints: config.etcdEndpoints,
      prefix: config.etcdPrefix,
      timeoutMs: config.etcdTimeoutMs,
      username: config.etcdUsername,
      password: config.etcdPassword,
      caFile: config.etcdCaFile,
      certFile: config.etcdCertFile,
      keyFile: config.etcdKeyFile,
      maxTxnOps: config.etcdMaxTxnOps,
      maxRequestBytes: config.etcdMaxRequestBytes,
      limits,
      events,
      logger,
      // TEST ONLY (the linearizability checker's negative test): reads without the barrier are stale
      ...(process.env.TCPKV_TEST_ONLY_UNSAFE_READS === 'no-barrier' ? { unsafeReadBarrier: 'none' as const } : {}),
    });
    if (process.env.TCPKV_TEST_ONLY_UNSAFE_READS === 'no-barrier') logger.warn('TCPKV_TEST_ONLY_UNSAFE_READS=no-barrier: reads skip the barrier and are NOT linearizable (a test setting, never for use)');
    try {
      if (await store.start()) logger.info({ endpoints: config.etcdEndpoints }, 'etcd answers');
    } catch (error) {
      if (error instanceof EtcdStartError) throw new ConfigError(error.message);
      throw error;
    }
    return store;
  }
  if (config.dataDir === undefined) return new MemoryStore({ limits, logger });
  try {
    const store = await LogStore.open({
      dir: config.dataDir,
      fsync: config.fsync,
      compactFactor: config.compactFactor,
      compactMinBytes: config.compactMinBytes,
      maxRecordBytes: config.maxLogRecordBytes,
      limits,
      ...(events ? { events } : {}),
      repair: config.logRepair,
      logger,
    });
    warnIfOverLimits(store, limits, logger);
    return store;
  } catch (error) {
    if (error instanceof LogOpenError || error instanceof DirectoryLockedError) throw new ConfigError(`TCPKV_DATA_DIR: ${error.message}`);
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EROFS' || e.code === 'ENOTDIR') throw new ConfigError(`TCPKV_DATA_DIR=${config.dataDir}: ${e.code}: ${e.message}`);
    throw error;
  }
}
