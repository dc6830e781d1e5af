// etcd's space alarm (NOSPACE) and the recovery procedure of docs/scale-out.md, step by step, against
// a real etcd with a small --quota-backend-bytes and two replicas on one prefix. etcdctl's commands are
// made through the same gRPC calls (endpoint status, alarm list, compact, defrag, alarm disarm).
// What the replicas answer at each step is what the page says: writes 507 (nothing applied) once etcd
// is full — on every replica, decided by etcd and not by what one replica saw before — the write that
// crossed the quota answered as applied or not as etcd applied it, reads and DELETEs go on, and once
// the alarm is disarmed writes work again.

import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../services/server/store/etcd-store.js';
import { StoreFullError, StoreUnavailableError } from '../../services/server/store/store.js';
import { useLocalEtcd } from '../support/etcd.js';

const quiet = pino({ level: 'silent' });
const stores: EtcdStore[] = [];
afterAll(async () => {
  for (const store of stores) await store.close();
});

type Answer = 'ok' | '507' | '503 may or may not' | `503 nothing changed` | `other: ${string}`;

async function answer(write: Promise<unknown>): Promise<Answer> {
  try {
    const result = (await write) as { ok?: boolean } | boolean;
    return result === false || (typeof result === 'object' && result.ok === false) ? 'other: refused' : 'ok';
  } catch (error) {
    if (error instanceof StoreFullError) return '507';
    if (error instanceof StoreUnavailableError) return error.indeterminate ? '503 may or may not' : '503 nothing changed';
    return `other: ${(error as Error).message}`;
  }
}

describe('etcd store under the NOSPACE alarm: the documented recovery, step by step', () => {
  const etcd = useLocalEtcd({ flags: ['--quota-backend-bytes=6000000'] });

  it('fill to the quota; 507 on both replicas; reads and DELETEs go on; compact, defrag, disarm; writes again', async () => {
    const prefix = `nospace${process.pid}/`;
    const [a, b] = [0, 1].map(() => new EtcdStore({ endpoints: [etcd().endpoint], prefix, timeoutMs: 3000, logger: quiet }));
    stores.push(a!, b!);
    for (const store of [a!, b!]) expect(await store.start()).toBe(true);
    const etcdctl = new Etcd3({ hosts: etcd().endpoint });
    try {
      const value = 'x'.repeat(50_000);
      const steps: Record<string, unknown> = {};

      // another deployment's key, deleted later: it moves etcd's revision without any event for the replicas
      await etcdctl.put(`other${process.pid}/x`).value('y');

      // 1. writes until etcd is full: each answered as etcd took it
      const written: { key: string; answer: Answer }[] = [];
      for (let i = 0; i < 400; i++) {
        const key = `fill${i}`;
        const got = await answer(a!.upsertAll([[key, value]]));
        written.push({ key, answer: got });
        // the write that crossed the quota is answered as etcd applied it; "may or may not" only if
        // that could not be asked (the replica's copy was listed again meanwhile)
        if (got !== 'ok' && got !== '503 may or may not') break;
      }
      const present = new Set((await a!.list()).map(([k]) => k));
      const uncertain = written.filter((w) => w.answer === '503 may or may not').length;
      expect(uncertain).toBeLessThanOrEqual(1);
      steps.fill = {
        stoppedBy: written.at(-1)!.answer,
        acknowledgedMissing: written.filter((w) => w.answer === 'ok' && !present.has(w.key)).length,
        refusedPresent: written.filter((w) => w.answer === '507' && present.has(w.key)).length,
      };

      // 2. etcdctl endpoint status / alarm list: NOSPACE
      const status = await etcdctl.maintenance.status();
      const alarms = await etcdctl.maintenance.alarm({ action: 'Get', memberID: 0, alarm: 'None' });
      steps.alarm = alarms.alarms.map((x) => x.alarm);

      // 3. every replica: a write answers 507 (nothing applied), its first one included
      steps.writesUnderAlarm = {
        bPut: await answer(b!.upsertAll([['after-b', 'v']])),
        bPost: await answer(b!.createAll([['after-b2', 'v']])),
        aPut: await answer(a!.upsertAll([['after-a', 'v']])),
      };

      // 4. reads go on
      steps.readsUnderAlarm = { a: (await a!.get('fill0')) === value, b: (await b!.get('fill0')) === value };

      // 5. free data: DELETE the keys through tcpkv, half through each replica
      const keys = [...present];
      const deletes = await Promise.all(keys.map((key, i) => answer((i % 2 === 0 ? a! : b!).delete(key))));
      steps.deletes = { ok: deletes.filter((d) => d === 'ok').length, of: keys.length, other: [...new Set(deletes.filter((d) => d !== 'ok'))] };

      // 6. the store is empty, and reads still work on both replicas, also once etcd's revision moved on
      await etcdctl.delete().key(`other${process.pid}/x`);
      steps.readsWhenEmpty = {
        aCount: await a!.listing().then((l) => l.count, (e: Error) => e.message),
        bCount: await b!.listing().then((l) => l.count, (e: Error) => e.message),
        bGet: await b!.get('fill0').then((v) => (v === undefined ? 'absent' : `${v.length} bytes`), (e: Error) => e.message),
        aPut: await answer(a!.upsertAll([['still-full', 'v']])),
      };

      // 7. compact up to the current revision, defrag each member, disarm
      const revision = (await etcdctl.maintenance.status()).header.revision;
      await etcdctl.kv.compact({ revision, physical: true });
      await etcdctl.maintenance.defragment();
      await etcdctl.maintenance.alarm({ action: 'Deactivate', memberID: status.header.member_id, alarm: 'Nospace' });
      steps.afterDisarm = (await etcdctl.maintenance.alarm({ action: 'Get', memberID: 0, alarm: 'None' })).alarms.length;

      // 8. writes work again, on both replicas, and each sees the other's
      steps.writesAgain = {
        a: await answer(a!.upsertAll([['again-a', 'v']])),
        b: await answer(b!.createAll([['again-b', 'v']])),
        aSeesB: await a!.get('again-b'),
        bSeesA: await b!.get('again-a'),
      };

      console.log(JSON.stringify({ test: 'NOSPACE recovery', writesBeforeFull: written.length - 1, uncertain, ...steps }));
      expect(steps).toEqual({
        fill: { stoppedBy: '507', acknowledgedMissing: 0, refusedPresent: 0 },
        alarm: ['Nospace'],
        writesUnderAlarm: { bPut: '507', bPost: '507', aPut: '507' },
        readsUnderAlarm: { a: true, b: true },
        deletes: { ok: keys.length, of: keys.length, other: [] },
        readsWhenEmpty: { aCount: 0, bCount: 0, bGet: 'absent', aPut: '507' },
        afterDisarm: 0,
        writesAgain: { a: 'ok', b: 'ok', aSeesB: 'v', bSeesA: 'v' },
      });
      expect(keys.length).toBeGreaterThan(20);
    } finally {
      etcdctl.close();
    }
  }, 120_000);
});
