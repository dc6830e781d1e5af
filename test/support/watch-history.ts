// What a watcher saw, checked against what the writers were told and what a final listing holds: the
// watch tests that go through restarts, kills and pauses share these checks.
//
//   nothing missed     every acknowledged write (its key and the version its answer named) is among
//                      the changes seen, with the same value (or as a deletion)
//   nothing repeated   no (key, version) twice
//   in order           versions never go back; changes that share one are one write's (an expiry of
//                      several keys), each of another key
//   the final state    the last change seen of each key is what the listing shows (value and version;
//                      a key whose last change is a deletion is not listed)

import { TcpkvClient, type Answer } from '../../services/client/client.js';
import type { WatchChange } from '../../services/client/watch.js';

/** A write the server acknowledged: its key, the version (or revision of a delete) its answer named. */
export interface AckedWrite {
  readonly key: string;
  readonly version: number;
  /** the value put; undefined = a delete */
  readonly value: string | undefined;
}

export interface ListedItem {
  readonly key: string;
  readonly value: string;
  readonly version: number;
}

/** A header of an answer, by name in any case. */
export function header(answer: Answer, name: string): string | undefined {
  if (answer.kind !== 'response') return undefined;
  return answer.response.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

/** The version a PUT's ETag names, or a DELETE's Tcpkv-Revision. */
export function ackedVersion(answer: Answer): number | undefined {
  const raw = header(answer, 'etag') ?? header(answer, 'tcpkv-revision');
  if (raw === undefined) return undefined;
  const n = Number(raw.replaceAll('"', ''));
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Every key under `prefix` the server lists, page after page. */
export async function listAll(client: TcpkvClient, prefix = ''): Promise<ListedItem[]> {
  const items: ListedItem[] = [];
  let after: string | null = null;
  for (;;) {
    const target: string = `/kv?limit=1000&prefix=${encodeURIComponent(prefix)}${after === null ? '' : `&after=${encodeURIComponent(after)}`}`;
    const answer = await client.send({ method: 'GET', path: '', target });
    if (answer.kind !== 'response' || answer.response.status !== 200) throw new Error(`listing answered ${answer.kind === 'response' ? `${answer.response.status} ${answer.response.body}` : 'nothing'}`);
    const page = JSON.parse(answer.response.body) as { items: ListedItem[]; next: string | null };
    items.push(...page.items);
    if (page.next === null) return items;
    after = page.next;
  }
}

/** What is wrong with what the watcher saw (empty: nothing). */
export function watchProblems(seen: readonly WatchChange[], acked: readonly AckedWrite[], listing: readonly ListedItem[]): string[] {
  const problems: string[] = [];
  const byId = new Map<string, WatchChange>();
  for (let i = 0; i < seen.length; i++) {
    const c = seen[i]!;
    const id = `${c.key}@${c.version}`;
    if (byId.has(id)) problems.push(`repeated: ${id}`);
    byId.set(id, c);
    if (i === 0) continue;
    const p = seen[i - 1]!;
    if (c.version < p.version) problems.push(`out of order: ${p.key}@${p.version} then ${id}`);
    else if (c.version === p.version && (c.key === p.key || c.deleted !== true || p.deleted !== true)) problems.push(`two changes at version ${c.version}: ${p.key} and ${c.key}`);
  }
  for (const w of acked) {
    const c = byId.get(`${w.key}@${w.version}`);
    if (c === undefined) problems.push(`missed: ${w.value === undefined ? 'delete' : 'put'} of ${w.key} at ${w.version}`);
    else if (w.value === undefined ? c.deleted !== true : c.value !== w.value) problems.push(`wrong: ${w.key}@${w.version} seen as ${JSON.stringify(c)}, written ${JSON.stringify(w.value)}`);
  }
  const last = new Map<string, WatchChange>();
  for (const c of seen) last.set(c.key, c);
  const listed = new Map(listing.map((item) => [item.key, item]));
  for (const [key, c] of last) {
    const item = listed.get(key);
    if (c.deleted === true && item !== undefined) problems.push(`${key}: last seen deleted at ${c.version}, listed at ${item.version}`);
    if (c.deleted !== true && (item === undefined || item.version !== c.version || item.value !== c.value)) problems.push(`${key}: last seen ${JSON.stringify(c)}, listed ${JSON.stringify(item)}`);
  }
  for (const key of listed.keys()) if (!last.has(key)) problems.push(`${key}: listed, never seen`);
  return problems;
}
