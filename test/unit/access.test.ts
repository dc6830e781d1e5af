import { describe, expect, it } from 'vitest';
import { authorizeShutdown, isLoopback, normalizePeerAddress, parseClientAllowList, parseHostAllowList } from '../../services/server/access.js';

describe('isLoopback', () => {
  it.each([
    ['127.0.0.1', true], ['127.0.0.2', true], ['127.255.255.254', true], ['::1', true], ['::ffff:127.0.0.1', true],
    ['10.0.0.1', false], ['172.17.0.1', false], ['0.0.0.0', false], ['::', false], ['::ffff:10.0.0.1', false], ['fe80::1', false], ['garbage', false],
  ])('%s → %s', (address, expected) => expect(isLoopback(address)).toBe(expected));
});

describe('normalizePeerAddress', () => {
  it('unwraps IPv4-mapped IPv6 and leaves the rest', () => {
    expect(normalizePeerAddress('::ffff:192.168.1.9')).toBe('192.168.1.9');
    expect(normalizePeerAddress('::ffff:abcd')).toBe('::ffff:abcd');
    expect(normalizePeerAddress('2001:db8::1')).toBe('2001:db8::1');
  });
});

describe('client allow-list (TCPKV_ALLOWED_CLIENTS)', () => {
  it('* allows everyone', () => {
    const list = parseClientAllowList('*');
    expect(list.any).toBe(true);
    expect(list.allows('203.0.113.9')).toBe(true);
  });
  it('IPv4 CIDRs and single addresses, also as IPv4-mapped peers', () => {
    const list = parseClientAllowList('10.0.0.0/8, 192.168.1.7');
    expect(list.allows('10.200.3.4')).toBe(true);
    expect(list.allows('::ffff:10.1.1.1')).toBe(true);
    expect(list.allows('192.168.1.7')).toBe(true);
    expect(list.allows('192.168.1.8')).toBe(false);
    expect(list.allows('11.0.0.1')).toBe(false);
    expect(list.allows('not-an-ip')).toBe(false);
  });
  it('IPv6 CIDRs', () => {
    const list = parseClientAllowList('2001:db8::/32,::1');
    expect(list.allows('2001:db8:1::5')).toBe(true);
    expect(list.allows('2001:db9::1')).toBe(false);
    expect(list.allows('::1')).toBe(true);
    expect(list.allows('127.0.0.1')).toBe(false);
  });
  it('/0 and /32 edges', () => {
    expect(parseClientAllowList('0.0.0.0/0').allows('8.8.8.8')).toBe(true);
    expect(parseClientAllowList('127.0.0.1/32').allows('127.0.0.2')).toBe(false);
  });
  it.each(['', ' , ', '10.0.0.0/33', '10.0.0/8', 'localhost', '::1/129', '*,10.0.0.1', '10.0.0.0/x'])('refuses %j', (spec) => {
    expect(() => parseClientAllowList(spec)).toThrow();
  });
});

describe('host allow-list (TCPKV_ALLOWED_HOSTS)', () => {
  it('matches case-insensitively, IPv6 with or without brackets, * = any', () => {
    const list = parseHostAllowList('127.0.0.1, LocalHost,[::1],server');
    expect(list.allows('localhost')).toBe(true);
    expect(list.allows('::1')).toBe(true);
    expect(list.allows('server')).toBe(true);
    expect(list.allows('127.0.5.1')).toBe(false);
    expect(parseHostAllowList('*').allows('anything')).toBe(true);
  });
  it.each(['', 'a b', 'host/path'])('refuses %j', (spec) => expect(() => parseHostAllowList(spec)).toThrow());
});

describe('END authorisation', () => {
  const on = (token?: string) => ({ enabled: true, token });
  it('no token configured: loopback only', () => {
    expect(authorizeShutdown(on(), undefined, '127.0.0.1')).toEqual({ allowed: true });
    expect(authorizeShutdown(on(), undefined, '::1')).toEqual({ allowed: true });
    expect(authorizeShutdown(on(), undefined, '172.17.0.1')).toEqual({ allowed: false, reason: 'not-loopback' });
    expect(authorizeShutdown(on(), 'Bearer anything', '172.17.0.1')).toEqual({ allowed: false, reason: 'not-loopback' });
  });
  it('token configured: the Bearer token decides, from anywhere, loopback included', () => {
    expect(authorizeShutdown(on('t0k'), 'Bearer t0k', '203.0.113.1')).toEqual({ allowed: true });
    expect(authorizeShutdown(on('t0k'), 'bearer   t0k ', '203.0.113.1')).toEqual({ allowed: true });
    expect(authorizeShutdown(on('t0k'), undefined, '127.0.0.1')).toEqual({ allowed: false, reason: 'no-token' });
    expect(authorizeShutdown(on('t0k'), 'Bearer t0', '127.0.0.1')).toEqual({ allowed: false, reason: 'bad-token' });
    expect(authorizeShutdown(on('t0k'), 'Basic t0k', '127.0.0.1')).toEqual({ allowed: false, reason: 'bad-token' });
    expect(authorizeShutdown(on('t0k'), 'Bearer t0k extra', '127.0.0.1')).toEqual({ allowed: false, reason: 'bad-token' });
  });
  it('switched off: never', () => {
    expect(authorizeShutdown({ enabled: false, token: 't' }, 'Bearer t', '127.0.0.1')).toEqual({ allowed: false, reason: 'disabled' });
  });
});
