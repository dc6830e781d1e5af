// Reading the admin port from tests: fetch over loopback, and the Prometheus text format parsed into
// samples, so a test can ask for "the value of tcpkv_requests_total{method="GET",status="200"}".

import { spawnSync } from 'node:child_process';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses exposition text (comments skipped); label values are unescaped. */
export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(.)/g, '$1');
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of every sample named `name` whose labels include `labels`; undefined = no such sample. */
export function valueOf(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const s of parseSamples(text)) {
    if (s.name !== name) continue;
    if (Object.entries(labels).some(([k, v]) => s.labels[k] !== v)) continue;
    sum = (sum ?? 0) + s.value;
  }
  return sum;
}

export interface AdminAnswer {
  readonly status: number;
  readonly body: string;
  readonly contentType: string | null;
}

/** One request to the admin port on 127.0.0.1. */
export async function admin(port: number, path: string, method = 'GET'): Promise<AdminAnswer> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text(), contentType: r.headers.get('content-type') };
}

/** The /metrics text (asserting a 200). */
export async function scrape(port: number): Promise<string> {
  const r = await admin(port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.body}`);
  return r.body;
}

/** Polls until `check` holds (or throws with the last value after `timeoutMs`). */
export async function eventually<T>(read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `promtool check metrics` on the text: its exit status and what it printed (empty when clean). */
export function promtoolCheck(text: string): { status: number | null; output: string; error: Error | undefined } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}
