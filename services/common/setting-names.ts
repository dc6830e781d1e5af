// The name and default of every setting of both programs: the one place a default is written, and
// the list each program checks `TCPKV_*` names against (a .env shared by a server and a client holds
// both programs' names, so neither may call the other's "unknown"). It sits below both programs so
// that neither imports the other: a settings row spreads its entry here (`...SERVER_SETTING_NAMES.port`)
// and adds its flag, help text and parser; a module that needs a default without the row (the parser's
// limits, a store's) reads it here with numericDefault().

export interface SettingName {
  readonly env: string;
  /** raw text, parsed like any other value; undefined = unset */
  readonly default: string | undefined;
  /** honoured, but absent from --help, docs/configuration.md and the .env templates (a test switch) */
  readonly hidden?: true;
}

/** tcpkv-server's settings. A store driver's rows are here too (services/server/store/*-driver.ts). */
export const SERVER_SETTING_NAMES = {
  bind: { env: 'TCPKV_BIND', default: '127.0.0.1' },
  port: { env: 'TCPKV_PORT', default: '10000' },
  tlsPort: { env: 'TCPKV_TLS_PORT', default: undefined },
  tlsBind: { env: 'TCPKV_TLS_BIND', default: undefined },
  tlsCertFile: { env: 'TCPKV_TLS_CERT_FILE', default: undefined },
  tlsKeyFile: { env: 'TCPKV_TLS_KEY_FILE', default: undefined },
  tlsClientCaFile: { env: 'TCPKV_TLS_CLIENT_CA_FILE', default: undefined },
  tlsHandshakeTimeoutMs: { env: 'TCPKV_TLS_HANDSHAKE_TIMEOUT_MS', default: '10000' },
  tlsReloadCheckMs: { env: 'TCPKV_TLS_RELOAD_CHECK_MS', default: '60000' },
  allowedHosts: { env: 'TCPKV_ALLOWED_HOSTS', default: '127.0.0.1,localhost,::1' },
  allowedClients: { env: 'TCPKV_ALLOWED_CLIENTS', default: '*' },
  shutdownToken: { env: 'TCPKV_SHUTDOWN_TOKEN', default: undefined },
  shutdown: { env: 'TCPKV_SHUTDOWN', default: 'on' },
  dataDir: { env: 'TCPKV_DATA_DIR', default: undefined },
  fsync: { env: 'TCPKV_FSYNC', default: 'everysec' },
  logRepair: { env: 'TCPKV_LOG_REPAIR', default: 'off' },
  compactFactor: { env: 'TCPKV_COMPACT_FACTOR', default: '2' },
  compactMinBytes: { env: 'TCPKV_COMPACT_MIN_BYTES', default: '4194304' },
  maxLogRecordBytes: { env: 'TCPKV_MAX_LOG_RECORD_BYTES', default: '67108864' },
  etcdEndpoints: { env: 'TCPKV_ETCD_ENDPOINTS', default: undefined },
  etcdPrefix: { env: 'TCPKV_ETCD_PREFIX', default: 'tcpkv/' },
  etcdTimeoutMs: { env: 'TCPKV_ETCD_TIMEOUT_MS', default: '3000' },
  etcdUsername: { env: 'TCPKV_ETCD_USERNAME', default: undefined },
  etcdPassword: { env: 'TCPKV_ETCD_PASSWORD', default: undefined },
  etcdCaFile: { env: 'TCPKV_ETCD_CA_FILE', default: undefined },
  etcdCertFile: { env: 'TCPKV_ETCD_CERT_FILE', default: undefined },
  etcdKeyFile: { env: 'TCPKV_ETCD_KEY_FILE', default: undefined },
  etcdMaxTxnOps: { env: 'TCPKV_ETCD_MAX_TXN_OPS', default: '128' },
  etcdMaxRequestBytes: { env: 'TCPKV_ETCD_MAX_REQUEST_BYTES', default: '1572864' },
  logLevel: { env: 'TCPKV_LOG_LEVEL', default: 'info' },
  accessLog: { env: 'TCPKV_ACCESS_LOG', default: 'off' },
  maxKeys: { env: 'TCPKV_MAX_KEYS', default: undefined },
  maxDataBytes: { env: 'TCPKV_MAX_DATA_BYTES', default: undefined },
  maxKeyBytes: { env: 'TCPKV_MAX_KEY_BYTES', default: undefined },
  maxPairs: { env: 'TCPKV_MAX_PAIRS', default: '10000' },
  maxOutputBytes: { env: 'TCPKV_MAX_OUTPUT_BYTES', default: '1048576' },
  watchHistoryChanges: { env: 'TCPKV_WATCH_HISTORY_CHANGES', default: '100000' },
  watchHistoryBytes: { env: 'TCPKV_WATCH_HISTORY_BYTES', default: undefined },
  watchMaxWaitMs: { env: 'TCPKV_WATCH_MAX_WAIT_MS', default: '60000' },
  sendTimeoutMs: { env: 'TCPKV_SEND_TIMEOUT_MS', default: '60000' },
  maxHeaderBytes: { env: 'TCPKV_MAX_HEADER_BYTES', default: '16384' },
  maxHeaderCount: { env: 'TCPKV_MAX_HEADER_COUNT', default: '100' },
  maxTargetBytes: { env: 'TCPKV_MAX_TARGET_BYTES', default: '8192' },
  maxBodyBytes: { env: 'TCPKV_MAX_BODY_BYTES', default: '1048576' },
  headersTimeoutMs: { env: 'TCPKV_HEADERS_TIMEOUT_MS', default: '10000' },
  bodyTimeoutMs: { env: 'TCPKV_BODY_TIMEOUT_MS', default: '30000' },
  idleTimeoutMs: { env: 'TCPKV_IDLE_TIMEOUT_MS', default: '60000' },
  maxConnections: { env: 'TCPKV_MAX_CONNECTIONS', default: '20000' },
  maxPipelined: { env: 'TCPKV_MAX_PIPELINED', default: '64' },
  maxRequestsPerConnection: { env: 'TCPKV_MAX_REQUESTS_PER_CONNECTION', default: '0' },
  shutdownTimeoutMs: { env: 'TCPKV_SHUTDOWN_TIMEOUT_MS', default: '8000' },
  adminPort: { env: 'TCPKV_ADMIN_PORT', default: undefined },
  adminBind: { env: 'TCPKV_ADMIN_BIND', default: '127.0.0.1' },
  store: { env: 'TCPKV_STORE', default: undefined },
  sqliteFile: { env: 'TCPKV_SQLITE_FILE', default: undefined },
  testOnlyUnsafeReads: { env: 'TCPKV_TEST_ONLY_UNSAFE_READS', default: undefined, hidden: true },
} as const satisfies Record<string, SettingName>;

/** tcpkv-client's settings. */
export const CLIENT_SETTING_NAMES = {
  server: { env: 'TCPKV_SERVER', default: '127.0.0.1:10000' },
  targetHost: { env: 'TCPKV_TARGET_HOST', default: undefined },
  dialect: { env: 'TCPKV_DIALECT', default: undefined },
  token: { env: 'TCPKV_SHUTDOWN_TOKEN', default: undefined },
  tls: { env: 'TCPKV_CLIENT_TLS', default: undefined },
  caFile: { env: 'TCPKV_CLIENT_CA_FILE', default: undefined },
  certFile: { env: 'TCPKV_CLIENT_CERT_FILE', default: undefined },
  keyFile: { env: 'TCPKV_CLIENT_KEY_FILE', default: undefined },
  servername: { env: 'TCPKV_CLIENT_SERVERNAME', default: undefined },
  timeout: { env: 'TCPKV_TIMEOUT_MS', default: '5000' },
} as const satisfies Record<string, SettingName>;

/** Every variable tcpkv-server reads. */
export const SERVER_ENV_NAMES: readonly string[] = Object.freeze(Object.values(SERVER_SETTING_NAMES).map((s) => s.env));
/** Every variable tcpkv-client reads. */
export const CLIENT_ENV_NAMES: readonly string[] = Object.freeze(Object.values(CLIENT_SETTING_NAMES).map((s) => s.env));
/** Every variable either program reads: neither warns about these as unknown. */
export const KNOWN_ENV_NAMES: readonly string[] = Object.freeze([...new Set([...SERVER_ENV_NAMES, ...CLIENT_ENV_NAMES])]);

/** A numeric setting's default as a number, for a module that applies it without the settings row. */
export function numericDefault(name: { readonly env: string; readonly default: string }): number {
  const n = Number(name.default);
  if (!Number.isFinite(n)) throw new Error(`${name.env}: the default ${name.default} is not a number`);
  return n;
}
