// A linearizability checker for tcpkv's model: a map of registers with create-if-absent (POST),
// multi-key all-or-nothing writes (POST, PUT), one-key DELETE, one-key compare-and-set PUT and DELETE
// (If-Match / If-None-Match: *), and reads of one key or of the whole map. The search is Wing & Gong's, with Lowe's memo of (set of operations linearized, state) that
// Porcupine also uses; histories are split into independent parts first (connected components of
// the keys operations touch — a multi-key write joins its keys, a whole-map read joins everything).
//
// Operations whose outcome is unknown (503 "may or may not have been applied", a lost connection)
// have no return time: they may take effect at any instant after their invocation, or never. Never
// is the same as "after everything else", so the search may leave them out at the end. Writes that
// were answered "nothing was applied" are left out of the history by the recorder: if one had in
// fact been applied, its value would appear from nowhere and the check fails, as it should.
//
// Unknown outcomes are settled cheaply first where that proves the history linearizable (leaving out
// those nothing observed: see partLinearizable); a "not linearizable" always comes from the full search.
//
// On failure it reports a smaller non-linearizable sub-history that is still a proof: the shortest
// prefix (by time) of the failing part that is already non-linearizable, without the reads it does
// not need (see shrink).

export type Value = string;
export type KvPair = readonly [key: string, value: Value];

export type Operation =
  /** POST: refused because a key existed (`existingKey` when the answer names it); undefined result = unknown outcome */
  | { readonly kind: 'create'; readonly pairs: readonly KvPair[]; readonly result?: { readonly ok: true } | { readonly ok: false; readonly existingKey?: string } }
  /** PUT: `previous` aligned with pairs (undefined = the key was new) */
  | { readonly kind: 'upsert'; readonly pairs: readonly KvPair[]; readonly result?: { readonly previous: readonly (Value | undefined)[] } }
  | { readonly kind: 'delete'; readonly key: string; readonly result?: { readonly deleted: boolean } }
  /** value undefined = no such key */
  | { readonly kind: 'get'; readonly key: string; readonly result: { readonly value: Value | undefined } }
  | { readonly kind: 'list'; readonly result: { readonly pairs: readonly KvPair[] } }
  /**
   * PUT /kv/<key> with a condition: applied only if the key holds `expected` (undefined: only if it is
   * absent — If-None-Match: *). Versions are modelled by values: every write writes a value of its
   * own, so "at the version that wrote X" is "holds X". A failed one (412) observed `current`.
   */
  | { readonly kind: 'cas-put'; readonly key: string; readonly expected: Value | undefined; readonly value: Value; readonly result?: CasResult }
  /** DELETE /kv/<key> with If-Match: removes the key only if it holds `expected` */
  | { readonly kind: 'cas-delete'; readonly key: string; readonly expected: Value; readonly result?: CasResult };

/** A conditional write's answer: applied, or refused (412) with the value the key held (undefined: none). */
export type CasResult = { readonly ok: true } | { readonly ok: false; readonly current: Value | undefined };

export interface HistoryOp {
  readonly client: number;
  /** invocation time (any monotonic clock, e.g. performance.now()) */
  readonly call: number;
  /** completion time; Infinity for an outcome that is unknown */
  readonly ret: number;
  readonly op: Operation;
}

export interface CheckResult {
  readonly linearizable: boolean;
  /** independent parts checked */
  readonly parts: number;
  /** when not linearizable: a small non-linearizable sub-history, sorted by invocation */
  readonly counterexample?: readonly HistoryOp[];
}

export class CheckerGaveUp extends Error {
  override readonly name = 'CheckerGaveUp';
}

type State = ReadonlyMap<string, Value>;

/** Applies `op` to `state` if its result is possible there; undefined if it is not. */
export function step(state: State, op: Operation): State | undefined {
  switch (op.kind) {
    case 'create': {
      const anyExists = op.pairs.some(([k]) => state.has(k));
      if (op.result === undefined) return anyExists ? state : withPairs(state, op.pairs);
      if (op.result.ok) return anyExists ? undefined : withPairs(state, op.pairs);
      if (op.result.existingKey !== undefined) return state.has(op.result.existingKey) ? state : undefined;
      return anyExists ? state : undefined;
    }
    case 'upsert': {
      const previous = op.result?.previous;
      if (previous !== undefined && op.pairs.some(([k], i) => state.get(k) !== previous[i])) return undefined;
      return withPairs(state, op.pairs);
    }
    case 'delete': {
      const has = state.has(op.key);
      if (op.result !== undefined && op.result.deleted !== has) return undefined;
      if (!has) return state;
      const next = new Map(state);
      next.delete(op.key);
      return next;
    }
    case 'get':
      return state.get(op.key) === op.result.value ? state : undefined;
    case 'list': {
      if (op.result.pairs.length !== state.size) return undefined;
      for (const [k, v] of op.result.pairs) if (state.get(k) !== v) return undefined;
      return state;
    }
    case 'cas-put':
    case 'cas-delete': {
      const current = state.get(op.key);
      const holds = op.expected === undefined ? current === undefined : current === op.expected;
      const applied = (): State => {
        const next = new Map(state);
        if (op.kind === 'cas-put') next.set(op.key, op.value);
        else next.delete(op.key);
        return next;
      };
      // unknown outcome: where it takes effect, it does what the condition there says
      if (op.result === undefined) return holds ? applied() : state;
      if (op.result.ok) return holds ? applied() : undefined;
      return !holds && current === op.result.current ? state : undefined;
    }
  }
}

function withPairs(state: State, pairs: readonly KvPair[]): State {
  const next = new Map(state);
  for (const [k, v] of pairs) next.set(k, v);
  return next;
}

function stateKey(state: State): string {
  return JSON.stringify([...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function keysOf(op: Operation): readonly string[] | 'all' {
  switch (op.kind) {
    case 'create':
    case 'upsert':
      return op.pairs.map(([k]) => k);
    case 'delete':
    case 'get':
    case 'cas-put':
    case 'cas-delete':
      return [op.key];
    case 'list':
      return 'all';
  }
}

/** Splits the history into parts that share no key (a whole-map read joins every part). */
export function partition(history: readonly HistoryOp[]): HistoryOp[][] {
  if (history.some((h) => keysOf(h.op) === 'all')) return history.length > 0 ? [[...history]] : [];
  const parent = new Map<string, string>();
  const find = (k: string): string => {
    let root = k;
    while (parent.get(root) !== root) root = parent.get(root)!;
    parent.set(k, root);
    return root;
  };
  for (const h of history) {
    const keys = keysOf(h.op) as readonly string[];
    for (const k of keys) if (!parent.has(k)) parent.set(k, k);
    for (const k of keys.slice(1)) parent.set(find(k), find(keys[0]!));
  }
  const parts = new Map<string, HistoryOp[]>();
  for (const h of history) {
    const root = find((keysOf(h.op) as readonly string[])[0]!);
    if (!parts.has(root)) parts.set(root, []);
    parts.get(root)!.push(h);
  }
  return [...parts.values()];
}

interface Entry {
  readonly id: number;
  readonly isCall: boolean;
  readonly time: number;
  readonly op: HistoryOp;
  /** the call entry's return entry */
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

/**
 * Wing–Gong–Lowe on one part. Returns true if linearizable. `budget` caps the search steps
 * (CheckerGaveUp past it: a test must not pass because the checker stopped looking).
 */
export function linearizable(ops: readonly HistoryOp[], initial: State = new Map(), budget = 5_000_000): boolean {
  const events: Entry[] = [];
  ops.forEach((op, id) => {
    const call: Entry = { id, isCall: true, time: op.call, op, match: undefined, prev: undefined, next: undefined };
    const ret: Entry = { id, isCall: false, time: op.ret, op, match: undefined, prev: undefined, next: undefined };
    call.match = ret;
    events.push(call, ret);
  });
  // calls before returns at equal times: operations that touch in time count as concurrent
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Entry = { id: -1, isCall: false, time: -Infinity, op: undefined as never, match: undefined, prev: undefined, next: undefined };
  let last = head;
  for (const e of events) {
    e.prev = last;
    last.next = e;
    last = e;
  }
  // random 2×32-bit tags: the linearized set's hash is their XOR (a collision can only prune a
  // branch, i.e. report a violation that is not there — never hide one)
  const tagA = ops.map(() => (Math.random() * 2 ** 32) >>> 0);
  const tagB = ops.map(() => (Math.random() * 2 ** 32) >>> 0);
  let hashA = 0;
  let hashB = 0;
  const seen = new Set<string>();
  const stateIds = new Map<string, number>();
  const stack: { entry: Entry; state: State }[] = [];
  let state: State = initial;
  let entry = head.next;
  const lift = (e: Entry) => {
    e.prev!.next = e.next;
    if (e.next) e.next.prev = e.prev;
    const r = e.match!;
    r.prev!.next = r.next;
    if (r.next) r.next.prev = r.prev;
  };
  const unlift = (e: Entry) => {
    const r = e.match!;
    r.prev!.next = r;
    if (r.next) r.next.prev = r;
    e.prev!.next = e;
    if (e.next) e.next.prev = e;
  };
  let steps = 0;
  while (head.next !== undefined) {
    if (++steps > budget) throw new CheckerGaveUp(`no answer within ${budget} steps (${ops.length} operations)`);
    if (entry === undefined) return false;
    if (entry.isCall) {
      const next = step(state, entry.op.op);
      if (next !== undefined) {
        const a = (hashA ^ tagA[entry.id]!) >>> 0;
        const b = (hashB ^ tagB[entry.id]!) >>> 0;
        const sk = stateKey(next);
        let sid = stateIds.get(sk);
        if (sid === undefined) stateIds.set(sk, (sid = stateIds.size));
        const key = `${a}:${b}:${sid}`;
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ entry, state });
          state = next;
          hashA = a;
          hashB = b;
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // every operation still in the list from here on has an unknown outcome: leave them out
      if (entry.time === Infinity) return true;
      const top = stack.pop();
      if (top === undefined) return false;
      unlift(top.entry);
      state = top.state;
      hashA = (hashA ^ tagA[top.entry.id]!) >>> 0;
      hashB = (hashB ^ tagB[top.entry.id]!) >>> 0;
      entry = top.entry.next;
    }
  }
  return true;
}

/** The history up to time t: operations invoked by then; those completed later have an unknown outcome (reads are dropped). */
function prefixAt(ops: readonly HistoryOp[], t: number): HistoryOp[] {
  const out: HistoryOp[] = [];
  for (const h of ops) {
    if (h.call > t) continue;
    if (h.ret <= t) out.push(h);
    else if (h.op.kind !== 'get' && h.op.kind !== 'list') out.push({ ...h, ret: Infinity, op: { ...h.op, result: undefined } as Operation });
  }
  return out;
}

/**
 * Shrinks a non-linearizable part to a smaller sub-history that is still a witness: if it is not
 * linearizable, neither is the whole. Only steps that keep that true: (1) the shortest prefix by
 * time (operations still running at the cut become unknown outcomes, reads among them are left
 * out); (2) reads removed one at a time while the rest stays non-linearizable (a read changes no
 * state, so removing it can only make a history easier to linearize). Writes are never removed:
 * without one, a later read could look wrong when it was not.
 */
function shrink(ops: readonly HistoryOp[], budget: number): HistoryOp[] {
  const times = [...new Set(ops.map((h) => h.ret).filter(Number.isFinite))].sort((a, b) => a - b);
  let lo = 0;
  let hi = times.length - 1;
  let best = [...ops];
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const candidate = prefixAt(ops, times[mid]!);
    if (!linearizable(candidate, new Map(), budget)) {
      best = candidate;
      hi = mid - 1;
    } else lo = mid + 1;
  }
  for (let i = best.length - 1; i >= 0; i--) {
    const kind = best[i]!.op.kind;
    if (kind !== 'get' && kind !== 'list') continue;
    const without = best.filter((_, j) => j !== i);
    if (!linearizable(without, new Map(), budget)) best = without;
  }
  return best.sort((a, b) => a.call - b.call);
}

type Write = Extract<Operation, { kind: 'create' | 'upsert' | 'delete' | 'cas-put' | 'cas-delete' }>;

const isUnknownWrite = (h: HistoryOp): h is HistoryOp & { readonly op: Write } => !Number.isFinite(h.ret) && h.op.kind !== 'get' && h.op.kind !== 'list';

/** Every value some operation saw: read by a GET or a listing, or replaced by a PUT. */
function observedValues(ops: readonly HistoryOp[]): Set<Value> {
  const seen = new Set<Value>();
  for (const { op } of ops) {
    if (op.kind === 'get' && op.result.value !== undefined) seen.add(op.result.value);
    else if (op.kind === 'list') for (const [, v] of op.result.pairs) seen.add(v);
    else if (op.kind === 'upsert' && op.result) for (const v of op.result.previous) if (v !== undefined) seen.add(v);
    else if ((op.kind === 'cas-put' || op.kind === 'cas-delete') && op.result?.ok === false && op.result.current !== undefined) seen.add(op.result.current);
    if ((op.kind === 'cas-put' || op.kind === 'cas-delete') && op.expected !== undefined) seen.add(op.expected);
  }
  return seen;
}

/** Whether an unknown write must stay in the cheap settling: a delete (no value), or a value seen. */
function wroteSomethingSeen(op: Write, seen: Set<Value>): boolean {
  switch (op.kind) {
    case 'delete':
    case 'cas-delete':
      return true;
    case 'cas-put':
      return seen.has(op.value);
    default:
      return op.pairs.some(([, v]) => seen.has(v));
  }
}

/**
 * One part, unknown outcomes first settled cheaply. "Never applied" is an allowed outcome of each,
 * so a part that is linearizable with some of them left out is linearizable: first all of them, then
 * all but those whose values some operation saw (a DELETE has no value: it is kept). Only if both
 * fail does the search weigh every unknown outcome, which costs up to 2^n times as much — a fault run
 * with a dozen lost answers could pass any budget. A "no" always comes from that full search.
 */
function partLinearizable(part: readonly HistoryOp[], budget: number): boolean {
  if (!part.some(isUnknownWrite)) return linearizable(part, new Map(), budget);
  if (linearizable(part.filter((h) => !isUnknownWrite(h)), new Map(), budget)) return true;
  const seen = observedValues(part);
  const needed = part.filter((h) => !isUnknownWrite(h) || wroteSomethingSeen(h.op, seen));
  if (needed.length < part.length && linearizable(needed, new Map(), budget)) return true;
  return linearizable(part, new Map(), budget);
}

/** Checks a whole history; see the file's head. */
export function checkHistory(history: readonly HistoryOp[], options: { budget?: number } = {}): CheckResult {
  const budget = options.budget ?? 5_000_000;
  const parts = partition(history);
  for (const part of parts) {
    if (!partLinearizable(part, budget)) return { linearizable: false, parts: parts.length, counterexample: shrink(part, budget) };
  }
  return { linearizable: true, parts: parts.length };
}

/** One line per operation, for a failing test's message. */
export function describeHistory(ops: readonly HistoryOp[]): string {
  const t0 = Math.min(...ops.map((h) => h.call));
  return ops
    .map((h) => {
      const span = `[${(h.call - t0).toFixed(1)}, ${Number.isFinite(h.ret) ? (h.ret - t0).toFixed(1) : '∞'}] c${h.client}`;
      return `${span} ${JSON.stringify(h.op)}`;
    })
    .join('\n');
}
