// The Store contract (test/support/store-contract.ts) against each store: memory, the append-only log
// on real files, and etcd through a real local etcd.

import { pino } from 'pino';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { LogStore } from '../../services/server/store/log-store.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import type { Store, StoreLimits } from '../../services/server/store/store.js';
import { useLocalEtcd } from '../support/etcd.js';
import { runStoreContract } from '../support/store-contract.js';
import { useTempDirs } from '../support/temp-dirs.js';

const quiet = pino({ level: 'silent' });
const tempDir = useTempDirs();

runStoreContract('MemoryStore', {
  open: async (limits?: StoreLimits) => new MemoryStore({ limits, logger: quiet }),
  dispose: (store: Store) => store.close(),
});

const logDirs = new WeakMap<Store, { dir: string; limits: StoreLimits | undefined }>();
const openLog = async (dir: string, limits: StoreLimits | undefined): Promise<LogStore> => {
  const store = await LogStore.open({ dir, fsync: 'always', compactFactor: 2, compactMinBytes: 1 << 30, repair: 'off', logger: quiet, limits });
  logDirs.set(store, { dir, limits });
  return store;
};
runStoreContract('LogStore', {
  open: (limits?: StoreLimits) => openLog(tempDir('tcpkv-contract-'), limits),
  reopen: (closed: Store) => {
    const { dir, limits } = logDirs.get(closed)!;
    return openLog(dir, limits);
  },
  dispose: (store: Store) => store.close(),
});

const localEtcd = useLocalEtcd();
let prefixes = 0;

const etcdPrefixes = new WeakMap<Store, { prefix: string; limits: StoreLimits | undefined }>();
async function openEtcd(prefix: string, limits: StoreLimits | undefined): Promise<EtcdStore> {
  const store = new EtcdStore({ endpoints: [localEtcd().endpoint], prefix, timeoutMs: 3000, logger: quiet, limits });
  etcdPrefixes.set(store, { prefix, limits });
  await store.start();
  const started = Date.now();
  while ((await store.readiness()) !== undefined) {
    if (Date.now() - started > 20_000) throw new Error(`the etcd store did not get ready: ${await store.readiness()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return store;
}
runStoreContract('EtcdStore', {
  open: (limits?: StoreLimits) => openEtcd(`contract${process.pid}-${++prefixes}/`, limits),
  reopen: (closed: Store) => {
    const { prefix, limits } = etcdPrefixes.get(closed)!;
    return openEtcd(prefix, limits);
  },
  dispose: (store: Store) => store.close(),
});
