// Every error code a request can meet, in one table: a stable code (for logs, metrics, tests and
// docs), the HTTP status it maps to, the text sent to the client, and whether it is a limit (logged
// and counted when hit). The client's own codes, with the exit status of tcpkv-client, are the second
// table. test/unit/docs.test.ts checks both against docs/errors.md in both directions, as fastify
// does for its FST_ERR_* codes: every code documented, nothing documented that does not exist.

import { TcpkvError } from '../common/errors.js';
import { Texts } from './texts.js';

interface CodeSpec {
  readonly status: number;
  readonly message: string;
  /**
   * a configured or built-in limit: a rule's answer with this code is logged at warn and counted
   * (limitHit); the parser's and the connection's refusals are all logged and counted
   */
  readonly limit?: true;
  /** false: the connection closes without an answer (there is no session to answer in) */
  readonly answered?: false;
}

export const ProtocolErrors = {
  TCPKV_ERR_BAD_REQUEST_LINE: { status: 400, message: 'Malformed request line' },
  TCPKV_ERR_BAD_METHOD: { status: 400, message: 'Malformed method' },
  TCPKV_ERR_BAD_TARGET: { status: 400, message: 'Malformed request target' },
  TCPKV_ERR_BAD_VERSION: { status: 400, message: 'Malformed HTTP version' },
  TCPKV_ERR_VERSION_NOT_SUPPORTED: { status: 505, message: 'HTTP version not supported (use HTTP/1.1 or HTTP/1.0)' },
  TCPKV_ERR_BAD_HEADER: { status: 400, message: 'Malformed header line' },
  TCPKV_ERR_OBS_FOLD: { status: 400, message: 'Folded header lines are not allowed' },
  TCPKV_ERR_MIXED_LINE_ENDINGS: { status: 400, message: 'Mixed or bare-CR line endings in the header block' },
  TCPKV_ERR_MISSING_HOST: { status: 400, message: 'HTTP/1.1 request without a Host header' },
  TCPKV_ERR_DUPLICATE_HOST: { status: 400, message: 'More than one Host header' },
  TCPKV_ERR_BAD_CONTENT_LENGTH: { status: 400, message: 'Malformed Content-Length' },
  TCPKV_ERR_DUPLICATE_CONTENT_LENGTH: { status: 400, message: 'More than one Content-Length header' },
  TCPKV_ERR_CL_AND_TE: { status: 400, message: 'Both Content-Length and Transfer-Encoding' },
  TCPKV_ERR_TE_NOT_CHUNKED: { status: 400, message: 'Transfer-Encoding must end with chunked' },
  TCPKV_ERR_TE_NOT_IMPLEMENTED: { status: 501, message: 'Only the chunked transfer coding is supported' },
  TCPKV_ERR_BAD_CHUNK: { status: 400, message: 'Malformed chunked body' },
  // the same words as the rules use for a byte-counted body that is not UTF-8
  TCPKV_ERR_BODY_NOT_UTF8: { status: 400, message: Texts.badUtf8 },
  TCPKV_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'Request header block too large', limit: true },
  TCPKV_ERR_TOO_MANY_HEADERS: { status: 431, message: 'Too many header lines', limit: true },
  TCPKV_ERR_TARGET_TOO_LONG: { status: 414, message: 'Request target too long', limit: true },
  TCPKV_ERR_BODY_TOO_LARGE: { status: 413, message: 'Request body too large', limit: true },
  TCPKV_ERR_HEADERS_TIMEOUT: { status: 408, message: 'Request headers not received in time', limit: true },
  TCPKV_ERR_BODY_TIMEOUT: { status: 408, message: 'Request body not received in time', limit: true },
  // the client took none of an answer for TCPKV_SEND_TIMEOUT_MS: the connection is closed (nothing more can be sent)
  TCPKV_ERR_SEND_TIMEOUT: { status: 408, message: 'Answer not taken by the client in time; connection closed', limit: true },
  TCPKV_ERR_STORE_FULL: { status: 507, message: 'Storage is full', limit: true },
  TCPKV_ERR_VALUE_TOO_LARGE: { status: 413, message: 'Key or value too large for this store', limit: true },
  TCPKV_ERR_TOO_MANY_PAIRS: { status: 413, message: 'Too many pairs in one request', limit: true },
  TCPKV_ERR_KEY_TOO_LONG: { status: 400, message: 'Key longer than TCPKV_MAX_KEY_BYTES', limit: true },
  // no answer can be sent (there is no TLS session yet): the connection is closed, logged and counted
  TCPKV_ERR_TLS_HANDSHAKE_TIMEOUT: { status: 408, message: 'TLS handshake not finished in time', limit: true, answered: false },
  // the store's failures (services/server/store/store.ts), answered by services/server/store-answers.ts
  TCPKV_ERR_STORE_UNAVAILABLE: { status: 503, message: Texts.storeUnavailable },
  TCPKV_ERR_STORE_INDETERMINATE: { status: 503, message: Texts.storeIndeterminate },
  TCPKV_ERR_UNKNOWN_CURSOR: { status: 400, message: 'No place known for the page cursor' },
  TCPKV_ERR_PRECONDITION_FAILED: { status: 412, message: "The key's version does not meet the request's If-Match or If-None-Match" },
  TCPKV_ERR_WATCH_GONE: { status: 410, message: 'The changes after the watch\'s revision are no longer kept' },
  TCPKV_ERR_BAD_CONDITION: { status: 400, message: 'Malformed or unsupported If-Match / If-None-Match' },
} as const satisfies Record<string, CodeSpec>;

export type ProtocolErrorCode = keyof typeof ProtocolErrors;

/** Whether this code is a limit: a rule's answer carrying it is logged at warn and counted. */
export function isLimit(code: ProtocolErrorCode): boolean {
  return (ProtocolErrors[code] as CodeSpec).limit === true;
}

/**
 * An error a request meets on the server (parser, connection, rules, store): `status` and `code` from
 * the table above. Subclasses add what their layer knows.
 */
export class RequestError extends TcpkvError {
  declare readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string = ProtocolErrors[code].message, options?: ErrorOptions) {
    super(code, ProtocolErrors[code].status, message, options);
  }
}

/** A request the parser refused. The connection answers `status` with `message` and closes. */
export class ProtocolError extends RequestError {
  constructor(code: ProtocolErrorCode, detail?: string) {
    const spec = ProtocolErrors[code];
    super(code, detail ? `${spec.message}: ${detail}` : spec.message);
  }
}

/**
 * The client's own codes (printed by `--json` and named in its messages), each with the exit status
 * of tcpkv-client: 3 when no answer came, 2 for a usage or input problem, 1 for a restore the
 * server's answers stopped.
 */
export const ClientErrors = {
  CONNECT_FAILED: { status: 3 },
  TLS_FAILED: { status: 3 },
  TIMEOUT: { status: 3 },
  CONNECTION_LOST: { status: 3 },
  BAD_RESPONSE: { status: 3 },
  USAGE: { status: 2 },
  DUMP_FORMAT: { status: 2 },
  RESTORE_FAILED: { status: 1 },
} as const;

export type ClientSideErrorCode = keyof typeof ClientErrors;

/** An error the client meets; `status` is the exit status of tcpkv-client (ClientErrors). */
export class ClientSideError extends TcpkvError {
  declare readonly code: ClientSideErrorCode;
  constructor(code: ClientSideErrorCode, message: string, options?: ErrorOptions) {
    super(code, ClientErrors[code].status, message, options);
  }
}
