// tcpkv-client's settings (docs/configuration.md): the environment names are the contract; flags mirror them.

import { integer, nonBlank, oneOf, setting, type SettingValues } from '../common/settings.js';
import { parseServerList } from './client.js';

function onOff(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (v === 'on' || v === 'true' || v === '1') return true;
  if (v === 'off' || v === 'false' || v === '0') return false;
  throw new Error('must be on or off');
}

export const clientSettings = {
  server: setting({ env: 'TCPKV_SERVER', flag: 'server', valueName: 'host:port[,host:port…]', default: '127.0.0.1:10000', describe: 'server address; several = try the next when one cannot be reached', parse: parseServerList }),
  targetHost: setting({ env: 'TCPKV_TARGET_HOST', flag: 'target-host', valueName: 'name', default: undefined, describe: "host named in requests (default: the server's host)", parse: nonBlank }),
  dialect: setting({ env: 'TCPKV_DIALECT', flag: 'dialect', valueName: 'seed|standard', default: undefined, describe: 'request dialect (default: seed for scenario, standard otherwise)', parse: oneOf('seed', 'standard') }),
  token: setting({ env: 'TCPKV_SHUTDOWN_TOKEN', flag: 'token', valueName: 'token', default: undefined, describe: 'shutdown token sent with END (or TCPKV_SHUTDOWN_TOKEN_FILE)', parse: nonBlank }),
  tls: setting({ env: 'TCPKV_CLIENT_TLS', flag: 'tls', valueName: 'on|off', bareValue: 'on', default: undefined, describe: "speak TLS to the server's TLS port (default: on when a TLS file or --servername is given)", parse: onOff }),
  caFile: setting({ env: 'TCPKV_CLIENT_CA_FILE', flag: 'ca-file', valueName: 'file', default: undefined, describe: "CA certificates (PEM) the server's certificate must chain to; unset = the system's CAs", parse: nonBlank }),
  certFile: setting({ env: 'TCPKV_CLIENT_CERT_FILE', flag: 'cert-file', valueName: 'file', default: undefined, describe: 'client certificate (PEM) for a server that requires one (mutual TLS)', parse: nonBlank }),
  keyFile: setting({ env: 'TCPKV_CLIENT_KEY_FILE', flag: 'key-file', valueName: 'file', default: undefined, describe: "the client certificate's private key (PEM)", parse: nonBlank }),
  servername: setting({ env: 'TCPKV_CLIENT_SERVERNAME', flag: 'servername', valueName: 'name', default: undefined, describe: "name the server's certificate must carry (default: the host of --server)", parse: nonBlank }),
  timeout: setting({ env: 'TCPKV_TIMEOUT_MS', flag: 'timeout', valueName: 'ms', default: '5000', describe: 'connect and answer timeout', parse: integer(1, 3_600_000) }),
};

export type ClientConfig = SettingValues<typeof clientSettings>;

/** Every variable tcpkv-client reads (for the server's unknown-name warnings: a shared .env holds both). */
export const CLIENT_ENV_NAMES: readonly string[] = Object.values(clientSettings).map((s) => s.env);
