// The npm package as a user gets it: `npm pack` of a copy of the sources (the `prepack` build runs
// there, so nothing stale from this tree's dist/ can slip in), then `npm install -g` of the tarball into
// temporary prefixes — once with everything, once client-only (--omit=optional) — both bins run,
// and a TypeScript consumer compiles against the installed declarations and talks to the installed server.

import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ROOT } from '../support/net.js';

const run = promisify(execFile);
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const QUIET = ['--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline'];

/** Bytes of every file under dir (symlinks not followed). */
function treeBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += treeBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

let work: string;
let tarball: string;
let packed: { files: { path: string }[]; size: number; unpackedSize: number };

/** `npm install -g` into a prefix: the package in <prefix>/lib/node_modules/tcpkv, the bins in <prefix>/bin. */
async function installGlobal(prefix: string): Promise<string> {
  await run('npm', ['install', '--global', '--prefix', prefix, ...QUIET, tarball], { cwd: work, timeout: 240_000 });
  return join(prefix, 'lib', 'node_modules', 'tcpkv');
}

/**
 * A project's client-only install (`npm install tcpkv --omit=optional`): dependencies flat in
 * <project>/node_modules, the bins in node_modules/.bin. (npm ignores --omit together with --global
 * and a tarball, npm/cli#8284, so the client-only install is the project kind.)
 */
async function installClientOnly(project: string): Promise<string> {
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), '{ "name": "consumer", "private": true }\n');
  await run('npm', ['install', '--omit=optional', ...QUIET, tarball], { cwd: project, timeout: 240_000 });
  return join(project, 'node_modules');
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tcpkv-package-'));
  const src = join(work, 'src');
  mkdirSync(join(src, 'scripts'), { recursive: true });
  for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.package.json', 'LICENSE', 'README.md', 'CHANGELOG.md']) {
    cpSync(join(ROOT, file), join(src, file));
  }
  cpSync(join(ROOT, 'scripts', 'build-package.mjs'), join(src, 'scripts', 'build-package.mjs'));
  cpSync(join(ROOT, 'services'), join(src, 'services'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work, '--loglevel=error'], { cwd: src, timeout: 240_000 });
  const [info] = JSON.parse(stdout) as [typeof packed & { filename: string }];
  packed = info;
  tarball = join(work, info.filename);
}, 300_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('holds the compiled code, its declarations, LICENSE, README and CHANGELOG, and no source maps or sources', () => {
    const paths = packed.files.map((f) => f.path).sort();
    for (const path of paths) {
      expect(path, path).toMatch(/^(dist\/services\/.+\.(js|d\.ts)|package\.json|LICENSE|README\.md|CHANGELOG\.md)$/);
    }
    for (const needed of [
      'LICENSE',
      'README.md',
      'CHANGELOG.md',
      'dist/services/server/main.js',
      'dist/services/client/cli.js',
      'dist/services/client/client.js',
      'dist/services/client/client.d.ts',
      'dist/services/protocol/errors.d.ts',
    ]) {
      expect(paths).toContain(needed);
    }
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} tcpkv contributors\n/);
    console.log(`tarball: ${paths.length} files, ${mb(packed.size)} packed, ${mb(packed.unpackedSize)} unpacked`);
  });
});

describe('installed from the tarball', () => {
  let full: string;
  let clientOnly: string;
  const fullPrefix = () => join(work, 'full');
  const clientProject = () => join(work, 'client-only');

  beforeAll(async () => {
    full = await installGlobal(fullPrefix());
    clientOnly = await installClientOnly(clientProject());
    console.log(
      `installed size: ${mb(treeBytes(full))} with the optional etcd client (npm install -g), ${mb(treeBytes(clientOnly))} client-only (--omit=optional)`,
    );
  }, 600_000);

  it('puts both bins on PATH; --version is package.json version, --help answers', async () => {
    for (const binDir of [join(fullPrefix(), 'bin'), join(clientOnly, '.bin')]) {
      for (const bin of ['tcpkv-server', 'tcpkv-client']) {
        const path = join(binDir, bin);
        expect(lstatSync(path).isSymbolicLink()).toBe(true);
        const version = await run(path, ['--version']);
        expect(version.stdout.trim()).toBe(VERSION);
        const help = await run(path, ['--help']);
        expect(help.stdout).toMatch(new RegExp(`Usage: ${bin}`));
      }
    }
  });

  it('client-only: no gRPC or protobuf, smaller, and the etcd store refuses in one line (exit 2)', async () => {
    const deps = readdirSync(clientOnly);
    expect(deps).not.toContain('etcd3');
    expect(deps).not.toContain('@grpc');
    expect(deps).not.toContain('protobufjs');
    expect(readdirSync(join(full, 'node_modules'))).toContain('etcd3');
    expect(treeBytes(clientOnly)).toBeLessThan(treeBytes(full) / 2);

    const child = spawn(join(clientOnly, '.bin', 'tcpkv-server'), [], {
      env: { ...process.env, TCPKV_ETCD_ENDPOINTS: 'http://127.0.0.1:1', TCPKV_PORT: '0', TCPKV_BIND: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: work,
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/TCPKV_ETCD_ENDPOINTS needs the optional package etcd3/);
  });

  it('a TypeScript consumer compiles against the installed types and talks to the installed server', async () => {
    const consumer = join(fullPrefix(), 'lib', 'consumer');
    mkdirSync(consumer, { recursive: true });
    writeFileSync(join(consumer, 'package.json'), '{ "type": "module" }\n');
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false,
          typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'], outDir: 'out',
        },
        files: ['main.ts'],
      }),
    );
    writeFileSync(
      join(consumer, 'main.ts'),
      [
        "import { TcpkvClient, formatAnswer, parseServerList, type Answer } from 'tcpkv';",
        "import { ProtocolErrors } from 'tcpkv/protocol/errors';",
        "const client = new TcpkvClient({ servers: parseServerList(process.argv[2] ?? ''), dialect: 'standard', timeoutMs: 5000 });",
        "const created: Answer = await client.send({ method: 'POST', path: 'create', body: 'ID: 20182793' });",
        "const listed = await client.send({ method: 'GET', path: '' });",
        'process.stdout.write(formatAnswer(created) + formatAnswer(listed) + Object.keys(ProtocolErrors).length);',
        '',
      ].join('\n'),
    );
    await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', consumer], { cwd: consumer });

    const port = await freePort();
    const server = spawn(join(fullPrefix(), 'bin', 'tcpkv-server'), [], {
      env: { ...process.env, TCPKV_PORT: String(port), TCPKV_BIND: '127.0.0.1', TCPKV_DATA_DIR: '', TCPKV_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
      cwd: work,
    });
    try {
      let out = '';
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          out = (await run(process.execPath, [join(consumer, 'out', 'main.js'), `127.0.0.1:${port}`])).stdout;
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect(out).toMatch(/^200 OK\n/);
      expect(out).toContain('ID:20182793');
    } finally {
      server.kill('SIGTERM');
    }
  });
});
