// The in-memory store: a Map, whose iteration order is insertion order and whose `set` on an existing
// key keeps its place — exactly the seed's dict semantics.

import type { CreateResult, Pair, Store, UpsertResult } from './store.js';

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
