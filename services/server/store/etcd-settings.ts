// The etcd store's settings: what a deployment passes in, the checks that need no etcd, and the
// etcd3 client they make. Everything here is decided before the first call to etcd.

import { readFileSync, statSync } from 'node:fs';
import { NoopPolicy, type IPolicy } from 'cockatiel';
import type { IOptions } from 'etcd3';
import type { Logger } from 'pino';
import type { ChangeFeedLimits } from './change-feed.js';
import { StartupError } from '../../common/errors.js';
import type { StoreEvents } from '../events.js';
import type { StoreLimits } from './store.js';
import { numericDefault, SERVER_SETTING_NAMES as S } from '../../common/setting-names.js';

export interface EtcdStoreOptions {
  readonly endpoints: readonly string[];
  /** every key tcpkv writes starts with this (see checkEtcdPrefix) */
  readonly prefix: string;
  /** deadline for each call to etcd, and for a read waiting for the copy */
  readonly timeoutMs: number;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly caFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** etcd's --max-txn-ops (default 128): a write of n pairs takes 2n+1 operations */
  readonly maxTxnOps?: number | undefined;
  /** etcd's --max-request-bytes (default 1.5 MiB): larger writes are refused before the call */
  readonly maxRequestBytes?: number | undefined;
  readonly limits?: StoreLimits | undefined;
  readonly logger: Logger;
  readonly events?: StoreEvents | undefined;
  /** the bounds of the replica's watch history (Store.changes); absent = the defaults */
  readonly feedLimits?: ChangeFeedLimits | undefined;
  /**
   * TEST ONLY, never a user setting: 'none' answers reads from the copy without the barrier, which is
   * NOT linearizable (a replica whose watch lags serves old data). It exists so that the
   * linearizability checker can be shown to catch exactly that.
   */
  readonly unsafeReadBarrier?: 'quorum' | 'none' | undefined;
}

export const ETCD_DEFAULT_MAX_TXN_OPS = numericDefault(S.etcdMaxTxnOps);
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = numericDefault(S.etcdMaxRequestBytes);
/** gRPC's default limit on one answer: the client takes at least this much. */
const GRPC_DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024;
/** Room in one answer for what is not the events or values etcd's request limit bounds (headers, framing). */
const ANSWER_OVERHEAD_BYTES = 1024 * 1024;

/**
 * The largest answer this replica takes from etcd. A watch answer asks for fragments: etcd splits one
 * that is over its --max-request-bytes, and a fragment holds at least one event, which came in one
 * request of at most that size. Range pages shrink until they fit (see etcd-cache.ts), and a PUT's
 * failure branch reads no values. So etcd's request limit plus framing bounds every answer.
 */
export function maxEtcdAnswerBytes(maxRequestBytes: number): number {
  return Math.min(2 ** 31 - 1, Math.max(GRPC_DEFAULT_RECEIVE_BYTES, maxRequestBytes + ANSWER_OVERHEAD_BYTES));
}

/**
 * A start-up check against etcd failed in a way no retry fixes (bad credentials, no rights on the
 * prefix): one line, exit 2. `setting` names the variable to look at first.
 */
export class EtcdStartError extends StartupError {
  constructor(message: string, setting: string, options?: ErrorOptions) {
    super('TCPKV_ERR_ETCD_ACCESS_REFUSED', message, setting, options);
  }
}

/**
 * Prefixes must not nest into each other's key space: a prefix is empty or ends with `/`, and none
 * of its segments is `kv` or `ord`. Then the ranges <P>kv/ and <P>ord/ of two deployments with
 * different prefixes never overlap (one would have to start with the other's <P>kv/ or <P>ord/).
 * Returns the problem, or undefined.
 */
export function checkEtcdPrefix(prefix: string): string | undefined {
  if (prefix !== '' && !prefix.endsWith('/')) return `must end with "/" (e.g. ${prefix}/)`;
  const segments = prefix.split('/').slice(0, -1);
  if (segments.some((s) => s === 'kv' || s === 'ord')) return 'must not contain a "kv" or "ord" segment: it would lie inside the key space of the deployment using the part before it';
  return undefined;
}

/** Checks of the TLS settings that need no etcd: one clear line each instead of a failure later. */
export function checkEtcdTls(endpoints: readonly string[], caFile: string | undefined): string | undefined {
  if (caFile === undefined) return undefined;
  try {
    if (statSync(caFile).isDirectory()) return `TCPKV_ETCD_CA_FILE=${caFile} is a directory, not a CA certificate file`;
  } catch (error) {
    return `TCPKV_ETCD_CA_FILE=${caFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
  }
  const plain = endpoints.filter((e) => e.startsWith('http://'));
  if (plain.length > 0) return `TCPKV_ETCD_CA_FILE is set but ${plain.join(',')} use${plain.length === 1 ? 's' : ''} http://: TLS endpoints are https://`;
  return undefined;
}

/**
 * The etcd3 client's options: every call has the etcd deadline, answers up to maxEtcdAnswerBytes, and
 * the only fault handling is `memberPolicy` per member (etcd3's own retries are off: see etcd-calls.ts).
 */
export function etcdClientOptions(options: EtcdStoreOptions, maxRequestBytes: number, memberPolicy: (member: string) => IPolicy): IOptions {
  const config: IOptions = {
    hosts: [...options.endpoints],
    dialTimeout: options.timeoutMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + options.timeoutMs }),
    grpcOptions: { 'grpc.max_receive_message_length': maxEtcdAnswerBytes(maxRequestBytes) },
    faultHandling: {
      host: memberPolicy,
      global: new NoopPolicy(),
    },
  };
  if (options.username !== undefined) config.auth = { username: options.username, password: options.password ?? '' };
  if (options.caFile !== undefined) {
    config.credentials = {
      rootCertificate: readFileSync(options.caFile),
      ...(options.certFile ? { certChain: readFileSync(options.certFile) } : {}),
      ...(options.keyFile ? { privateKey: readFileSync(options.keyFile) } : {}),
    };
  }
  return config;
}

/** The options of a client of one member only: no fault handling of its own (the caller's policy runs it). */
export function singleMemberOptions(config: IOptions, endpoint: string): IOptions {
  return { ...config, hosts: [endpoint], faultHandling: { host: () => new NoopPolicy(), global: new NoopPolicy() } };
}
