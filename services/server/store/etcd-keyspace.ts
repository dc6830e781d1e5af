// Where tcpkv keeps its data in etcd, under a deployment's prefix:
//
//   <prefix>kv/<key>   the value, as it is
//   <prefix>kv/        (the empty key, which no client can use) the write stamp: every write but a
//                      DELETE puts it, so its mod revision is the revision of the latest such write;
//                      its value names the replica and the write (WriteStamps)
//   <prefix>ord/<key>  n, written with the key when it is created with others: keys created in the
//                      same transaction share a create revision, so keys sort by (create revision, n)
//                      (a key created alone has no ord/ entry: n = 0).

import { randomBytes } from 'node:crypto';

export class EtcdKeyspace {
  readonly kvPrefix: Buffer;
  readonly ordPrefix: Buffer;
  /** the write stamp's key: <prefix>kv/ itself */
  readonly stampKey: Buffer;

  constructor(readonly prefix: string) {
    this.kvPrefix = Buffer.from(`${prefix}kv/`, 'utf8');
    this.ordPrefix = Buffer.from(`${prefix}ord/`, 'utf8');
    this.stampKey = this.kvPrefix;
  }

  kvKey(key: string): Buffer {
    return Buffer.concat([this.kvPrefix, Buffer.from(key, 'utf8')]);
  }

  ordKey(key: string): Buffer {
    return Buffer.concat([this.ordPrefix, Buffer.from(key, 'utf8')]);
  }
}

/** The write stamp's value, at most (see WriteStamps.next: 13 characters and a count). */
export const STAMP_VALUE_MAX_BYTES = 32;
/** This replica's write stamps the watch brought, at most (the NOSPACE check looks one up). */
const STAMPS_KEPT = 4096;

/**
 * The values of the write stamps this replica puts: its random prefix and a count, unique per write.
 * Whether the watch brought one tells the NOSPACE check whether etcd applied that write, and the
 * stamp at a revision tells one etcd history from another (etcd-cache.ts).
 */
export class WriteStamps {
  /** the start of every write stamp this replica puts: the rest counts its writes */
  private readonly stampPrefix = `${randomBytes(6).toString('hex')}:`;
  private stampsPut = 0;
  /** this replica's stamps that the watch brought, oldest first, with the revision of each */
  private readonly stampsSeen = new Map<string, number>();

  /** A new write stamp. */
  next(): string {
    return `${this.stampPrefix}${++this.stampsPut}`;
  }

  /** A stamp the watch brought, put at `revision` (another replica's are not kept). */
  note(value: Buffer, revision: number): void {
    const stamp = value.toString('latin1');
    if (!stamp.startsWith(this.stampPrefix)) return;
    this.stampsSeen.set(stamp, revision);
    if (this.stampsSeen.size > STAMPS_KEPT) this.stampsSeen.delete(this.stampsSeen.keys().next().value!);
  }

  /** The revision of the write that put this stamp of this replica's, if the watch brought it (among the last STAMPS_KEPT). */
  revisionOf(stamp: string): number | undefined {
    return this.stampsSeen.get(stamp);
  }
}
