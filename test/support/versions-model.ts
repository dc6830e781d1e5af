// A plain model of the store contract's versions and conditions (store.ts, "versions", "conditions"),
// for the memory and log stores' version tests: an insertion-ordered Map of key → value and version,
// and one revision counter that every accepted write moves by one. Each write answers what the
// contract says a store answers, or 'full' where a store throws StoreFullError.

import fc from 'fast-check';
import { conditionHolds, repeatedKey, type Condition, type CreateResult, type KeyDeleteResult, type KeyPutResult, type Pair, type StoreLimits, type UpsertResult } from '../../services/server/store/store.js';

const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');

/** How a generated condition is made from the model's state when the write is issued. */
export type ConditionSpec = 'any' | 'exists' | 'absent' | 'current' | 'stale' | 'current-or-stale';

export type VersionOp =
  | { readonly kind: 'create' | 'upsert'; readonly pairs: readonly Pair[] }
  | { readonly kind: 'delete'; readonly key: string }
  | { readonly kind: 'putKey'; readonly key: string; readonly value: string; readonly spec: ConditionSpec }
  | { readonly kind: 'deleteKey'; readonly key: string; readonly spec: ConditionSpec };

export type VersionAnswer = CreateResult | UpsertResult | boolean | KeyPutResult | KeyDeleteResult | 'full';

/** A refused create: which existing or repeated key it names, when several do, is the store's. */
export interface CreateRefusal {
  readonly refused: readonly string[];
}

/** Whether a store's answer is the one the model expects. */
export function sameAnswer(got: VersionAnswer, expected: VersionAnswer | CreateRefusal): boolean {
  if (typeof expected === 'object' && 'refused' in expected) {
    return typeof got === 'object' && 'ok' in got && got.ok === false && 'existingKey' in got && expected.refused.includes(got.existingKey);
  }
  return JSON.stringify(got) === JSON.stringify(expected);
}

export class VersionModel {
  readonly entries = new Map<string, { value: string; version: number }>();
  revision = 0;
  private bytes = 0;

  constructor(private readonly limits: StoreLimits) {}

  /** The Condition a spec stands for now (the versions a client would have read a moment ago). */
  condition(key: string, spec: ConditionSpec): Condition {
    const current = this.entries.get(key)?.version;
    switch (spec) {
      case 'any':
      case 'exists':
      case 'absent':
        return { kind: spec };
      case 'current':
        return { kind: 'versions', versions: [current ?? this.revision + 1] };
      case 'stale':
        return { kind: 'versions', versions: [Math.max(1, (current ?? 1) - 1)] };
      case 'current-or-stale':
        return { kind: 'versions', versions: [Math.max(1, (current ?? 1) - 1), current ?? 0] };
    }
  }

  private full(addedKeys: number, addedBytes: number): boolean {
    return (addedKeys > 0 && this.entries.size + addedKeys > this.limits.maxKeys) || (addedBytes > 0 && this.bytes + addedBytes > this.limits.maxDataBytes);
  }

  /** Sets pairs as one write (the caller checked it is accepted). */
  private set(pairs: readonly Pair[]): void {
    this.revision++;
    for (const [key, value] of pairs) {
      const old = this.entries.get(key);
      this.bytes += utf8(value) - (old === undefined ? -utf8(key) : utf8(old.value));
      if (old === undefined) this.entries.set(key, { value, version: this.revision });
      else {
        old.value = value;
        old.version = this.revision;
      }
    }
  }

  private remove(key: string): void {
    const old = this.entries.get(key)!;
    this.bytes -= utf8(key) + utf8(old.value);
    this.entries.delete(key);
    this.revision++;
  }

  /** What the write answers, applying it when it is accepted; `condition` for putKey/deleteKey. */
  apply(op: VersionOp, condition?: Condition): VersionAnswer | CreateRefusal {
    switch (op.kind) {
      case 'create': {
        const refused = op.pairs.map(([key]) => key).filter((key, i, keys) => this.entries.has(key) || keys.indexOf(key) !== i);
        if (repeatedKey(op.pairs) !== undefined || refused.length > 0) return { refused };
        if (this.full(op.pairs.length, op.pairs.reduce((n, [k, v]) => n + utf8(k) + utf8(v), 0))) return 'full';
        this.set(op.pairs);
        return { ok: true };
      }
      case 'upsert': {
        const previous = op.pairs.map(([key]) => this.entries.get(key)?.value);
        const after = new Map<string, string>();
        for (const [key, value] of op.pairs) after.set(key, value);
        let keys = 0;
        let bytes = 0;
        for (const [key, value] of after) {
          const old = this.entries.get(key);
          if (old === undefined) keys++;
          bytes += utf8(value) - (old === undefined ? -utf8(key) : utf8(old.value));
        }
        if (this.full(keys, bytes)) return 'full';
        this.set(op.pairs);
        return { previous };
      }
      case 'delete':
        if (!this.entries.has(op.key)) return false;
        this.remove(op.key);
        return true;
      case 'putKey': {
        const old = this.entries.get(op.key);
        if (!conditionHolds(condition!, old?.version)) return { ok: false, current: old?.version };
        if (this.full(old === undefined ? 1 : 0, utf8(op.value) - (old === undefined ? -utf8(op.key) : utf8(old.value)))) return 'full';
        this.set([[op.key, op.value]]);
        return { ok: true, version: this.revision, created: old === undefined };
      }
      case 'deleteKey': {
        const old = this.entries.get(op.key);
        if (old === undefined || !conditionHolds(condition!, old.version)) return { ok: false, current: old?.version };
        this.remove(op.key);
        return { ok: true, version: this.revision };
      }
    }
  }

  /** Every key's value and version, in insertion order. */
  snapshot(): [string, string, number][] {
    return [...this.entries].map(([k, { value, version }]) => [k, value, version]);
  }
}

const key = fc.constantFrom('a', 'b', 'c', '키', 'e😀');
const value = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('값', 'v'.repeat(30)));
const spec = fc.constantFrom<ConditionSpec>('any', 'exists', 'absent', 'current', 'stale', 'current-or-stale');
const pairs = fc.array(fc.tuple(key, value), { minLength: 1, maxLength: 3 });

/** Writes of every kind over a few keys, so that keys meet, repeat and get deleted often. */
export const versionOp: fc.Arbitrary<VersionOp> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), pairs }),
  fc.record({ kind: fc.constant('upsert' as const), pairs }),
  fc.record({ kind: fc.constant('delete' as const), key }),
  fc.record({ kind: fc.constant('putKey' as const), key, value, spec }),
  fc.record({ kind: fc.constant('putKey' as const), key, value, spec }),
  fc.record({ kind: fc.constant('deleteKey' as const), key, spec }),
);

/** Small limits, so that 507 refusals happen too. */
export const SMALL_LIMITS: StoreLimits = { maxKeys: 4, maxDataBytes: 80 };
