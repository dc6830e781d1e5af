// The GitHub workflows cannot run here, so they are checked offline: against the workflow schema
// (@action-validator/core, the validator behind the action-validator CLI), and for what matters in
// them — actions pinned by commit SHA, least-privilege permissions, the release's tag trigger and image
// names. Deliberately broken copies must fail the same check, so the check can fail.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateWorkflow } from '@action-validator/core';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from '../support/net.js';

type Permissions = Record<string, string> | string | undefined;
interface Step { uses?: string; run?: string; with?: Record<string, unknown>; id?: string }
interface Job { permissions?: Permissions; steps?: Step[]; strategy?: { matrix?: Record<string, unknown[]> }; needs?: string | string[] }
interface Workflow { on?: Record<string, unknown>; permissions?: Permissions; jobs?: Record<string, Job> }

const read = (name: string) => readFileSync(join(ROOT, '.github', 'workflows', name), 'utf8');

/** Every `uses:` pinned to a full commit SHA, with the release tag in a comment. */
function pinProblems(text: string): string[] {
  const problems: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*-?\s*uses:\s*(\S+)(.*)$/.exec(line);
    if (!m) continue;
    if (!/^[\w.-]+\/[\w.-]+(\/[\w./-]+)?@[0-9a-f]{40}$/.test(m[1]!)) problems.push(`not pinned by commit SHA: ${m[1]}`);
    else if (!/#\s*v\d+\.\d+\.\d+/.test(m[2]!)) problems.push(`no release tag comment: ${m[1]}`);
  }
  return problems;
}

const WRITE_SCOPES_ALLOWED: Record<string, Record<string, string>> = {
  // job → the write scopes it may hold; everything else read or none
  images: { packages: 'write' },
  npm: { 'id-token': 'write' },
  'github-release': { contents: 'write' },
};

/** What the release workflow must hold; [] when it does. */
function releaseProblems(text: string): string[] {
  const problems: string[] = [];
  const schema = validateWorkflow(text) as { errors: unknown[] };
  if (schema.errors.length > 0) problems.push(`schema: ${JSON.stringify(schema.errors).slice(0, 300)}`);
  problems.push(...pinProblems(text));
  const wf = parse(text) as Workflow;
  const push = wf.on?.push as { tags?: string[]; branches?: unknown } | undefined;
  if (JSON.stringify(push?.tags) !== '["v*"]' || Object.keys(wf.on ?? {}).length !== 1) problems.push('trigger: only a push of v* tags');
  if (JSON.stringify(wf.permissions) !== '{}') problems.push('top-level permissions must be {} (each job asks for its own)');
  for (const [name, job] of Object.entries(wf.jobs ?? {})) {
    if (typeof job.permissions !== 'object') {
      problems.push(`${name}: no permissions block`);
      continue;
    }
    for (const [scope, level] of Object.entries(job.permissions)) {
      if (level === 'write' && WRITE_SCOPES_ALLOWED[name]?.[scope] !== 'write') problems.push(`${name}: ${scope}: write is more than it needs`);
    }
    for (const step of job.steps ?? []) {
      if (step.run?.includes('${{')) problems.push(`${name}: an expression inside run: (pass it through env)`);
    }
  }
  const images = wf.jobs?.images;
  if (JSON.stringify(images?.strategy?.matrix?.image) !== '["server","client"]') problems.push('images: matrix of server and client');
  const meta = images?.steps?.find((s) => s.uses?.startsWith('docker/metadata-action@'));
  if (meta?.with?.images !== 'ghcr.io/${{ steps.owner.outputs.owner }}/tcpkv-${{ matrix.image }}') problems.push('images: named ghcr.io/<owner>/tcpkv-server|client');
  const build = images?.steps?.find((s) => s.uses?.startsWith('docker/build-push-action@'))?.with ?? {};
  if (!String(build.platforms).includes('linux/amd64') || !String(build.platforms).includes('linux/arm64')) problems.push('images: linux/amd64 and linux/arm64');
  if (build.sbom !== true || !String(build.provenance).startsWith('mode=')) problems.push('images: provenance and SBOM');
  if (build.labels !== '${{ steps.meta.outputs.labels }}') problems.push("images: metadata-action's labels");
  if (build.push !== true) problems.push('images: pushed');
  const publish = wf.jobs?.npm?.steps?.find((s) => s.run?.startsWith('npm publish'));
  if (!publish?.run?.includes('--provenance')) problems.push('npm: publish --provenance');
  if (!wf.jobs?.['github-release']?.steps?.some((s) => s.run?.includes('gh release create'))) problems.push('github-release: creates the release');
  return problems;
}

function ciProblems(text: string): string[] {
  const problems: string[] = [];
  const schema = validateWorkflow(text) as { errors: unknown[] };
  if (schema.errors.length > 0) problems.push(`schema: ${JSON.stringify(schema.errors).slice(0, 300)}`);
  problems.push(...pinProblems(text));
  const wf = parse(text) as Workflow;
  if (JSON.stringify(wf.permissions) !== '{"contents":"read"}') problems.push('permissions: contents: read only');
  if (JSON.stringify(wf.jobs?.unit?.strategy?.matrix?.node) !== '["22","24"]') problems.push('unit: Node 22 and 24');
  const runs = (job?: Job) => (job?.steps ?? []).map((s) => s.run ?? '').join('\n');
  for (const needed of ['npm run lint', 'vitest run --project unit']) if (!runs(wf.jobs?.unit).includes(needed)) problems.push(`unit: ${needed}`);
  if (!runs(wf.jobs?.containers).includes('vitest run --project docker')) problems.push('containers: the docker project');
  return problems;
}

describe('.github/workflows', () => {
  it('release.yml validates and holds: v* tags, least privilege, GHCR images with labels, provenance and SBOM, npm provenance', () => {
    expect(releaseProblems(read('release.yml'))).toEqual([]);
  });

  it('ci.yml validates and holds: read-only, lint and unit on Node 22 and 24, containers on Docker', () => {
    expect(ciProblems(read('ci.yml'))).toEqual([]);
  });

  it('a broken workflow fails: schema errors, a tag pin, extra permissions, a branch trigger, wrong image names', () => {
    const release = read('release.yml');
    const ci = read('ci.yml');
    const broken: [string, string, (t: string) => string[]][] = [
      ['misspelt key', release.replace('runs-on: ubuntu-24.04', 'run-on: ubuntu-24.04'), releaseProblems],
      ['unknown permission level', release.replace('packages: write', 'packages: writ'), releaseProblems],
      ['pinned by tag', release.replace(/actions\/checkout@[0-9a-f]{40}/, 'actions/checkout@v7'), releaseProblems],
      ['write-all', release.replace('permissions: {}', 'permissions: write-all'), releaseProblems],
      ['contents: write in the image job', release.replace('      contents: read\n      packages: write', '      contents: write\n      packages: write'), releaseProblems],
      ['on every push', release.replace("    tags: ['v*']", '    branches: [main]'), releaseProblems],
      ['image name', release.replace('/tcpkv-${{ matrix.image }}', '/${{ matrix.image }}'), releaseProblems],
      ['no SBOM', release.replace('sbom: true', 'sbom: false'), releaseProblems],
      ['CI on Node 20', ci.replace("node: ['22', '24']", "node: ['20', '22']"), ciProblems],
      ['CI timeout not a number', ci.replace('    timeout-minutes: 30\n', '    timeout-minutes: thirty\n'), ciProblems],
    ];
    for (const [what, text, check] of broken) {
      expect(text, what).not.toBe(what.startsWith('CI') ? ci : release);
      const found = check(text);
      expect(found.length, what).toBeGreaterThan(0);
    }
  });
});
