// Who may talk to the server and who may stop it: pure decisions, no sockets (docs/security.md).

import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`; anything else unchanged. */
export function normalizePeerAddress(address: string): string {
  if (address.length > 7 && address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  return address;
}

export function isLoopback(address: string): boolean {
  const a = normalizePeerAddress(address);
  if (isIP(a) === 4) return a.startsWith('127.');
  return a === '::1';
}

export interface ClientAllowList {
  readonly any: boolean;
  allows(peerAddress: string): boolean;
  /** as configured, for logs */
  readonly text: string;
}

/**
 * Parses `TCPKV_ALLOWED_CLIENTS`: `*`, or a comma list of IPv4/IPv6 addresses and CIDR blocks.
 * Throws an Error naming the bad entry.
 */
export function parseClientAllowList(spec: string): ClientAllowList {
  const entries = spec.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (entries.length === 0) throw new Error('empty list (use * to allow every client)');
  if (entries.includes('*')) {
    if (entries.length > 1) throw new Error('* cannot be combined with other entries');
    return { any: true, allows: () => true, text: '*' };
  }
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const address = slash < 0 ? entry : entry.slice(0, slash);
    const family = isIP(address);
    if (family === 0) throw new Error(`"${entry}" is not an IP address or CIDR block`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash < 0) {
      list.addAddress(address, type);
      continue;
    }
    const prefixText = entry.slice(slash + 1);
    const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= (family === 4 ? 32 : 128))) throw new Error(`"${entry}" has an invalid prefix length`);
    list.addSubnet(address, prefix, type);
  }
  return {
    any: false,
    text: entries.join(','),
    allows(peerAddress: string): boolean {
      const a = normalizePeerAddress(peerAddress);
      const family = isIP(a);
      if (family === 0) return false;
      return list.check(a, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

export interface HostAllowList {
  readonly any: boolean;
  allows(host: string): boolean;
  readonly text: string;
}

/** Parses `TCPKV_ALLOWED_HOSTS`: `*`, or a comma list of names and IP literals (case-insensitive). */
export function parseHostAllowList(spec: string): HostAllowList {
  const entries = spec.split(',').map((e) => e.trim().toLowerCase()).filter((e) => e !== '');
  if (entries.length === 0) throw new Error('empty list (use * to allow any Host)');
  if (entries.includes('*')) return { any: true, allows: () => true, text: '*' };
  for (const e of entries) {
    if (/[\s/?#@]/.test(e)) throw new Error(`"${e}" is not a host name`);
  }
  // IPv6 literals may be configured with or without brackets; hosts arrive without them.
  const set = new Set(entries.map((e) => (e.startsWith('[') && e.endsWith(']') ? e.slice(1, -1) : e)));
  return { any: false, allows: (host) => set.has(host), text: [...set].join(',') };
}

export interface ShutdownPolicy {
  /** TCPKV_SHUTDOWN: false refuses END always */
  readonly enabled: boolean;
  /** TCPKV_SHUTDOWN_TOKEN, or undefined */
  readonly token: string | undefined;
}

export type ShutdownDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'disabled' | 'no-token' | 'bad-token' | 'not-loopback' };

/**
 * END (docs/security.md): with a token configured, only `Authorization: Bearer <token>`; without
 * one, only from loopback; never when switched off.
 */
export function authorizeShutdown(policy: ShutdownPolicy, authorization: string | undefined, peerAddress: string): ShutdownDecision {
  if (!policy.enabled) return { allowed: false, reason: 'disabled' };
  if (policy.token !== undefined) {
    if (authorization === undefined) return { allowed: false, reason: 'no-token' };
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (!m || !constantTimeEqual(m[1]!, policy.token)) return { allowed: false, reason: 'bad-token' };
    return { allowed: true };
  }
  return isLoopback(peerAddress) ? { allowed: true } : { allowed: false, reason: 'not-loopback' };
}

/** Compares secrets in time independent of where they differ (hashing first evens out the lengths). */
function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
