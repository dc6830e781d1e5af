// Helpers for the tests that drive Docker (the `docker` vitest project). Import from test files:
//
//   import { SERVER_IMAGE, CLIENT_IMAGE, runClient, DockerResources, sendOnce } from '../support/docker.js';
//
// Conventions: every container, network and volume a test creates is registered with a
// DockerResources and removed in afterAll (and by its final "leaves nothing behind" test), since
// TESTCONTAINERS_RYUK_DISABLED=true means nothing else reaps them. Test traffic goes only to
// 127.0.0.1 (published ports) or between our own containers on our own networks.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GenericContainer, StartupCheckStrategy, Wait, type StartedNetwork, type StartedTestContainer, type StartupStatus } from 'testcontainers';
import type Dockerode from 'dockerode';

// The reaper (ryuk) image cannot be pulled where no registry is reachable; the globalSetup sets this
// too, but test workers may import this module first.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SERVER_IMAGE = 'tcpkv/server:local';
export const CLIENT_IMAGE = 'tcpkv/client:local';
export const OFFLINE_BASE_IMAGE = 'tcpkv/node-base:local';
export const OFFLINE_RUNTIME_IMAGE = 'tcpkv/node-runtime:local';
export const DEFAULT_NODE_IMAGE = 'node:24-bookworm-slim';
/** Paths inside the images (see Dockerfile.server / Dockerfile.client). */
export const SERVER_JS = '/app/dist/services/server/main.js';
export const CLIENT_JS = '/app/dist/services/client/cli.js';
export const SERVER_PORT = 10000;
/** uid/gid of the `node` user the images run as. */
export const NODE_UID = 1000;

/** A short random suffix for names (networks, volumes, compose projects). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the docker CLI; never throws on a non-zero exit (look at `code`). */
export function docker(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      'docker',
      args,
      { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, DOCKER_BUILDKIT: '0' } },
      (error, stdout, stderr) => {
        if (error && typeof (error as NodeJS.ErrnoException).code === 'string') {
          reject(new Error(`docker ${args.join(' ')}: ${error.message}`));
          return;
        }
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolvePromise({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Like docker(), but throws with stderr when the command fails; returns trimmed stdout. */
export async function dockerOk(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await docker(args, opts);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout.trim();
}

/** The host port Docker published for a container's port (the first binding `docker port` lists). */
export async function publishedPort(containerId: string, containerPort = SERVER_PORT): Promise<number> {
  const out = await dockerOk(['port', containerId, `${containerPort}/tcp`]);
  const m = /:(\d+)\s*$/m.exec(out);
  if (!m) throw new Error(`no published port in ${JSON.stringify(out)}`);
  return Number(m[1]);
}

/**
 * How compose runs here: Debian's standalone `docker-compose` (v1) when it is installed — all these
 * machines have — else the `docker compose` plugin (v2). `args` go after `pre`.
 */
export function composeCommand(): { readonly standalone: boolean; readonly cmd: string; readonly pre: readonly string[] } {
  try {
    execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
    return { standalone: true, cmd: 'docker-compose', pre: [] };
  } catch {
    return { standalone: false, cmd: 'docker', pre: ['compose'] };
  }
}

/** Run a long command (docker build, docker-compose) streaming its output to a sink; resolves with the exit code. */
export function runStreaming(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; onOutput?: (chunk: string) => void } = {},
): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? REPO_ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const sink = opts.onOutput ?? (() => {});
    child.stdout.on('data', (d: Buffer) => sink(d.toString()));
    child.stderr.on('data', (d: Buffer) => sink(d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise(code ?? 1));
  });
}

export async function dockerAnswers(): Promise<boolean> {
  try {
    return (await docker(['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 })).code === 0;
  } catch {
    return false;
  }
}

export async function imageExists(image: string): Promise<boolean> {
  return (await docker(['image', 'inspect', image])).code === 0;
}

/** NODE_IMAGE from the environment, else the offline base if it was built here, else the official image. */
export async function resolveNodeImage(): Promise<string> {
  const fromEnv = process.env.NODE_IMAGE?.trim();
  if (fromEnv) return fromEnv;
  return (await imageExists(OFFLINE_BASE_IMAGE)) ? OFFLINE_BASE_IMAGE : DEFAULT_NODE_IMAGE;
}

/**
 * The runtime stage's image: RUNTIME_IMAGE from the environment (scripts/ensure-docker.sh prints it
 * where it builds the offline images), else the offline runtime image (no build machine's CA in it)
 * when the build stage is the offline base, else empty (the Dockerfiles then use NODE_IMAGE).
 */
export async function resolveRuntimeImage(nodeImage: string): Promise<string> {
  const fromEnv = process.env.RUNTIME_IMAGE?.trim();
  if (fromEnv) return fromEnv;
  return nodeImage === OFFLINE_BASE_IMAGE && (await imageExists(OFFLINE_RUNTIME_IMAGE)) ? OFFLINE_RUNTIME_IMAGE : '';
}

/** `docker build` with the legacy builder (no BuildKit here). */
export async function buildImage(
  dockerfile: string,
  tag: string,
  nodeImage: string,
  onOutput?: (chunk: string) => void,
): Promise<void> {
  const runtimeImage = await resolveRuntimeImage(nodeImage);
  // the image's version label from package.json, as the release workflow passes it
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const args = ['build', '-f', dockerfile, '--build-arg', `NODE_IMAGE=${nodeImage}`, '--build-arg', `RUNTIME_IMAGE=${runtimeImage}`, '--build-arg', `VERSION=${version}`, '-t', tag, '.'];
  const code = await runStreaming('docker', args, {
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
    ...(onOutput ? { onOutput } : {}),
  });
  if (code !== 0) throw new Error(`docker ${args.join(' ')} exited with ${code}`);
}

// ---- containers -----------------------------------------------------------------------------------

export interface ContainerState {
  Status: string;
  Running: boolean;
  ExitCode: number;
  OOMKilled: boolean;
  Health?: { Status: string };
}

export async function inspectState(containerId: string): Promise<ContainerState> {
  return JSON.parse(await dockerOk(['inspect', '--format', '{{json .State}}', containerId])) as ContainerState;
}

/** `docker wait`: blocks until the container stops; its exit code. Rejects after timeoutMs. */
export async function waitForExit(containerId: string, timeoutMs = 30_000): Promise<number> {
  const out = await dockerOk(['wait', containerId], { timeoutMs });
  return Number.parseInt(out, 10);
}

/** stdout+stderr of a container (running or stopped), as one string. */
export async function containerLogs(containerId: string): Promise<string> {
  const r = await docker(['logs', containerId]);
  return r.stdout + r.stderr;
}

/** The effective user (`uid:gid` as `id -u`:`id -g` print them) of a running container's main process. */
export async function processUser(container: StartedTestContainer): Promise<{ uid: number; gid: number }> {
  const r = await container.exec(['sh', '-c', 'set -- $(awk \'/^Uid:/{print $2} /^Gid:/{print $2}\' /proc/1/status); echo "$1 $2"']);
  const [uid, gid] = r.output.trim().split(/\s+/).map(Number);
  return { uid: uid ?? -1, gid: gid ?? -1 };
}

/**
 * A startup check that waits for a one-shot container to stop, whatever its exit code (testcontainers'
 * Wait.forOneShotStartup() removes a container that exits non-zero, and its logs with it).
 */
export class StoppedStartupCheck extends StartupCheckStrategy {
  override async checkStartupState(dockerClient: Dockerode, containerId: string): Promise<StartupStatus> {
    const info = await dockerClient.getContainer(containerId).inspect();
    const state = info.State;
    if (state.Running || state.Paused || state.Restarting) return 'PENDING';
    return state.FinishedAt && !state.FinishedAt.startsWith('0001-') ? 'SUCCESS' : 'PENDING';
  }
}

export interface OneShotResult {
  exitCode: number;
  /** stdout and stderr, interleaved as docker logs gives them */
  output: string;
  stdout: string;
  stderr: string;
  containerId: string;
  /** uid the container ran as, from its config (the image's USER unless overridden) */
  user: string;
}

export interface OneShotOptions {
  image?: string;
  /** arguments after the image's ENTRYPOINT (tcpkv-client for the client image) */
  command: string[];
  entrypoint?: string[];
  network?: StartedNetwork;
  env?: Record<string, string>;
  timeoutMs?: number;
  resources?: DockerResources;
}

/**
 * Run a one-shot container (by default the client image) to completion on a network and return its
 * exit code and output; the container is removed afterwards.
 */
export async function runOneShot(opts: OneShotOptions): Promise<OneShotResult> {
  let c = new GenericContainer(opts.image ?? CLIENT_IMAGE)
    .withCommand(opts.command)
    .withWaitStrategy(new StoppedStartupCheck())
    .withStartupTimeout(opts.timeoutMs ?? 60_000);
  if (opts.entrypoint) c = c.withEntrypoint(opts.entrypoint);
  if (opts.network) c = c.withNetwork(opts.network);
  if (opts.env) c = c.withEnvironment(opts.env);
  const started = await c.start();
  const id = started.getId();
  opts.resources?.addContainer(id);
  try {
    const state = await inspectState(id);
    // docker logs writes the container's stdout to its stdout and the container's stderr to its stderr.
    const { stdout, stderr } = await docker(['logs', id]);
    const user = await dockerOk(['inspect', '--format', '{{.Config.User}}', id]);
    return { exitCode: state.ExitCode, output: stdout + stderr, stdout, stderr, containerId: id, user };
  } finally {
    await started.stop({ remove: true, removeVolumes: true, timeout: 0 }).catch(() => undefined);
  }
}

/** Run `tcpkv-client <args>` in the client image on a network. */
export function runClient(
  args: string[],
  opts: Omit<OneShotOptions, 'command' | 'image' | 'entrypoint'> = {},
): Promise<OneShotResult> {
  return runOneShot({ ...opts, command: args });
}

/**
 * Send raw bytes from a container on a network (the client image's node), one connection, and return
 * everything the server sent until it closed the connection or `idleMs` passed without data.
 * The output is JSON: {"response": "...", "closed": true|false, "error": "..."}.
 */
export async function rawFromContainer(
  target: { host: string; port: number },
  request: string,
  opts: { network?: StartedNetwork; resources?: DockerResources; idleMs?: number } = {},
): Promise<{ response: string; closed: boolean; error?: string }> {
  const script = `
const net = require('node:net');
const [host, port, b64, idle] = process.argv.slice(1);
let buf = Buffer.alloc(0), closed = false, error;
const s = net.connect(Number(port), host, () => s.write(Buffer.from(b64, 'base64')));
const done = () => { process.stdout.write(JSON.stringify({ response: buf.toString('utf8'), closed, error })); process.exit(0); };
let timer = setTimeout(done, 10000);
s.on('data', (d) => { buf = Buffer.concat([buf, d]); clearTimeout(timer); timer = setTimeout(done, Number(idle)); });
s.on('error', (e) => { error = e.code || e.message; });
s.on('close', () => { closed = true; clearTimeout(timer); done(); });
`;
  const r = await runOneShot({
    entrypoint: ['node', '-e', script],
    command: [target.host, String(target.port), Buffer.from(request, 'utf8').toString('base64'), String(opts.idleMs ?? 500)],
    ...(opts.network ? { network: opts.network } : {}),
    ...(opts.resources ? { resources: opts.resources } : {}),
  });
  if (r.exitCode !== 0) throw new Error(`raw request container exited ${r.exitCode}: ${r.output}`);
  return JSON.parse(r.stdout) as { response: string; closed: boolean; error?: string };
}

// ---- the server container ----------------------------------------------------------------------

/** GenericContainer whose published ports bind to 127.0.0.1 only (testcontainers binds all interfaces). */
export class LoopbackPublishedContainer extends GenericContainer {
  protected override async beforeContainerCreated(): Promise<void> {
    for (const bindings of Object.values(this.hostConfig.PortBindings ?? {}) as Array<Array<{ HostIp?: string }>>) {
      for (const binding of bindings) binding.HostIp = '127.0.0.1';
    }
  }
}

/** The server logs this (pino JSON) once it listens. */
export const LISTENING_LOG = /"msg":"listening"/;

export interface ServerOptions {
  env?: Record<string, string>;
  network?: StartedNetwork;
  aliases?: string[];
  /** publish port 10000 on 127.0.0.1 (random host port; read it with getMappedPort(SERVER_PORT)) */
  publish?: boolean;
  /** a named volume (or host path) mounted at /data */
  dataVolume?: string;
  /** wait for the image's HEALTHCHECK to report healthy instead of the "listening" log line */
  waitForHealthy?: boolean;
  resources: DockerResources;
}

/** Start the server image; the container is registered with `resources` for cleanup. */
export async function startServer(opts: ServerOptions): Promise<StartedTestContainer> {
  let c: GenericContainer = opts.publish ? new LoopbackPublishedContainer(SERVER_IMAGE) : new GenericContainer(SERVER_IMAGE);
  c = c
    .withEnvironment({ TCPKV_LOG_LEVEL: 'info', ...opts.env })
    .withWaitStrategy(opts.waitForHealthy ? Wait.forHealthCheck() : Wait.forLogMessage(LISTENING_LOG))
    .withStartupTimeout(60_000);
  if (opts.publish) c = c.withExposedPorts(SERVER_PORT);
  if (opts.network) c = c.withNetwork(opts.network);
  if (opts.aliases?.length) c = c.withNetworkAliases(...opts.aliases);
  if (opts.dataVolume) c = c.withBindMounts([{ source: opts.dataVolume, target: '/data', mode: 'rw' }]);
  return opts.resources.container(await c.start());
}

// ---- talking to a published port from the host -----------------------------------------------------

/**
 * What the seed client does: connect, send the request, ONE read (`recv(4096)`), close.
 * Resolves with the bytes of that single read (up to 4096), or '' if the server closed without data.
 */
export function sendOnce(port: number, request: string | Buffer, opts: { host?: string; timeoutMs?: number } = {}): Promise<string> {
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolvePromise, reject) => {
    const socket = net.connect(port, host);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${host}:${port} within ${opts.timeoutMs ?? 10_000} ms`));
    }, opts.timeoutMs ?? 10_000);
    socket.once('connect', () => socket.write(request));
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      resolvePromise(chunk.subarray(0, 4096).toString('utf8'));
    });
    socket.once('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolvePromise('');
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The seed client's request bytes (docs/protocol.md): `\r\n\n` after the last header, Content-Length in characters. */
export function seedRequest(method: string, url: string, body = ''): string {
  let host = '?';
  let path = '?';
  if (url.includes('/')) {
    const parts = url.split('/');
    host = parts[0] ?? '';
    path = parts[1] ?? '';
  }
  return (
    `${method} / HTTP/1.1\r\n` +
    `Host: ${host}/${path}\r\n` +
    'Content-Type: text/html\r\n' +
    'Connection: keep-alive\r\n' +
    `Content-Length: ${[...body].length}\r\n` +
    `\n${body}`
  );
}

export interface ParsedResponse {
  status: number;
  reason: string;
  headers: Record<string, string>;
  body: string;
}

/** Parse one HTTP/1.1 response (CRLF or the seed's `\r\n\n`), lenient about the blank line. */
export function parseResponse(text: string): ParsedResponse {
  const m = /\r?\n\r?\n/.exec(text);
  const head = m ? text.slice(0, m.index) : text;
  const body = m ? text.slice(m.index + m[0].length) : '';
  const [statusLine = '', ...lines] = head.split(/\r?\n/);
  const sm = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
  if (!sm) throw new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 200))}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(sm[1]), reason: sm[2] ?? '', headers, body };
}

// ---- cleanup ------------------------------------------------------------------------------------

/**
 * Tracks what a test file created, removes it (containers, then networks, then volumes), and checks
 * that none of it is left. Use one per file: `afterAll(() => res.cleanup())` plus a last test calling
 * `res.cleanup()` and `res.assertNothingLeft()`.
 */
export class DockerResources {
  readonly containers = new Set<string>();
  readonly networks = new Set<string>();
  readonly volumes = new Set<string>();
  readonly composeProjects = new Set<string>();
  private readonly started: Array<StartedTestContainer | StartedNetwork> = [];

  addContainer(idOrName: string): void {
    this.containers.add(idOrName);
  }
  addNetwork(idOrName: string): void {
    this.networks.add(idOrName);
  }
  addVolume(name: string): void {
    this.volumes.add(name);
  }
  addComposeProject(name: string): void {
    this.composeProjects.add(name);
  }
  /** Register a started testcontainers container; returns it. */
  container<T extends StartedTestContainer>(c: T): T {
    this.containers.add(c.getId());
    this.started.push(c);
    return c;
  }
  /** Register a started testcontainers network; returns it. */
  network(n: StartedNetwork): StartedNetwork {
    this.networks.add(n.getId());
    this.started.push(n);
    return n;
  }

  /** A fresh named volume, registered for removal. */
  async createVolume(prefix = 'tcpkv-test'): Promise<string> {
    const name = uniqueName(prefix);
    await dockerOk(['volume', 'create', '--label', 'org.tcpkv.test=true', name]);
    this.volumes.add(name);
    return name;
  }

  /** Remove everything tracked; never throws (errors are collected and returned). */
  async cleanup(): Promise<string[]> {
    const errors: string[] = [];
    for (const project of this.composeProjects) {
      for (const kind of ['container', 'network', 'volume'] as const) {
        const ids = (await docker([kind, 'ls', ...(kind === 'container' ? ['-a'] : []), '-q', '--filter', `label=com.docker.compose.project=${project}`])).stdout
          .split(/\s+/)
          .filter(Boolean);
        for (const id of ids) {
          if (kind === 'container') this.containers.add(id);
          else if (kind === 'network') this.networks.add(id);
          else this.volumes.add(id);
        }
      }
    }
    for (const id of this.containers) {
      const r = await docker(['rm', '-f', '-v', id]);
      if (r.code !== 0 && !/No such container/i.test(r.stderr)) errors.push(`container ${id}: ${r.stderr.trim()}`);
    }
    for (const id of this.networks) {
      const r = await docker(['network', 'rm', id]);
      if (r.code !== 0 && !/not found|No such network/i.test(r.stderr)) errors.push(`network ${id}: ${r.stderr.trim()}`);
    }
    for (const name of this.volumes) {
      const r = await docker(['volume', 'rm', '-f', name]);
      if (r.code !== 0 && !/No such volume/i.test(r.stderr)) errors.push(`volume ${name}: ${r.stderr.trim()}`);
    }
    return errors;
  }

  /** What of the tracked resources still exists (empty when all is clean). */
  async leftovers(): Promise<string[]> {
    const left: string[] = [];
    for (const id of this.containers) if ((await docker(['container', 'inspect', id])).code === 0) left.push(`container ${id}`);
    for (const id of this.networks) if ((await docker(['network', 'inspect', id])).code === 0) left.push(`network ${id}`);
    for (const name of this.volumes) if ((await docker(['volume', 'inspect', name])).code === 0) left.push(`volume ${name}`);
    for (const project of this.composeProjects) {
      const ps = (await docker(['ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${project}`])).stdout.trim();
      if (ps) left.push(`compose project ${project} containers: ${ps.replace(/\s+/g, ' ')}`);
      const nets = (await docker(['network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`])).stdout.trim();
      if (nets) left.push(`compose project ${project} networks: ${nets.replace(/\s+/g, ' ')}`);
      const vols = (await docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`])).stdout.trim();
      if (vols) left.push(`compose project ${project} volumes: ${vols.replace(/\s+/g, ' ')}`);
    }
    return left;
  }
}

// ---- whole-daemon snapshot (used by the globalSetup's final check) ---------------------------------

export interface DockerSnapshot {
  containers: string[];
  networks: string[];
  volumes: string[];
}

/** IDs of all containers (`docker ps -a`), networks (`docker network ls`) and volume names. */
export async function snapshot(): Promise<DockerSnapshot> {
  const list = async (args: string[]) => (await dockerOk(args)).split(/\s+/).filter(Boolean).sort();
  return {
    containers: await list(['ps', '-a', '-q', '--no-trunc']),
    networks: await list(['network', 'ls', '-q', '--no-trunc']),
    volumes: await list(['volume', 'ls', '-q']),
  };
}
