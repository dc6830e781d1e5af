import { describe, expect, it } from 'vitest';
import { resolveAddress, seedAddressed } from '../../services/protocol/dialect.js';

describe('resolveAddress (the two dialects of docs/protocol.md)', () => {
  it.each([
    // seed dialect: target `/`, Host carries host/path
    ['/', '127.0.0.1/create', { dialect: 'seed', host: '127.0.0.1', path: 'create', valid: true }],
    ['/', '127.0.0.1/', { dialect: 'seed', host: '127.0.0.1', path: '', valid: true }],
    ['/', 'server/update/extra', { dialect: 'seed', host: 'server', path: 'update', valid: true }],
    ['/', '?/?', { dialect: 'seed', host: '?', path: '?', valid: false }],
    ['/', '/create', { dialect: 'seed', host: '', path: 'create', valid: false }],
    // standard
    ['/', '127.0.0.1:10000', { dialect: 'standard', host: '127.0.0.1', path: '', valid: true }],
    ['/create?x=1', 'LOCALHOST:10000', { dialect: 'standard', host: 'localhost', path: 'create', valid: true }],
    ['/update/', 'h', { dialect: 'standard', host: 'h', path: 'update', valid: true }],
    ['/create#frag', 'h', { dialect: 'standard', host: 'h', path: 'create', valid: true }],
    ['/', '[::1]:10000', { dialect: 'standard', host: '::1', path: '', valid: true }],
    ['/', '[::1]', { dialect: 'standard', host: '::1', path: '', valid: true }],
    ['/', 'h:port', { dialect: 'standard', host: 'h:port', path: '', valid: false }],
    ['/', '', { dialect: 'standard', host: '', path: '', valid: true }],
    // absolute-form: the target's authority wins
    ['http://server:10000/create?q', 'ignored', { dialect: 'standard', host: 'server', path: 'create', valid: true }],
    ['HTTP://[::1]:1', undefined, { dialect: 'standard', host: '::1', path: '', valid: true }],
    // nothing to address
    ['*', 'h', { dialect: 'standard', host: '', path: '', valid: false }],
    ['127.0.0.1??', 'h', { dialect: 'standard', host: '', path: '', valid: false }],
  ] as const)('%s with Host %j', (target, host, expected) => {
    expect(resolveAddress(target, host)).toEqual(expected);
  });
});

describe('seedAddressed: the addressing half of a seed-shaped request', () => {
  it.each([
    ['/', '127.0.0.1/create', true],
    ['/', '?/?', true],
    ['/', '127.0.0.1', false],
    ['/', undefined, false],
    ['/create', '127.0.0.1/create', false],
    ['http://h/', 'h/x', false],
  ] as const)('%s with Host %j → %s', (target, host, expected) => {
    expect(seedAddressed(target, host)).toBe(expected);
    // it agrees with the dialect resolveAddress picks
    expect(resolveAddress(target, host).dialect === 'seed').toBe(expected);
  });
});
