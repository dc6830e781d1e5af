// One error model: every error a request or the client meets is a TcpkvError whose code is in the one
// table of codes (services/protocol/errors.ts) with that code's status. docs.test.ts checks the table
// against docs/errors.md.

import { describe, expect, it } from 'vitest';
import { DumpFormatError, readDump, RestoreError } from '../../services/client/backup.js';
import { ClientError } from '../../services/client/client.js';
import { TcpkvError } from '../../services/common/errors.js';
import { ClientErrors, isLimit, ProtocolError, ProtocolErrors, RequestError } from '../../services/protocol/errors.js';
import { ResponseFormatError, ResponseReader } from '../../services/protocol/response-reader.js';
import { StoreFullError, StoreUnavailableError, UnknownCursorError, ValueTooLargeError } from '../../services/server/store/store.js';

describe('error model', () => {
  it.each([
    ['ProtocolError', new ProtocolError('TCPKV_ERR_BAD_CHUNK', 'x')],
    ['StoreUnavailableError', new StoreUnavailableError('down')],
    ['StoreUnavailableError (indeterminate)', new StoreUnavailableError('lost', { indeterminate: true })],
    ['StoreFullError', new StoreFullError('TCPKV_MAX_KEYS=1')],
    ['ValueTooLargeError', new ValueTooLargeError('big')],
    ['UnknownCursorError', new UnknownCursorError('k')],
  ])('%s is a request error with its code’s status', (_name, error) => {
    expect(error).toBeInstanceOf(TcpkvError);
    expect(error).toBeInstanceOf(RequestError);
    expect(Object.keys(ProtocolErrors)).toContain(error.code);
    expect(error.status).toBe(ProtocolErrors[error.code].status);
  });

  it('an indeterminate store failure has a code of its own', () => {
    expect(new StoreUnavailableError('x').code).toBe('TCPKV_ERR_STORE_UNAVAILABLE');
    expect(new StoreUnavailableError('x', { indeterminate: true }).code).toBe('TCPKV_ERR_STORE_INDETERMINATE');
  });

  it('the client’s errors are TcpkvErrors with a client code and its exit status', () => {
    const reader = new ResponseReader();
    let thrown: unknown;
    try {
      reader.push(Buffer.from('not http at all\r\n\r\n'));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ResponseFormatError);
    let dumpError: unknown;
    try {
      readDump(Buffer.from('junk\n'));
    } catch (error) {
      dumpError = error;
    }
    expect(dumpError).toBeInstanceOf(DumpFormatError);
    for (const error of [thrown, dumpError, new ClientError('TIMEOUT', 'late', true), new RestoreError('stop')] as TcpkvError[]) {
      expect(error).toBeInstanceOf(TcpkvError);
      expect(Object.keys(ClientErrors)).toContain(error.code);
      expect(error.status).toBe(ClientErrors[error.code as keyof typeof ClientErrors].status);
    }
  });

  it('limits are marked in the table: the parser’s size limits and the rules’ and store’s refusals', () => {
    const limits = Object.keys(ProtocolErrors).filter((code) => isLimit(code as keyof typeof ProtocolErrors));
    expect(limits).toEqual(expect.arrayContaining(['TCPKV_ERR_TOO_MANY_PAIRS', 'TCPKV_ERR_KEY_TOO_LONG', 'TCPKV_ERR_STORE_FULL', 'TCPKV_ERR_VALUE_TOO_LARGE', 'TCPKV_ERR_BODY_TOO_LARGE']));
    expect(limits).not.toContain('TCPKV_ERR_STORE_UNAVAILABLE');
    expect(limits).not.toContain('TCPKV_ERR_BAD_METHOD');
  });
});
