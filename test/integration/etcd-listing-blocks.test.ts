// A replica's listing over etcd is kept in blocks, as the memory store keeps it: a write renders again
// the block it touched, and every other block of the next listing is the very buffer of the listing
// before (so a listing of a big store costs no full render per change, and listings of different
// revisions share memory). Against a real etcd on loopback, with two replicas: one writes, the other
// follows by its watch.

import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import type { ListingSnapshot, Pair } from '../../services/server/store/store.js';
import { useLocalEtcd } from '../support/etcd.js';

const stores: EtcdStore[] = [];
afterAll(async () => {
  for (const store of stores) await store.close();
});

/** How many slices of `after` are not the very buffers of `before`. */
function rendered(before: ListingSnapshot, after: ListingSnapshot): number {
  const old = new Set(before.slices);
  return after.slices.filter((slice) => !old.has(slice)).length;
}

describe('etcd store listing: blocks rendered again only when they change', () => {
  const etcd = useLocalEtcd();

  it('one PUT, one DELETE, one new key: each renders one block again; the text is the whole store in insertion order', async () => {
    const prefix = `blocks${process.pid}/`;
    const writer = new EtcdStore({ endpoints: [etcd().endpoint], prefix, timeoutMs: 3000, logger: pino({ level: 'silent' }) });
    const reader = new EtcdStore({ endpoints: [etcd().endpoint], prefix, timeoutMs: 3000, logger: pino({ level: 'silent' }) });
    stores.push(writer, reader);
    await writer.start();
    const keys = 6000;
    const value = 'v'.repeat(60);
    const batches: Promise<unknown>[] = [];
    for (let from = 0; from < keys; from += 60) {
      const pairs: Pair[] = Array.from({ length: 60 }, (_, i) => [`key${String(from + i).padStart(5, '0')}`, value]);
      batches.push(writer.createAll(pairs));
    }
    await Promise.all(batches);
    await reader.start();

    const first = await reader.listing();
    expect(first.count).toBe(keys);
    // no change: the very same listing
    expect(rendered(first, await reader.listing())).toBe(0);

    await writer.upsertAll([['key03000', 'changed']]);
    const afterPut = await reader.listing();
    const afterDelete = await (async () => {
      await writer.delete('key00010');
      return reader.listing();
    })();
    await writer.createAll([['zz-new', 'n']]);
    const afterCreate = await reader.listing();
    const counts = { put: rendered(first, afterPut), delete: rendered(afterPut, afterDelete), create: rendered(afterDelete, afterCreate), slices: first.slices.length };
    console.log(JSON.stringify({ test: 'etcd listing blocks re-rendered per write', ...counts }));
    expect(counts).toEqual({ put: 1, delete: 1, create: 1, slices: first.slices.length });
    expect(first.slices.length).toBeGreaterThan(10);

    const text = Buffer.concat(afterCreate.slices).toString('utf8');
    expect(afterCreate.count).toBe(keys);
    expect(afterCreate.bytes).toBe(Buffer.byteLength(text));
    const lines = text.split('\n').slice(1);
    expect(lines.length).toBe(keys);
    // the POSTs of 60 keys were sent together (their order among each other is etcd's), each kept together
    expect(lines.indexOf(`key00001:${value}`) - lines.indexOf(`key00000:${value}`)).toBe(1);
    expect(lines).not.toContain(`key00010:${value}`);
    expect(lines).toContain('key03000:changed');
    expect(lines.at(-1)).toBe('zz-new:n');
    expect(await reader.get('key03000')).toBe('changed');
    expect((await reader.page({ prefix: 'key0300', after: 'key03000', limit: 2 })).items).toEqual([
      ['key03001', value],
      ['key03002', value],
    ]);
  }, 60_000);
});
