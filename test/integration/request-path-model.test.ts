// A model-based test of the request path: fast-check draws sequences of commands — pipelined batches
// on several keep-alive connections (some read slowly, some split into fragments), two batches at
// once on two connections, closing answers in the middle of a batch (a refused END, `Connection:
// close`, a malformed request), HEAD, and clients that disconnect after sending, some in the middle
// of a body — and runs them over real sockets against a server on the memory store and on the log
// store. Every answer must be the one a sequential model of the store gives; nothing behind a closing
// answer may be applied or answered; a request whose client left before its answer may or may not
// have been applied, but only as a prefix of what that connection sent (one connection's requests
// run in order), and a request cut in the middle of its body never is.
//
// TCPKV_MODEL_SEED and TCPKV_MODEL_RUNS replay or widen a run; a failure prints its seed and path.

import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import { LogStore } from '../../services/server/store/log-store.js';
import { MemoryStore } from '../../services/server/store/memory-store.js';
import type { Store } from '../../services/server/store/store.js';
import { sleep, startServer, type InProcessServer } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';

const SEED = Number(process.env.TCPKV_MODEL_SEED ?? 20261207);
const RUNS = Number(process.env.TCPKV_MODEL_RUNS ?? 40);
const tempDir = useTempDirs();

// ---- requests and their answers in the model --------------------------------------------------------

/** Keys: two halves, so that two batches at once can touch disjoint keys. */
const HALVES = [
  ['a', 'b', 'c'],
  ['x', 'y', 'z'],
] as const;
const BIG = 'v'.repeat(24 * 1024); // larger than the server's output bound below: a slow reader holds it up

type Req =
  | { kind: 'get' | 'head' | 'delete'; key: string; close?: boolean }
  | { kind: 'put'; key: string; value: string; close?: boolean; expect?: boolean }
  | { kind: 'create'; pairs: [string, string][] }
  | { kind: 'listing' }
  | { kind: 'end' }
  | { kind: 'malformed' };

const H = 'Host: 127.0.0.1\r\n';
function wire(r: Req): string {
  const line = (method: string, target: string, body = '', extra = '') => `${method} ${target} HTTP/1.1\r\n${H}${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const close = 'close' in r && r.close ? 'Connection: close\r\n' : '';
  switch (r.kind) {
    case 'get':
      return line('GET', `/kv/${r.key}`, '', close);
    case 'head':
      return line('HEAD', `/kv/${r.key}`, '', close);
    case 'delete':
      return line('DELETE', `/kv/${r.key}`, '', close);
    case 'put':
      return line('PUT', `/kv/${r.key}`, r.value, close + (r.expect ? 'Expect: 100-continue\r\n' : ''));
    case 'create':
      return line('POST', '/create', r.pairs.map(([k, v]) => `${k}: ${v}`).join('&'));
    case 'listing':
      return line('GET', '/');
    case 'end':
      return line('END', '/', '', 'Authorization: Bearer a-wrong-guess\r\n');
    case 'malformed':
      return `GET /kv/a HTTP/1.1\r\n${H}Content-Length: twelve\r\n\r\n`;
  }
}

interface Expected {
  readonly status: number;
  /** undefined: any body (a parse error's wording is the parser's business) */
  readonly body: string | undefined;
  readonly head: boolean;
  /** Content-Length of a HEAD answer: the body that was left out */
  readonly length?: number;
  readonly closes: boolean;
}

type Data = Map<string, string>;

function listingOf(data: Data): string {
  if (data.size === 0) return Texts.emptyDb;
  let out = Texts.listingHeader;
  for (const [k, v] of data) out += `\n${k}:${v}`;
  return out;
}

/** Applies one request to the model; returns its answer. */
function apply(data: Data, r: Req): Expected {
  const plain = (status: number, body: string | undefined, closes = false): Expected => ({ status, body, head: false, closes });
  const closes = 'close' in r && r.close === true;
  switch (r.kind) {
    case 'get': {
      const v = data.get(r.key);
      return v === undefined ? plain(404, Texts.noSuchKey(r.key), closes) : plain(200, v, closes);
    }
    case 'head': {
      const v = data.get(r.key);
      const body = v ?? Texts.noSuchKey(r.key);
      return { status: v === undefined ? 404 : 200, body: '', head: true, length: Buffer.byteLength(body), closes };
    }
    case 'delete':
      if (!data.has(r.key)) return plain(404, Texts.noSuchKey(r.key), closes);
      data.delete(r.key);
      return plain(200, Texts.deleted(r.key), closes);
    case 'put': {
      const had = data.has(r.key);
      data.set(r.key, r.value);
      return plain(200, had ? Texts.updatedKey(r.key) : Texts.createdKey(r.key), closes);
    }
    case 'create': {
      if (r.pairs.some(([k]) => data.has(k))) return plain(400, Texts.keyExists);
      for (const [k, v] of r.pairs) data.set(k, v);
      return plain(200, r.pairs.map(([k, v]) => `${k}:${v}\n`).join('') + Texts.postOk);
    }
    case 'listing':
      return plain(200, listingOf(data));
    case 'end':
      return plain(403, Texts.shutdownBadToken, true);
    case 'malformed':
      return plain(400, undefined, true);
  }
}

/** The answers to a batch, in the model: up to and including the first closing answer. */
function applyBatch(data: Data, batch: readonly Req[]): Expected[] {
  const out: Expected[] = [];
  for (const r of batch) {
    const e = apply(data, r);
    out.push(e);
    if (e.closes) break;
  }
  return out;
}

// ---- commands -----------------------------------------------------------------------------------------

type Command =
  | { type: 'batch'; conn: number; requests: Req[]; fragments: number; slowReadMs: number }
  | { type: 'pair'; batches: [Req[], Req[]] }
  | { type: 'leave'; conn: number; requests: Req[]; midBody: boolean };

const valueArb = fc.oneof({ weight: 6, arbitrary: fc.stringMatching(/^[a-z0-9]{1,8}$/) }, { weight: 1, arbitrary: fc.constant(BIG) });

function reqArb(keys: readonly string[], shared: boolean): fc.Arbitrary<Req> {
  const key = fc.constantFrom(...keys);
  const mayClose = fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) });
  const options: fc.WeightedArbitrary<Req>[] = [
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('get' as const), key, close: mayClose }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('head' as const), key, close: mayClose }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), key, close: mayClose }) },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('put' as const), key, value: valueArb, close: mayClose, expect: fc.boolean() }) },
    {
      weight: 2,
      arbitrary: fc.uniqueArray(fc.tuple(key, fc.stringMatching(/^[a-z0-9]{1,6}$/)), { minLength: 1, maxLength: 2, selector: ([k]) => k }).map((pairs) => ({ kind: 'create' as const, pairs })),
    },
  ];
  if (shared) {
    // a listing sees every key, and a closing request ends the batch: only where batches run one at a time
    options.push({ weight: 1, arbitrary: fc.constant({ kind: 'listing' as const }) });
    options.push({ weight: 1, arbitrary: fc.constant({ kind: 'end' as const }) });
    options.push({ weight: 1, arbitrary: fc.constant({ kind: 'malformed' as const }) });
  }
  return fc.oneof(...options);
}

const allKeys = [...HALVES[0], ...HALVES[1]];
const CONNECTIONS = 3;

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      type: fc.constant('batch' as const),
      conn: fc.integer({ min: 0, max: CONNECTIONS - 1 }),
      requests: fc.array(reqArb(allKeys, true), { minLength: 1, maxLength: 8 }),
      fragments: fc.integer({ min: 1, max: 4 }),
      slowReadMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 20, max: 80 }) }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('pair' as const),
      batches: fc.tuple(fc.array(reqArb(HALVES[0], false), { minLength: 1, maxLength: 6 }), fc.array(reqArb(HALVES[1], false), { minLength: 1, maxLength: 6 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('leave' as const),
      conn: fc.integer({ min: 0, max: CONNECTIONS - 1 }),
      requests: fc.array(reqArb(allKeys, true), { minLength: 0, maxLength: 4 }),
      midBody: fc.boolean(),
    }),
  },
);

// ---- a client connection that reads answers off the wire -------------------------------------------------

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

class Client {
  private buffer = Buffer.alloc(0);
  ended = false;
  private wake: (() => void) | undefined;
  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, c]);
      this.received += c.toString('latin1');
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  static open(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => resolve(new Client(socket)));
      socket.once('error', reject);
    });
  }

  async write(text: string, fragments = 1): Promise<void> {
    const bytes = Buffer.from(text, 'utf8');
    const step = Math.max(1, Math.ceil(bytes.length / fragments));
    for (let at = 0; at < bytes.length; at += step) {
      this.socket.write(bytes.subarray(at, at + step));
      if (fragments > 1) await sleep(1);
    }
  }

  private async until(ready: () => boolean, what: string): Promise<void> {
    const deadline = performance.now() + 5000;
    while (!ready()) {
      if (this.ended) throw new Error(`the server closed the connection while ${what}`);
      if (performance.now() > deadline) throw new Error(`nothing within 5 s while ${what}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  /** `100 Continue` interim answers read so far (a PUT with `Expect` whose body had not arrived yet) */
  continues = 0;
  /** everything received, to see a `100 Continue` arrive while requests are still being written */
  private received = '';

  /** Waits for the `count`th `100 Continue` on this connection, as a client holding its body back does. */
  async awaitContinue(count: number, what: string): Promise<void> {
    await this.until(() => this.continuesSeen >= count, `waiting for 100 Continue (${what})`);
  }

  /** The next answer; `head` = it answers a HEAD (no body follows, whatever Content-Length says). */
  async read(head: boolean): Promise<Answer> {
    let end = -1;
    await this.until(() => (end = this.buffer.indexOf('\r\n\r\n')) >= 0, 'waiting for an answer');
    if (this.buffer.subarray(0, end + 4).toString('latin1') === 'HTTP/1.1 100 Continue\r\n\r\n') {
      this.buffer = this.buffer.subarray(end + 4);
      this.continues++;
      return this.read(head);
    }
    const lines = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) headers.set(l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim());
    const length = head ? 0 : Number(headers.get('content-length') ?? 0);
    await this.until(() => this.buffer.length >= end + 4 + length, 'waiting for a body');
    const body = this.buffer.subarray(end + 4, end + 4 + length).toString('utf8');
    this.buffer = this.buffer.subarray(end + 4 + length);
    return { status: Number(lines[0]!.split(' ')[1]), headers, body };
  }

  /** After a closing answer: the server closes, and sends nothing more. */
  async expectClosed(): Promise<void> {
    const deadline = performance.now() + 3000;
    while (!this.ended && performance.now() < deadline) await sleep(10);
    if (!this.ended) throw new Error('no close after a closing answer');
    if (this.buffer.length > 0) throw new Error(`bytes after a closing answer: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 200))}`);
  }

  /** how many `100 Continue` have arrived so far */
  get continuesSeen(): number {
    return this.received.split('HTTP/1.1 100 Continue\r\n\r\n').length - 1;
  }

  get unread(): number {
    return this.buffer.length;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---- running a sequence --------------------------------------------------------------------------------

class Run {
  readonly data: Data = new Map();
  private readonly clients: (Client | undefined)[] = [];
  constructor(
    private readonly server: InProcessServer,
    private readonly log: string[],
  ) {}

  private async client(i: number): Promise<Client> {
    let c = this.clients[i];
    if (c === undefined || c.ended) {
      c?.destroy();
      c = await Client.open(this.server.port);
      this.clients[i] = c;
    }
    return c;
  }

  private check(where: string, expected: Expected, got: Answer): void {
    const want = { status: expected.status, ...(expected.body !== undefined ? { body: expected.body } : {}), ...(expected.head ? { length: expected.length } : {}), closes: expected.closes };
    const seen = {
      status: got.status,
      ...(expected.body !== undefined ? { body: got.body } : {}),
      ...(expected.head ? { length: Number(got.headers.get('content-length')) } : {}),
      closes: got.headers.get('connection') === 'close',
    };
    if (JSON.stringify(want) !== JSON.stringify(seen)) throw new Error(`${where}: expected ${JSON.stringify(want).slice(0, 300)}, got ${JSON.stringify(seen).slice(0, 300)}`);
  }

  /** Sends a batch on connection `i` and checks every answer against the model. */
  private async batch(i: number, requests: readonly Req[], fragments: number, slowReadMs: number, expected: Expected[]): Promise<void> {
    const c = await this.client(i);
    // a PUT with Expect that will be answered: its body is held back until its 100 Continue arrives,
    // which must come after the answers before it (so this connection is read meanwhile)
    const awaited = requests.slice(0, expected.length).some((r) => r.kind === 'put' && r.expect === true);
    if (awaited) slowReadMs = 0;
    if (slowReadMs > 0) c.socket.pause();
    let unsent = '';
    let continues = c.continuesSeen;
    for (const [n, r] of requests.entries()) {
      const text = wire(r);
      if (r.kind === 'put' && r.expect === true && n < expected.length) {
        const headEnd = text.indexOf('\r\n\r\n') + 4;
        await c.write(unsent + text.slice(0, headEnd), fragments);
        await c.awaitContinue(++continues, `connection ${i}, request ${n + 1}`);
        unsent = text.slice(headEnd);
      } else {
        unsent += text;
      }
    }
    await c.write(unsent, fragments);
    if (slowReadMs > 0) {
      await sleep(slowReadMs);
      c.socket.resume();
    }
    const continuesBefore = c.continues;
    for (const [n, e] of expected.entries()) this.check(`connection ${i}, answer ${n + 1} (${requests[n]!.kind})`, e, await c.read(e.head));
    const expecting = requests.slice(0, expected.length).filter((r) => r.kind === 'put' && r.expect === true).length;
    if (c.continues - continuesBefore > expecting) throw new Error(`connection ${i}: ${c.continues - continuesBefore} × 100 Continue for ${expecting} requests with Expect`);
    if (expected.at(-1)?.closes) await c.expectClosed();
    else {
      await sleep(5);
      if (c.unread > 0) throw new Error(`connection ${i}: an answer more than the ${expected.length} requests asked for`);
    }
  }

  async run(command: Command): Promise<void> {
    this.log.push(JSON.stringify(command, (_k, v: unknown) => (v === BIG ? `<${BIG.length} bytes>` : v)));
    switch (command.type) {
      case 'batch':
        return this.batch(command.conn, command.requests, command.fragments, command.slowReadMs, applyBatch(this.data, command.requests));
      case 'pair':
        return this.pair(command.batches);
      case 'leave':
        return this.leave(command.conn, command.requests, command.midBody);
    }
  }

  /** Two batches at once on two connections, over disjoint keys: each one's answers are the model's. */
  private async pair([first, second]: [Req[], Req[]]): Promise<void> {
    const before = new Map(this.data);
    const one = new Map(before);
    const two = new Map(before);
    const answersOne = applyBatch(one, first);
    const answersTwo = applyBatch(two, second);
    await Promise.all([this.batch(0, first, 1, 0, answersOne), this.batch(1, second, 1, 0, answersTwo)]);
    // The listing order of keys created by the two interleaves as the server ran them: read it, and
    // accept it if each half is in the order its own batch gives.
    const listing = await this.listing();
    const entries = parseListing(listing);
    const [keysOne, keysTwo] = [new Set<string>(HALVES[0]), new Set<string>(HALVES[1])];
    const expectOne = [...one].filter(([k]) => !keysTwo.has(k));
    const expectTwo = [...two].filter(([k]) => !keysOne.has(k));
    const gotOne = entries.filter(([k]) => !keysTwo.has(k));
    const gotTwo = entries.filter(([k]) => !keysOne.has(k));
    if (JSON.stringify(gotOne) !== JSON.stringify(expectOne) || JSON.stringify(gotTwo) !== JSON.stringify(expectTwo)) {
      throw new Error(`after two batches at once: listing ${JSON.stringify(entries)}, expected ${JSON.stringify(expectOne)} and ${JSON.stringify(expectTwo)} interleaved`);
    }
    this.adopt(entries);
  }

  /**
   * Sends requests and leaves without reading (optionally in the middle of a PUT's body): the server
   * may have run any prefix of them, and never the cut request.
   */
  private async leave(i: number, requests: readonly Req[], midBody: boolean): Promise<void> {
    const c = await this.client(i);
    let text = requests.map(wire).join('');
    if (midBody) text += `PUT /kv/a HTTP/1.1\r\n${H}Content-Length: 10\r\n\r\ncut-`;
    await c.write(text);
    await sleep(5);
    c.destroy();
    this.clients[i] = undefined;
    // every state a prefix of the batch leads to (stopping at a closing request)
    const states: Data[] = [new Map(this.data)];
    const state = new Map(this.data);
    for (const r of requests) {
      const e = apply(state, r);
      states.push(new Map(state));
      if (e.closes) break;
    }
    const listing = await this.settledListing();
    const match = states.find((s) => listingOf(s) === listing);
    if (match === undefined) throw new Error(`after a client left: listing ${JSON.stringify(listing.slice(0, 300))} is no prefix of what it sent`);
    this.adopt(parseListing(listing));
  }

  /**
   * The listing once the server is done with a connection a client left: the server has let it go,
   * and two listings in a row agree (a write the store had taken may still be landing).
   */
  private async settledListing(): Promise<string> {
    const live = () => this.clients.filter((c) => c !== undefined && !c.ended).length;
    const deadline = performance.now() + 2000;
    while (this.server.server.connectionCount > live() && performance.now() < deadline) await sleep(5);
    let last = await this.listing();
    for (let i = 0; i < 10; i++) {
      await sleep(20);
      const next = await this.listing();
      if (next === last) return next;
      last = next;
    }
    return last;
  }

  /** GET / on a fresh connection. */
  private async listing(): Promise<string> {
    const c = await Client.open(this.server.port);
    try {
      await c.write(wire({ kind: 'listing' }));
      const a = await c.read(false);
      if (a.status !== 200) throw new Error(`listing: ${a.status}`);
      return a.body;
    } finally {
      c.destroy();
    }
  }

  private adopt(entries: [string, string][]): void {
    this.data.clear();
    for (const [k, v] of entries) this.data.set(k, v);
  }

  /** The final check: the listing is the model's. */
  async finish(): Promise<void> {
    const listing = await this.listing();
    if (listing !== listingOf(this.data)) throw new Error(`final listing ${JSON.stringify(listing.slice(0, 300))}, expected ${JSON.stringify(listingOf(this.data).slice(0, 300))}`);
    for (const c of this.clients) c?.destroy();
  }
}

function parseListing(body: string): [string, string][] {
  if (body === Texts.emptyDb) return [];
  return body
    .split('\n')
    .slice(1)
    .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)] as [string, string]);
}

// ---- the property, per store ---------------------------------------------------------------------------

const stores: [string, () => Promise<Store>][] = [
  ['memory', () => Promise.resolve(new MemoryStore())],
  ['log', () => LogStore.open({ dir: tempDir('tcpkv-model-'), fsync: 'no', compactFactor: 2, compactMinBytes: 1 << 30, repair: 'off', logger: pino({ level: 'silent' }) })],
];

describe('the request path against a sequential model (fast-check, real sockets)', () => {
  for (const [name, newStore] of stores) {
    it(`${name} store: every answer is the model's, nothing behind a closing answer is applied, nothing answered is lost`, async () => {
      const property = fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 14 }), async (commands) => {
        const store = await newStore();
        // a small output bound: a slow reader of a large value holds the pipeline up
        const server = await startServer({ store, token: 'the-right-token', limits: { maxOutputBytes: 8 * 1024 } });
        const log: string[] = [];
        try {
          const run = new Run(server, log);
          for (const command of commands) await run.run(command);
          await run.finish();
        } catch (error) {
          throw new Error(`${(error as Error).message}\ncommands run:\n  ${log.join('\n  ')}`, { cause: error });
        } finally {
          await server.close();
        }
      });
      // shrinking is bounded in time: a run is a real server and real sockets
      const result = await fc.check(property, { seed: SEED, numRuns: RUNS, interruptAfterTimeLimit: 90_000 });
      if (result.failed) {
        const message = `model test failed on the ${name} store: seed ${result.seed}, path ${result.counterexamplePath} (TCPKV_MODEL_SEED=${result.seed} replays it)\n${String((result.errorInstance as Error | undefined)?.message ?? 'interrupted (time limit)')}`;
        console.error(message);
        expect.fail(message);
      }
    }, 120_000);
  }
});
