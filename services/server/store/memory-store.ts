// The in-memory store: a Map, whose iteration order is insertion order and whose `set` on an existing
// key keeps its place — exactly the seed's dict semantics.

import type { CreateResult, ListingSnapshot, Page, PageRequest, Pair, Store, StoreUsage, UpsertResult } from './store.js';

const CREATED: CreateResult = Object.freeze({ ok: true });

export class MemoryStore implements Store {
  private readonly map = new Map<string, string>();
  private rev = 0;

  get revision(): number {
    return this.rev;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): string | undefined {
    return this.map.get(key);
  }

  list(): readonly Pair[] {
    return Array.from(this.map);
  }

  // SCAFFOLD (replaced by the indexed store of issue 13/15): correct but O(n) per call.
  listing(): ListingSnapshot {
    let text = '';
    for (const [key, value] of this.map) text += '\n' + key + ':' + value;
    return { count: this.map.size, slices: text === '' ? [] : [text], bytes: Buffer.byteLength(text) };
  }

  page(request: PageRequest): Page {
    const items: Pair[] = [];
    let started = request.after === undefined;
    for (const [key, value] of this.map) {
      if (!started) {
        if (key === request.after) started = true;
        continue;
      }
      if (!key.startsWith(request.prefix)) continue;
      if (items.length === request.limit) return { items, next: items[items.length - 1]![0] };
      items.push([key, value]);
    }
    return { items, next: undefined };
  }

  delete(key: string): boolean {
    const had = this.map.delete(key);
    if (had) this.rev++;
    return had;
  }

  usage(): StoreUsage {
    let dataBytes = 0;
    for (const [key, value] of this.map) dataBytes += Buffer.byteLength(key) + Buffer.byteLength(value);
    return { keys: this.map.size, dataBytes };
  }

  createAll(pairs: readonly Pair[]): CreateResult {
    for (const [key] of pairs) if (this.map.has(key)) return { ok: false, existingKey: key };
    for (const [key, value] of pairs) this.map.set(key, value);
    this.rev++;
    return CREATED;
  }

  upsertAll(pairs: readonly Pair[]): UpsertResult {
    const previous = pairs.map(([key]) => this.map.get(key));
    for (const [key, value] of pairs) this.map.set(key, value);
    this.rev++;
    return { previous };
  }

  /** Applies a batch without the checks: used to replay a log whose records were checked when written. */
  restore(pairs: readonly Pair[]): void {
    for (const [key, value] of pairs) this.map.set(key, value);
    this.rev++;
  }

  async close(): Promise<void> {}
}
