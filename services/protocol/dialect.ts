// Which of the two dialects a request speaks, and so which host and path it addresses (docs/protocol.md).
//
// Seed dialect: the target is `/` and the Host header carries `host/path` (`Host: 127.0.0.1/create`).
// Standard HTTP/1.1: the path comes from the target (origin-form `/create?x` or absolute-form
// `http://h:p/create`), the host from the Host header (or the absolute-form authority) without its port.

export type Dialect = 'seed' | 'standard';

export interface Address {
  readonly dialect: Dialect;
  /** lower-cased host name or IP literal, without port or IPv6 brackets; '' when none was sent */
  readonly host: string;
  /** path without its leading `/`, query or fragment: '' for the root, 'create', 'update', ... */
  readonly path: string;
  /** false when the address cannot be made sense of (the seed client's `?/?`): the seed's first rule (rules.ts) */
  readonly valid: boolean;
}

const INVALID_HOST_CHARS = /[/?#@\s\\]/;

// Clients send the same Host value on every request: remember a few answers (bounded, so a client
// sending endless distinct values costs nothing but misses).
const hostCache = new Map<string, { host: string; valid: boolean }>();
const HOST_CACHE_SIZE = 256;

/** `127.0.0.1:10000` → `127.0.0.1`, `[::1]:10000` → `::1`, `Example.COM` → `example.com`. */
export function hostWithoutPort(authority: string): { host: string; valid: boolean } {
  let result = hostCache.get(authority);
  if (result === undefined) {
    result = parseAuthority(authority);
    if (hostCache.size >= HOST_CACHE_SIZE) hostCache.clear();
    hostCache.set(authority, result);
  }
  return result;
}

function parseAuthority(authority: string): { host: string; valid: boolean } {
  let host: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) return { host: authority, valid: false };
    const rest = authority.slice(close + 1);
    if (rest !== '' && !/^:\d{0,5}$/.test(rest)) return { host: authority, valid: false };
    host = authority.slice(1, close);
    return { host: host.toLowerCase(), valid: host.length > 0 && /^[0-9a-fA-F:.]+$/.test(host) };
  }
  const colon = authority.lastIndexOf(':');
  if (colon >= 0) {
    if (!/^\d{0,5}$/.test(authority.slice(colon + 1))) return { host: authority, valid: false };
    host = authority.slice(0, colon);
  } else {
    host = authority;
  }
  return { host: host.toLowerCase(), valid: host.length > 0 && !INVALID_HOST_CHARS.test(host) && !host.includes(':') };
}

function pathOf(target: string, from: number): string {
  let end = target.length;
  const q = target.indexOf('?', from);
  if (q >= 0) end = q;
  const h = target.indexOf('#', from);
  if (h >= 0 && h < end) end = h;
  let path = target.slice(from + 1, end); // skip the leading '/'
  if (path.endsWith('/')) path = path.slice(0, -1);
  return path;
}

// The last answer: the next request usually has the same target and Host (a pure function, so safe).
let lastTarget = '';
let lastHostHeader: string | undefined;
let lastAddress: Address | undefined;

export function resolveAddress(target: string, hostHeader: string | undefined): Address {
  if (target === lastTarget && hostHeader === lastHostHeader && lastAddress !== undefined) return lastAddress;
  const address = resolveUncached(target, hostHeader);
  lastTarget = target;
  lastHostHeader = hostHeader;
  lastAddress = address;
  return address;
}

/**
 * Whether a request addresses in the seed dialect: target `/` and a Host value holding `/`. (A Host
 * holding `/` is never a valid RFC 9110 Host, so no standard request matches.) The parser asks too: a
 * seed-shaped request's Content-Length counts characters.
 */
export function seedAddressed(target: string, hostHeader: string | undefined): boolean {
  return target === '/' && hostHeader !== undefined && hostHeader.includes('/');
}

function resolveUncached(target: string, hostHeader: string | undefined): Address {
  if (seedAddressed(target, hostHeader)) {
    const slash = hostHeader!.indexOf('/');
    const { host, valid } = hostWithoutPort(hostHeader!.slice(0, slash));
    const rest = hostHeader!.slice(slash + 1);
    const next = rest.indexOf('/');
    const path = next < 0 ? rest : rest.slice(0, next);
    return { dialect: 'seed', host, path, valid: valid && !path.includes('?') };
  }

  if (target.charCodeAt(0) === 0x2f /* / */) {
    // no Host (HTTP/1.0) or an empty one: the empty name, which only TCPKV_ALLOWED_HOSTS=* admits
    if (hostHeader === undefined || hostHeader === '') return { dialect: 'standard', host: '', path: pathOf(target, 0), valid: true };
    const { host, valid } = hostWithoutPort(hostHeader);
    return { dialect: 'standard', host, path: pathOf(target, 0), valid };
  }

  // absolute-form (RFC 9112 §3.2.2): the authority in the target wins over the Host header
  const scheme = /^https?:\/\//i.exec(target);
  if (scheme) {
    const from = scheme[0].length;
    let end = target.length;
    for (const c of ['/', '?', '#']) {
      const i = target.indexOf(c, from);
      if (i >= 0 && i < end) end = i;
    }
    const { host, valid } = hostWithoutPort(target.slice(from, end));
    const path = end < target.length && target[end] === '/' ? pathOf(target, end) : '';
    return { dialect: 'standard', host, path, valid };
  }

  // asterisk-form, authority-form or junk: nothing tcpkv can address
  return { dialect: 'standard', host: '', path: '', valid: false };
}
