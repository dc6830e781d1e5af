// tcpkv-server's settings (docs/configuration.md): the environment names are the contract; flags mirror them.

import { isIP } from 'node:net';
import { SERVER_SETTING_NAMES } from '../common/setting-names.js';
import { integer, nonBlank, oneOf, onOff, setting, type SettingValues } from '../common/settings.js';
import { DEFAULT_MAX_KEY_BYTES, keyBytesForTarget, targetBytesForKeys } from '../protocol/key-grammar.js';
import { parseClientAllowList, parseHostAllowList } from './access.js';
import { storeSettings } from './store/drivers.js';
import { storeSettingsProblem } from './store/open-store.js';

function ipAddress(raw: string): string {
  const v = raw.trim();
  if (isIP(v) === 0) throw new Error('must be an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::)');
  return v;
}

/** A port number, or `off`: no listener on it. */
function portOrOff(raw: string): number | 'off' {
  if (raw.trim().toLowerCase() === 'off') return 'off';
  try {
    return integer(0, 65535)(raw);
  } catch {
    throw new Error('must be a whole number from 0 to 65535, or off');
  }
}

const MIB = 1024 * 1024;

export const serverSettings = {
  bind: setting({ ...SERVER_SETTING_NAMES.bind, flag: 'bind', valueName: 'address', describe: 'address to listen on (IPv4 or IPv6)', parse: ipAddress }),
  port: setting({ ...SERVER_SETTING_NAMES.port, flag: 'port', valueName: 'port|off', describe: 'plain TCP port (0 = any free port; off = no plain listener, e.g. TLS only)', parse: portOrOff }),
  tlsPort: setting({ ...SERVER_SETTING_NAMES.tlsPort, flag: 'tls-port', valueName: 'port', describe: 'TLS port beside the plain one; unset = no TLS listener, 0 = any free port', parse: integer(0, 65535) }),
  tlsBind: setting({ ...SERVER_SETTING_NAMES.tlsBind, flag: 'tls-bind', valueName: 'address', describe: 'address the TLS port listens on (default: TCPKV_BIND)', parse: ipAddress }),
  tlsCertFile: setting({ ...SERVER_SETTING_NAMES.tlsCertFile, flag: 'tls-cert-file', valueName: 'file', describe: "the server's certificate, PEM; intermediates may follow it (a chain)", parse: nonBlank }),
  tlsKeyFile: setting({ ...SERVER_SETTING_NAMES.tlsKeyFile, flag: 'tls-key-file', valueName: 'file', describe: "the certificate's private key, PEM (unencrypted)", parse: nonBlank }),
  tlsClientCaFile: setting({ ...SERVER_SETTING_NAMES.tlsClientCaFile, flag: 'tls-client-ca-file', valueName: 'file', describe: 'CA certificates, PEM; set = every TLS client must present a certificate they signed (mutual TLS)', parse: nonBlank }),
  tlsHandshakeTimeoutMs: setting({ ...SERVER_SETTING_NAMES.tlsHandshakeTimeoutMs, flag: 'tls-handshake-timeout-ms', valueName: 'ms', describe: 'time from accept to a finished TLS handshake; slower clients are cut (counted, logged)', parse: integer(10, 600_000) }),
  tlsReloadCheckMs: setting({ ...SERVER_SETTING_NAMES.tlsReloadCheckMs, flag: 'tls-reload-check-ms', valueName: 'ms', describe: 'how often the certificate files are checked for a change (reloaded when changed; SIGHUP reloads at once); 0 = only on SIGHUP', parse: (raw: string) => (raw.trim() === '0' ? 0 : integer(100, 86_400_000)(raw)) }),
  allowedHosts: setting({ ...SERVER_SETTING_NAMES.allowedHosts, flag: 'allowed-hosts', valueName: 'list', describe: 'names accepted in the Host header; * = any', parse: parseHostAllowList }),
  allowedClients: setting({ ...SERVER_SETTING_NAMES.allowedClients, flag: 'allowed-clients', valueName: 'list', describe: 'peer IPs/CIDRs allowed to connect (IPv4 and IPv6); * = any', parse: parseClientAllowList }),
  shutdownToken: setting({ ...SERVER_SETTING_NAMES.shutdownToken, flag: 'shutdown-token', valueName: 'token', describe: 'token END must carry as Authorization: Bearer <token>; unset = END only from loopback', parse: nonBlank }),
  shutdown: setting({ ...SERVER_SETTING_NAMES.shutdown, flag: 'shutdown', valueName: 'on|off', describe: 'off refuses END always', parse: onOff }),
  // the store: TCPKV_STORE and each store driver's own rows (store/drivers.ts)
  ...storeSettings,
  logLevel: setting({ ...SERVER_SETTING_NAMES.logLevel, flag: 'log-level', valueName: 'level', describe: 'pino log level', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') }),
  accessLog: setting({ ...SERVER_SETTING_NAMES.accessLog, flag: 'access-log', valueName: 'on|off', describe: 'one info line per answered request: request id, peer, method, target, status, ms, bytes in and out', parse: onOff }),
  maxKeys: setting({ ...SERVER_SETTING_NAMES.maxKeys, flag: 'max-keys', valueName: 'n', describe: 'keys the store may hold (507 beyond); unset = derived from the heap (a sixth of it at 128 B per key)', parse: integer(1, 1_000_000_000_000) }),
  maxDataBytes: setting({ ...SERVER_SETTING_NAMES.maxDataBytes, flag: 'max-data-bytes', valueName: 'bytes', describe: 'UTF-8 bytes of keys plus values the store may hold (507 beyond); unset = derived from the heap (a sixth of it at 3 B per byte)', parse: integer(1, Number.MAX_SAFE_INTEGER) }),
  maxKeyBytes: setting({ ...SERVER_SETTING_NAMES.maxKeyBytes, flag: 'max-key-bytes', valueName: 'bytes', describe: `UTF-8 bytes of a key to be written (400 beyond); every route must carry it: TCPKV_MAX_TARGET_BYTES ≥ 6 × this + 29; unset = ${DEFAULT_MAX_KEY_BYTES}, or what TCPKV_MAX_TARGET_BYTES carries if less`, parse: integer(1, 1 * MIB) }),
  maxPairs: setting({ ...SERVER_SETTING_NAMES.maxPairs, flag: 'max-pairs', valueName: 'n', describe: 'pairs one POST /create or PUT /update may carry (413 beyond): applying a request holds every other connection', parse: integer(1, 1_000_000) }),
  maxOutputBytes: setting({ ...SERVER_SETTING_NAMES.maxOutputBytes, flag: 'max-output-bytes', valueName: 'bytes', describe: 'answers one connection may have queued or unsent before its further requests wait unread', parse: integer(1024, 1024 * MIB) }),
  watchHistoryChanges: setting({ ...SERVER_SETTING_NAMES.watchHistoryChanges, flag: 'watch-history-changes', valueName: 'n', describe: 'changes kept for watchers (GET /kv?watch); a watcher from before the oldest gets 410 and lists again', parse: integer(1, 100_000_000) }),
  watchHistoryBytes: setting({ ...SERVER_SETTING_NAMES.watchHistoryBytes, flag: 'watch-history-bytes', valueName: 'bytes', describe: 'heap the changes kept for watchers may take (approximately); the oldest are dropped past it; unset = a sixteenth of the heap, at most 64 MiB', parse: integer(1024, 64 * 1024 * MIB) }),
  watchMaxWaitMs: setting({ ...SERVER_SETTING_NAMES.watchMaxWaitMs, flag: 'watch-max-wait-ms', valueName: 'ms', describe: 'longest a watch waits for a change before it answers with none (its wait= is capped to this)', parse: integer(0, 3_600_000) }),
  sendTimeoutMs: setting({ ...SERVER_SETTING_NAMES.sendTimeoutMs, flag: 'send-timeout-ms', valueName: 'ms', describe: 'a client that takes none of an answer for this long is disconnected (logged)', parse: integer(10, 3_600_000) }),
  maxHeaderBytes: setting({ ...SERVER_SETTING_NAMES.maxHeaderBytes, flag: 'max-header-bytes', valueName: 'bytes', describe: 'request line + headers, in bytes (431)', parse: integer(256, 1 * MIB) }),
  maxHeaderCount: setting({ ...SERVER_SETTING_NAMES.maxHeaderCount, flag: 'max-header-count', valueName: 'n', describe: 'header lines per request (431)', parse: integer(1, 10_000) }),
  maxTargetBytes: setting({ ...SERVER_SETTING_NAMES.maxTargetBytes, flag: 'max-target-bytes', valueName: 'bytes', describe: 'request-target length (414)', parse: integer(16, 1 * MIB) }),
  maxBodyBytes: setting({ ...SERVER_SETTING_NAMES.maxBodyBytes, flag: 'max-body-bytes', valueName: 'bytes', describe: 'request body size (413)', parse: integer(0, 1024 * MIB) }),
  headersTimeoutMs: setting({ ...SERVER_SETTING_NAMES.headersTimeoutMs, flag: 'headers-timeout-ms', valueName: 'ms', describe: 'time to receive a request line and headers (408, then close)', parse: integer(10, 3_600_000) }),
  bodyTimeoutMs: setting({ ...SERVER_SETTING_NAMES.bodyTimeoutMs, flag: 'body-timeout-ms', valueName: 'ms', describe: 'time to receive a request body once headers are in (408, then close)', parse: integer(10, 3_600_000) }),
  idleTimeoutMs: setting({ ...SERVER_SETTING_NAMES.idleTimeoutMs, flag: 'idle-timeout-ms', valueName: 'ms', describe: 'idle keep-alive connections are closed after this', parse: integer(10, 86_400_000) }),
  maxConnections: setting({ ...SERVER_SETTING_NAMES.maxConnections, flag: 'max-connections', valueName: 'n', describe: 'open connections; the excess is closed at once', parse: integer(1, 1_000_000) }),
  maxPipelined: setting({ ...SERVER_SETTING_NAMES.maxPipelined, flag: 'max-pipelined', valueName: 'n', describe: 'requests of one connection being answered at once; further ones wait unread', parse: integer(1, 100_000) }),
  maxRequestsPerConnection: setting({ ...SERVER_SETTING_NAMES.maxRequestsPerConnection, flag: 'max-requests-per-connection', valueName: 'n', describe: 'requests served on one connection before it is closed; 0 = no limit', parse: integer(0, 1_000_000_000) }),
  // below `docker stop`'s 10 s, so a slow client cannot turn a clean stop into a SIGKILL
  shutdownTimeoutMs: setting({ ...SERVER_SETTING_NAMES.shutdownTimeoutMs, flag: 'shutdown-timeout-ms', valueName: 'ms', describe: 'how long a graceful shutdown waits for in-flight requests', parse: integer(0, 600_000) }),
  adminPort: setting({ ...SERVER_SETTING_NAMES.adminPort, flag: 'admin-port', valueName: 'port', describe: 'admin port (/healthz, /readyz, /metrics); unset = off, 0 = any free port', parse: integer(0, 65535) }),
  adminBind: setting({ ...SERVER_SETTING_NAMES.adminBind, flag: 'admin-bind', valueName: 'address', describe: 'address the admin port listens on', parse: ipAddress }),
};

export type ServerConfig = SettingValues<typeof serverSettings>;

/**
 * Every check between settings, in one place (the store driver's own among them): a message naming
 * the settings, or undefined. A key the rules accept must fit in a request target on every route
 * (`/kv/<key>`, a page's `prefix=` and `after=`, percent-encoded); a TLS port needs its files; the
 * server must listen somewhere.
 */
export function crossSettingProblem(config: ServerConfig): string | undefined {
  if (config.maxKeyBytes !== undefined) {
    const needed = targetBytesForKeys(config.maxKeyBytes);
    if (config.maxTargetBytes < needed) {
      return `TCPKV_MAX_TARGET_BYTES=${config.maxTargetBytes} cannot carry keys of TCPKV_MAX_KEY_BYTES=${config.maxKeyBytes} (a page's prefix and after, percent-encoded, need ${needed}): raise the first or lower the second`;
    }
  }
  if (config.tlsPort !== undefined && (config.tlsCertFile === undefined || config.tlsKeyFile === undefined)) {
    return 'TCPKV_TLS_PORT is set: TCPKV_TLS_CERT_FILE and TCPKV_TLS_KEY_FILE must name the certificate and its key';
  }
  if (config.tlsPort === undefined && config.port === 'off') return 'TCPKV_PORT=off and no TCPKV_TLS_PORT: the server would listen nowhere';
  return storeSettingsProblem(config);
}

/** The key limit the rules apply: the one set, else the default, lowered to what the target limit carries. */
export function maxKeyBytesOf(config: Pick<ServerConfig, 'maxKeyBytes' | 'maxTargetBytes'>): number {
  return config.maxKeyBytes ?? keyBytesForTarget(config.maxTargetBytes);
}

/**
 * The --help group of each setting, by what it is about. Derived from the key, so a new row lands in
 * its group without a second list to keep; a test checks none falls through to "Other".
 */
export const serverSettingGroup = Object.assign(
  (key: string): string => {
    if (/^tls/.test(key)) return 'TLS:';
    if (/^(bind|port|admin)/.test(key)) return 'Network:';
    if (/^(allowed|shutdown)/.test(key) && !/TimeoutMs$/.test(key)) return 'Access:';
    // a store's own rows, but for its limits (TCPKV_MAX_LOG_RECORD_BYTES), which sit with the other limits
    if (key in storeSettings && !/^max/.test(key)) return 'Storage:';
    if (/^(max|watch)|TimeoutMs$/.test(key)) return 'Limits:';
    if (/^(log|accessLog)/.test(key)) return 'Logging:';
    return 'Other:';
  },
  { order: ['Network:', 'TLS:', 'Access:', 'Storage:', 'Limits:', 'Logging:', 'Other:'] as const },
);
