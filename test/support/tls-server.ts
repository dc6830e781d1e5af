// A tcpkv-server child process with its TLS port (and admin port) open, for the TLS tests.

import { request as httpRequest } from 'node:http';
import { spawnServer, type ChildServer } from './net.js';
import type { TestCertificates } from './tls-certs.js';

export interface TlsChildServer extends ChildServer {
  readonly tlsPort: number;
  readonly adminPort: number;
  /** the admin port's /metrics text */
  metrics(): Promise<string>;
}

async function waitFor(server: ChildServer, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const m = pattern.exec(server.output());
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no ${what} in the server's output:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The server with mutual TLS (unless `mutual: false`), a plain port and an admin port, all on free ports. */
export async function spawnTlsServer(certs: TestCertificates, env: Record<string, string> = {}, mutual = true): Promise<TlsChildServer> {
  const server = await spawnServer({
    TCPKV_TLS_PORT: '0',
    TCPKV_TLS_CERT_FILE: certs.serverCert,
    TCPKV_TLS_KEY_FILE: certs.serverKey,
    ...(mutual ? { TCPKV_TLS_CLIENT_CA_FILE: certs.ca } : {}),
    TCPKV_ADMIN_PORT: '0',
    ...env,
  });
  const tlsPort = Number((await waitFor(server, /"port":(\d+)[^\n]*"msg":"TLS listening"/, 'TLS listening line'))[1]);
  const adminPort = Number((await waitFor(server, /"port":(\d+)[^\n]*"msg":"admin port listening/, 'admin port line'))[1]);
  const metrics = () =>
    new Promise<string>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: adminPort, path: '/metrics' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
  return Object.assign(server, { tlsPort, adminPort, metrics });
}

/** One sample of a metric family from the exposition text (0 when absent). */
export function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}
