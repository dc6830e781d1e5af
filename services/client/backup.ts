// `tcpkv-client dump` and `restore`: a backup through the protocol, so it works against every store
// and through any replica (docs/backup.md).
//
// The dump is the whole listing (`GET /`), which every store answers from one state: the memory and
// log stores render it from one revision of their data, the etcd store from its cache at one revision
// after a read barrier. So a dump is a state that existed at one instant, even while writers run.
//
// The file is JSON lines, streamable and checkable: a header line, one line per entry in the
// listing's order, and a trailer with the count and a SHA-256 of every line before it. A file cut
// short has no trailer; a changed byte fails the checksum; both are refused before anything is
// written.
//
// A restore writes in batches, each one `POST /create` (all or nothing; a value the pair grammar
// cannot carry — a key or value holding `&`, a value with spaces at either end — goes alone as `PUT /kv/<key>`). It
// writes only keys the target lacks, so a restore that was interrupted (killed, a lost connection)
// and run again finishes the job: keys already there with the dump's value are skipped, never written
// twice. A target holding anything else is refused unless told to merge or replace.

import { createHash, type Hash } from 'node:crypto';
import { Texts } from '../protocol/texts.js';
import { ClientSideError } from '../protocol/errors.js';
import { formatAddress, type Answer, type TcpkvClient } from './client.js';

export const DUMP_FORMAT = 'tcpkv-dump';
export const DUMP_VERSION = 1;

export interface DumpHeader {
  readonly format: typeof DUMP_FORMAT;
  readonly version: number;
  /** ISO 8601, when the listing was read */
  readonly created: string;
  /** the server the dump was read from, host:port */
  readonly source: string;
}

export interface DumpTrailer {
  readonly end: true;
  readonly keys: number;
  /** hex SHA-256 of every line before the trailer, each with its `\n` */
  readonly sha256: string;
}

export type Entry = readonly [key: string, value: string];

/** A dump file's problem: refused before anything is written. */
export class DumpFormatError extends ClientSideError {
  constructor(message: string) {
    super('DUMP_FORMAT', message);
  }
}

/** A target, or an answer, that stops a restore. */
export class RestoreError extends ClientSideError {
  constructor(message: string) {
    super('RESTORE_FAILED', message);
  }
}

/** Writes a dump as lines, hashing as it goes; hands `write` about 64 KiB at a time. */
export class DumpWriter {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;
  private held: string[] = [];
  private heldChars = 0;

  constructor(private readonly write: (text: string) => void) {}

  private line(text: string): void {
    const withEnd = text + '\n';
    this.hash.update(withEnd);
    this.held.push(withEnd);
    this.heldChars += withEnd.length;
    if (this.heldChars >= 64 * 1024) this.flush();
  }

  private flush(): void {
    if (this.held.length === 0) return;
    this.write(this.held.join(''));
    this.held = [];
    this.heldChars = 0;
  }

  header(source: string, created = new Date()): void {
    const header: DumpHeader = { format: DUMP_FORMAT, version: DUMP_VERSION, created: created.toISOString(), source };
    this.line(JSON.stringify(header));
  }

  entry(key: string, value: string): void {
    this.count += 1;
    this.line(JSON.stringify({ k: key, v: value }));
  }

  end(): DumpTrailer {
    const trailer: DumpTrailer = { end: true, keys: this.count, sha256: this.hash.digest('hex') };
    this.held.push(JSON.stringify(trailer) + '\n');
    this.flush();
    return trailer;
  }
}

/**
 * The entries of a `GET /` body: `No data in DB`, or the header line and one `key:value` per line (a
 * key holds no `:`, so the first `:` ends it; a value holds no line break).
 */
export function parseListing(body: string): Entry[] {
  if (body === Texts.emptyDb) return [];
  if (!body.startsWith(Texts.listingHeader)) throw new RestoreError(`the listing does not start with "${Texts.listingHeader}"`);
  const entries: Entry[] = [];
  let at = Texts.listingHeader.length;
  while (at < body.length) {
    if (body.charCodeAt(at) !== 10) throw new RestoreError(`the listing has no line break at character ${at}`);
    const end = body.indexOf('\n', at + 1);
    const line = body.slice(at + 1, end === -1 ? body.length : end);
    const colon = line.indexOf(':');
    if (colon < 1) throw new RestoreError(`the listing has a line without key:value: ${JSON.stringify(line.slice(0, 80))}`);
    entries.push([line.slice(0, colon), line.slice(colon + 1)]);
    at = end === -1 ? body.length : end;
  }
  return entries;
}

/** Reads a whole dump, checking the header, every line and the checksum; throws DumpFormatError. */
export function readDump(bytes: Buffer): { header: DumpHeader; entries: Entry[] } {
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) throw new DumpFormatError('the file is not valid UTF-8: not a tcpkv dump, or damaged');
  const lines = text.split('\n');
  if (lines[lines.length - 1] !== '') throw new DumpFormatError('the last line has no line break: the file was cut short');
  lines.pop();
  if (lines.length < 2) throw new DumpFormatError('the file has no trailer: it was cut short, or is not a tcpkv dump');
  const hash = createHash('sha256');
  let header: DumpHeader;
  try {
    header = JSON.parse(lines[0]!) as DumpHeader;
  } catch {
    throw new DumpFormatError('line 1 is not JSON: not a tcpkv dump');
  }
  if (header.format !== DUMP_FORMAT) throw new DumpFormatError('line 1 is not a tcpkv dump header');
  if (header.version !== DUMP_VERSION) throw new DumpFormatError(`dump format version ${String(header.version)}; this client reads version ${DUMP_VERSION}`);
  let trailer: DumpTrailer;
  try {
    trailer = JSON.parse(lines[lines.length - 1]!) as DumpTrailer;
  } catch {
    throw new DumpFormatError('the last line is not the trailer: the file was cut short');
  }
  if (trailer.end !== true || typeof trailer.sha256 !== 'string') throw new DumpFormatError('the last line is not the trailer: the file was cut short');
  const entries: Entry[] = [];
  for (let i = 0; i < lines.length - 1; i += 1) {
    hash.update(lines[i]! + '\n');
    if (i === 0) continue;
    let entry: { k?: unknown; v?: unknown };
    try {
      entry = JSON.parse(lines[i]!) as typeof entry;
    } catch {
      throw new DumpFormatError(`line ${i + 1} is not JSON`);
    }
    if (typeof entry.k !== 'string' || typeof entry.v !== 'string') throw new DumpFormatError(`line ${i + 1} is not an entry {"k":…,"v":…}`);
    entries.push([entry.k, entry.v]);
  }
  if (hash.digest('hex') !== trailer.sha256) throw new DumpFormatError('the checksum does not match: the file was changed or damaged');
  if (trailer.keys !== entries.length) throw new DumpFormatError(`the trailer counts ${trailer.keys} keys, the file holds ${entries.length}`);
  return { header, entries };
}

function describe(answer: Answer): string {
  if (answer.kind === 'closed') return `${formatAddress(answer.server)} closed the connection without an answer`;
  const { status, reason, body } = answer.response;
  return `${formatAddress(answer.server)} answered ${status} ${reason}: ${body.split('\n')[0]!.slice(0, 200)}`;
}

/** The whole listing of the server, as entries; throws RestoreError for any answer but 200. */
export async function readListing(client: TcpkvClient): Promise<{ entries: Entry[]; source: string }> {
  const answer = await client.send({ method: 'GET', path: '' });
  if (answer.kind !== 'response' || answer.response.status !== 200) throw new RestoreError(`GET /: ${describe(answer)}`);
  return { entries: parseListing(answer.response.body), source: formatAddress(answer.server) };
}

/** Reads the listing and writes it as a dump; returns the trailer. */
export async function dump(client: TcpkvClient, write: (text: string) => void): Promise<DumpTrailer> {
  const { entries, source } = await readListing(client);
  const writer = new DumpWriter(write);
  writer.header(source);
  for (const [key, value] of entries) writer.entry(key, value);
  return writer.end();
}

export type RestoreMode = 'empty' | 'merge' | 'replace';

export interface RestoreOptions {
  /** empty: the target must be empty (or hold a part of this dump: an interrupted restore); merge: add
   * the dump's keys and set colliding ones to the dump's values; replace: merge, then delete the
   * target's keys the dump lacks */
  readonly mode: RestoreMode;
  /** pairs per POST /create; a batch the store refuses as too large (413) is split */
  readonly batchKeys: number;
  /** bytes per POST /create body, under the server's body limit */
  readonly batchBytes: number;
  /** progress and notices, one line each */
  readonly progress: (line: string) => void;
}

export interface RestoreSummary {
  readonly written: number;
  readonly skipped: number;
  readonly updated: number;
  readonly deleted: number;
}

/** A pair `POST /create` carries exactly: the pair grammar splits at `&` and trims both sides. */
function fitsPairGrammar(key: string, value: string): boolean {
  return !key.includes('&') && !value.includes('&') && value.trim() === value && value !== '';
}

function kvTarget(key: string): string {
  return `/kv/${encodeURIComponent(key)}`;
}

/** Restores `entries` into the server; see RestoreOptions for the modes. */
export async function restore(client: TcpkvClient, entries: readonly Entry[], options: RestoreOptions): Promise<RestoreSummary> {
  const target = new Map((await readListing(client)).entries);
  const wanted = new Map(entries);
  const collisions: string[] = [];
  for (const [key, value] of target) if (wanted.get(key) !== value) collisions.push(key);
  if (collisions.length > 0 && options.mode === 'empty') {
    const shown = collisions.slice(0, 20).map((k) => JSON.stringify(k)).join(', ');
    throw new RestoreError(
      `the target is not empty: ${collisions.length} of its ${target.size} keys are not in the dump with the dump's value (${shown}${collisions.length > 20 ? ', …' : ''}); ` +
        'restore --merge sets them to the dump, --replace also deletes what the dump lacks',
    );
  }
  if (target.size > 0 && collisions.length === 0) options.progress(`the target already holds ${target.size} of the dump's ${entries.length} keys with their values: continuing`);

  const missing: Entry[] = [];
  const changed: Entry[] = [];
  for (const entry of entries) {
    const held = target.get(entry[0]);
    if (held === undefined) missing.push(entry);
    else if (held !== entry[1]) changed.push(entry);
  }
  const skipped = entries.length - missing.length - changed.length;
  let written = 0;
  let updated = 0;
  let deleted = 0;
  let reported = 0;
  const report = (force = false) => {
    const done = skipped + written + updated;
    if (force || done - reported >= 10_000) {
      reported = done;
      options.progress(`restored ${done} of ${entries.length} keys`);
    }
  };

  const put = async (key: string, value: string) => {
    const answer = await client.send({ method: 'PUT', path: '', target: kvTarget(key), body: value });
    if (answer.kind !== 'response' || answer.response.status !== 200) throw new RestoreError(`PUT /kv/${key}: ${describe(answer)}`);
  };

  /** One POST /create; a 413 (more pairs than the store takes in one write, nothing applied) is split in halves. */
  const create = async (pairs: readonly string[]): Promise<void> => {
    const answer = await client.send({ method: 'POST', path: 'create', body: pairs.join('&') });
    if (answer.kind === 'response' && answer.response.status === 413 && pairs.length > 1) {
      const half = Math.ceil(pairs.length / 2);
      await create(pairs.slice(0, half));
      await create(pairs.slice(half));
      return;
    }
    if (answer.kind !== 'response' || answer.response.status !== 200) throw new RestoreError(`POST /create of ${pairs.length} keys: ${describe(answer)}`);
    written += pairs.length;
    report();
  };
  let batch: string[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await create(batch);
    batch = [];
    batchBytes = 0;
  };
  for (const [key, value] of missing) {
    if (!fitsPairGrammar(key, value)) {
      await flush(); // the keys before it first: the listing keeps insertion order
      await put(key, value);
      written += 1;
      report();
      continue;
    }
    const pair = `${key}: ${value}`;
    const size = Buffer.byteLength(pair) + 1;
    if (batch.length >= options.batchKeys || (batch.length > 0 && batchBytes + size > options.batchBytes)) await flush();
    batch.push(pair);
    batchBytes += size;
  }
  await flush();
  for (const [key, value] of changed) {
    await put(key, value);
    updated += 1;
    report();
  }
  if (options.mode === 'replace') {
    for (const key of target.keys()) {
      if (wanted.has(key)) continue;
      const answer = await client.send({ method: 'DELETE', path: '', target: kvTarget(key) });
      if (answer.kind !== 'response' || (answer.response.status !== 200 && answer.response.status !== 404)) throw new RestoreError(`DELETE /kv/${key}: ${describe(answer)}`);
      deleted += 1;
    }
  }
  report(true);
  return { written, skipped, updated, deleted };
}
