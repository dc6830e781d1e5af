// Issue 7, acceptance 5: infra/README.md read as a newcomer would — every command in its ```sh blocks
// exists and is spelled right: known programs only, terraform/compose/npm subcommands and flags that
// exist, outputs, files, services, client commands and script options that this repository has,
// directories that `cd` can enter. Nothing is executed except `bash -n` and the scripts' --help.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCompose } from './lib/compose.js';
import { cloudInitTemplate, repoRoot, terraformDir } from './lib/paths.js';
import { loadModule, type TerraformModule } from './lib/terraform.js';

const README = join(repoRoot, 'infra/README.md');
const text = readFileSync(README, 'utf8');

// ---- a small shell reader: enough for one-line commands with quotes, $(...), &&, ||, ;, | -------------

interface Command {
  words: string[];
  /** set for the command string given to ssh (it runs on the VM, in a copy of the repository) */
  remote?: boolean;
}

/** Splits a command line into simple commands; $(...) contents become commands of their own. */
function parseLine(line: string, remote = false): Command[] {
  const out: Command[] = [];
  let words: string[] = [];
  let word = '';
  let inWord = false;
  const endWord = () => {
    if (inWord) words.push(word);
    word = '';
    inWord = false;
  };
  const endCommand = () => {
    endWord();
    if (words.length) out.push({ words, ...(remote ? { remote } : {}) });
    words = [];
  };
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${line}`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      inWord = true;
      while (i < line.length && line[i] !== '"') {
        if (line.startsWith('$(', i)) {
          const end = matchParen(line, i + 1);
          out.push(...parseLine(line.slice(i + 2, end), remote));
          word += '$SUB';
          i = end + 1;
        } else {
          if (line[i] === '\\') i += 1;
          word += line[i];
          i += 1;
        }
      }
      if (i >= line.length) throw new Error(`unterminated " in: ${line}`);
      i += 1;
    } else if (line.startsWith('$(', i)) {
      const end = matchParen(line, i + 1);
      out.push(...parseLine(line.slice(i + 2, end), remote));
      word += '$SUB';
      inWord = true;
      i = end + 1;
    } else if (line.startsWith('&&', i) || line.startsWith('||', i)) {
      endCommand();
      i += 2;
    } else if (c === ';' || c === '|') {
      endCommand();
      i += 1;
    } else if (c === ' ' || c === '\t') {
      endWord();
      i += 1;
    } else if (c === '#' && !inWord) {
      break;
    } else {
      word += c;
      inWord = true;
      i += 1;
    }
  }
  endCommand();
  return out;
}

function matchParen(line: string, open: number): number {
  let depth = 0;
  let quote = '';
  for (let i = open; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '(') depth += 1;
    else if (c === ')' && --depth === 0) return i;
  }
  throw new Error(`unbalanced $( in: ${line}`);
}

// ---- what exists ---------------------------------------------------------------------------------

const KNOWN_PROGRAMS = new Set(['cd', 'cp', 'curl', 'openssl', 'terraform', 'docker', 'docker-compose', 'sleep', 'npm', 'node', 'git', 'ssh', 'scp', 'grep', 'cut', 'mkdir', 'tar', 'tcpkv-client']);
const SHELL_KEYWORDS = new Set(['until', 'while', 'do', 'done', 'then', 'fi', 'if', 'sudo']);
const TERRAFORM_SUBCOMMANDS = new Set(['init', 'plan', 'apply', 'output', 'destroy', 'validate', 'fmt', 'show']);
const COMPOSE_SUBCOMMANDS = new Set(['run', 'up', 'down', 'config', 'build', 'ps', 'logs', 'pull', 'stop', 'start']);
const CLIENT_SUBCOMMANDS = new Set(['scenario', 'get', 'head', 'create', 'update', 'shutdown', 'raw']);
const CLIENT_VALUE_FLAGS = new Set(['--server', '--target-host', '--token', '--timeout', '--dialect']);
const CLIENT_BOOL_FLAGS = new Set(['--json', '-h', '--help', '-v', '--version']);
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };

/** Paths written for the VM (/opt/tcpkv is the repository there) → paths in this repository. */
function localPath(p: string, cwd: string): string {
  if (p.startsWith('/opt/tcpkv/')) return join(repoRoot, p.slice('/opt/tcpkv/'.length));
  return resolve(cwd, p);
}

const helpFlags = new Map<string, Set<string>>();
function scriptFlags(script: string): Set<string> {
  let flags = helpFlags.get(script);
  if (!flags) {
    const r = spawnSync(script, ['--help'], { encoding: 'utf8' });
    expect(r.status, `${script} --help`).toBe(0);
    flags = new Set(r.stdout.match(/(?<=\s|\[)--?[a-zA-Z][\w-]*/g) ?? []);
    helpFlags.set(script, flags);
  }
  return flags;
}

interface Checker {
  tf: TerraformModule;
  cwd: string;
  problems: string[];
}

function checkClientArgs(args: string[], where: string, ck: Checker): void {
  let sub: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (CLIENT_VALUE_FLAGS.has(a)) i += 1;
    else if (CLIENT_BOOL_FLAGS.has(a)) continue;
    else if (a.startsWith('-')) ck.problems.push(`${where}: tcpkv-client has no option ${a}`);
    else if (!sub) {
      sub = a;
      if (!CLIENT_SUBCOMMANDS.has(a)) ck.problems.push(`${where}: tcpkv-client has no command ${a}`);
    }
  }
}

function checkTerraform(args: string[], where: string, ck: Checker): void {
  let dir = ck.cwd;
  let i = 0;
  if (args[0]?.startsWith('-chdir=')) {
    dir = localPath(args[0].slice('-chdir='.length), ck.cwd);
    i = 1;
  }
  if (resolve(dir) !== resolve(terraformDir)) ck.problems.push(`${where}: terraform runs in ${relative(repoRoot, dir) || '.'}, not infra/terraform/aws`);
  const sub = args[i];
  if (!sub || !TERRAFORM_SUBCOMMANDS.has(sub)) {
    ck.problems.push(`${where}: terraform has no subcommand ${sub}`);
    return;
  }
  for (const a of args.slice(i + 1)) {
    if (sub === 'output' && !a.startsWith('-') && !(a in ck.tf.output)) ck.problems.push(`${where}: no output ${a}`);
    const replace = /^-replace=(\w+)\.(\w+)$/.exec(a);
    if (replace && !ck.tf.resource[replace[1]!]?.[replace[2]!]) ck.problems.push(`${where}: no resource ${replace[1]}.${replace[2]}`);
    if (a.startsWith('-') && !/^-(raw|json|auto-approve|refresh-only|replace=.+|upgrade|var-file=.+)$/.test(a)) ck.problems.push(`${where}: unexpected terraform flag ${a}`);
  }
}

function checkCompose(args: string[], where: string, ck: Checker): void {
  let file: string | undefined;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-f' || a === '--file') file = localPath(args[++i]!, ck.cwd);
    else if (a === '-p' || a === '--project-name') i += 1;
    else if (a === '--env-file') {
      const envFile = args[++i]!;
      if (envFile.startsWith('/etc/')) {
        if (!readFileSync(cloudInitTemplate, 'utf8').includes(envFile)) ck.problems.push(`${where}: the bootstrap writes no ${envFile}`);
      } else if (!existsSync(localPath(envFile.replace(/\.env$/, '.env.example'), ck.cwd))) ck.problems.push(`${where}: no ${envFile}(.example)`);
    } else if (a.startsWith('-')) ck.problems.push(`${where}: unexpected compose option ${a}`);
    else break;
  }
  if (!file || !existsSync(file)) {
    ck.problems.push(`${where}: compose file ${file ?? '(none: give -f)'} does not exist`);
    return;
  }
  const sub = args[i];
  if (!sub || !COMPOSE_SUBCOMMANDS.has(sub)) {
    ck.problems.push(`${where}: compose has no subcommand ${sub}`);
    return;
  }
  const services = Object.keys((readCompose(file).services ?? {}) as object);
  if (sub === 'run') {
    let j = i + 1;
    while (args[j]?.startsWith('-')) j += args[j] === '-e' ? 2 : 1;
    const service = args[j];
    if (!service || !services.includes(service)) ck.problems.push(`${where}: ${relative(repoRoot, file)} has no service ${service}`);
    if (service === 'client') checkClientArgs(args.slice(j + 1), where, ck);
  }
}

function checkCommand(cmd: Command, where: string, ck: Checker): void {
  let words = [...cmd.words];
  while (words.length && (SHELL_KEYWORDS.has(words[0]!) || /^[A-Za-z_]\w*=/.test(words[0]!))) words = words.slice(1);
  if (!words.length) return;
  const [prog, ...args] = words as [string, ...string[]];
  if (prog.includes('/')) {
    const script = localPath(prog, ck.cwd);
    if (!existsSync(script)) {
      ck.problems.push(`${where}: ${prog} does not exist`);
      return;
    }
    try {
      accessSync(script, constants.X_OK);
    } catch {
      ck.problems.push(`${where}: ${prog} is not executable`);
    }
    if (script.endsWith('.sh')) {
      const flags = scriptFlags(script);
      for (const a of args) if (a.startsWith('-') && !flags.has(a)) ck.problems.push(`${where}: ${prog} has no option ${a}`);
    }
    return;
  }
  if (!KNOWN_PROGRAMS.has(prog)) {
    ck.problems.push(`${where}: unknown program ${prog}`);
    return;
  }
  switch (prog) {
    case 'cd': {
      const target = cmd.remote && args[0] === 'tcpkv' ? repoRoot : localPath(args[0] ?? '.', ck.cwd);
      if (!existsSync(target) || !statSync(target).isDirectory()) ck.problems.push(`${where}: cannot cd to ${args[0]}`);
      else ck.cwd = target;
      break;
    }
    case 'cp':
    case 'scp':
      if (!existsSync(localPath(args[0]!, ck.cwd)) && !existsSync(localPath(`${args[0]!}.example`, ck.cwd))) ck.problems.push(`${where}: ${prog} source ${args[0]} does not exist`);
      break;
    case 'terraform':
      checkTerraform(args, where, ck);
      break;
    case 'docker':
      if (args[0] === 'compose') checkCompose(args.slice(1), where, ck);
      else if (!['ps', 'logs', 'info'].includes(args[0] ?? '')) ck.problems.push(`${where}: unexpected docker ${args[0]}`);
      break;
    case 'docker-compose':
      checkCompose(args, where, ck);
      break;
    case 'node': {
      const js = args[0] ?? '';
      if (relative(repoRoot, localPath(js, ck.cwd)) !== pkg.bin['tcpkv-client']) ck.problems.push(`${where}: ${js} is not the tcpkv-client entry (${pkg.bin['tcpkv-client']})`);
      checkClientArgs(args.slice(1), where, ck);
      break;
    }
    case 'tcpkv-client':
      checkClientArgs(args, where, ck);
      break;
    case 'npm':
      if (args[0] === 'run' && !(args[1]! in pkg.scripts)) ck.problems.push(`${where}: no npm script ${args[1]}`);
      else if (!['ci', 'install', 'test', 'run'].includes(args[0] ?? '')) ck.problems.push(`${where}: unexpected npm ${args[0]}`);
      break;
    case 'git':
      if (!['archive', 'clone', 'push'].includes(args[0] ?? '')) ck.problems.push(`${where}: unexpected git ${args[0]}`);
      break;
    case 'ssh': {
      const last = args[args.length - 1] ?? '';
      if (args.length >= 2 && last.includes(' ')) {
        const saved = ck.cwd;
        for (const inner of parseLine(last, true)) checkCommand(inner, `${where} (on the VM)`, ck);
        ck.cwd = saved;
      }
      break;
    }
    default:
      break;
  }
}

// ---- the tests -----------------------------------------------------------------------------------

interface Block {
  lang: string;
  body: string;
  line: number;
}

const blocks: Block[] = [...text.matchAll(/^( *)```(\w*)\n([\s\S]*?)^\1```$/gm)].map((m) => ({
  lang: m[2]!,
  body: m[3]!.replace(new RegExp(`^${m[1]}`, 'gm'), ''),
  line: text.slice(0, m.index).split('\n').length,
}));
const shBlocks = blocks.filter((b) => b.lang === 'sh');

describe('infra/README.md: every command exists and is spelled right', () => {
  let tf: TerraformModule;

  beforeAll(async () => {
    tf = await loadModule(terraformDir);
  });

  it('has the walkthrough, the SSH route and the diagram', () => {
    expect(shBlocks.length).toBeGreaterThanOrEqual(8);
    expect(text).toMatch(/terraform apply/);
    expect(text).toMatch(/destroy/);
    expect(text).toMatch(/deploy-ssh\.sh/);
    expect(text).toMatch(/What it costs/);
    expect(blocks.some((b) => b.lang === 'text' && b.body.includes('TCPKV_BIND=0.0.0.0') && b.body.includes('security group'))).toBe(true);
  });

  it.each(shBlocks.map((b) => [b.line, b]))('the sh block at line %i is valid bash (bash -n)', (_line, block) => {
    const r = spawnSync('bash', ['-n'], { input: block.body, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('every command in the sh blocks, in order (cd included), names what exists', () => {
    const ck: Checker = { tf, cwd: repoRoot, problems: [] };
    for (const block of shBlocks) {
      // Each block starts where the text says: at the repository root unless an earlier block cd'd away.
      block.body.split('\n').forEach((line, k) => {
        if (!line.trim()) return;
        for (const cmd of parseLine(line)) checkCommand(cmd, `README line ${block.line + 1 + k}`, ck);
      });
    }
    expect(ck.problems).toEqual([]);
  });

  it('the paths it names exist (repository files, or what the bootstrap writes on the VM)', () => {
    const problems: string[] = [];
    const template = readFileSync(cloudInitTemplate, 'utf8');
    for (const m of text.matchAll(/(?<![\w/.-])((?:infra|test|services)\/[\w./-]*\w|Dockerfile\.\w+)/g)) {
      const p = m[1]!;
      if (p === 'infra/remote/.env') continue; // the reader creates it from .env.example
      if (!existsSync(join(repoRoot, p))) problems.push(p);
    }
    for (const m of text.matchAll(/(\/(?:opt|etc|var)\/[\w./-]*\w)/g)) {
      const p = m[1]!;
      if (p.startsWith('/opt/tcpkv/')) {
        if (!existsSync(join(repoRoot, p.slice('/opt/tcpkv/'.length)))) problems.push(p);
      } else if (!template.includes(p)) problems.push(`${p} (not written by the bootstrap)`);
    }
    expect(problems).toEqual([]);
  });

  it('the Terraform names it uses are variables, outputs or resources of the module', () => {
    const known = new Set([...Object.keys(tf.variable), ...Object.keys(tf.output)]);
    const problems: string[] = [];
    for (const m of text.matchAll(/`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`/g)) {
      if (!known.has(m[1]!)) problems.push(m[1]!);
    }
    for (const m of text.matchAll(/output -raw (\w+)/g)) if (!(m[1]! in tf.output)) problems.push(`output ${m[1]}`);
    expect(problems).toEqual([]);
  });

  it('the TCPKV_* settings it names exist in the product or the compose files', () => {
    const sources = [
      ...readdirSync(join(repoRoot, 'services'), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => readFileSync(join(repoRoot, 'services', f), 'utf8')),
      readFileSync(join(repoRoot, 'infra/remote/server.compose.yml'), 'utf8'),
      readFileSync(join(repoRoot, 'infra/remote/client.compose.yml'), 'utf8'),
    ].join('\n');
    const unknown = [...new Set(text.match(/TCPKV_[A-Z_]+/g))].filter((name) => !sources.includes(name));
    expect(unknown).toEqual([]);
  });

  it('the checker itself catches misspellings (so a pass means something)', () => {
    for (const line of [
      'terrafrom apply',
      'terraform -chdir=infra/terraform/aws output -raw no_such_output',
      'TCPKV_SERVER=x:1 docker compose -f infra/remote/client.compose.yml run --rm client scenaro',
      'docker compose -f infra/remote/nope.yml up -d',
      'infra/remote/deploy-ssh.sh --no-such-flag u@h',
      'node dist/services/client/cli.js --sever x:1 get',
      'cd infra/terraform/gcp',
      'npm run no-such-script',
    ]) {
      const ck: Checker = { tf, cwd: repoRoot, problems: [] };
      for (const cmd of parseLine(line)) checkCommand(cmd, line, ck);
      expect(ck.problems.length, line).toBeGreaterThanOrEqual(1);
    }
  });
});
