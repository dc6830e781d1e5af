// Certificates replaced on disk while 64 keep-alive connections run requests: no request fails, the
// open connections stay open, new connections get the new certificate — on SIGHUP and on the file
// check alike; a broken new certificate keeps the old one (logged, counted).

import { X509Certificate } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { useTempDirs } from '../support/temp-dirs.js';
import { makeCertificates, SERVER_EXTENSIONS, signCertificate, type TestCertificates } from '../support/tls-certs.js';
import { metricValue, spawnTlsServer, type TlsChildServer } from '../support/tls-server.js';

const tempDir = useTempDirs();
let certs: TestCertificates;
let server: TlsChildServer;
/** the files the server reads (copies, replaced by the test) */
let certFile: string;
let keyFile: string;

beforeAll(async () => {
  certs = makeCertificates(tempDir('tcpkv-tls-reload-'));
  certFile = join(certs.dir, 'serving.pem');
  keyFile = join(certs.dir, 'serving.key');
  copyFileSync(certs.serverCert, certFile);
  copyFileSync(certs.serverKey, keyFile);
  for (const name of ['second', 'third']) signCertificate(certs.dir, name, `/CN=${name}`, SERVER_EXTENSIONS, 'ca');
  server = await spawnTlsServer(certs, { TCPKV_TLS_CERT_FILE: certFile, TCPKV_TLS_KEY_FILE: keyFile, TCPKV_TLS_RELOAD_CHECK_MS: '300', TCPKV_MAX_CONNECTIONS: '1000' }, false);
});
afterAll(async () => {
  server?.kill('SIGKILL');
  await server?.exited;
});

/** The subject CN of the certificate a new connection gets. */
function servedName(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: server.tlsPort, ca: certs.read(certs.ca), servername: 'localhost' }, () => {
      const cn = socket.getPeerCertificate().subject.CN;
      socket.destroy();
      resolve(String(cn));
    });
    socket.on('error', reject);
  });
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Replaces the served files: the key first, then the certificate (as a renewal tool might). */
function install(name: string): void {
  copyFileSync(join(certs.dir, `${name}.key`), keyFile);
  copyFileSync(join(certs.dir, `${name}.pem`), certFile);
}

it('64 connections keep running while the certificate is replaced three times; new connections get each new one', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 64, ca: certs.read(certs.ca), servername: 'localhost' });
  const sockets = new Set<unknown>();
  let stop = false;
  let answered = 0;
  const failures: string[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const req = httpsRequest({ agent, host: '127.0.0.1', port: server.tlsPort, path: '/', headers: { host: 'localhost' } }, (res) => {
        sockets.add(res.socket);
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) answered++;
          else failures.push(`status ${res.statusCode}`);
          resolve();
        });
      });
      req.on('error', (e) => {
        failures.push(e.message);
        resolve();
      });
      req.end();
    });
  const loops = Array.from({ length: 64 }, async () => {
    while (!stop) await one();
  });
  try {
    await eventually(async () => answered > 500, 'the load to run');
    expect(await servedName()).toBe('localhost');

    // SIGHUP
    install('second');
    server.kill('SIGHUP');
    await eventually(async () => (await servedName()) === 'second', 'the second certificate after SIGHUP');

    // a broken certificate: the second one stays, said in the log and the metrics
    const atBroken = answered;
    const failedBefore = metricValue(await server.metrics(), 'tcpkv_tls_certificate_reloads_total', '{result="failed"}');
    writeFileSync(certFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    server.kill('SIGHUP');
    await eventually(async () => metricValue(await server.metrics(), 'tcpkv_tls_certificate_reloads_total', '{result="failed"}') > failedBefore, 'the failed reload');
    expect(server.output()).toMatch(/"err":"TCPKV_TLS_CERT_FILE=[^"]*serving\.pem: not a PEM certificate[^"]*","keeping":"CN=second"[^\n]*"msg":"TLS certificate reload failed: keeping the certificate in use"/);
    expect(await servedName()).toBe('second');

    // the file check: a change on disk is enough
    install('third');
    await eventually(async () => (await servedName()) === 'third', 'the third certificate from the file check');
    await eventually(async () => answered > atBroken + 500, 'more load after the reloads');
  } finally {
    stop = true;
    await Promise.all(loops);
    agent.destroy();
  }
  expect(failures).toEqual([]);
  // the same 64 connections throughout: a reload drops none
  expect(sockets.size).toBe(64);
  const metrics = await server.metrics();
  expect(metricValue(metrics, 'tcpkv_tls_certificate_reloads_total', '{result="ok"}')).toBeGreaterThanOrEqual(2);
  expect(metricValue(metrics, 'tcpkv_tls_certificate_not_after_seconds')).toBe(Math.floor(new Date(new X509Certificate(certs.read(join(certs.dir, 'third.pem'))).validTo).getTime() / 1000));
});
