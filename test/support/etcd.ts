// A real single-member etcd on loopback (Debian's etcd-server), for the etcd store's tests outside
// containers. The 3-member cluster tests use containers (test/containers/).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { portOutsideEphemeralRange } from './net.js';

export interface LocalEtcd {
  readonly endpoint: string;
  readonly dataDir: string;
  stop(): Promise<void>;
  /** starts it again on the same ports and data */
  start(): Promise<void>;
  /** stops it, deletes its data and starts a new cluster on the same ports (a wiped etcd) */
  wipe(): Promise<void>;
  destroy(): Promise<void>;
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    const r = await fetch(`${endpoint}/health`);
    return r.ok;
  } catch {
    return false;
  }
}

export interface LocalEtcdOptions {
  /** extra etcd flags, e.g. ['--quota-backend-bytes=20000000', '--max-txn-ops=1024'] */
  readonly flags?: readonly string[];
}

export async function startEtcd(options: LocalEtcdOptions = {}): Promise<LocalEtcd> {
  let token = 1;
  const dataDir = mkdtempSync(join(tmpdir(), 'tcpkv-etcd-'));
  const [clientPort, peerPort] = [await portOutsideEphemeralRange(), await portOutsideEphemeralRange()];
  const endpoint = `http://127.0.0.1:${clientPort}`;
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn(
      'etcd',
      [
        '--name', 'test', '--data-dir', join(dataDir, 'member'),
        '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `test=http://127.0.0.1:${peerPort}`, '--initial-cluster-token', `tcpkv-test-${token}`,
        '--log-level', 'error', '--logger', 'zap', ...(options.flags ?? []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    for (let i = 0; i < 100; i++) {
      if (await answers(endpoint)) return;
      if (proc.exitCode !== null) throw new Error(`etcd exited: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`etcd did not answer within 10 s: ${err}`);
  };
  const stop = async () => {
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc!.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    endpoint,
    dataDir,
    stop,
    start,
    wipe: async () => {
      await stop();
      rmSync(join(dataDir, 'member'), { recursive: true, force: true });
      token++;
      await start();
    },
    destroy: async () => {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A local etcd for the tests of one describe block: started before them, destroyed after them. */
export function useLocalEtcd(options: LocalEtcdOptions = {}): () => LocalEtcd {
  let etcd: LocalEtcd | undefined;
  beforeAll(async () => {
    etcd = await startEtcd(options);
  });
  afterAll(async () => {
    await etcd?.destroy();
  });
  return () => etcd!;
}
