// Every protocol error tcpkv can answer with, in one table: a stable code (for logs, tests and docs),
// the HTTP status it maps to, and the text sent to the client. test/unit/errors.test.ts checks that
// every code here is documented in the README, as fastify does for its FST_ERR_* codes.

import { Texts } from './texts.js';

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
  TCPKV_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'Request header block too large' },
  TCPKV_ERR_TOO_MANY_HEADERS: { status: 431, message: 'Too many header lines' },
  TCPKV_ERR_TARGET_TOO_LONG: { status: 414, message: 'Request target too long' },
  TCPKV_ERR_BODY_TOO_LARGE: { status: 413, message: 'Request body too large' },
  TCPKV_ERR_HEADERS_TIMEOUT: { status: 408, message: 'Request headers not received in time' },
  TCPKV_ERR_BODY_TIMEOUT: { status: 408, message: 'Request body not received in time' },
  // the client took none of an answer for TCPKV_SEND_TIMEOUT_MS: the connection is closed (nothing more can be sent)
  TCPKV_ERR_SEND_TIMEOUT: { status: 408, message: 'Answer not taken by the client in time; connection closed' },
  TCPKV_ERR_STORE_FULL: { status: 507, message: 'Storage is full' },
  TCPKV_ERR_VALUE_TOO_LARGE: { status: 413, message: 'Key or value too large for this store' },
  TCPKV_ERR_TOO_MANY_PAIRS: { status: 413, message: 'Too many pairs in one request' },
  TCPKV_ERR_KEY_TOO_LONG: { status: 400, message: 'Key longer than TCPKV_MAX_KEY_BYTES' },
} as const;

export type ProtocolErrorCode = keyof typeof ProtocolErrors;

/** A request the parser refused. The connection answers `status` with `message` and closes. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly status: number;
  constructor(code: ProtocolErrorCode, detail?: string) {
    const spec = ProtocolErrors[code];
    super(detail ? `${spec.message}: ${detail}` : spec.message);
    this.code = code;
    this.status = spec.status;
  }
}
