// The etcd store's driver: TCPKV_ETCD_* settings, the checks between them, and etcd's start-up refusals.

import { existsSync } from 'node:fs';
import { SERVER_SETTING_NAMES } from '../../common/setting-names.js';
import { ConfigError, integer, nonBlank, oneOf, path, setting } from '../../common/settings.js';
import { storeDriver } from './driver.js';

const MIB = 1024 * 1024;

function urlList(raw: string): string[] {
  const urls = raw.split(',').map((u) => u.trim()).filter((u) => u !== '');
  if (urls.length === 0) throw new Error('must list at least one URL');
  for (const u of urls) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new Error(`"${u}" is not a URL (e.g. http://etcd1:2379)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`"${u}" must be http:// or https://`);
  }
  return urls;
}

export const etcdSettings = {
  etcdEndpoints: setting({ ...SERVER_SETTING_NAMES.etcdEndpoints, flag: 'etcd-endpoints', valueName: 'urls', describe: 'etcd client URLs, comma list; set = data kept in etcd', parse: urlList }),
  etcdPrefix: setting({ ...SERVER_SETTING_NAMES.etcdPrefix, flag: 'etcd-prefix', valueName: 'prefix', describe: 'every etcd key tcpkv writes starts with this', parse: nonBlank }),
  etcdTimeoutMs: setting({ ...SERVER_SETTING_NAMES.etcdTimeoutMs, flag: 'etcd-timeout-ms', valueName: 'ms', describe: 'deadline of each etcd call; past it the request answers 503', parse: integer(50, 600_000) }),
  etcdUsername: setting({ ...SERVER_SETTING_NAMES.etcdUsername, flag: 'etcd-username', valueName: 'name', describe: 'etcd user (password auth)', parse: nonBlank }),
  etcdPassword: setting({ ...SERVER_SETTING_NAMES.etcdPassword, flag: 'etcd-password', valueName: 'password', describe: 'etcd password', parse: (raw: string) => raw }),
  etcdCaFile: setting({ ...SERVER_SETTING_NAMES.etcdCaFile, flag: 'etcd-ca-file', valueName: 'file', describe: 'CA certificate for TLS to etcd (https:// endpoints)', parse: path }),
  etcdCertFile: setting({ ...SERVER_SETTING_NAMES.etcdCertFile, flag: 'etcd-cert-file', valueName: 'file', describe: 'client certificate for etcd (mutual TLS)', parse: path }),
  etcdKeyFile: setting({ ...SERVER_SETTING_NAMES.etcdKeyFile, flag: 'etcd-key-file', valueName: 'file', describe: 'client key for etcd (mutual TLS)', parse: path }),
  etcdMaxTxnOps: setting({ ...SERVER_SETTING_NAMES.etcdMaxTxnOps, flag: 'etcd-max-txn-ops', valueName: 'n', describe: "etcd's --max-txn-ops; a write of n pairs needs 2n+1 (more: 413)", parse: integer(3, 1_000_000) }),
  etcdMaxRequestBytes: setting({ ...SERVER_SETTING_NAMES.etcdMaxRequestBytes, flag: 'etcd-max-request-bytes', valueName: 'bytes', describe: "etcd's --max-request-bytes; larger writes answer 413", parse: integer(1024, 2 * 1024 * MIB) }),
  // TEST ONLY (the linearizability checker's negative test): reads without the barrier are stale
  testOnlyUnsafeReads: setting({ ...SERVER_SETTING_NAMES.testOnlyUnsafeReads, flag: 'test-only-unsafe-reads', valueName: 'no-barrier', describe: 'a test switch: reads skip the read barrier and are NOT linearizable; never for use', parse: oneOf('no-barrier') }),
};

export const etcdDriver = storeDriver({
  name: 'etcd',
  settings: etcdSettings,
  impliedBy: (config) => config.etcdEndpoints !== undefined,
  settingsProblem(config) {
    if (config.etcdEndpoints === undefined) return 'TCPKV_STORE=etcd needs TCPKV_ETCD_ENDPOINTS';
    if ((config.etcdCertFile === undefined) !== (config.etcdKeyFile === undefined)) return 'TCPKV_ETCD_CERT_FILE and TCPKV_ETCD_KEY_FILE go together';
    if (config.etcdPassword !== undefined && config.etcdUsername === undefined) return 'TCPKV_ETCD_PASSWORD needs TCPKV_ETCD_USERNAME';
    return undefined;
  },
  async open(config, { limits, logger, events, feedLimits }) {
    const endpoints = config.etcdEndpoints!;
    // The server image sets TCPKV_DATA_DIR=/data for the log store; etcd keeps the data itself.
    if (config.dataDir !== undefined) logger.warn({ dataDir: config.dataDir }, 'TCPKV_DATA_DIR is ignored: with TCPKV_ETCD_ENDPOINTS the data lives in etcd');
    for (const [name, file] of [['TCPKV_ETCD_CA_FILE', config.etcdCaFile], ['TCPKV_ETCD_CERT_FILE', config.etcdCertFile], ['TCPKV_ETCD_KEY_FILE', config.etcdKeyFile]] as const) {
      if (file !== undefined && !existsSync(file)) throw new ConfigError(`${name}=${file}: no such file`, name);
    }
    // loaded only when asked for: gRPC and protobuf cost the other stores start-up time and memory
    const { EtcdStore, EtcdStartError, checkEtcdPrefix, checkEtcdTls } = await import('./etcd-store.js').catch((error: NodeJS.ErrnoException) => {
      // etcd3 is an optional dependency: a client-only install (--omit=optional) does not have it
      if (error.code === 'ERR_MODULE_NOT_FOUND' && /'etcd3'/.test(error.message)) throw new ConfigError('TCPKV_ETCD_ENDPOINTS needs the optional package etcd3, which is not installed (npm install etcd3)', 'TCPKV_ETCD_ENDPOINTS');
      throw error;
    });
    const prefixProblem = checkEtcdPrefix(config.etcdPrefix);
    if (prefixProblem !== undefined) throw new ConfigError(`TCPKV_ETCD_PREFIX=${config.etcdPrefix}: ${prefixProblem}`, 'TCPKV_ETCD_PREFIX');
    const tlsProblem = checkEtcdTls(endpoints, config.etcdCaFile);
    if (tlsProblem !== undefined) throw new ConfigError(tlsProblem, 'TCPKV_ETCD_CA_FILE');
    const unsafe = config.testOnlyUnsafeReads === 'no-barrier';
    const store = new EtcdStore({
      endpoints,
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
      feedLimits,
      logger,
      ...(unsafe ? { unsafeReadBarrier: 'none' as const } : {}),
    });
    if (unsafe) logger.warn('TCPKV_TEST_ONLY_UNSAFE_READS=no-barrier: reads skip the barrier and are NOT linearizable (a test setting, never for use)');
    try {
      if (await store.start()) logger.info({ endpoints }, 'etcd answers');
    } catch (error) {
      await store.close().catch(() => undefined);
      if (error instanceof EtcdStartError) throw new ConfigError(error.message, 'TCPKV_ETCD_USERNAME', { cause: error });
      throw error;
    }
    return store;
  },
  location: () => 'in etcd (TCPKV_ETCD_ENDPOINTS)',
});
