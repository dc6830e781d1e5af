// globalSetup of the `docker` vitest project (see vitest.config.ts).
//
// 1. Docker must answer: if it does not, this throws — the container tests are never skipped
//    (in CI a missing Docker is a failure; .ci/run installs and starts it).
// 2. TESTCONTAINERS_RYUK_DISABLED=true: the reaper image cannot be pulled where no registry is
//    reachable, so the tests clean up after themselves instead.
// 3. Builds tcpkv/server:local and tcpkv/client:local once from Dockerfile.server/Dockerfile.client,
//    with NODE_IMAGE from the environment (default: tcpkv/node-base:local if that image exists here,
//    else node:24-bookworm-slim). The build log goes to test-results/docker-build.log.
// 4. The "VM" image of the remote recipe's end-to-end test (tcpkv/vm:local): built by
//    scripts/ensure-docker.sh --tests (as .ci/run calls it); when it is missing, built here with
//    infra/docker/offline-vm.sh (needs root and debootstrap; log in test-results/docker-build.log).
// 5. Teardown: fails the run if containers, networks or volumes created during it are still there.

import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  CLIENT_IMAGE,
  REPO_ROOT,
  SERVER_IMAGE,
  buildImage,
  dockerAnswers,
  imageExists,
  runStreaming,
  resolveNodeImage,
  snapshot,
  docker,
  type DockerSnapshot,
} from './docker.js';
import { VM_IMAGE } from './docker-vm.js';

declare module 'vitest' {
  export interface ProvidedContext {
    tcpkvNodeImage: string;
    tcpkvServerImage: string;
    tcpkvClientImage: string;
  }
}

let before: DockerSnapshot | undefined;

export async function setup(project: TestProject): Promise<void> {
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';

  if (!(await dockerAnswers())) {
    throw new Error(
      'Docker is not reachable (`docker info` failed). The docker test project needs a running dockerd: ' +
        'start it (e.g. `setsid dockerd >/tmp/dockerd.log 2>&1 &`) or run .ci/run, which installs and starts it. ' +
        'These tests are never skipped.',
    );
  }

  const nodeImage = await resolveNodeImage();
  process.env.NODE_IMAGE = nodeImage;
  // the images' version label: package.json's version, for the images compose builds in the tests too
  process.env.IMAGE_VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const logDir = join(REPO_ROOT, 'test-results');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, 'docker-build.log');
  writeFileSync(logFile, `NODE_IMAGE=${nodeImage}\n`);
  const log = (chunk: string) => appendFileSync(logFile, chunk);

  const started = Date.now();
  for (const [dockerfile, tag] of [
    ['Dockerfile.server', SERVER_IMAGE],
    ['Dockerfile.client', CLIENT_IMAGE],
  ] as const) {
    log(`\n=== docker build -f ${dockerfile} -t ${tag} (NODE_IMAGE=${nodeImage})\n`);
    try {
      await buildImage(dockerfile, tag, nodeImage, log);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}; see ${logFile}.` +
          (nodeImage === 'node:24-bookworm-slim'
            ? ' If no registry is reachable, build the local base first: infra/docker/offline-base.sh, or set NODE_IMAGE.'
            : ''),
        { cause: error },
      );
    }
  }
  log(`\nbuilt both images in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

  if (!(await imageExists(VM_IMAGE))) {
    log(`\n=== infra/docker/offline-vm.sh (${VM_IMAGE})\n`);
    const code = await runStreaming(join(REPO_ROOT, 'infra/docker/offline-vm.sh'), [], {
      env: { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` },
      onOutput: log,
    });
    if (code !== 0) throw new Error(`infra/docker/offline-vm.sh exited with ${code} (it needs root and debootstrap); see ${logFile}`);
  }

  project.provide('tcpkvNodeImage', nodeImage);
  project.provide('tcpkvServerImage', SERVER_IMAGE);
  project.provide('tcpkvClientImage', CLIENT_IMAGE);

  // Dangling images from rebuilds are not "left behind" by tests; containers, networks, volumes are.
  before = await snapshot();
}

/** Labels that mark what tests create: testcontainers' own, the tests' volumes, and their compose projects. */
function isTestResource(labels: Record<string, string> | null | undefined): boolean {
  if (!labels) return false;
  return (
    labels['org.testcontainers'] === 'true' ||
    labels['org.tcpkv.test'] === 'true' ||
    (labels['com.docker.compose.project'] ?? '').startsWith('tcpkvtest')
  );
}

export async function teardown(): Promise<void> {
  if (!before) return;
  const prior = before;
  // Removals in flight (docker rm of an exited container) can lag a moment behind the last test.
  let created: DockerSnapshot = { containers: [], networks: [], volumes: [] };
  for (let attempt = 0; attempt < 10; attempt++) {
    const after = await snapshot();
    created = {
      containers: after.containers.filter((id) => !prior.containers.includes(id)),
      networks: after.networks.filter((id) => !prior.networks.includes(id)),
      volumes: after.volumes.filter((id) => !prior.volumes.includes(id)),
    };
    if (created.containers.length + created.networks.length + created.volumes.length === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  // In CI nothing else uses this dockerd: everything new was made by the tests. On a shared development
  // machine, only resources carrying the tests' labels count; the rest is reported, not failed.
  const strict = Boolean(process.env.CI) && process.env.CI !== 'false';
  const left: string[] = [];
  const foreign: string[] = [];
  for (const [kind, ids] of [
    ['container', created.containers],
    ['network', created.networks],
    ['volume', created.volumes],
  ] as const) {
    for (const id of ids) {
      const r = await docker([kind, 'inspect', '--format', kind === 'container' ? '{{json .Config.Labels}}|{{.Name}} {{.Config.Image}} {{.State.Status}}' : '{{json .Labels}}|{{.Name}}', id]);
      if (r.code !== 0) continue; // gone meanwhile
      const [labelsJson = 'null', what = ''] = r.stdout.trim().split('|');
      const line = `${kind} ${id.slice(0, 12)} ${what}`;
      if (strict || isTestResource(JSON.parse(labelsJson) as Record<string, string> | null)) left.push(line);
      else foreign.push(line);
    }
  }
  if (foreign.length > 0) {
    console.warn(`docker: created during the run by something other than these tests (ignored outside CI):\n  ${foreign.join('\n  ')}`);
  }
  if (left.length > 0) {
    throw new Error(`docker tests left resources behind:\n  ${left.join('\n  ')}`);
  }
}
