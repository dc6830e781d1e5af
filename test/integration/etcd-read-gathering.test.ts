// How read barriers are shared, against a real etcd on loopback: readers that keep sending GETs come
// back together after each barrier, so the next barrier waits for them and carries all of them
// (sending at once kept two groups taking turns); a lone reader, over a real socket, is never held for
// others that are not coming.

import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { useLocalEtcd } from '../support/etcd.js';
import { HttpConn } from '../support/http-conn.js';
import { startServer } from '../support/net.js';

const quiet = pino({ level: 'silent' });
let prefixes = 0;
const opened: { close(): Promise<unknown> | void }[] = [];

/** A store over `endpoint` under a prefix of its own, holding k = v. */
async function storeOverEtcd(endpoint: string): Promise<EtcdStore> {
  const store = new EtcdStore({ endpoints: [endpoint], prefix: `gather${process.pid}-${++prefixes}/`, timeoutMs: 3000, logger: quiet });
  opened.push(store);
  await store.createAll([['k', 'v']]);
  return store;
}

afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

describe('read barriers gather the reads of busy connections', () => {
  const etcd = useLocalEtcd();

  it('two groups of 16 readers taking turns merge: each barrier then carries all 32', async () => {
    const store = await storeOverEtcd(etcd().endpoint);
    await store.get('k');
    const until = performance.now() + 1500;
    const reader = async (): Promise<number> => {
      let n = 0;
      while (performance.now() < until) {
        expect(await store.get('k')).toBe('v');
        n++;
      }
      return n;
    };
    const before = store.barrierCalls;
    // group A's first reads go out in one barrier; group B arrives while it is out, so B waits for the
    // next one and A's next reads come back after B's barrier was sent: two groups taking turns
    const groupA = Array.from({ length: 16 }, reader);
    while (store.barrierCalls === before) await new Promise((resolve) => setImmediate(resolve));
    const groupB = Array.from({ length: 16 }, reader);
    const gets = (await Promise.all([...groupA, ...groupB])).reduce((a, b) => a + b, 0);
    const barriers = store.barrierCalls - before;
    const perBarrier = gets / barriers;
    console.log(`read gathering: ${gets} GETs by 32 readers, ${barriers} barriers, ${perBarrier.toFixed(1)} GETs per barrier`);
    // sent as soon as the previous barrier is answered, each barrier carried one group (16 reads);
    // gathered, the next barrier waits for the group just answered, and the two merge
    expect(perBarrier).toBeGreaterThanOrEqual(24);
  });

  it('a lone reader is not held: each of its GETs goes out at once, about one etcd round trip', async () => {
    const store = await storeOverEtcd(etcd().endpoint);
    const server = await startServer({ store });
    opened.push(server);
    const conn = await HttpConn.open(server.port);
    opened.push({ close: () => void conn.socket.destroy() });
    const direct = new Etcd3({ hosts: etcd().endpoint });
    opened.push(direct);
    // one GET, then one direct etcd read, taking turns: both see the same moments of a busy machine
    const timed = async (op: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await op();
      return performance.now() - t0;
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    for (let i = 0; i < 20; i++) await conn.request('GET', '/kv/k');
    const before = store.barrierCalls;
    const gets: number[] = [];
    const ranges: number[] = [];
    for (let i = 0; i < 200; i++) {
      gets.push(await timed(() => conn.request('GET', '/kv/k')));
      ranges.push(await timed(() => direct.get('anything').string()));
    }
    expect(store.barrierCalls - before).toBe(200);
    const getMs = median(gets);
    const rangeMs = median(ranges);
    console.log(`lone reader: GET ${getMs.toFixed(2)} ms, a linearizable etcd read ${rangeMs.toFixed(2)} ms (medians of 200, taking turns)`);
    // held for a gathering, each GET would take at least one more round trip (twice the read's time)
    expect(getMs).toBeLessThan(1.6 * rangeMs + 0.5);
  });
});
