// The etcd store's in-memory copy (OrderedEntries) keeps the place of deleted cursor keys as the memory
// store does: bounded to the most recent deletes, refused (never an empty last page) beyond.

import { describe, expect, it } from 'vitest';
import { OrderedEntries } from '../../services/server/store/etcd-cache.js';
import { REMEMBERED_CURSORS, UnknownCursorError } from '../../services/server/store/store.js';

describe('OrderedEntries cursors', () => {
  it('remembers the last REMEMBERED_CURSORS deleted places, oldest forgotten first, across its bulk clean-ups', () => {
    const entries = new OrderedEntries();
    const n = REMEMBERED_CURSORS + 3000;
    for (let i = 0; i < n; i++) entries.set(`k${i}`, 'v', i + 1);
    for (let i = 0; i < n - 1; i++) entries.delete(`k${i}`);
    expect(() => entries.page({ prefix: '', after: 'k0', limit: 5 })).toThrow(UnknownCursorError);
    expect(() => entries.page({ prefix: '', after: 'k2998', limit: 5 })).toThrow(UnknownCursorError);
    for (const after of ['k2999', `k${n - 2}`]) expect(entries.page({ prefix: '', after, limit: 5 })).toEqual({ items: [[`k${n - 1}`, 'v']], versions: [n], next: undefined });
    entries.set('k5000', 'again', n + 1);
    expect(entries.page({ prefix: '', after: 'k5000', limit: 5 })).toEqual({ items: [], versions: [], next: undefined });
    // a page's versions are the mod revisions the entries were set at
    expect(entries.page({ prefix: '', after: undefined, limit: 5 })).toEqual({ items: [[`k${n - 1}`, 'v'], ['k5000', 'again']], versions: [n, n + 1], next: undefined });
    expect(entries.pairs()).toEqual([[`k${n - 1}`, 'v'], ['k5000', 'again']]);
  });
});
