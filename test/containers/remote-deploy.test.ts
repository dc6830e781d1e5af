// The remote recipes, end to end, over real SSH, TLS and Docker, in containers that play the machines:
//
//   network "cloud" (--internal)                          network "home" (--internal)
//   ├─ this host: deploy-ssh.sh ──ssh (real key)──▶ VM ◀──TLS 10443── home: client image + client cert
//   ├─ stand-in metadata service ("metadata", port 80)    (the VM's plain port 10000: loopback only)
//   └─ stand-in git server ("git", git daemon)
//
// The VM (tcpkv/vm:local: Debian, sshd with key login only, its own Docker engine) is one container
// for every case. The cases, in order:
//   1. deploy-ssh.sh, unmodified, ships this machine's server image and starts the server with TLS;
//   2. from home, the scenario passes through the TLS port with the client certificate; its END,
//      with the token, stops the server (Docker restarts it);
//   3. without a client certificate, with one from another CA, or on the plain port: refused;
//   4. a second deploy with bad settings fails and the serving server keeps serving;
//   5. the cloud-init script, rendered as Terraform renders it (test/infra/lib/tftpl.ts), runs to
//      completion on the same VM (emptied first) and ends with a healthy TLS server; it asked the
//      stand-in metadata service, and nothing tried 169.254.0.0/16.
// The images are the suite's (tcpkv/server:local, tcpkv/client:local); TCPKV_TEST_SERVER_IMAGE and
// TCPKV_TEST_CLIENT_IMAGE name others, for a machine where several checkouts share those tags.
// Traffic: only between these containers on their own --internal networks (no route elsewhere), and
// this host to the VM over the cloud network; the VM drops 169.254.0.0/16 as a second guard.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_IMAGE, DockerResources, REPO_ROOT, SERVER_IMAGE, docker, dockerOk, uniqueName } from '../support/docker.js';
import { addressOn, emptyVm, internalNetwork, runHost, startVm, type TestNetwork, type Vm } from '../support/docker-vm.js';
import { interpolate, readCompose, serviceEnvironment, type ComposeDoc } from '../infra/lib/compose.js';
import { renderTemplate } from '../infra/lib/tftpl.js';

const TOKEN = randomBytes(18).toString('hex');
const SERVER = process.env.TCPKV_TEST_SERVER_IMAGE || SERVER_IMAGE;
const CLIENT = process.env.TCPKV_TEST_CLIENT_IMAGE || CLIENT_IMAGE;
const REMOTE = join(REPO_ROOT, 'infra/remote');
const TLS_PORT = 10443;

/** The stand-in for the instance metadata service (IMDSv2): logs every request as one JSON line. */
const METADATA_SERVER = `
const http = require('node:http');
const [ip, name] = process.argv.slice(1);
const token = 'stand-in-token';
http.createServer((req, res) => {
  console.log(JSON.stringify({ method: req.method, url: req.url, token: req.headers['x-aws-ec2-metadata-token'] || null }));
  if (req.method === 'PUT' && req.url === '/latest/api/token') return res.end(token);
  if (req.headers['x-aws-ec2-metadata-token'] !== token) { res.statusCode = 401; return res.end(); }
  const answers = { '/latest/meta-data/public-ipv4': ip, '/latest/meta-data/public-hostname': name };
  if (req.method === 'GET' && answers[req.url]) return res.end(answers[req.url]);
  res.statusCode = 404;
  res.end();
}).listen(80, () => console.log('listening'));
`;

/**
 * One connection from home: TLS (mode "tls": CA, optional certificate and key) or plain ("plain"),
 * a GET, and what came back. JSON: {secure, response, error}.
 */
const PROBE = `
const fs = require('node:fs'), net = require('node:net'), tls = require('node:tls');
const [mode, host, port, ca, cert, key] = process.argv.slice(1);
let response = '', error = null, secure = false;
const done = () => { console.log(JSON.stringify({ secure, response, error })); process.exit(0); };
setTimeout(() => { error = error || 'timeout'; done(); }, 10000);
const get = 'GET / HTTP/1.1\\r\\nHost: ' + host + '\\r\\nConnection: close\\r\\n\\r\\n';
const s = mode === 'plain'
  ? net.connect(Number(port), host, () => s.write(get))
  : tls.connect({ host, port: Number(port), ca: fs.readFileSync(ca), cert: cert ? fs.readFileSync(cert) : undefined,
      key: key ? fs.readFileSync(key) : undefined, ALPNProtocols: ['http/1.1'] }, () => { secure = true; s.write(get); });
s.on('data', (d) => (response += d.toString()));
s.on('error', (e) => (error = e.code || e.message));
s.on('close', done);
`;

interface Probe {
  secure: boolean;
  response: string;
  error: string | null;
}

describe('remote recipes end to end: deploy-ssh.sh and the rendered cloud-init on a VM container, a client at home over TLS', () => {
  const res = new DockerResources();
  let dir: string;
  let cloud: TestNetwork;
  let home: TestNetwork;
  let vm: Vm;
  let vmCloudIp: string;
  let vmHomeIp: string;
  let sshArgs: string[];
  let clientDoc: ComposeDoc;
  let metadata: string;
  let tlsDir: string;

  /** Container id of the tcpkv server the VM's Docker runs (compose project "tcpkv"). */
  const serverId = () => vm.shOk('docker ps -q --filter label=com.docker.compose.project=tcpkv --filter label=com.docker.compose.service=server');

  /** deploy-ssh.sh as a user runs it, with this host's environment minus any TCPKV_ settings. */
  const deploy = (envFile: string, extra: string[] = []) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TCPKV_')));
    return runHost(join(REMOTE, 'deploy-ssh.sh'), ['--env-file', envFile, '--tls-dir', tlsDir, ...extra, ...sshArgs, `root@${vmCloudIp}`], {
      env,
      timeoutMs: 300_000,
    });
  };

  const settings = (file: string, clients: string) => {
    writeFileSync(
      join(dir, file),
      [`TCPKV_ALLOWED_HOSTS=${vmHomeIp}`, `TCPKV_ALLOWED_CLIENTS=${clients}`, `TCPKV_SHUTDOWN_TOKEN=${TOKEN}`, 'TCPKV_WAIT_SECONDS=120', ''].join('\n'),
      { mode: 0o600 },
    );
    return join(dir, file);
  };

  /** The home client as client.compose.yml runs it (its environment, its certificate mount, its user). */
  const homeClient = async (args: string[] | undefined, opts: { token?: string; clientTlsDir?: string; server?: string } = {}) => {
    const settings = {
      TCPKV_SERVER: opts.server ?? `${vmHomeIp}:${TLS_PORT}`,
      TCPKV_CLIENT_TLS_DIR: opts.clientTlsDir ?? tlsDir,
      // as the docs tell: run the client as the owner of the 0600 key files (root on this host)
      TCPKV_CLIENT_USER: `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`,
      ...(opts.token ? { TCPKV_SHUTDOWN_TOKEN: opts.token } : {}),
    };
    const svc = clientDoc.services.client as ComposeDoc;
    const env = serviceEnvironment(clientDoc, 'client', settings);
    const volumes = (svc.volumes as string[]).map((v) => interpolate(v, settings));
    const name = uniqueName('tcpkv-home');
    res.addContainer(name);
    const r = await docker(
      [
        'run', '--name', name, '--network', home.name, '--read-only', '--tmpfs', '/tmp', '--cap-drop', 'ALL',
        '--user', interpolate(String(svc.user), settings),
        ...volumes.flatMap((v) => ['-v', v]),
        ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
        CLIENT, ...(args ?? (svc.command as string[])),
      ],
      { timeoutMs: 120_000 },
    );
    await docker(['rm', '-f', name]);
    return { code: r.code, output: r.stdout + r.stderr, stdout: r.stdout };
  };

  /** One raw connection from home (see PROBE); certificate files are paths inside `mountDir`. */
  const probe = async (mode: 'tls' | 'plain', port: number, files: { ca?: string; cert?: string; key?: string } = {}, mounts: Record<string, string> = {}) => {
    const name = uniqueName('tcpkv-probe');
    res.addContainer(name);
    const r = await docker(
      [
        'run', '--name', name, '--network', home.name, '--user', '0:0',
        ...Object.entries(mounts).flatMap(([src, dst]) => ['-v', `${src}:${dst}:ro`]),
        '--entrypoint', 'node', CLIENT, '-e', PROBE, mode, vmHomeIp, String(port), files.ca ?? '', files.cert ?? '', files.key ?? '',
      ],
      { timeoutMs: 60_000 },
    );
    await docker(['rm', '-f', name]);
    if (r.code !== 0) throw new Error(`probe exited ${r.code}: ${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
  };

  const waitUntil = async (what: string, probeFn: () => Promise<boolean>, timeoutMs = 90_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await probeFn())) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tcpkv-remote-deploy-'));
    tlsDir = join(dir, 'tls');
    clientDoc = readCompose(join(REMOTE, 'client.compose.yml'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tcpkv-test', '-f', join(dir, 'id_ed25519')]);
    cloud = await internalNetwork(res, 'tcpkv-cloud');
    home = await internalNetwork(res, 'tcpkv-home');
    vm = await startVm({ network: cloud.name, authorizedKey: readFileSync(join(dir, 'id_ed25519.pub'), 'utf8').trim(), resources: res });
    await dockerOk(['network', 'connect', home.name, vm.name]);
    vmCloudIp = await addressOn(vm.name, cloud.name);
    vmHomeIp = await addressOn(vm.name, home.name);
    // the VM's host key, read out of band: ssh checks it strictly
    const hostKey = (await vm.shOk('cat /etc/ssh/ssh_host_ed25519_key.pub')).split(/\s+/).slice(0, 2).join(' ');
    writeFileSync(join(dir, 'known_hosts'), `${vmCloudIp} ${hostKey}\n`);
    sshArgs = ['-i', join(dir, 'id_ed25519'), '-o', `UserKnownHostsFile=${join(dir, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes'];

    metadata = uniqueName('tcpkv-metadata');
    await dockerOk(['run', '-d', '--name', metadata, '--label', 'org.tcpkv.test=true', '--network', cloud.name, '--network-alias', 'metadata',
      '--entrypoint', 'node', CLIENT, '-e', METADATA_SERVER, vmHomeIp, 'tcpkv-vm.test']);
    res.addContainer(metadata);
  });

  afterAll(async () => {
    if (vm) await emptyVm(vm);
    await res.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('deploy-ssh.sh --ship sends this machine\'s server image over ssh and starts the server with TLS', async () => {
    const r = await deploy(settings('server.env', home.subnet), ['--ship', ...(SERVER === SERVER_IMAGE ? [] : ['--image', SERVER])]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('docker save | docker load');
    expect(r.output).toContain(`using the server image ${SERVER} already on this machine`);
    expect(r.output).toMatch(/tcpkv is up \(healthy\): TLS on port 10443/);
    // the private keys stay private here; the VM got the server's files only
    for (const f of ['ca.key', 'server.key', 'client.key']) expect(execFileSync('stat', ['-c', '%a', join(tlsDir, f)]).toString().trim(), f).toBe('600');
    expect(await vm.shOk('ls /root/tcpkv/infra/remote/tls | sort | tr "\\n" " "')).toBe('ca.crt server.crt server.key');
    // published: TLS on every address of the VM, plain on its loopback only
    const ports = await vm.shOk(`docker port ${await serverId()}`);
    expect(ports).toMatch(/^10443\/tcp -> 0\.0\.0\.0:10443$/m);
    expect(ports).toMatch(/^10000\/tcp -> 127\.0\.0\.1:10000$/m);
    expect(ports).not.toMatch(/10000\/tcp -> 0\.0\.0\.0/);
  });

  it('from home, the scenario passes over TLS with the client certificate; its END with the token stops the server', async () => {
    const before = await serverId();
    const run = await homeClient(undefined, { token: TOKEN });
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toMatch(/16\/16 cases passed/);
    await waitUntil('the restart after END', async () => Number(await vm.shOk(`docker inspect -f '{{.RestartCount}}' ${before}`)) >= 1);
    await waitUntil('healthy again', async () => (await vm.shOk(`docker inspect -f '{{.State.Health.Status}}' ${before}`)) === 'healthy');
    // the same container, started twice, each time with its TLS listener
    const logs = await vm.shOk(`docker logs ${before} 2>&1`);
    expect(logs.match(/"msg":"TLS listening"/g)?.length ?? 0).toBe(2);
  });

  it('refused at the handshake: no client certificate, or one from another CA; the plain port is not reachable from home', async () => {
    const other = join(dir, 'other-ca');
    execFileSync(join(REMOTE, 'make-certs.sh'), [other, vmHomeIp], { stdio: 'ignore' });
    const mounts = { [tlsDir]: '/tls', [other]: '/other' };
    // the control: the right certificate gets an answer
    const ok = await probe('tls', TLS_PORT, { ca: '/tls/ca.crt', cert: '/tls/client.crt', key: '/tls/client.key' }, mounts);
    expect(ok.response, JSON.stringify(ok)).toMatch(/^HTTP\/1\.1 200 /);
    const failedHandshakes = async () => Number(await vm.shOk(`docker logs ${await serverId()} 2>&1 | grep -c '"msg":"TLS handshake failed"' || true`));
    const failedBefore = await failedHandshakes();
    // (with TLS 1.3 the client may finish its side before the server has checked its certificate:
    // the refusal is then a closed connection with no answer to the GET it sent)
    const none = await probe('tls', TLS_PORT, { ca: '/tls/ca.crt' }, mounts);
    expect(none.response, JSON.stringify(none)).toBe('');
    const foreign = await probe('tls', TLS_PORT, { ca: '/tls/ca.crt', cert: '/other/client.crt', key: '/other/client.key' }, mounts);
    expect(foreign.response, JSON.stringify(foreign)).toBe('');
    // the server refused both in the handshake, and says so
    expect(await failedHandshakes()).toBe(failedBefore + 2);
    const plain = await probe('plain', 10000);
    expect(plain.error, JSON.stringify(plain)).toBe('ECONNREFUSED');
    // and the client program says so, with its exit status 3
    const cli = await homeClient(['head'], { clientTlsDir: other });
    expect(cli.code, cli.output).toBe(3);
  });

  it('a second deploy with bad settings fails, and the serving server keeps serving', async () => {
    const before = await serverId();
    const r = await deploy(settings('bad.env', `${home.subnet.split('/')[0]}/33`), ['--ship', '--image', SERVER]);
    expect(r.code, r.output).not.toBe(0);
    expect(r.output).toMatch(/these settings do not give a healthy server/);
    expect(await serverId()).toBe(before);
    const head = await homeClient(['head']);
    expect(head.code, head.output).toBe(0);
  });

  it('the cloud-init script as Terraform renders it runs to completion on a VM and ends with a healthy TLS server', async () => {
    // A fresh start on the same VM: the ssh deployment removed, its image kept (as if pulled).
    await emptyVm(vm);
    await vm.shOk('rm -rf /root/tcpkv');

    // The repository as it is in this checkout, served by a stand-in git server on the cloud network.
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO_ROOT }).toString().split('\0').filter(Boolean);
    execFileSync('tar', ['-C', REPO_ROOT, '--null', '-T', '-', '-cf', join(dir, 'repo.tar')], { input: files.join('\0') });
    execFileSync('tar', ['-C', repo, '-xf', join(dir, 'repo.tar')]);
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@tcpkv.invalid', ...args], { cwd: repo, stdio: 'ignore' });
    git('init', '-q', '-b', 'main');
    git('add', '-A');
    git('commit', '-q', '-m', 'checkout');
    execFileSync('git', ['clone', '-q', '--bare', repo, join(dir, 'git-root', 'tcpkv.git')]);
    const gitServer = uniqueName('tcpkv-git');
    await dockerOk(['create', '--name', gitServer, '--label', 'org.tcpkv.test=true', '--network', cloud.name, '--network-alias', 'git', 'tcpkv/vm:local',
      'git', 'daemon', '--reuseaddr', '--export-all', '--base-path=/srv/git', '--listen=0.0.0.0', '/srv/git']);
    res.addContainer(gitServer);
    await dockerOk(['cp', join(dir, 'git-root'), `${gitServer}:/srv/git`]);
    await dockerOk(['start', gitServer]);

    // What Terraform's tls provider makes (tls.tf), made here with openssl: a new CA, the server's
    // certificate for the address home connects to, a client certificate.
    const tfTls = join(dir, 'tf-tls');
    execFileSync(join(REMOTE, 'make-certs.sh'), [tfTls, vmHomeIp], { stdio: 'ignore' });
    const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
    const pem = (f: string) => readFileSync(join(tfTls, f), 'utf8');
    const rendered = renderTemplate(readFileSync(join(REPO_ROOT, 'infra/terraform/aws/templates/cloud-init.sh.tftpl'), 'utf8'), {
      allowed_clients_b64: b64(home.subnet),
      allowed_hosts_b64: b64(vmHomeIp),
      shutdown_token_b64: b64(TOKEN),
      git_repo_url_b64: b64('git://git/tcpkv.git'),
      git_ref_b64: b64('main'),
      // the image is on the VM already (shipped above): a released image named in server_image
      server_image_b64: b64(SERVER),
      node_image_b64: b64('node:24-bookworm-slim'),
      log_level: 'info',
      expected_public_ip: vmHomeIp,
      metadata_url_b64: b64('http://metadata'),
      tls_ca_cert_b64: b64(pem('ca.crt')),
      tls_server_cert_b64: b64(pem('server.crt')),
      tls_server_key_b64: b64(pem('server.key')),
    });
    writeFileSync(join(dir, 'user-data'), rendered.text);
    chmodSync(join(dir, 'user-data'), 0o700);
    await dockerOk(['cp', join(dir, 'user-data'), `${vm.name}:/root/user-data`]);

    const boot = await vm.sh('/root/user-data', 300_000);
    // the log is written through tee: its last line may land a moment after the script's exit
    let bootLog = '';
    await waitUntil('the bootstrap log\'s last line', async () => {
      bootLog = await vm.shOk('cat /var/log/tcpkv-bootstrap.log');
      return /tcpkv bootstrap: (done|FAILED)/.test(bootLog);
    }, 10_000).catch(() => undefined);
    expect(boot.code, bootLog).toBe(0);
    expect(bootLog.trim().split('\n').pop(), bootLog).toMatch(/^tcpkv bootstrap: done /);
    expect(bootLog).toContain('git://git/tcpkv.git at main');
    expect(await vm.shOk("stat -c '%a %u' /etc/tcpkv/server.env /etc/tcpkv/tls/server.key")).toBe('600 0\n600 1000');

    // healthy, and home passes over TLS with the client certificate Terraform would have written
    const id = await serverId();
    expect(await vm.shOk(`docker inspect -f '{{.State.Health.Status}}' ${id}`)).toBe('healthy');
    const head = await homeClient(['head'], { clientTlsDir: tfTls });
    expect(head.code, head.output).toBe(0);
    const scenario = await homeClient(undefined, { clientTlsDir: tfTls, token: TOKEN });
    expect(scenario.code, scenario.output).toBe(0);
    expect(scenario.stdout).toMatch(/16\/16 cases passed/);

    // the stand-in metadata service was asked (IMDSv2: a token, then the addresses with it) …
    const asked = (await docker(['logs', metadata])).stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { method: string; url: string; token: string | null });
    expect(asked).toEqual(expect.arrayContaining([
      expect.objectContaining({ method: 'PUT', url: '/latest/api/token' }),
      expect.objectContaining({ method: 'GET', url: '/latest/meta-data/public-ipv4', token: 'stand-in-token' }),
      expect.objectContaining({ method: 'GET', url: '/latest/meta-data/public-hostname', token: 'stand-in-token' }),
    ]));
    // what it answered went into the server's allowed hosts (start-server.sh --imds)
    expect(await vm.shOk(`docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' ${id} | grep ^TCPKV_ALLOWED_HOSTS=`)).toBe(
      `TCPKV_ALLOWED_HOSTS=${vmHomeIp},tcpkv-vm.test`,
    );
    // … and nothing on the VM even tried a real metadata address: the guard's counters are zero
    const counters = await vm.shOk("iptables -t raw -L -v -n -x | awk '/169.254.0.0\\/16/ { print $1 }'");
    expect(counters.split('\n')).toEqual(['0', '0']);
  });

  it('leaves no containers, networks or volumes behind', async () => {
    await emptyVm(vm);
    expect(await res.cleanup()).toEqual([]);
    expect(await res.leftovers()).toEqual([]);
  });
});
