// The TLS port with real TLS clients: curl, openssl s_client, Python's ssl, Node's tls and https, and
// tcpkv-client. Each carries the standard requests; each mistake (an unknown CA, a wrong name, an
// expired certificate, no client certificate, one from another CA, plain HTTP on the TLS port, TLS
// to the plain port) is refused with the documented error, and the server keeps serving.

import { spawn } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runClient, SERVER_BIN } from '../support/net.js';
import { useTempDirs } from '../support/temp-dirs.js';
import { makeCertificates, type TestCertificates } from '../support/tls-certs.js';
import { metricValue, spawnTlsServer, type TlsChildServer } from '../support/tls-server.js';

const tempDir = useTempDirs();
let certs: TestCertificates;
let server: TlsChildServer;

beforeAll(async () => {
  certs = makeCertificates(tempDir('tcpkv-tls-'));
  server = await spawnTlsServer(certs, { TCPKV_ACCESS_LOG: 'on' });
});
afterAll(async () => {
  server?.kill('SIGKILL');
  await server?.exited;
});

interface StandardRequest {
  readonly method: string;
  readonly path: string;
  readonly body: string;
  readonly status: number;
  readonly contains?: string;
}

/** The standard dialect's requests, on a key of the client's own. */
function standardRequests(key: string): StandardRequest[] {
  return [
    { method: 'HEAD', path: '/', body: '', status: 200 },
    { method: 'POST', path: '/create', body: `${key}: one`, status: 200 },
    { method: 'GET', path: '/', body: '', status: 200, contains: `${key}:one` },
    { method: 'PUT', path: '/update', body: `${key}: two`, status: 200 },
    { method: 'GET', path: `/kv/${key}`, body: '', status: 200, contains: 'two' },
    { method: 'GET', path: `/kv/${key}-missing`, body: '', status: 404 },
  ];
}

function requestBytes(r: StandardRequest): string {
  return `${r.method} ${r.path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(r.body)}\r\n\r\n${r.body}`;
}

interface Reply {
  status: number;
  body: string;
}

function parseReply(text: string): Reply {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

function run(command: string, args: string[], input = '', env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(input);
  });
}

const curlAuth = () => ['--cacert', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey];

const clients: Record<string, (r: StandardRequest) => Promise<Reply>> = {
  curl: async (r) => {
    const args = ['-sS', ...curlAuth(), '-w', '\n%{http_code}', ...(r.method === 'HEAD' ? ['-I'] : ['-X', r.method]), ...(r.body ? ['--data-binary', r.body] : [])];
    const out = await run('curl', [...args, `https://localhost:${server.tlsPort}${r.path}`]);
    const lines = out.stdout.split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  },
  'openssl s_client': async (r) => {
    const args = ['s_client', '-connect', `127.0.0.1:${server.tlsPort}`, '-servername', 'localhost', '-verify_return_error', '-CAfile', certs.ca, '-cert', certs.clientCert, '-key', certs.clientKey, '-quiet'];
    return parseReply((await run('openssl', args, requestBytes(r))).stdout);
  },
  "Python's ssl": async (r) => {
    const script = [
      'import socket, ssl, sys',
      'port, ca, cert, key, req = sys.argv[1:6]',
      'ctx = ssl.create_default_context(cafile=ca); ctx.load_cert_chain(cert, key)',
      "s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(port))), server_hostname='localhost')",
      "s.sendall(req.encode()); out = b''",
      'while True:',
      '    d = s.recv(65536)',
      '    if not d: break',
      '    out += d',
      'sys.stdout.write(out.decode())',
    ].join('\n');
    const out = await run('python3', ['-c', script, String(server.tlsPort), certs.ca, certs.clientCert, certs.clientKey, requestBytes(r)]);
    return parseReply(out.stdout);
  },
  "Node's tls": (r) =>
    new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: server.tlsPort, servername: 'localhost', ca: certs.read(certs.ca), cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey) }, () => socket.write(requestBytes(r)));
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString()));
      socket.on('end', () => resolve(parseReply(text)));
      socket.on('error', reject);
    }),
  "Node's https": (r) =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', servername: 'localhost', port: server.tlsPort, method: r.method, path: r.path, ca: certs.read(certs.ca), cert: certs.read(certs.clientCert), key: certs.read(certs.clientKey), headers: { host: 'localhost' } },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end(r.body);
    }),
};

describe('real TLS clients on the TLS port (mutual TLS)', () => {
  for (const [name, send] of Object.entries(clients)) {
    it(`${name} carries the standard requests`, async () => {
      const key = name.replace(/\W+/g, '-');
      for (const r of standardRequests(key)) {
        const reply = await send(r);
        expect([r.method, r.path, reply.status]).toEqual([r.method, r.path, r.status]);
        if (r.contains) expect(reply.body).toContain(r.contains);
      }
    });
  }

  it("Node's fetch carries the standard requests (a TLS port without client certificates: fetch has no option for one)", async () => {
    const plainTls = await spawnTlsServer(certs, {}, false);
    try {
      const requests = standardRequests('fetch');
      // global fetch trusts NODE_EXTRA_CA_CERTS; each request's status and body come back as JSON
      const script = `const out = []; for (const r of ${JSON.stringify(requests)}) { const res = await fetch('https://localhost:${plainTls.tlsPort}' + r.path, { method: r.method, body: r.body || undefined }); out.push({ status: res.status, body: await res.text() }); } console.log(JSON.stringify(out));`;
      const r = await run(process.execPath, ['--input-type=module', '-e', script], '', { NODE_EXTRA_CA_CERTS: certs.ca });
      expect(r.stderr).toBe('');
      const replies = JSON.parse(r.stdout) as Reply[];
      requests.forEach((req, i) => {
        expect([req.method, req.path, replies[i]!.status]).toEqual([req.method, req.path, req.status]);
        if (req.contains) expect(replies[i]!.body).toContain(req.contains);
      });
    } finally {
      plainTls.kill('SIGKILL');
      await plainTls.exited;
    }
  });

  it('tcpkv-client runs the scenario, in both dialects, and logs name the client certificate', async () => {
    const tls = ['--server', `127.0.0.1:${server.tlsPort}`, '--ca-file', certs.ca, '--cert-file', certs.clientCert, '--key-file', certs.clientKey];
    for (const dialect of ['standard', 'seed']) {
      // the scenario needs an empty store: a fresh server for each run
      const fresh = await spawnTlsServer(certs, { TCPKV_ACCESS_LOG: 'on' });
      try {
        const r = await runClient([...tls, '--server', `127.0.0.1:${fresh.tlsPort}`, '--dialect', dialect, 'scenario']);
        expect([dialect, r.code, r.stdout.trim().split('\n').pop()]).toEqual([dialect, 0, '16/16 cases passed']);
        // every access line carries the certificate's subject with its request id
        const lines = fresh.output().split('\n').filter((l) => l.includes('"msg":"request"'));
        expect(lines.length).toBeGreaterThan(10);
        for (const line of lines) expect(line).toMatch(/"tlsClient":"CN=home, O=tcpkv test","req":"\d+\.\d+"/);
      } finally {
        fresh.kill('SIGKILL');
        await fresh.exited;
      }
    }
  });
});

describe('tcpkv-client over TLS: the prompt and failover', () => {
  const auth = () => ['--ca-file', certs.ca, '--cert-file', certs.clientCert, '--key-file', certs.clientKey];

  it('commands read from stdin (the prompt without a terminal) use the TLS flags of the command line', async () => {
    const r = await runClient(['--server', `127.0.0.1:${server.tlsPort}`, '--tls', ...auth()], {}, Buffer.from('put prompt-key 7\nget prompt-key\n'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/200 OK\n[\s\S]*200 OK\n7\n/);
  });

  it('a server that cannot be reached is skipped for the next one, over TLS too', async () => {
    const r = await runClient(['--server', `127.0.0.1:${await freePort()},127.0.0.1:${server.tlsPort}`, '--verbose', ...auth(), 'get']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/cannot be reached \(cannot connect to 127\.0\.0\.1:\d+: ECONNREFUSED\); trying 127\.0\.0\.1:\d+/);
  });

  it('variables work like the flags (a shared .env holds both programs\' names)', async () => {
    const r = await runClient(['get'], {
      TCPKV_SERVER: `127.0.0.1:${server.tlsPort}`,
      TCPKV_CLIENT_TLS: 'on',
      TCPKV_CLIENT_CA_FILE: certs.ca,
      TCPKV_CLIENT_CERT_FILE: certs.clientCert,
      TCPKV_CLIENT_KEY_FILE: certs.clientKey,
      TCPKV_CLIENT_SERVERNAME: 'localhost',
    });
    expect([r.code, r.stderr]).toEqual([0, '']);
  });
});

describe('mistakes are refused with the documented error, and the server keeps serving', () => {
  const good = () => ['--server', `127.0.0.1:${server.tlsPort}`, '--ca-file', certs.ca, '--cert-file', certs.clientCert, '--key-file', certs.clientKey];
  const stillServes = async () => {
    const r = await runClient([...good(), 'get']);
    expect(r.code).toBe(0);
  };

  it('tcpkv-client: one line, exit 3, naming the cause', async () => {
    const cases: [string, string[], RegExp][] = [
      ['unknown CA', ['--server', `127.0.0.1:${server.tlsPort}`, '--ca-file', certs.otherCa, '--cert-file', certs.clientCert, '--key-file', certs.clientKey], /TLS: unknown CA: the server's certificate is not signed by the CA in --ca-file/],
      ['name mismatch', [...good(), '--servername', 'example.com'], /TLS: name mismatch: the server's certificate is not for "example\.com" \(it names IP Address:127\.0\.0\.1, DNS:localhost\)/],
      ['no client certificate', ['--server', `127.0.0.1:${server.tlsPort}`, '--ca-file', certs.ca], /TLS: the server requires a client certificate: give one with --cert-file and --key-file/],
      ['a client certificate from another CA', ['--server', `127.0.0.1:${server.tlsPort}`, '--ca-file', certs.ca, '--cert-file', certs.otherClientCert, '--key-file', certs.otherClientKey], /TLS: the server closed the connection right after the handshake without answering: it did not accept the client certificate "stranger"/],
      ['TLS to the plain port', ['--server', `127.0.0.1:${server.port}`, '--tls', '--ca-file', certs.ca], /TLS: a plain server on a TLS address/],
    ];
    for (const [what, args, message] of cases) {
      const r = await runClient([...args, 'get']);
      expect([what, r.code]).toEqual([what, 3]);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      await stillServes();
    }
  });

  it('an expired server certificate: tcpkv-client and curl refuse it', async () => {
    const expired = await spawnTlsServer(certs, { TCPKV_TLS_CERT_FILE: certs.expiredCert, TCPKV_TLS_KEY_FILE: certs.expiredKey }, false);
    try {
      const r = await runClient(['--server', `127.0.0.1:${expired.tlsPort}`, '--ca-file', certs.ca, 'get']);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/^tcpkv-client: 127\.0\.0\.1:\d+: TLS: expired certificate: the server's certificate has expired/);
      const curl = await run('curl', ['-sS', '--cacert', certs.ca, `https://localhost:${expired.tlsPort}/`]);
      expect(curl.code).toBe(60);
      expect(curl.stderr).toMatch(/certificate has expired/);
      // the server logged at start that its certificate has expired
      expect(expired.output()).toMatch(/"msg":"the TLS certificate has expired/);
    } finally {
      expired.kill('SIGKILL');
      await expired.exited;
    }
  });

  it('curl: the same mistakes, with curl\'s own errors', async () => {
    const url = `https://localhost:${server.tlsPort}/`;
    // the server closes on a certificate from another CA without an alert (TLS 1.3: after the
    // client's handshake is done): curl sees an empty reply, or a reset when the close comes first
    const cases: [string, string[], number[], RegExp][] = [
      ['unknown CA', ['--cacert', certs.otherCa, '--cert', certs.clientCert, '--key', certs.clientKey, url], [60], /self-signed certificate in certificate chain/],
      ['name mismatch', [...curlAuth(), '--resolve', `example.com:${server.tlsPort}:127.0.0.1`, `https://example.com:${server.tlsPort}/`], [60], /no alternative certificate subject name matches target host name 'example\.com'/],
      ['no client certificate', ['--cacert', certs.ca, url], [56], /alert certificate required/],
      ['a client certificate from another CA', ['--cacert', certs.ca, '--cert', certs.otherClientCert, '--key', certs.otherClientKey, url], [52, 56], /Empty reply from server|Connection reset by peer|Recv failure/],
    ];
    for (const [what, args, codes, message] of cases) {
      const r = await run('curl', ['-sS', ...args]);
      expect([what, codes.includes(r.code ?? -1)], `curl exit ${r.code}: ${r.stderr}`).toEqual([what, true]);
      expect(r.stderr).toMatch(message);
      await stillServes();
    }
  });

  it('plain HTTP on the TLS port: one line of 400, closed, never reaching the rules', async () => {
    const before = await server.metrics();
    const r = await run('curl', ['-sS', '-i', `http://127.0.0.1:${server.tlsPort}/`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 400 /);
    expect(r.stdout.slice(r.stdout.indexOf('\r\n\r\n') + 4)).toBe('The plain HTTP request was sent to the TLS port: connect with TLS (https://, tcpkv-client --tls)\n');
    // tcpkv-client without --tls sees the same line
    const c = await runClient(['--server', `127.0.0.1:${server.tlsPort}`, 'get']);
    expect(c.code).toBe(1);
    expect(c.stdout).toMatch(/The plain HTTP request was sent to the TLS port/);
    const after = await server.metrics();
    expect(metricValue(after, 'tcpkv_tls_handshake_failures_total', '{reason="plain-http"}') - metricValue(before, 'tcpkv_tls_handshake_failures_total', '{reason="plain-http"}')).toBe(2);
    // the rules never saw them: no request counted for them
    expect(metricValue(after, 'tcpkv_requests_total', '{method="GET",route="listing",status="400"}')).toBe(metricValue(before, 'tcpkv_requests_total', '{method="GET",route="listing",status="400"}'));
    await stillServes();
  });

  it('the metrics count handshakes and failures by reason', async () => {
    const text = await server.metrics();
    expect(metricValue(text, 'tcpkv_tls_handshakes_total')).toBeGreaterThan(10);
    for (const reason of ['no-client-certificate', 'client-certificate-rejected', 'server-certificate-refused', 'plain-http']) {
      expect([reason, metricValue(text, 'tcpkv_tls_handshake_failures_total', `{reason="${reason}"}`)]).not.toEqual([reason, 0]);
    }
    // A handshake the client abandons without a word (tcpkv-client refusing the server's certificate
    // closes without an alert the server reads) stays in progress until the handshake timeout cuts it
    let inProgress = metricValue(text, 'tcpkv_tls_handshakes_in_progress');
    for (let i = 0; i < 150 && inProgress !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      inProgress = metricValue(await server.metrics(), 'tcpkv_tls_handshakes_in_progress');
    }
    expect(inProgress).toBe(0);
    expect(metricValue(text, 'tcpkv_tls_certificate_not_after_seconds')).toBeGreaterThan(Date.now() / 1000);
  });
});

describe('settings', () => {
  const serverOut = (env: Record<string, string>, until: RegExp): Promise<string> =>
    new Promise((resolve) => {
      const proc = spawn(process.execPath, [SERVER_BIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const take = (c: Buffer) => {
        out += c.toString();
        if (until.test(out)) proc.kill('SIGKILL');
      };
      proc.stdout.on('data', take);
      proc.stderr.on('data', take);
      proc.on('exit', () => {
        clearTimeout(timer);
        resolve(out);
      });
    });

  it('TCPKV_PORT=off: only the TLS port listens', async () => {
    const out = await serverOut({ TCPKV_PORT: 'off', TCPKV_TLS_PORT: '0', TCPKV_TLS_CERT_FILE: certs.serverCert, TCPKV_TLS_KEY_FILE: certs.serverKey }, /"msg":"TLS listening"/);
    expect(out).toMatch(/"msg":"TLS listening"/);
    expect(out).not.toMatch(/"msg":"listening"/);
  });

  it('a TLS port without its files, or a key that is not the certificate\'s, stops the start: one line, exit 2', async () => {
    expect((await serverOut({ TCPKV_TLS_PORT: '0' }, /$^/)).trim()).toBe(
      'tcpkv-server: invalid configuration: TCPKV_TLS_PORT is set: TCPKV_TLS_CERT_FILE and TCPKV_TLS_KEY_FILE must name the certificate and its key',
    );
    const mismatched = (await serverOut({ TCPKV_TLS_PORT: '0', TCPKV_TLS_CERT_FILE: certs.serverCert, TCPKV_TLS_KEY_FILE: certs.clientKey }, /$^/)).trim();
    expect(mismatched).toMatch(/^tcpkv-server: invalid configuration: TCPKV_TLS_CERT_FILE=.*server\.pem, TCPKV_TLS_KEY_FILE=.*client\.key: .*key values mismatch/);
    expect(mismatched.split('\n')).toHaveLength(1);
    expect((await serverOut({ TCPKV_PORT: 'off' }, /$^/)).trim()).toBe('tcpkv-server: invalid configuration: TCPKV_PORT=off and no TCPKV_TLS_PORT: the server would listen nowhere');
  });
});
