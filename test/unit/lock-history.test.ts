// The lock-history checker (test/support/lock-history.ts): it accepts histories with one holder at
// a time and rejects every overlap, however short, a malformed interval, and a fencing token that
// does not grow; events become intervals ending at the earliest of release, loss, death, validUntil.

import { describe, expect, it } from 'vitest';
import { checkLockHistory, describeLockCheck, holdEnd, intervalsFromEvents, type HoldInterval } from '../support/lock-history.js';

const hold = (client: string, start: number, end: number, version?: number): HoldInterval => ({ client, start, end, version });

describe('lock history checker', () => {
  it('accepts holders one after another, touching ends included, in any order of input', () => {
    const history = [hold('b', 100, 200, 2), hold('a', 0, 100, 1), hold('c', 250, 900, 5), hold('a', 901, 1000, 9)];
    const check = checkLockHistory(history);
    expect(describeLockCheck(check)).toBe('');
    expect(check.ok).toBe(true);
    expect(checkLockHistory([]).ok).toBe(true);
  });

  it('rejects two holders at once: a 1 ms overlap, one interval inside another, the same client twice', () => {
    for (const history of [
      [hold('a', 0, 101), hold('b', 100, 200)],
      [hold('a', 0, 1000), hold('b', 10, 20), hold('c', 30, 40)],
      [hold('a', 0, 50), hold('a', 40, 60)],
    ]) {
      const check = checkLockHistory(history);
      expect(check.ok).toBe(false);
      expect(check.overlaps.length).toBeGreaterThan(0);
    }
    const check = checkLockHistory([hold('a', 0, 1000), hold('b', 10, 20), hold('c', 30, 40)]);
    expect(check.overlaps.map((o) => [o.first.client, o.second.client, o.ms])).toEqual([
      ['a', 'b', 10],
      ['a', 'c', 10],
    ]);
    expect(describeLockCheck(check)).toMatch(/two holders for 10 ms: a \[0, 1000\] and b \[10, 20\]/);
  });

  it('rejects an interval that ends before it starts or has no end, and a fencing token that does not grow', () => {
    expect(checkLockHistory([hold('a', 10, 5)]).malformed).toHaveLength(1);
    expect(checkLockHistory([hold('a', 10, NaN)]).ok).toBe(false);
    const fencing = checkLockHistory([hold('a', 0, 10, 7), hold('b', 20, 30, 7)]);
    expect(fencing.ok).toBe(false);
    expect(fencing.fencing).toHaveLength(1);
  });

  it('ends a hold at the earliest of release, loss, death and validUntil', () => {
    expect(holdEnd({ releaseStarted: 50, validUntil: 40 })).toBe(40);
    expect(holdEnd({ lost: 30, died: 35, validUntil: 40 })).toBe(30);
    expect(holdEnd({})).toBeNaN();
    const events = [
      { event: 'acquired', at: 100, validUntil: 1100, version: 4 },
      { event: 'renewed', at: 400, validUntil: 1400, version: 6 },
      { event: 'releasing', at: 700 },
      { event: 'released', at: 710 },
      { event: 'acquired', at: 2000, validUntil: 3000, version: 9 },
      { event: 'renewed', at: 2300, validUntil: 3300, version: 10 },
    ];
    // killed at 5000, but its lock was only sure until 3300
    expect(intervalsFromEvents('x', events, 5000)).toEqual([hold('x', 100, 700, 4), hold('x', 2000, 3300, 9)]);
    // killed while its renewal stood
    expect(intervalsFromEvents('x', events, 2500).at(-1)).toEqual(hold('x', 2000, 2500, 9));
    // lost, as reported
    expect(intervalsFromEvents('y', [{ event: 'acquired', at: 0, validUntil: 900 }, { event: 'lost', at: 850 }])).toEqual([hold('y', 0, 850)]);
  });
});
