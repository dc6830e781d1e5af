// A replica's first list of a big prefix, against a real etcd on loopback: etcd 3.4 walks its index
// over the whole rest of the range for every range request, however small its limit, so the number
// of pages decides whether a list of a few hundred thousand keys takes seconds or minutes. The pages
// are counted on etcd's side (its gRPC metrics), not timed: the count does not depend on the machine.

import { Etcd3 } from 'etcd3';
import { afterAll, describe, expect, it } from 'vitest';
import { useLocalEtcd } from '../support/etcd.js';
import { HttpConn } from '../support/http-conn.js';
import { sleep, spawnServer, type ChildServer } from '../support/net.js';

const KEYS = 60_000;
const PREFIX = 'pages/';
const keyOf = (i: number) => `key-${String(i).padStart(6, '0')}`;
const valueOf = (i: number) => `${'v'.repeat(100)}-${i}`;

/** etcd's count of Range calls it answered (grpc_server_handled_total on its /metrics). */
async function rangeCalls(endpoint: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('grpc_server_handled_total{') && l.includes('grpc_method="Range"') && l.includes('grpc_code="OK"'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe("a replica's first list of 60,000 keys", () => {
  const etcd = useLocalEtcd({ flags: ['--max-txn-ops=20000'] });
  let server: ChildServer | undefined;
  afterAll(async () => {
    server?.kill('SIGKILL');
    await server?.exited;
  });

  it('takes pages as large as the client safely takes: a few range calls, not one per thousand keys', async () => {
    // the keys in the store's layout: <P>kv/<key> = value, <P>ord/<key> = its place in its write, and the write stamp
    const client = new Etcd3({ hosts: etcd().endpoint });
    try {
      for (let from = 0; from < KEYS; from += 5000) {
        const success = [];
        for (let i = from; i < from + 5000; i++) {
          success.push({ request_put: { key: Buffer.from(`${PREFIX}kv/${keyOf(i)}`), value: Buffer.from(valueOf(i)) } });
          success.push({ request_put: { key: Buffer.from(`${PREFIX}ord/${keyOf(i)}`), value: Buffer.from(String(i - from)) } });
        }
        success.push({ request_put: { key: Buffer.from(`${PREFIX}kv/`), value: Buffer.from(`stamp-${from}`) } });
        await client.kv.txn({ compare: [], success, failure: [] });
      }
    } finally {
      client.close();
    }
    const before = await rangeCalls(etcd().endpoint);
    const started = performance.now();
    server = await spawnServer({ TCPKV_ETCD_ENDPOINTS: etcd().endpoint, TCPKV_ETCD_PREFIX: PREFIX });
    const listedLine = () => server!.output().split('\n').find((l) => l.includes('etcd cache listed the prefix'));
    while (listedLine() === undefined) {
      expect(performance.now() - started, 'the replica did not list the prefix').toBeLessThan(120_000);
      await sleep(100);
    }
    const listedMs = performance.now() - started;
    const calls = (await rangeCalls(etcd().endpoint)) - before;
    expect((JSON.parse(listedLine()!) as { keys: number }).keys).toBe(KEYS);
    console.log(`first list of ${KEYS} keys: listed after ${Math.round(listedMs)} ms from the start, in ${calls} range calls to etcd`);
    const conn = await HttpConn.open(server.port);
    try {
      const answer = await conn.request('GET', `/kv/${keyOf(KEYS - 1)}`);
      expect(answer.status).toBe(200);
      expect(answer.body.toString()).toBe(valueOf(KEYS - 1));
      const page = await conn.request('GET', '/kv?limit=3');
      expect((JSON.parse(page.body.toString()) as { items: { key: string }[] }).items.map((i) => i.key)).toEqual([keyOf(0), keyOf(1), keyOf(2)]);
    } finally {
      conn.close();
    }
    // pages of 1,000 keys would be 60 of kv/ and 60 of ord/
    expect(calls).toBeLessThan(20);
  }, 180_000);
});
