// The package build behind `prepare` and `prepack`: compiled JavaScript and type declarations in dist/,
// no source maps (the sources do not ship). `npm install -g .` in a fresh clone runs `prepare` before
// anything is installed in the clone, so the build tools are installed here first (without scripts,
// and as a plain local install, not with the global install's prefix).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');

if (!existsSync(tsc)) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^npm_config_(global|location|prefix|omit|production|only|install_links)$/i.test(name)),
  );
  const npmCli = process.env.npm_execpath;
  const [command, args] = npmCli ? [process.execPath, [npmCli]] : ['npm', []];
  console.error('tcpkv: installing the build tools in this clone (npm install --ignore-scripts)');
  execFileSync(command, [...args, 'install', '--ignore-scripts', '--include=dev', '--no-audit', '--no-fund'], { cwd: repo, env, stdio: 'inherit' });
}
execFileSync(process.execPath, [tsc, '-p', join(repo, 'tsconfig.package.json')], { cwd: repo, stdio: 'inherit' });
