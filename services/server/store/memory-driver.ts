// The memory store's driver: no settings; the store of last resort when no other is asked for.

import { storeDriver } from './driver.js';

export const memoryDriver = storeDriver({
  name: 'memory',
  settings: {},
  impliedBy: () => true,
  async open(_config, { limits, logger, feedLimits }) {
    const { MemoryStore } = await import('./memory-store.js');
    return new MemoryStore({ limits, logger, feedLimits });
  },
});
