// The case table of rule-cases.ts against the append-only log store, through the pure rules and
// over a real socket, in both dialects — the same table the memory and etcd stores pass.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { LogStore } from '../../services/server/store/log-store.js';
import type { Store } from '../../services/server/store/store.js';
import { exchange, startServer } from '../support/net.js';
import { pureRulesTarget, runRuleCases } from '../support/run-rule-cases.js';

const openLogStore = () =>
  LogStore.open({ dir: mkdtempSync(join(tmpdir(), 'tcpkv-rules-')), fsync: 'no', compactFactor: 2, compactMinBytes: 1 << 20, repair: 'off', logger: pino({ level: 'silent' }) });

runRuleCases('pure rules over LogStore', pureRulesTarget(openLogStore, (store: Store) => store.close()));

runRuleCases('over a real socket, LogStore', {
  newStore: openLogStore,
  async send(store, bytes, head) {
    const server = await startServer({ store });
    try {
      return (await exchange(server.port, bytes, 1, { heads: [head] })).responses[0]!;
    } finally {
      // the store outlives this server (closed in cleanup): stop the server without closing it
      await server.server.shutdown('case done', { keepStore: true });
    }
  },
  cleanup: (store) => store.close(),
});
