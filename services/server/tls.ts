// The TLS credentials of the TLS port: the certificate (with its chain), its key and, for mutual TLS,
// the CA that client certificates must chain to. They are read into a SecureContext at start (a
// problem there stops the server: one line, exit 2) and again on SIGHUP or when a file changes
// (polled by stat: renewals by certbot or cert-manager replace the files, often through a symlink
// swap that file-change events miss). A reload that fails keeps the previous context, logs why and
// counts it; connections already open keep the context they were made with.

import { X509Certificate, constants as cryptoConstants } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import { StartupError } from '../common/errors.js';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** set = mutual TLS: clients must present a certificate this CA signed */
  readonly clientCaFile?: string | undefined;
}

/** How a TLS handshake ended: `ok`, or why it failed (a small fixed set: metric labels). */
export type TlsHandshakeOutcome =
  | 'ok'
  /** not finished within TCPKV_TLS_HANDSHAKE_TIMEOUT_MS */
  | 'timeout'
  /** a plain HTTP request on the TLS port (answered 400) */
  | 'plain-http'
  /** neither TLS nor text */
  | 'not-tls'
  /** mutual TLS: the client sent no certificate */
  | 'no-client-certificate'
  /** mutual TLS: the client's certificate does not chain to TCPKV_TLS_CLIENT_CA_FILE, or has expired */
  | 'client-certificate-rejected'
  /** the client refused our certificate (an alert: unknown CA, bad or expired certificate) */
  | 'server-certificate-refused'
  /** no common protocol version, cipher or ALPN protocol */
  | 'protocol'
  /** the client closed or reset the connection during the handshake */
  | 'closed'
  /** bytes that are not valid TLS records */
  | 'malformed'
  | 'other';

export const TLS_HANDSHAKE_OUTCOMES: readonly TlsHandshakeOutcome[] = [
  'ok', 'timeout', 'plain-http', 'not-tls', 'no-client-certificate', 'client-certificate-rejected', 'server-certificate-refused', 'protocol', 'closed', 'malformed', 'other',
];

/** What the metrics learn about the credentials and the handshakes. */
export interface TlsEvents {
  certificateReload(ok: boolean): void;
  /** the serving certificate's notAfter, seconds since the epoch */
  certificateExpiry(notAfterSeconds: number): void;
  tlsHandshakeStarted(): void;
  tlsHandshakeEnded(outcome: TlsHandshakeOutcome): void;
}

export const NO_TLS_EVENTS: TlsEvents = Object.freeze({
  certificateReload() {},
  certificateExpiry() {},
  tlsHandshakeStarted() {},
  tlsHandshakeEnded() {},
});

/**
 * Options every TLS context gets: TLS 1.2 or later, no renegotiation (a client that asks is cut: it
 * is a way to make the server redo expensive work), the server's cipher order.
 */
export const TLS_PROTOCOL_OPTIONS: SecureContextOptions = Object.freeze({
  minVersion: 'TLSv1.2',
  secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION | cryptoConstants.SSL_OP_CIPHER_SERVER_PREFERENCE,
});

/** A TLS file the server cannot use; the message names the setting (TCPKV_TLS_CERT_FILE, …). */
export class TlsConfigError extends StartupError {
  constructor(message: string, setting?: string) {
    super('TCPKV_ERR_TLS_CONFIG', message, setting);
  }
}

/** The loaded credentials: the context for new connections and what is logged about them. */
export interface LoadedCredentials {
  /** what tls.Server.setSecureContext takes; checked by building a context from it once */
  readonly options: SecureContextOptions;
  readonly subject: string;
  readonly notAfter: Date;
  /** the files' (size, mtime) when read: a change is a reason to reload */
  readonly signature: string;
}

function readPem(file: string, what: string, setting: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new TlsConfigError(`${setting}=${file}: cannot read the ${what}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** (size, mtime) of each file, or the error code: changes when a file is replaced or rewritten. */
export function filesSignature(files: TlsFiles): string {
  return [files.certFile, files.keyFile, files.clientCaFile]
    .filter((f): f is string => f !== undefined)
    .map((f) => {
      try {
        const s = statSync(f);
        return `${f}:${s.size}:${s.mtimeMs}:${s.ino}`;
      } catch (error) {
        return `${f}:${(error as NodeJS.ErrnoException).code ?? 'error'}`;
      }
    })
    .join('|');
}

/** Reads the files into a SecureContext; throws TlsConfigError naming the setting and the problem. */
export function loadCredentials(files: TlsFiles): LoadedCredentials {
  const signature = filesSignature(files);
  const cert = readPem(files.certFile, 'certificate', 'TCPKV_TLS_CERT_FILE');
  const key = readPem(files.keyFile, 'key', 'TCPKV_TLS_KEY_FILE');
  const ca = files.clientCaFile !== undefined ? readPem(files.clientCaFile, 'client CA', 'TCPKV_TLS_CLIENT_CA_FILE') : undefined;
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (error) {
    throw new TlsConfigError(`TCPKV_TLS_CERT_FILE=${files.certFile}: not a PEM certificate: ${(error as Error).message}`);
  }
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (error) {
      throw new TlsConfigError(`TCPKV_TLS_CLIENT_CA_FILE=${files.clientCaFile}: not a PEM certificate: ${(error as Error).message}`);
    }
  }
  const options: SecureContextOptions = { ...TLS_PROTOCOL_OPTIONS, cert, key, ...(ca !== undefined ? { ca } : {}) };
  try {
    createSecureContext(options);
  } catch (error) {
    // a key that does not match the certificate, a damaged or encrypted key
    throw new TlsConfigError(`TCPKV_TLS_CERT_FILE=${files.certFile}, TCPKV_TLS_KEY_FILE=${files.keyFile}: ${(error as Error).message}`);
  }
  return { options, subject: leaf.subject.replace(/\n/g, ', '), notAfter: new Date(leaf.validTo), signature };
}

/**
 * The credentials in use, reloaded on demand (`reload`, which SIGHUP calls) and when the files'
 * signature changes (`startWatching`). A failed reload keeps what is loaded.
 */
export class TlsCredentials {
  private loaded: LoadedCredentials;
  /** the signature last tried, so a broken file is reported once, not at every check */
  private lastTried: string;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: ((credentials: LoadedCredentials) => void)[] = [];

  constructor(
    readonly files: TlsFiles,
    private readonly logger: Logger,
    private readonly events?: TlsEvents,
  ) {
    this.loaded = loadCredentials(files);
    this.lastTried = this.loaded.signature;
    this.warnIfExpired();
    this.events?.certificateExpiry(this.loaded.notAfter.getTime() / 1000);
  }

  get current(): LoadedCredentials {
    return this.loaded;
  }

  /** Called with the new credentials after each successful reload. */
  onReload(listener: (credentials: LoadedCredentials) => void): void {
    this.listeners.push(listener);
  }

  get requireClientCertificate(): boolean {
    return this.files.clientCaFile !== undefined;
  }

  /** Reads the files again; on success new connections use them, on failure the old ones stay. */
  reload(why: string): boolean {
    this.lastTried = filesSignature(this.files);
    try {
      this.loaded = loadCredentials(this.files);
    } catch (error) {
      this.events?.certificateReload(false);
      this.logger.error({ why, err: (error as Error).message, keeping: this.loaded.subject, notAfter: this.loaded.notAfter.toISOString() }, 'TLS certificate reload failed: keeping the certificate in use');
      return false;
    }
    for (const listener of this.listeners) listener(this.loaded);
    this.events?.certificateReload(true);
    this.events?.certificateExpiry(this.loaded.notAfter.getTime() / 1000);
    this.logger.info({ why, subject: this.loaded.subject, notAfter: this.loaded.notAfter.toISOString() }, 'TLS certificate reloaded');
    this.warnIfExpired();
    return true;
  }

  /** Served anyway (the clients refuse it, each with a clear error), but said at once. */
  private warnIfExpired(): void {
    if (this.loaded.notAfter.getTime() < Date.now()) {
      this.logger.warn({ subject: this.loaded.subject, notAfter: this.loaded.notAfter.toISOString() }, 'the TLS certificate has expired: clients will refuse it');
    }
  }

  /** Checks the files every `everyMs` and reloads when they changed (0 = never: SIGHUP only). */
  startWatching(everyMs: number): void {
    if (everyMs <= 0) return;
    this.timer = setInterval(() => {
      const now = filesSignature(this.files);
      if (now !== this.lastTried) this.reload('certificate files changed');
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
