// The README and every page of docs/ read as a newcomer would — every command in their ```sh blocks
// exists and is spelled right: known programs only, terraform/compose/npm subcommands and flags that
// exist, outputs, files, services, client and server commands and options, script options, npm
// scripts, directories that `cd` can enter; every TCPKV_* name is a real setting; every path and link
// leads somewhere in the repository; nothing refers to what a user of the repository does not have.
// Nothing is executed except `bash -n` and the programs' --help.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCompose } from './lib/compose.js';
import { cloudInitTemplate, repoRoot, terraformDir } from './lib/paths.js';
import { loadModule, type TerraformModule } from './lib/terraform.js';

const REMOTE_VM = join(repoRoot, 'docs/remote-vm.md');
const text = readFileSync(REMOTE_VM, 'utf8');
/** The documents a user reads: the README, infra/README.md and every page of docs/. */
const DOCUMENTS = ['README.md', 'infra/README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];

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
    } else if (c === ';' || c === '|' || c === '&') {
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

const KNOWN_PROGRAMS = new Set([
  'cd', 'cp', 'curl', 'openssl', 'terraform', 'docker', 'docker-compose', 'sleep', 'npm', 'node', 'git', 'ssh', 'scp', 'grep',
  'cut', 'mkdir', 'tar', 'tcpkv-client', 'tcpkv-server', 'printf', 'etcdctl', 'head', 'echo', 'cat', 'kill', 'id', 'seq',
  'umask', 'command', 'systemctl', 'journalctl', 'sha256sum',
]);
/** Commands that start with these are shell control, not programs: `for i in $(seq 30)`, `break`. */
const SHELL_CONTROL = new Set(['for', 'break']);
const SHELL_KEYWORDS = new Set(['until', 'while', 'do', 'done', 'then', 'fi', 'if', 'sudo']);
const TERRAFORM_SUBCOMMANDS = new Set(['init', 'plan', 'apply', 'output', 'destroy', 'validate', 'fmt', 'show']);
const COMPOSE_SUBCOMMANDS = new Set(['run', 'up', 'down', 'config', 'build', 'ps', 'logs', 'pull', 'stop', 'start']);
const DOCKER_SUBCOMMANDS = new Set(['ps', 'logs', 'info', 'run', 'build', 'pull', 'stop', 'rm', 'inspect', 'exec', 'kill', 'image', 'volume', 'network']);
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
  bin: Record<string, string>;
};

/** A program's options from its --help: value options (`--x <v>`) and the others. */
function helpOptions(args: string[]): { value: Set<string>; bool: Set<string>; commands: Set<string> } {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  const value = new Set<string>();
  const bool = new Set<string>();
  const commands = new Set<string>();
  let section = '';
  for (const line of r.stdout.split('\n')) {
    if (/^\S/.test(line)) section = line;
    const opt = /^ {2}((?:-\w, )?--?[\w-]+)(\s+<[^>]*>|\s+\[[^\]]*\])?/.exec(line);
    if (section.startsWith('Options') && opt) {
      for (const name of opt[1]!.split(', ')) (opt[2]?.trim().startsWith('<') ? value : bool).add(name);
    }
    const cmd = /^ {2}([a-z][\w-]*)\b/.exec(line);
    if (section.startsWith('Commands') && cmd) commands.add(cmd[1]!);
  }
  return { value, bool, commands };
}
const CLIENT_BIN = join(repoRoot, pkg.bin['tcpkv-client']!);
const SERVER_BIN = join(repoRoot, pkg.bin['tcpkv-server']!);
let clientHelp: ReturnType<typeof helpOptions> | undefined;
const commandHelp = new Map<string, ReturnType<typeof helpOptions>>();
function clientOptions(command?: string): ReturnType<typeof helpOptions> {
  clientHelp ??= helpOptions([CLIENT_BIN, '--help']);
  if (!command) return clientHelp;
  let h = commandHelp.get(command);
  if (!h) {
    h = helpOptions([CLIENT_BIN, command, '--help']);
    commandHelp.set(command, h);
  }
  return h;
}
let serverHelp: ReturnType<typeof helpOptions> | undefined;

/** Paths written for the VM (/opt/tcpkv is the repository there) → paths in this repository. */
function localPath(p: string, cwd: string): string {
  if (p.startsWith('/opt/tcpkv/')) return join(repoRoot, p.slice('/opt/tcpkv/'.length));
  return resolve(cwd, p);
}

const helpFlags = new Map<string, Set<string>>();
function scriptFlags(script: string): Set<string> {
  let flags = helpFlags.get(script);
  if (!flags) {
    // only a script that handles --help is asked (any other would simply run)
    if (!/--help\)/.test(readFileSync(script, 'utf8'))) {
      flags = new Set<string>();
      helpFlags.set(script, flags);
      return flags;
    }
    const r = spawnSync(script, ['--help'], { encoding: 'utf8', timeout: 20_000 });
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
  const main = clientOptions();
  let sub: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!.replace(/=.*$/, '');
    // after `--` come the words of the command `lock` runs, not the client's
    if (a === '--') return;
    const here = sub ? clientOptions(sub) : main;
    if (main.value.has(a) || here.value.has(a)) i += args[i]!.includes('=') ? 0 : 1;
    else if (main.bool.has(a) || here.bool.has(a)) continue;
    else if (a.startsWith('-')) ck.problems.push(`${where}: tcpkv-client${sub ? ` ${sub}` : ''} has no option ${a}`);
    else if (!sub) {
      sub = a;
      if (!main.commands.has(a)) {
        ck.problems.push(`${where}: tcpkv-client has no command ${a}`);
        return;
      }
    }
  }
}

function checkServerArgs(args: string[], where: string, ck: Checker): void {
  serverHelp ??= helpOptions([SERVER_BIN, '--help']);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!.replace(/=.*$/, '');
    if (serverHelp.value.has(a)) i += args[i]!.includes('=') ? 0 : 1;
    else if (!serverHelp.bool.has(a)) ck.problems.push(`${where}: tcpkv-server has no option ${a}`);
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
  if (!words.length || SHELL_CONTROL.has(words[0]!)) return;
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
    if (script.endsWith('.sh') || script.endsWith('/run')) {
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
      else if (!DOCKER_SUBCOMMANDS.has(args[0] ?? '')) ck.problems.push(`${where}: unexpected docker ${args[0]}`);
      break;
    case 'docker-compose':
      checkCompose(args, where, ck);
      break;
    case 'node': {
      const js = args[0] ?? '';
      const entry = relative(repoRoot, localPath(js, ck.cwd));
      if (entry === pkg.bin['tcpkv-client']) checkClientArgs(args.slice(1), where, ck);
      else if (entry === pkg.bin['tcpkv-server']) checkServerArgs(args.slice(1), where, ck);
      else if (!existsSync(localPath(js, ck.cwd))) ck.problems.push(`${where}: ${js} does not exist`);
      break;
    }
    case 'tcpkv-client':
      checkClientArgs(args, where, ck);
      break;
    case 'tcpkv-server':
      checkServerArgs(args, where, ck);
      break;
    case 'npm':
      if (args[0] === 'run' && !(args[1]! in pkg.scripts)) ck.problems.push(`${where}: no npm script ${args[1]}`);
      else if (!['ci', 'install', 'test', 'run', 'pack', 'publish'].includes(args[0] ?? '')) ck.problems.push(`${where}: unexpected npm ${args[0]}`);
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

function blocksOf(doc: string): Block[] {
  return [...doc.matchAll(/^( *)```(\w*)\n([\s\S]*?)^\1```$/gm)].map((m) => ({
    lang: m[2]!,
    body: m[3]!.replace(new RegExp(`^${m[1]}`, 'gm'), ''),
    line: doc.slice(0, m.index).split('\n').length,
  }));
}
const shellBlocks = (doc: string) => blocksOf(doc).filter((b) => ['sh', 'bash', 'shell'].includes(b.lang));
const blocks = blocksOf(text);
const shBlocks = shellBlocks(text);

/** Every command of every shell block, in order, with `cd` followed: problems found. */
function commandProblems(doc: string, name: string, tf: TerraformModule): string[] {
  const ck: Checker = { tf, cwd: repoRoot, problems: [] };
  for (const block of shellBlocks(doc)) {
    // Each block starts where the text says: at the repository root unless an earlier block cd'd away.
    block.body.split('\n').forEach((line, k) => {
      if (!line.trim()) return;
      for (const cmd of parseLine(line)) checkCommand(cmd, `${name} line ${block.line + 1 + k}`, ck);
    });
  }
  return ck.problems;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}
function anchorsOf(file: string): Set<string> {
  const doc = readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...doc.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
}

/** Paths into this repository a document names, links it makes, and references it must not make. */
function pathProblems(doc: string, file: string): string[] {
  const problems: string[] = [];
  // paths on a host: the VM's (the bootstrap writes them) or a service host's (the systemd unit names them)
  const template = readFileSync(cloudInitTemplate, 'utf8') + readFileSync(join(repoRoot, 'infra/systemd/tcpkv-server.service'), 'utf8');
  const userMade = new Set(['infra/remote/.env', 'infra/remote/.env.last-good', 'infra/cluster/.env']);
  for (const m of doc.matchAll(/(?<![\w/.-])((?:infra|test|services|scripts|docs|bench|\.github|\.ci)\/[\w./-]*\w|Dockerfile\.\w+|docker-compose[\w.-]*\.yml)/g)) {
    const p = m[1]!;
    // the certificates and keys the recipes make on the user's machine
    const madeTls = /^infra\/(remote|terraform\/aws)\/tls(\/|$)/.test(p);
    if (!userMade.has(p) && !madeTls && !existsSync(join(repoRoot, p))) problems.push(`${file}: no ${p}`);
  }
  for (const m of doc.matchAll(/(\/(?:opt|etc|var)\/[\w./-]*\w)/g)) {
    const p = m[1]!;
    if (p.startsWith('/opt/tcpkv/')) {
      if (!existsSync(join(repoRoot, p.slice('/opt/tcpkv/'.length)))) problems.push(`${file}: no ${p}`);
    } else if (!template.includes(p) && !['/etc/ssl/certs/ca-certificates.crt'].includes(p)) problems.push(`${file}: ${p} (not written by the bootstrap or the systemd unit)`);
  }
  for (const m of doc.matchAll(/\]\(([^)\s]+)\)/g)) {
    const target = m[1]!;
    if (/^(https?|mailto):/.test(target)) continue;
    const [path, anchor] = target.split('#') as [string, string | undefined];
    const resolved = path === '' ? join(repoRoot, file) : resolve(join(repoRoot, file, '..'), path);
    if (relative(repoRoot, resolved).startsWith('..')) problems.push(`${file}: link outside the repository: ${target}`);
    else if (!existsSync(resolved)) problems.push(`${file}: broken link ${target}`);
    else if (anchor && resolved.endsWith('.md') && !anchorsOf(resolved).has(anchor)) problems.push(`${file}: no heading #${anchor} in ${relative(repoRoot, resolved)}`);
  }
  for (const m of doc.matchAll(/\.\.\/shared|\/work\/|SPEC ?§|\bSPEC\.md|\bissue \d+|\bacceptance \d/gi)) problems.push(`${file}: refers to ${m[0]}, which a user of the repository does not have`);
  // the images publish under the releasing account's name: no page may bake one owner in
  for (const m of doc.matchAll(/ghcr\.io\/([^/\s`]+)\/tcpkv-(?:server|client)(?::([\w.<>-]+))?/g)) {
    if (!['<owner>', '$OWNER'].includes(m[1]!)) problems.push(`${file}: ${m[0]} names a fixed owner (write ghcr.io/<owner>/… or $OWNER)`);
    else if (m[2] !== undefined && m[2] !== pkg.version && m[2] !== '<version>') problems.push(`${file}: ${m[0]} is not this version (${pkg.version})`);
  }
  return problems;
}

const SETTING_SOURCES = (): string =>
  [
    ...readdirSync(join(repoRoot, 'services'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join('services', f)),
    ...readdirSync(join(repoRoot, 'infra'), { recursive: true, encoding: 'utf8' }).filter((f) => /\.(yml|sh|tftpl|mjs)$|example$/.test(f)).map((f) => join('infra', f)),
    ...readdirSync(join(repoRoot, 'scripts')).map((f) => join('scripts', f)),
    '.ci/run', 'docker-compose.yml', 'docker-compose.cluster.yml', 'Dockerfile.server', 'Dockerfile.client',
  ]
    .filter((f) => existsSync(join(repoRoot, f)))
    .map((f) => readFileSync(join(repoRoot, f), 'utf8'))
    .join('\n');

describe('docs/remote-vm.md: the walkthrough', () => {
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

  it('the Terraform names it uses are variables, outputs or resources of the module', () => {
    const known = new Set([...Object.keys(tf.variable), ...Object.keys(tf.output)]);
    const problems: string[] = [];
    for (const m of text.matchAll(/`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`/g)) {
      if (!known.has(m[1]!)) problems.push(m[1]!);
    }
    for (const m of text.matchAll(/output -raw (\w+)/g)) if (!(m[1]! in tf.output)) problems.push(`output ${m[1]}`);
    expect(problems).toEqual([]);
  });

  it('the checker itself catches misspellings (so a pass means something)', () => {
    for (const line of [
      'terrafrom apply',
      'terraform -chdir=infra/terraform/aws output -raw no_such_output',
      'TCPKV_SERVER=x:1 docker compose -f infra/remote/client.compose.yml run --rm client scenaro',
      'docker compose -f infra/remote/nope.yml up -d',
      'infra/remote/deploy-ssh.sh --no-such-flag u@h',
      'node dist/services/client/cli.js --sever x:1 get',
      'tcpkv-client keys --prefx a',
      'tcpkv-server --port 1 --no-such-setting 2',
      'cd infra/terraform/gcp',
      'npm run no-such-script',
      'scripts/no-such-script.sh',
    ]) {
      const ck: Checker = { tf, cwd: repoRoot, problems: [] };
      for (const cmd of parseLine(line)) checkCommand(cmd, line, ck);
      expect(ck.problems.length, line).toBeGreaterThanOrEqual(1);
    }
    const bad = 'See [w](../../outside.md), [x](../shared/SPEC.md), [y](nope.md), [z](protocol.md#no-such-heading), SPEC §3, issue 17, `scripts/nope.sh`, ghcr.io/tcpkv/tcpkv-server:0.1.0, ghcr.io/$OWNER/tcpkv-client:9.9.9.';
    const found = pathProblems(bad, 'docs/x.md').join('\n');
    for (const kind of ['link outside the repository', 'broken link ../shared/SPEC.md', 'broken link nope.md', 'no heading #no-such-heading', 'refers to SPEC §', 'refers to issue 17', 'no scripts/nope.sh', 'names a fixed owner', 'is not this version']) {
      expect(found).toContain(kind);
    }
  });
});

describe.each(DOCUMENTS)('%s: every command, setting, path and link exists', (file) => {
  const doc = readFileSync(join(repoRoot, file), 'utf8');
  let tf: TerraformModule;

  beforeAll(async () => {
    tf = await loadModule(terraformDir);
  });

  it('its shell blocks are valid bash (bash -n)', () => {
    for (const block of shellBlocks(doc)) {
      const r = spawnSync('bash', ['-n'], { input: block.body, encoding: 'utf8' });
      expect(`${r.stderr}`, `${file} line ${block.line}`).toBe('');
      expect(r.status).toBe(0);
    }
  });

  it('every command in its shell blocks names programs, scripts, options and npm scripts that exist', () => {
    expect(commandProblems(doc, file, tf)).toEqual([]);
  });

  it('every `tcpkv-server --flag` it names outside code blocks exists too', () => {
    serverHelp ??= helpOptions([SERVER_BIN, '--help']);
    const known = new Set([...serverHelp.value, ...serverHelp.bool]);
    const problems = [...doc.matchAll(/tcpkv-server((?: --?[\w-]+(?:[ =]\S+)?)+)/g)]
      .flatMap((m) => m[1]!.match(/--?[\w-]+/g) ?? [])
      .filter((flag) => !known.has(flag));
    expect(problems).toEqual([]);
  });

  it('the paths and links it names exist, and it refers to nothing outside the repository', () => {
    expect(pathProblems(doc, file)).toEqual([]);
  });

  it('the TCPKV_* names it uses exist in the product, its scripts or its compose files', () => {
    const sources = SETTING_SOURCES();
    // a misspelt name shown on purpose is followed by "is ignored"; secrets may come from NAME_FILE
    const names = [...new Set(doc.replace(/TCPKV_\w+ is ignored/g, '').match(/TCPKV_[A-Z0-9_]*[A-Z0-9]/g))];
    const unknown = names.filter((name) => !sources.includes(name) && !sources.includes(name.replace(/_FILE$/, '')));
    expect(unknown).toEqual([]);
  });
});
