// tcpkv-client's settings (docs/configuration.md): the environment names are the contract; flags mirror them.

import { integer, nonBlank, oneOf, setting, type SettingValues } from '../common/settings.js';
import { parseServerList } from './client.js';

export const clientSettings = {
  server: setting({ env: 'TCPKV_SERVER', flag: 'server', valueName: 'host:port[,host:port…]', default: '127.0.0.1:10000', describe: 'server address; several = try the next when one cannot be reached', parse: parseServerList }),
  targetHost: setting({ env: 'TCPKV_TARGET_HOST', flag: 'target-host', valueName: 'name', default: undefined, describe: "host named in requests (default: the server's host)", parse: nonBlank }),
  dialect: setting({ env: 'TCPKV_DIALECT', flag: 'dialect', valueName: 'seed|standard', default: undefined, describe: 'request dialect (default: seed for scenario, standard otherwise)', parse: oneOf('seed', 'standard') }),
  token: setting({ env: 'TCPKV_SHUTDOWN_TOKEN', flag: 'token', valueName: 'token', default: undefined, describe: 'shutdown token sent with END (or TCPKV_SHUTDOWN_TOKEN_FILE)', parse: nonBlank }),
  timeout: setting({ env: 'TCPKV_TIMEOUT_MS', flag: 'timeout', valueName: 'ms', default: '5000', describe: 'connect and answer timeout', parse: integer(1, 3_600_000) }),
};

export type ClientConfig = SettingValues<typeof clientSettings>;

/** Every variable tcpkv-client reads (for the server's unknown-name warnings: a shared .env holds both). */
export const CLIENT_ENV_NAMES: readonly string[] = Object.values(clientSettings).map((s) => s.env);
