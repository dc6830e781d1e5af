// The root of tcpkv's own errors. Every error the product raises on purpose is a TcpkvError: it has a
// stable `code` (logs, tests and docs name it; it never changes once released) and the HTTP `status`
// it answers with if it reaches a client. Code that maps errors to answers looks at `code` and
// `status`, never at the class name or the message text.
//
// Two families sit under it:
//   - errors a request meets (protocol, rules, store): the status says how the client is answered;
//   - StartupError: a server or client that cannot start (a setting, a file, a store that will not
//     open). It names the setting or file at fault; the program prints it and exits 2.

export class TcpkvError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(code: string, status: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
  }
}

/** Exit status of a program that refused to start (bad settings, a file it cannot use). */
export const STARTUP_EXIT_CODE = 2;

/** Every reason a program refuses to start, with what it means (docs/errors.md lists them). */
export const StartupErrors = {
  TCPKV_ERR_CONFIG: 'a setting is missing, malformed, or contradicts another',
  TCPKV_ERR_STORE_OPEN: 'the chosen store cannot open (its message names the setting or file)',
  TCPKV_ERR_DATA_DIR_LOCKED: 'another server holds TCPKV_DATA_DIR',
  TCPKV_ERR_LOG_DAMAGED: 'the log in TCPKV_DATA_DIR is damaged, or is not a tcpkv log',
  TCPKV_ERR_TLS_CONFIG: 'a TLS certificate, key or CA file cannot be used',
  TCPKV_ERR_ETCD_ACCESS_REFUSED: 'etcd refused the credentials or the rights on TCPKV_ETCD_PREFIX',
} as const;
export type StartupErrorCode = keyof typeof StartupErrors;

/** A program that cannot start. `setting` names the variable (or file) to fix, when there is one. */
export class StartupError extends TcpkvError {
  declare readonly code: StartupErrorCode;
  readonly setting: string | undefined;
  constructor(code: StartupErrorCode, message: string, setting?: string, options?: ErrorOptions) {
    super(code, 500, message, options);
    this.setting = setting;
  }
}

/** True for any of tcpkv's own errors with this code. */
export function hasCode(error: unknown, code: string): error is TcpkvError {
  return error instanceof TcpkvError && error.code === code;
}
