// Real etcd on loopback (Debian's etcd-server), for the etcd store's tests outside containers: one
// member (startEtcd), or a small cluster of members that a test kills and starts again
// (startEtcdCluster). The fault tests over Docker networks use containers (test/containers/).

import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
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
  /**
   * stops it, deletes its data and starts a new cluster on the same ports (a wiped etcd); with a new
   * --initial-cluster-token (a new cluster id) unless `sameToken`, which gives the same cluster and
   * member ids as before
   */
  wipe(options?: { sameToken?: boolean }): Promise<void>;
  /** stops it, copies its data directory (an offline backup) and starts it again; returns the copy */
  backup(): Promise<string>;
  /** stops it, replaces its data with a backup() copy and starts it: same ids, older revisions */
  restore(backup: string): Promise<void>;
  destroy(): Promise<void>;
}

/** One member's command line: its name, data, client and peer URLs on loopback, and the cluster it joins. */
function memberArgs(member: { name: string; dataDir: string; clientUrl: string; peerUrl: string; initialCluster: string; token: string }): string[] {
  return [
    '--name', member.name, '--data-dir', member.dataDir,
    '--listen-client-urls', member.clientUrl, '--advertise-client-urls', member.clientUrl,
    '--listen-peer-urls', member.peerUrl, '--initial-advertise-peer-urls', member.peerUrl,
    '--initial-cluster', member.initialCluster, '--initial-cluster-token', member.token, '--initial-cluster-state', 'new',
    '--log-level', 'error', '--logger', 'zap',
  ];
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

const ETCD_START_WAIT_MS = 45_000;

export async function startEtcd(options: LocalEtcdOptions = {}): Promise<LocalEtcd> {
  let token = 1;
  const dataDir = mkdtempSync(join(tmpdir(), 'tcpkv-etcd-'));
  const [clientPort, peerPort] = [await portOutsideEphemeralRange(), await portOutsideEphemeralRange()];
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn(
      'etcd',
      [
        ...memberArgs({ name: 'test', dataDir: join(dataDir, 'member'), clientUrl: endpoint, peerUrl, initialCluster: `test=${peerUrl}`, token: `tcpkv-test-${token}` }),
        ...(options.flags ?? []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    // a readiness wait, not a bound: while the suites run beside each other on 2 cores, etcd has
    // taken over 10 s to answer its first /health
    const started = performance.now();
    while (performance.now() - started < ETCD_START_WAIT_MS) {
      if (await answers(endpoint)) return;
      if (proc.exitCode !== null) throw new Error(`etcd exited: ${err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`etcd did not answer within ${ETCD_START_WAIT_MS / 1000} s: ${err}`);
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
    wipe: async (wipeOptions = {}) => {
      await stop();
      rmSync(join(dataDir, 'member'), { recursive: true, force: true });
      if (wipeOptions.sameToken !== true) token++;
      await start();
    },
    backup: async () => {
      await stop();
      const copy = join(dataDir, `backup-${Date.now()}`);
      cpSync(join(dataDir, 'member'), copy, { recursive: true });
      await start();
      return copy;
    },
    restore: async (backup) => {
      await stop();
      rmSync(join(dataDir, 'member'), { recursive: true, force: true });
      cpSync(backup, join(dataDir, 'member'), { recursive: true });
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

/** One member of a loopback cluster: started (not waited for) and killed by the test. */
export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  /**
   * SIGSTOP: the member stops answering without closing a connection, as a member on a machine that
   * died or was cut off does (a killed process's kernel would refuse and reset at once).
   */
  pause(): void;
  /** SIGCONT after pause() */
  resume(): void;
}

/**
 * `size` etcd members on loopback forming one cluster, started and healthy. Their ports lie below the
 * ephemeral range, because members are killed and started again on them (see portOutsideEphemeralRange).
 */
export async function startEtcdCluster(size = 3): Promise<{ members: EtcdMember[]; endpoints: string; destroy(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tcpkv-etcd-cluster-'));
  const names = Array.from({ length: size }, (_, i) => `e${i + 1}`);
  const ports = await Promise.all(names.map(async () => [await portOutsideEphemeralRange(), await portOutsideEphemeralRange()] as const));
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[i]![1]}`).join(',');
  const members = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[i]![0]}`;
    const args = memberArgs({ name, dataDir: join(dir, name), clientUrl, peerUrl: `http://127.0.0.1:${ports[i]![1]}`, initialCluster, token: 'tcpkv-test-cluster' });
    let proc: ChildProcess | undefined;
    const member: EtcdMember = {
      name,
      clientUrl,
      start: async () => {
        proc = spawn('etcd', args, { stdio: 'ignore' });
      },
      kill: async () => {
        const running = proc;
        if (!running || running.exitCode !== null || running.signalCode !== null) return;
        const exited = new Promise((r) => running.once('exit', r));
        running.kill('SIGKILL');
        await exited;
      },
      pause: () => void proc?.kill('SIGSTOP'),
      resume: () => void proc?.kill('SIGCONT'),
    };
    return member;
  });
  await Promise.all(members.map((m) => m.start()));
  const destroy = async () => {
    await Promise.all(members.map((m) => m.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    if ((await Promise.all(members.map((m) => answers(m.clientUrl)))).every(Boolean)) break;
    if (i >= 300) {
      await destroy();
      throw new Error('etcd members not healthy within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { members, endpoints: members.map((m) => m.clientUrl).join(','), destroy };
}
