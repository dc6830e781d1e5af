// tcpkv-server's settings (docs/configuration.md): the environment names are the contract; flags mirror them.

import { isIP } from 'node:net';
import { integer, nonBlank, oneOf, setting, type SettingValues } from '../common/settings.js';
import { DEFAULT_MAX_KEY_BYTES, keyBytesForTarget, targetBytesForKeys } from '../protocol/key-grammar.js';
import { parseClientAllowList, parseHostAllowList } from './access.js';

function ipAddress(raw: string): string {
  const v = raw.trim();
  if (isIP(v) === 0) throw new Error('must be an IPv4 or IPv6 address (e.g. 127.0.0.1, 0.0.0.0, ::)');
  return v;
}

/**
 * A file or directory name: any text but blank, and no control characters (a line break in a path is
 * almost always a mistake in a compose file). Spaces inside are kept (`/srv/tcpkv data`); spaces
 * around it are trimmed, as in every setting.
 */
function path(raw: string): string {
  const v = raw.trim();
  if (v === '') throw new Error('must name a path');
  // eslint-disable-next-line no-control-regex -- control characters are what this refuses
  if (/[\x00-\x1f\x7f]/.test(v)) throw new Error('must be a path without line breaks or control characters');
  return v;
}

function onOff(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (v === 'on' || v === 'true' || v === '1') return true;
  if (v === 'off' || v === 'false' || v === '0') return false;
  throw new Error('must be on or off');
}

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

function factor(raw: string): number {
  const n = Number(raw.trim());
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(n >= 1.1 && n <= 1000)) throw new Error('must be a number from 1.1 to 1000');
  return n;
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
  bind: setting({ env: 'TCPKV_BIND', flag: 'bind', valueName: 'address', default: '127.0.0.1', describe: 'address to listen on (IPv4 or IPv6)', parse: ipAddress }),
  port: setting({ env: 'TCPKV_PORT', flag: 'port', valueName: 'port|off', default: '10000', describe: 'plain TCP port (0 = any free port; off = no plain listener, e.g. TLS only)', parse: portOrOff }),
  tlsPort: setting({ env: 'TCPKV_TLS_PORT', flag: 'tls-port', valueName: 'port', default: undefined, describe: 'TLS port beside the plain one; unset = no TLS listener, 0 = any free port', parse: integer(0, 65535) }),
  tlsBind: setting({ env: 'TCPKV_TLS_BIND', flag: 'tls-bind', valueName: 'address', default: undefined, describe: 'address the TLS port listens on (default: TCPKV_BIND)', parse: ipAddress }),
  tlsCertFile: setting({ env: 'TCPKV_TLS_CERT_FILE', flag: 'tls-cert-file', valueName: 'file', default: undefined, describe: "the server's certificate, PEM; intermediates may follow it (a chain)", parse: nonBlank }),
  tlsKeyFile: setting({ env: 'TCPKV_TLS_KEY_FILE', flag: 'tls-key-file', valueName: 'file', default: undefined, describe: "the certificate's private key, PEM (unencrypted)", parse: nonBlank }),
  tlsClientCaFile: setting({ env: 'TCPKV_TLS_CLIENT_CA_FILE', flag: 'tls-client-ca-file', valueName: 'file', default: undefined, describe: 'CA certificates, PEM; set = every TLS client must present a certificate they signed (mutual TLS)', parse: nonBlank }),
  tlsHandshakeTimeoutMs: setting({ env: 'TCPKV_TLS_HANDSHAKE_TIMEOUT_MS', flag: 'tls-handshake-timeout-ms', valueName: 'ms', default: '10000', describe: 'time from accept to a finished TLS handshake; slower clients are cut (counted, logged)', parse: integer(10, 600_000) }),
  tlsReloadCheckMs: setting({ env: 'TCPKV_TLS_RELOAD_CHECK_MS', flag: 'tls-reload-check-ms', valueName: 'ms', default: '60000', describe: 'how often the certificate files are checked for a change (reloaded when changed; SIGHUP reloads at once); 0 = only on SIGHUP', parse: (raw: string) => (raw.trim() === '0' ? 0 : integer(100, 86_400_000)(raw)) }),
  allowedHosts: setting({ env: 'TCPKV_ALLOWED_HOSTS', flag: 'allowed-hosts', valueName: 'list', default: '127.0.0.1,localhost,::1', describe: 'names accepted in the Host header; * = any', parse: parseHostAllowList }),
  allowedClients: setting({ env: 'TCPKV_ALLOWED_CLIENTS', flag: 'allowed-clients', valueName: 'list', default: '*', describe: 'peer IPs/CIDRs allowed to connect (IPv4 and IPv6); * = any', parse: parseClientAllowList }),
  shutdownToken: setting({ env: 'TCPKV_SHUTDOWN_TOKEN', flag: 'shutdown-token', valueName: 'token', default: undefined, describe: 'token END must carry as Authorization: Bearer <token>; unset = END only from loopback', parse: nonBlank }),
  shutdown: setting({ env: 'TCPKV_SHUTDOWN', flag: 'shutdown', valueName: 'on|off', default: 'on', describe: 'off refuses END always', parse: onOff }),
  dataDir: setting({ env: 'TCPKV_DATA_DIR', flag: 'data-dir', valueName: 'dir', default: undefined, describe: 'directory of the append-only log; unset = memory only', parse: path }),
  fsync: setting({ env: 'TCPKV_FSYNC', flag: 'fsync', valueName: 'policy', default: 'everysec', describe: 'when the log is fsynced: always, everysec or no', parse: oneOf('always', 'everysec', 'no') }),
  logRepair: setting({ env: 'TCPKV_LOG_REPAIR', flag: 'log-repair', valueName: 'off|truncate', default: 'off', describe: 'a damaged record inside the log: off refuses to start; truncate cuts the log there, losing what follows (--check-log shows what)', parse: oneOf('off', 'truncate') }),
  compactFactor: setting({ env: 'TCPKV_COMPACT_FACTOR', flag: 'compact-factor', valueName: 'x', default: '2', describe: 'rewrite the log when it is this many times the size of the live data', parse: factor }),
  compactMinBytes: setting({ env: 'TCPKV_COMPACT_MIN_BYTES', flag: 'compact-min-bytes', valueName: 'bytes', default: String(4 * MIB), describe: 'no rewrite below this log size', parse: integer(0, 1024 * 1024 * MIB) }),
  maxLogRecordBytes: setting({ env: 'TCPKV_MAX_LOG_RECORD_BYTES', flag: 'max-log-record-bytes', valueName: 'bytes', default: String(64 * MIB), describe: 'largest log record one write may need (its pairs as UTF-8 JSON; 413 above); replay loads records up to 256 MiB', parse: integer(1024, 256 * MIB) }),
  etcdEndpoints: setting({ env: 'TCPKV_ETCD_ENDPOINTS', flag: 'etcd-endpoints', valueName: 'urls', default: undefined, describe: 'etcd client URLs, comma list; set = data kept in etcd', parse: urlList }),
  etcdPrefix: setting({ env: 'TCPKV_ETCD_PREFIX', flag: 'etcd-prefix', valueName: 'prefix', default: 'tcpkv/', describe: 'every etcd key tcpkv writes starts with this', parse: nonBlank }),
  etcdTimeoutMs: setting({ env: 'TCPKV_ETCD_TIMEOUT_MS', flag: 'etcd-timeout-ms', valueName: 'ms', default: '3000', describe: 'deadline of each etcd call; past it the request answers 503', parse: integer(50, 600_000) }),
  etcdUsername: setting({ env: 'TCPKV_ETCD_USERNAME', flag: 'etcd-username', valueName: 'name', default: undefined, describe: 'etcd user (password auth)', parse: nonBlank }),
  etcdPassword: setting({ env: 'TCPKV_ETCD_PASSWORD', flag: 'etcd-password', valueName: 'password', default: undefined, describe: 'etcd password', parse: (raw: string) => raw }),
  etcdCaFile: setting({ env: 'TCPKV_ETCD_CA_FILE', flag: 'etcd-ca-file', valueName: 'file', default: undefined, describe: 'CA certificate for TLS to etcd (https:// endpoints)', parse: path }),
  etcdCertFile: setting({ env: 'TCPKV_ETCD_CERT_FILE', flag: 'etcd-cert-file', valueName: 'file', default: undefined, describe: 'client certificate for etcd (mutual TLS)', parse: path }),
  etcdKeyFile: setting({ env: 'TCPKV_ETCD_KEY_FILE', flag: 'etcd-key-file', valueName: 'file', default: undefined, describe: 'client key for etcd (mutual TLS)', parse: path }),
  etcdMaxTxnOps: setting({ env: 'TCPKV_ETCD_MAX_TXN_OPS', flag: 'etcd-max-txn-ops', valueName: 'n', default: '128', describe: "etcd's --max-txn-ops; a write of n pairs needs 2n+1 (more: 413)", parse: integer(3, 1_000_000) }),
  etcdMaxRequestBytes: setting({ env: 'TCPKV_ETCD_MAX_REQUEST_BYTES', flag: 'etcd-max-request-bytes', valueName: 'bytes', default: '1572864', describe: "etcd's --max-request-bytes; larger writes answer 413", parse: integer(1024, 2 * 1024 * MIB) }),
  logLevel: setting({ env: 'TCPKV_LOG_LEVEL', flag: 'log-level', valueName: 'level', default: 'info', describe: 'pino log level', parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent') }),
  accessLog: setting({ env: 'TCPKV_ACCESS_LOG', flag: 'access-log', valueName: 'on|off', default: 'off', describe: 'one info line per answered request: request id, peer, method, target, status, ms, bytes in and out', parse: onOff }),
  maxKeys: setting({ env: 'TCPKV_MAX_KEYS', flag: 'max-keys', valueName: 'n', default: undefined, describe: 'keys the store may hold (507 beyond); unset = derived from the heap (a sixth of it at 128 B per key)', parse: integer(1, 1_000_000_000_000) }),
  maxDataBytes: setting({ env: 'TCPKV_MAX_DATA_BYTES', flag: 'max-data-bytes', valueName: 'bytes', default: undefined, describe: 'UTF-8 bytes of keys plus values the store may hold (507 beyond); unset = derived from the heap (a sixth of it at 3 B per byte)', parse: integer(1, Number.MAX_SAFE_INTEGER) }),
  maxKeyBytes: setting({ env: 'TCPKV_MAX_KEY_BYTES', flag: 'max-key-bytes', valueName: 'bytes', default: undefined, describe: `UTF-8 bytes of a key to be written (400 beyond); every route must carry it: TCPKV_MAX_TARGET_BYTES ≥ 6 × this + 29; unset = ${DEFAULT_MAX_KEY_BYTES}, or what TCPKV_MAX_TARGET_BYTES carries if less`, parse: integer(1, 1 * MIB) }),
  maxPairs: setting({ env: 'TCPKV_MAX_PAIRS', flag: 'max-pairs', valueName: 'n', default: '10000', describe: 'pairs one POST /create or PUT /update may carry (413 beyond): applying a request holds every other connection', parse: integer(1, 1_000_000) }),
  maxOutputBytes: setting({ env: 'TCPKV_MAX_OUTPUT_BYTES', flag: 'max-output-bytes', valueName: 'bytes', default: String(1 * MIB), describe: 'answers one connection may have queued or unsent before its further requests wait unread', parse: integer(1024, 1024 * MIB) }),
  sendTimeoutMs: setting({ env: 'TCPKV_SEND_TIMEOUT_MS', flag: 'send-timeout-ms', valueName: 'ms', default: '60000', describe: 'a client that takes none of an answer for this long is disconnected (logged)', parse: integer(10, 3_600_000) }),
  maxHeaderBytes: setting({ env: 'TCPKV_MAX_HEADER_BYTES', flag: 'max-header-bytes', valueName: 'bytes', default: '16384', describe: 'request line + headers, in bytes (431)', parse: integer(256, 1 * MIB) }),
  maxHeaderCount: setting({ env: 'TCPKV_MAX_HEADER_COUNT', flag: 'max-header-count', valueName: 'n', default: '100', describe: 'header lines per request (431)', parse: integer(1, 10_000) }),
  maxTargetBytes: setting({ env: 'TCPKV_MAX_TARGET_BYTES', flag: 'max-target-bytes', valueName: 'bytes', default: '8192', describe: 'request-target length (414)', parse: integer(16, 1 * MIB) }),
  maxBodyBytes: setting({ env: 'TCPKV_MAX_BODY_BYTES', flag: 'max-body-bytes', valueName: 'bytes', default: String(1 * MIB), describe: 'request body size (413)', parse: integer(0, 1024 * MIB) }),
  headersTimeoutMs: setting({ env: 'TCPKV_HEADERS_TIMEOUT_MS', flag: 'headers-timeout-ms', valueName: 'ms', default: '10000', describe: 'time to receive a request line and headers (408, then close)', parse: integer(10, 3_600_000) }),
  bodyTimeoutMs: setting({ env: 'TCPKV_BODY_TIMEOUT_MS', flag: 'body-timeout-ms', valueName: 'ms', default: '30000', describe: 'time to receive a request body once headers are in (408, then close)', parse: integer(10, 3_600_000) }),
  idleTimeoutMs: setting({ env: 'TCPKV_IDLE_TIMEOUT_MS', flag: 'idle-timeout-ms', valueName: 'ms', default: '60000', describe: 'idle keep-alive connections are closed after this', parse: integer(10, 86_400_000) }),
  maxConnections: setting({ env: 'TCPKV_MAX_CONNECTIONS', flag: 'max-connections', valueName: 'n', default: '20000', describe: 'open connections; the excess is closed at once', parse: integer(1, 1_000_000) }),
  maxPipelined: setting({ env: 'TCPKV_MAX_PIPELINED', flag: 'max-pipelined', valueName: 'n', default: '64', describe: 'requests of one connection being answered at once; further ones wait unread', parse: integer(1, 100_000) }),
  maxRequestsPerConnection: setting({ env: 'TCPKV_MAX_REQUESTS_PER_CONNECTION', flag: 'max-requests-per-connection', valueName: 'n', default: '0', describe: 'requests served on one connection before it is closed; 0 = no limit', parse: integer(0, 1_000_000_000) }),
  // below `docker stop`'s 10 s, so a slow client cannot turn a clean stop into a SIGKILL
  shutdownTimeoutMs: setting({ env: 'TCPKV_SHUTDOWN_TIMEOUT_MS', flag: 'shutdown-timeout-ms', valueName: 'ms', default: '8000', describe: 'how long a graceful shutdown waits for in-flight requests', parse: integer(0, 600_000) }),
  adminPort: setting({ env: 'TCPKV_ADMIN_PORT', flag: 'admin-port', valueName: 'port', default: undefined, describe: 'admin port (/healthz, /readyz, /metrics); unset = off, 0 = any free port', parse: integer(0, 65535) }),
  adminBind: setting({ env: 'TCPKV_ADMIN_BIND', flag: 'admin-bind', valueName: 'address', default: '127.0.0.1', describe: 'address the admin port listens on', parse: ipAddress }),
};

export type ServerConfig = SettingValues<typeof serverSettings>;

/**
 * The checks between settings: a key the rules accept must fit in a request target on every route
 * (`/kv/<key>`, a page's `prefix=` and `after=`, percent-encoded). A message naming both, or undefined.
 */
export function crossSettingProblem(config: Pick<ServerConfig, 'maxKeyBytes' | 'maxTargetBytes'>): string | undefined {
  if (config.maxKeyBytes === undefined) return undefined;
  const needed = targetBytesForKeys(config.maxKeyBytes);
  if (config.maxTargetBytes >= needed) return undefined;
  return `TCPKV_MAX_TARGET_BYTES=${config.maxTargetBytes} cannot carry keys of TCPKV_MAX_KEY_BYTES=${config.maxKeyBytes} (a page's prefix and after, percent-encoded, need ${needed}): raise the first or lower the second`;
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
    if (/^(dataDir|fsync|logRepair|compact|etcd)/.test(key)) return 'Storage:';
    if (/^max|TimeoutMs$/.test(key)) return 'Limits:';
    if (/^(log|accessLog)/.test(key)) return 'Logging:';
    return 'Other:';
  },
  { order: ['Network:', 'TLS:', 'Access:', 'Storage:', 'Limits:', 'Logging:', 'Other:'] as const },
);
