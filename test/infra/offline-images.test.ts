// The offline base images (infra/docker/offline-base.sh, for machines that reach no container
// registry): the build machine's CA bundle is trusted in the build-stage image only, never in the
// runtime image, and both say they are local builds not for publishing. The script is idempotent, so
// this builds them only where they do not exist yet.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { dockerOk } from '../support/docker.js';
import { repoRoot } from './lib/paths.js';

const RUNTIME = 'tcpkv/node-runtime:local';
const BUILD = 'tcpkv/node-base:local';
const CA = '/etc/ssl/certs/ca-certificates.crt';

interface ImageConfig { Env: string[] | null; Labels: Record<string, string> | null }
const config = async (image: string) => JSON.parse(await dockerOk(['image', 'inspect', '-f', '{{json .Config}}', image])) as ImageConfig;

describe('offline base images', () => {
  beforeAll(() => {
    const r = spawnSync(join(repoRoot, 'infra', 'docker', 'offline-base.sh'), [], { encoding: 'utf8', timeout: 300_000 });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
  }, 320_000);

  it('the runtime image has no CA bundle, no NODE_EXTRA_CA_CERTS and no npm cafile; labelled not for publishing', async () => {
    const c = await config(RUNTIME);
    expect((c.Env ?? []).some((e) => e.startsWith('NODE_EXTRA_CA_CERTS='))).toBe(false);
    expect(c.Labels?.['tcpkv.offline']).toBe('not-for-publishing');
    const files = await dockerOk(['run', '--rm', '--entrypoint', 'sh', RUNTIME, '-c', `ls ${CA} 2>&1; cat /usr/lib/node_modules/npm/npmrc`]);
    expect(files).toMatch(/No such file/);
    expect(files).not.toMatch(/cafile/);
  });

  it('the build-stage image adds the CA for npm and Node, and says it is for build stages only', async () => {
    const c = await config(BUILD);
    expect(c.Env).toContain(`NODE_EXTRA_CA_CERTS=${CA}`);
    expect(c.Labels).toMatchObject({ 'tcpkv.offline': 'not-for-publishing', 'tcpkv.offline.use': 'build-stages-only' });
  });

  it('the Dockerfiles start their runtime stage from RUNTIME_IMAGE, falling back to NODE_IMAGE', () => {
    for (const file of ['Dockerfile.server', 'Dockerfile.client']) {
      const text = readFileSync(join(repoRoot, file), 'utf8');
      const froms = [...text.matchAll(/^FROM (.+)$/gm)].map((m) => m[1]);
      expect(froms, file).toEqual(['${NODE_IMAGE} AS build', '${RUNTIME_IMAGE:-${NODE_IMAGE}}']);
      expect(text, file).toMatch(/^ARG RUNTIME_IMAGE=$/m);
    }
  });
});
