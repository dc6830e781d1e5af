// The request observer (request-observer.ts) over a real server and socket: what is logged and
// counted comes from the answer's typed code and END outcome, never from its text.

import { afterEach, describe, expect, it } from 'vitest';
import { Texts } from '../../services/protocol/texts.js';
import type { EndOutcome, RouteLabel, ServerEvents } from '../../services/server/events.js';
import { exchange, startServer, type InProcessServer } from '../support/net.js';

/** Records what the server reports (the admin port's metrics implement the same interface). */
function recorder() {
  const seen = { ends: [] as EndOutcome[], limits: [] as string[], requests: [] as { method: string; route: RouteLabel; status: number }[] };
  const events: ServerEvents = {
    connectionOpened() {},
    connectionClosed() {},
    connectionRefused() {},
    requestDone: (method, route, status) => seen.requests.push({ method, route, status }),
    limitHit: (code) => seen.limits.push(code),
    endAttempt: (outcome) => seen.ends.push(outcome),
  };
  return { seen, events };
}

const http = (method: string, target: string, body = '') => `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('request observer', () => {
  let server: InProcessServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('counts an END by its outcome, and a value that reads like END’s refusal as nothing', async () => {
    const { seen, events } = recorder();
    server = await startServer({ events, shutdownEnabled: false });
    const r = await exchange(server.port, [http('PUT', '/kv/k', Texts.shutdownDisabled), http('GET', '/kv/k')], 2);
    expect(r.responses.map((x) => [x.status, x.body])).toEqual([
      [200, 'Created k'],
      [200, Texts.shutdownDisabled],
    ]);
    expect(seen.ends).toEqual([]);
    const end = await exchange(server.port, 'END / HTTP/1.1\r\nHost: 127.0.0.1/\r\nContent-Length: 0\r\n\r\n', 1);
    expect(end.responses[0]!.status).toBe(403);
    expect(seen.ends).toEqual(['disabled']);
    expect(server.logs.filter((l) => l.msg === 'END refused').map((l) => l.outcome)).toEqual(['disabled']);
    expect(seen.requests.map((x) => x.route)).toEqual(['kv-key', 'kv-key', 'end']);
  });

  it('logs and counts a rule’s limit by its code; an answer with a code that is no limit is neither', async () => {
    const { seen, events } = recorder();
    server = await startServer({ events });
    const r = await exchange(server.port, [http('POST', '/create', Array.from({ length: 10_001 }, (_, i) => `k${i}: v`).join('&')), http('GET', '/kv?after=never-stored')], 2);
    expect(r.responses.map((x) => x.status)).toEqual([413, 400]);
    expect(seen.limits).toEqual(['TCPKV_ERR_TOO_MANY_PAIRS']);
    const warned = server.logs.filter((l) => l.level === 40 && l.code !== undefined).map((l) => l.code);
    expect(warned).toEqual(['TCPKV_ERR_TOO_MANY_PAIRS']);
    expect(seen.requests.map((x) => [x.route, x.status])).toEqual([
      ['create', 413],
      ['kv-page', 400],
    ]);
  });
});
