// A memory store with scripted failures and delays, for the request path's edge cases: a store that
// answers late (a slow disk, an etcd deadline), fails with a typed error (503), or throws something
// unknown, synchronously or not. Everything else is the real MemoryStore.

import { MemoryStore } from '../../services/server/store/memory-store.js';
import { StoreUnavailableError, type Condition, type MaybePromise, type PageRequest, type Pair, type Store } from '../../services/server/store/store.js';

export interface Script {
  /** every call answers after this long (0 = the memory store's synchronous answers) */
  delayMs?: number;
  /** reads (listing, get, page) fail with 503 "unavailable", like a paused etcd */
  unavailable?: boolean;
  /** a write touching this key throws an unknown Error */
  explodeOn?: string;
}

export class ScriptedStore implements Store {
  readonly kind = 'scripted';
  readonly memory = new MemoryStore();
  constructor(public script: Script = {}) {}

  get limits() {
    return this.memory.limits;
  }

  get revision(): number | undefined {
    return undefined;
  }

  private run<T>(call: () => T): MaybePromise<T> {
    const delayMs = this.script.delayMs ?? 0;
    if (delayMs === 0) return call();
    return new Promise<T>((resolve, reject) =>
      setTimeout(() => {
        try {
          resolve(call());
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      }, delayMs),
    );
  }

  private read<T>(call: () => T): MaybePromise<T> {
    return this.run(() => {
      if (this.script.unavailable) throw new StoreUnavailableError('etcd is not answering');
      return call();
    });
  }

  private write<T>(keys: readonly string[], call: () => T): MaybePromise<T> {
    return this.run(() => {
      if (this.script.explodeOn !== undefined && keys.includes(this.script.explodeOn)) throw new Error(`disk on fire (${this.script.explodeOn})`);
      return call();
    });
  }

  listing() {
    return this.read(() => this.memory.listing());
  }
  get(key: string) {
    return this.read(() => this.memory.get(key));
  }
  getVersioned(key: string) {
    return this.read(() => this.memory.getVersioned(key));
  }
  page(request: PageRequest) {
    return this.read(() => this.memory.page(request));
  }
  createAll(pairs: readonly Pair[]) {
    return this.write(pairs.map((p) => p[0]), () => this.memory.createAll(pairs));
  }
  upsertAll(pairs: readonly Pair[]) {
    return this.write(pairs.map((p) => p[0]), () => this.memory.upsertAll(pairs));
  }
  delete(key: string) {
    return this.write([key], () => this.memory.delete(key));
  }
  putKey(key: string, value: string, condition: Condition) {
    return this.write([key], () => this.memory.putKey(key, value, condition));
  }
  deleteKey(key: string, condition: Condition) {
    return this.write([key], () => this.memory.deleteKey(key, condition));
  }
  usage() {
    return this.memory.usage();
  }
  close() {
    return this.memory.close();
  }
}
