// tcpkv-client's settings (docs/configuration.md): the environment names are the contract; flags mirror them.

import { CLIENT_SETTING_NAMES } from '../common/setting-names.js';
import { integer, nonBlank, oneOf, onOff, setting, type SettingValues } from '../common/settings.js';
import { parseServerList } from './client.js';

export const clientSettings = {
  server: setting({ ...CLIENT_SETTING_NAMES.server, flag: 'server', valueName: 'host:port[,host:port…]', describe: 'server address; several = try the next when one cannot be reached', parse: parseServerList }),
  targetHost: setting({ ...CLIENT_SETTING_NAMES.targetHost, flag: 'target-host', valueName: 'name', describe: "host named in requests (default: the server's host)", parse: nonBlank }),
  dialect: setting({ ...CLIENT_SETTING_NAMES.dialect, flag: 'dialect', valueName: 'seed|standard', describe: 'request dialect (default: seed for scenario, standard otherwise)', parse: oneOf('seed', 'standard') }),
  token: setting({ ...CLIENT_SETTING_NAMES.token, flag: 'token', valueName: 'token', describe: 'shutdown token sent with END (or TCPKV_SHUTDOWN_TOKEN_FILE)', parse: nonBlank }),
  tls: setting({ ...CLIENT_SETTING_NAMES.tls, flag: 'tls', valueName: 'on|off', bareValue: 'on', describe: "speak TLS to the server's TLS port (default: on when a TLS file or --servername is given)", parse: onOff }),
  caFile: setting({ ...CLIENT_SETTING_NAMES.caFile, flag: 'ca-file', valueName: 'file', describe: "CA certificates (PEM) the server's certificate must chain to; unset = the system's CAs", parse: nonBlank }),
  certFile: setting({ ...CLIENT_SETTING_NAMES.certFile, flag: 'cert-file', valueName: 'file', describe: 'client certificate (PEM) for a server that requires one (mutual TLS)', parse: nonBlank }),
  keyFile: setting({ ...CLIENT_SETTING_NAMES.keyFile, flag: 'key-file', valueName: 'file', describe: "the client certificate's private key (PEM)", parse: nonBlank }),
  servername: setting({ ...CLIENT_SETTING_NAMES.servername, flag: 'servername', valueName: 'name', describe: "name the server's certificate must carry (default: the host of --server)", parse: nonBlank }),
  timeout: setting({ ...CLIENT_SETTING_NAMES.timeout, flag: 'timeout', valueName: 'ms', describe: 'connect and answer timeout', parse: integer(1, 3_600_000) }),
};

export type ClientConfig = SettingValues<typeof clientSettings>;

/** Every variable tcpkv-client reads (services/common/setting-names.ts holds the list for both programs). */
export { CLIENT_ENV_NAMES } from '../common/setting-names.js';
