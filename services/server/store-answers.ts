// A store's failure, answered: by the error's code (services/protocol/errors.ts), never by its class
// or text. What the store could not do is answered with nothing applied, except an indeterminate
// write, which says it may have been.

import { RequestError } from '../protocol/errors.js';
import { Texts } from '../protocol/texts.js';
import { refused, type Answer } from './render.js';
import { isPromise, type MaybePromise, type UnknownCursorError } from './store/store.js';

/** Applies `then` to a store's result, a value or a promise; a store failure becomes its answer. */
export function guard<T>(value: MaybePromise<T>, then: (v: T) => Answer): MaybePromise<Answer> {
  if (!isPromise(value)) return then(value);
  return value.then(then, storeFailure);
}

/** The answer to a store's failure; anything that is not a request error is rethrown (a 500). */
export function storeFailure(error: unknown): Answer {
  if (!(error instanceof RequestError)) throw error;
  switch (error.code) {
    case 'TCPKV_ERR_STORE_UNAVAILABLE':
      return { status: error.status, body: Texts.storeUnavailable, code: error.code };
    case 'TCPKV_ERR_STORE_INDETERMINATE':
      return { status: error.status, body: Texts.storeIndeterminate, code: error.code };
    // the store logs a full store itself (rate-limited); the request observer counts it
    case 'TCPKV_ERR_STORE_FULL':
      return refused(error.code, error.message);
    case 'TCPKV_ERR_VALUE_TOO_LARGE':
      return refused(error.code, Texts.valueTooLarge(error.message));
    case 'TCPKV_ERR_UNKNOWN_CURSOR':
      return { status: error.status, body: Texts.unknownCursor((error as UnknownCursorError).after), code: error.code };
    default:
      throw error;
  }
}
