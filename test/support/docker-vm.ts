// A container that plays a VM (image tcpkv/vm:local, built by infra/docker/offline-vm.sh): Debian with
// sshd (key login only) and its own Docker engine, on networks the test creates with --internal, so
// that nothing in it has a route beyond the test's own containers. The image's init drops
// 169.254.0.0/16 (no metadata service can be reached, not even by mistake).

import { execFile } from 'node:child_process';
import { DockerResources, docker, dockerOk, uniqueName, type CommandResult } from './docker.js';

export const VM_IMAGE = 'tcpkv/vm:local';

export interface TestNetwork {
  name: string;
  subnet: string;
}

/** A user-defined bridge network without a route to anywhere else (`--internal`), registered for removal. */
export async function internalNetwork(res: DockerResources, prefix: string): Promise<TestNetwork> {
  const name = uniqueName(prefix);
  await dockerOk(['network', 'create', '--internal', '--label', 'org.tcpkv.test=true', name]);
  res.addNetwork(name);
  const subnet = await dockerOk(['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', name]);
  return { name, subnet };
}

/** The IPv4 address of a container on a network. */
export async function addressOn(container: string, network: string): Promise<string> {
  const ip = await dockerOk(['inspect', '--format', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, container]);
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) throw new Error(`${container} has no address on ${network}: ${JSON.stringify(ip)}`);
  return ip;
}

export interface Vm {
  name: string;
  /** `bash -c SCRIPT` as root inside the VM */
  sh(script: string, timeoutMs?: number): Promise<CommandResult>;
  /** like sh(), but throws on a non-zero exit; trimmed stdout */
  shOk(script: string, timeoutMs?: number): Promise<string>;
}

/**
 * Start a VM container on `network` (then connect others with `docker network connect`) whose root
 * accepts `authorizedKey`; resolves once its sshd and dockerd are up.
 */
export async function startVm(opts: { network: string; authorizedKey: string; alias?: string; resources: DockerResources }): Promise<Vm> {
  const name = uniqueName('tcpkv-vm');
  await dockerOk([
    'run', '-d', '--name', name, '--hostname', 'tcpkv-vm', '--label', 'org.tcpkv.test=true',
    '--network', opts.network, ...(opts.alias ? ['--network-alias', opts.alias] : []),
    // what an inner Docker engine needs here without --privileged (refused on these machines)
    '--cap-add', 'SYS_ADMIN', '--cap-add', 'NET_ADMIN', '--cap-add', 'SYS_PTRACE',
    '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined',
    '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw',
    '-e', `VM_AUTHORIZED_KEY=${opts.authorizedKey}`,
    VM_IMAGE,
  ]);
  opts.resources.addContainer(name);
  const sh = (script: string, timeoutMs = 120_000) => docker(['exec', name, 'bash', '-c', script], { timeoutMs });
  const vm: Vm = {
    name,
    sh,
    async shOk(script, timeoutMs) {
      const r = await sh(script, timeoutMs);
      if (r.code !== 0) throw new Error(`in the VM: ${script} → exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
      return r.stdout.trim();
    },
  };
  const until = Date.now() + 90_000;
  for (;;) {
    const logs = await docker(['logs', name]);
    if (logs.stdout.includes('vm-init: ready')) break;
    const running = (await docker(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim();
    if (running !== 'true' || Date.now() > until) {
      throw new Error(`the VM container did not come up:\n${logs.stdout}${logs.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return vm;
}

/** Remove what the VM's own Docker runs (before the VM container itself is removed). */
export async function emptyVm(vm: Vm): Promise<void> {
  await vm.sh('ids="$(docker ps -aq)"; [ -z "$ids" ] || docker rm -f -v $ids >/dev/null; docker volume prune -f >/dev/null', 60_000).catch(() => undefined);
}

/** Run a program on this host; never throws on a non-zero exit. stdout and stderr interleaved in `output`. */
export function runHost(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolvePromise) => {
    let output = '';
    const child = execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 * 1024 * 1024 }, (error) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolvePromise({ code, output });
    });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  });
}
