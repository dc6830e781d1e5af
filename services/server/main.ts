#!/usr/bin/env node
// `tcpkv-server`: reads the configuration, opens the store, listens, and shuts down gracefully on END,
// SIGTERM or SIGINT (exit 0). Bad configuration: one line naming the setting, exit 2.
//
// The composition root: the one place that reads the settings and builds the parts from them — the
// store limits (computed once, given to the store and the metrics), the metrics, the TLS credentials,
// the store (through its driver), the server and the admin port. Nothing below reads a setting.

import { Command } from 'commander';
import { pino } from 'pino';
import { StartupError, STARTUP_EXIT_CODE } from '../common/errors.js';
import { KNOWN_ENV_NAMES } from '../common/setting-names.js';
import { addSettingOptions, ConfigError, exitWithConfigError, parseCommandLine, prepareEnvironment, settingValues, settingWarnings } from '../common/settings.js';
import { refuseUnsupportedNode } from '../common/node-version.js';
import { packageVersion } from '../common/version.js';
import { isLoopback } from './access.js';
import { AdminServer } from './admin.js';
import { crossSettingProblem, maxKeyBytesOf, serverSettingGroup, serverSettings, type ServerConfig } from './config.js';
import { TcpkvMetrics } from './metrics.js';
import { TcpkvServer, type TlsPortOptions } from './server.js';
import { checkLogFile, describeLogCheck } from './store/log-check.js';
import { TlsConfigError, TlsCredentials } from './tls.js';
import { defaultFeedLimits } from './store/change-feed.js';
import { openStore, storeLimits } from './store/open-store.js';
import type { Store } from './store/store.js';

const PROGRAM = 'tcpkv-server';

/** Said once the logger exists: unknown TCPKV_* names, a secret given as a flag. */
let configWarnings: string[] = [];

/** Flags, then the environment, then `.env` (empty = unset); a bad value: one line, exit 2. */
async function readConfig(argv: readonly string[]): Promise<{ config: ServerConfig; checkLog: string | undefined }> {
  const program = new Command(PROGRAM)
    .description('tcpkv key-value server: HTTP/1.1 and the seed dialect over raw TCP.\nEach option can be set by the variable named after it, or in .env; a flag wins over both.')
    .version(packageVersion(), '-v, --version')
    .helpOption('-h, --help')
    .allowExcessArguments(false);
  addSettingOptions(program, serverSettings, serverSettingGroup);
  program.option('--check-log <file>', 'check a log file (a backup copy, or the live log) and exit, starting no server: nothing is locked or written; exit 0 = a server loads it, 1 = damaged (says what TCPKV_LOG_REPAIR=truncate would cut), 2 = cannot read it');
  let fromDotenv: Set<string>;
  try {
    fromDotenv = prepareEnvironment();
  } catch (error) {
    if (error instanceof ConfigError) exitWithConfigError(PROGRAM, error);
    throw error;
  }
  await parseCommandLine(program, argv);
  configWarnings = settingWarnings(program, serverSettings, KNOWN_ENV_NAMES, fromDotenv);
  const config = settingValues(program, serverSettings);
  const checkLog = program.opts<{ checkLog?: string }>().checkLog;
  // --check-log starts nothing: the checks between the server's settings do not apply to it
  const problem = checkLog === undefined ? crossSettingProblem(config) : undefined;
  if (problem !== undefined) exitWithConfigError(PROGRAM, new ConfigError(problem));
  return { config, checkLog };
}

/** --check-log: the report on stdout; exit 0 (loads), 1 (damaged or not a log), 2 (cannot read it). */
function runLogCheck(file: string): number {
  let report;
  try {
    report = describeLogCheck(checkLogFile(file));
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    process.stderr.write(`${PROGRAM}: cannot read ${file}: ${e.code ?? e.message}\n`);
    return 2;
  }
  process.stdout.write(report.text);
  return report.exitCode;
}

async function main(): Promise<void> {
  refuseUnsupportedNode(PROGRAM);
  const { config, checkLog } = await readConfig(process.argv);
  if (checkLog !== undefined) process.exit(runLogCheck(checkLog));
  const logger = pino({ name: PROGRAM, level: config.logLevel, timestamp: pino.stdTimeFunctions.isoTime });
  for (const warning of configWarnings) logger.warn(warning);

  // the store limits, once: the store enforces them, the metrics show them
  const limits = storeLimits(config);
  // Metrics are counted only when the admin port is on; otherwise the data path reports to nothing.
  const metrics = config.adminPort !== undefined ? new TcpkvMetrics({ version: packageVersion(), limits }) : undefined;

  // the TLS port's credentials: read now, so a missing or broken file stops the start (exit 2)
  let tls: TlsPortOptions | undefined;
  if (config.tlsPort !== undefined && config.tlsCertFile !== undefined && config.tlsKeyFile !== undefined) {
    let credentials: TlsCredentials;
    try {
      credentials = new TlsCredentials({ certFile: config.tlsCertFile, keyFile: config.tlsKeyFile, clientCaFile: config.tlsClientCaFile }, logger, metrics);
    } catch (error) {
      if (error instanceof TlsConfigError) exitWithConfigError(PROGRAM, error);
      throw error;
    }
    credentials.startWatching(config.tlsReloadCheckMs);
    tls = { bind: config.tlsBind ?? config.bind, port: config.tlsPort, credentials, handshakeTimeoutMs: config.tlsHandshakeTimeoutMs, events: metrics };
  } else if (config.tlsCertFile !== undefined || config.tlsClientCaFile !== undefined) {
    logger.warn('TCPKV_TLS_CERT_FILE or TCPKV_TLS_CLIENT_CA_FILE is set but TCPKV_TLS_PORT is not: no TLS port is open');
  }

  let store: Store;
  try {
    // the store reports its fsyncs, compactions and etcd calls to the metrics (when the admin port is on)
    const feedLimits = { ...defaultFeedLimits(), maxChanges: config.watchHistoryChanges, ...(config.watchHistoryBytes !== undefined ? { maxBytes: config.watchHistoryBytes } : {}) };
    store = await openStore(config, { limits, logger, events: metrics, feedLimits });
  } catch (error) {
    if (error instanceof ConfigError) exitWithConfigError(PROGRAM, error);
    // any other refusal to open the store is a start-up failure too: one line, exit 2
    if (error instanceof StartupError) {
      process.stderr.write(`${PROGRAM}: ${error.message}\n`);
      process.exit(STARTUP_EXIT_CODE);
    }
    throw error;
  }
  metrics?.attachStore(store);

  const server = new TcpkvServer({
    bind: config.bind,
    port: config.port,
    tls,
    limits: {
      maxHeaderBytes: config.maxHeaderBytes,
      maxHeaderCount: config.maxHeaderCount,
      maxTargetBytes: config.maxTargetBytes,
      maxBodyBytes: config.maxBodyBytes,
      headersTimeoutMs: config.headersTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      maxPipelined: config.maxPipelined,
      maxRequestsPerConnection: config.maxRequestsPerConnection,
      maxOutputBytes: config.maxOutputBytes,
      sendTimeoutMs: config.sendTimeoutMs,
    },
    maxConnections: config.maxConnections,
    allowedClients: config.allowedClients,
    policy: { allowedHosts: config.allowedHosts, shutdown: { enabled: config.shutdown, token: config.shutdownToken }, maxPairs: config.maxPairs, maxKeyBytes: maxKeyBytesOf(config), watchMaxWaitMs: config.watchMaxWaitMs },
    store,
    logger,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    accessLog: config.accessLog,
    ...(metrics ? { events: metrics } : {}),
  });

  let address;
  try {
    address = await server.listen();
  } catch (error) {
    // one line, exit 2, whatever the cause (in use, no such address, not permitted)
    const e = error as NodeJS.ErrnoException & { tlsPort?: boolean };
    const where = e.tlsPort === true ? `${tls!.bind}:${tls!.port} (TCPKV_TLS_BIND, TCPKV_TLS_PORT)` : `${config.bind}:${config.port} (TCPKV_BIND, TCPKV_PORT)`;
    process.stderr.write(`${PROGRAM}: cannot listen on ${where}: ${e.code ?? e.message}\n`);
    process.exit(2);
  }

  const settingsLine = {
    allowedHosts: config.allowedHosts.text,
    allowedClients: config.allowedClients.text,
    shutdown: !config.shutdown ? 'off' : config.shutdownToken ? 'token' : 'loopback only',
    store: store.kind,
    version: packageVersion(),
  };
  if (config.port !== 'off') logger.info({ address: address.address, port: address.port, ...settingsLine }, 'listening');
  if (tls !== undefined && server.tlsAddress !== undefined) {
    const current = tls.credentials.current;
    logger.info(
      {
        address: server.tlsAddress.address,
        port: server.tlsAddress.port,
        certificate: current.subject,
        notAfter: current.notAfter.toISOString(),
        clientCertificates: tls.credentials.requireClientCertificate ? 'required' : 'not asked',
        reload: config.tlsReloadCheckMs > 0 ? `SIGHUP, or a file change (checked every ${config.tlsReloadCheckMs} ms)` : 'SIGHUP',
        ...settingsLine,
      },
      'TLS listening',
    );
    // `docker kill -s HUP`, `systemctl reload`, a certbot deploy hook: new connections get the new certificate
    process.on('SIGHUP', () => tls.credentials.reload('SIGHUP'));
  }
  if (config.port !== 'off' && !isLoopback(config.bind) && config.allowedClients.any && config.shutdownToken === undefined) {
    logger.warn(
      { bind: config.bind },
      'listening beyond loopback with TCPKV_ALLOWED_CLIENTS=* and no TCPKV_SHUTDOWN_TOKEN: anyone who can reach this port can read and write the data',
    );
  }

  if (tls !== undefined && !isLoopback(tls.bind) && config.allowedClients.any && !tls.credentials.requireClientCertificate && config.shutdownToken === undefined) {
    logger.warn(
      { tlsBind: tls.bind },
      'the TLS port listens beyond loopback with TCPKV_ALLOWED_CLIENTS=*, no TCPKV_TLS_CLIENT_CA_FILE and no TCPKV_SHUTDOWN_TOKEN: anyone who can reach it can read and write the data',
    );
  }

  let admin: AdminServer | undefined;
  if (metrics && config.adminPort !== undefined) {
    admin = new AdminServer({ bind: config.adminBind, port: config.adminPort, metrics, logger, draining: () => server.draining });
    try {
      const adminAddress = await admin.listen();
      logger.info({ address: adminAddress.address, port: adminAddress.port }, 'admin port listening (/healthz, /readyz, /metrics)');
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      // as for the data port: one line, exit 2
      process.stderr.write(`${PROGRAM}: cannot listen on ${config.adminBind}:${config.adminPort} (TCPKV_ADMIN_BIND, TCPKV_ADMIN_PORT): ${e.code ?? e.message}\n`);
      process.exit(2);
    }
  }

  const stop = (reason: string) => {
    // the admin port stays up while the data port drains (/readyz answers 503 meanwhile)
    server.shutdown(reason).then(
      async () => {
        await admin?.close();
        process.exit(0);
      },
      (error: unknown) => {
        logger.fatal({ err: (error as Error)?.stack }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  server.onShutdown(stop);
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`${PROGRAM}: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});
