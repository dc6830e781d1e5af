// Write load with a model of what must survive a crash. Each worker owns its keys and sends one
// request at a time on its own keep-alive connection, so for every key the latest acknowledged value
// is well defined; a request sent but not answered when the server dies may or may not have been
// applied. Some writes are refused on purpose (a POST mixing an existing key with a new one): their
// new keys must never appear.

import type { Socket } from 'node:net';
import { ResponseReader, type ParsedResponse } from '../../services/protocol/response-reader.js';
import { Texts } from '../../services/protocol/texts.js';
import { openSocket } from './net.js';

export interface KeyState {
  acked?: string;
  inflight?: string;
}

export interface LoadModel {
  readonly keys: Map<string, KeyState>;
  /** keys that only ever appeared in refused requests */
  readonly refused: Set<string>;
  acked: number;
}

export function newModel(): LoadModel {
  return { keys: new Map(), refused: new Set(), acked: 0 };
}

/** One request at a time over a keep-alive connection. */
export class Conn {
  private readonly socket: Socket;
  private pending: { reader: ResponseReader; resolve: (r: ParsedResponse) => void; reject: (e: Error) => void } | undefined;
  private dead: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      const p = this.pending;
      if (!p) return; // one request at a time: nothing arrives unasked
      try {
        // the reader keeps what it has been given: hand it each chunk once
        const r = p.reader.push(c);
        if (r) {
          this.pending = undefined;
          p.resolve(r);
        }
      } catch (e) {
        p.reject(e as Error);
      }
    });
    const fail = (e: Error) => {
      this.dead = e;
      this.pending?.reject(e);
      this.pending = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static async open(port: number): Promise<Conn> {
    return new Conn(await openSocket(port));
  }

  send(method: string, path: string, body: string): Promise<ParsedResponse> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.pending = { reader: new ResponseReader(false), resolve, reject };
      const b = Buffer.from(body);
      this.socket.write(`${method} /${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${b.length}\r\n\r\n${body}`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Runs `workers` writers against the server until `stop()` is called or the server dies; records
 * everything in `model`. Values are unique per write, so the check can tell which write it sees.
 */
export function runWriteLoad(
  port: number,
  model: LoadModel,
  workers: number,
  tag: string,
  valueBytes = 8,
  /** 'updates': each worker creates 10 keys, then only updates them (what compaction is for) */
  mix: 'mixed' | 'updates' = 'mixed',
): { stop(): void; done: Promise<void> } {
  let stopping = false;
  const pad = 'x'.repeat(Math.max(0, valueBytes - 8));
  const worker = async (w: number) => {
    let conn: Conn;
    try {
      conn = await Conn.open(port);
    } catch {
      return;
    }
    let n = 0;
    const mine = [...model.keys.keys()].filter((k) => k.startsWith(`w${w}-`));
    try {
      while (!stopping) {
        n++;
        const roll = mix === 'updates' ? (mine.length < 10 ? 1 : 2) : n % 5;
        if (roll === 0 && mine.length > 0) {
          // refused on purpose: an existing key with a new one → nothing of it may be stored
          const fresh = `refused-${tag}-w${w}-${n}`;
          model.refused.add(fresh);
          const r = await conn.send('POST', 'create', `${mine[n % mine.length]}: nope&${fresh}: nope`);
          if (r.status !== 400 || r.body !== Texts.keyExists) throw new Error(`expected a refusal, got ${r.status} ${r.body}`);
        } else if (roll % 2 === 1 || mine.length === 0) {
          const key = `w${w}-${tag}-${n}`;
          const value = `${tag}.${n}${pad}`;
          model.keys.set(key, { inflight: value });
          const r = await conn.send('POST', 'create', `${key}: ${value}`);
          if (r.status !== 200) throw new Error(`POST ${key}: ${r.status} ${r.body}`);
          model.keys.set(key, { acked: value });
          model.acked++;
          mine.push(key);
        } else {
          const key = mine[(n * 7) % mine.length]!;
          const value = `${tag}.${n}u${pad}`;
          const state = model.keys.get(key)!;
          state.inflight = value;
          const r = await conn.send('PUT', 'update', `${key}: ${value}`);
          if (r.status !== 200) throw new Error(`PUT ${key}: ${r.status} ${r.body}`);
          state.acked = value;
          state.inflight = undefined;
          model.acked++;
        }
      }
    } catch (error) {
      if (!stopping && !/closed|ECONNRESET|EPIPE/.test((error as Error).message)) throw error;
    } finally {
      conn.close();
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w))).then(() => undefined);
  return {
    stop: () => {
      stopping = true;
    },
    done,
  };
}

/** `The data in DB is as follows.\nk:v…` → Map. */
export function parseListing(body: string): Map<string, string> {
  const out = new Map<string, string>();
  if (body === Texts.emptyDb) return out;
  const lines = body.split('\n');
  if (lines[0] !== Texts.listingHeader) throw new Error(`not a listing: ${body.slice(0, 80)}`);
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    out.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return out;
}

/**
 * Checks the data against the model: every acknowledged write is there with its latest value (or
 * the value of the write in flight at the crash), refused keys are absent, nothing unknown appears.
 * Returns the problems found (empty = all good) and settles the model on what was found.
 */
export function checkAgainstModel(data: Map<string, string>, model: LoadModel): string[] {
  const problems: string[] = [];
  for (const [key, state] of model.keys) {
    const got = data.get(key);
    const allowed = [state.acked, state.inflight].filter((v) => v !== undefined);
    if (state.acked === undefined && got === undefined) {
      model.keys.delete(key); // never acknowledged, not applied: forget it
      continue;
    }
    if (got === undefined || !allowed.includes(got)) problems.push(`${key}: expected ${allowed.join(' or ')}, found ${got ?? 'nothing'}`);
    else model.keys.set(key, { acked: got });
  }
  for (const key of model.refused) if (data.has(key)) problems.push(`${key} was refused but is stored`);
  for (const key of data.keys()) if (!model.keys.has(key)) problems.push(`${key} is stored but was never written`);
  return problems;
}
