// Certificates for the TLS tests, made with the openssl command line into a directory: a CA, a
// server certificate for 127.0.0.1 and localhost, a client certificate, an expired server
// certificate, and another CA with a client certificate of its own. ECDSA P-256 keys: cheap
// handshakes on a busy machine.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCertificates {
  readonly dir: string;
  /** file paths */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly expiredCert: string;
  readonly expiredKey: string;
  readonly otherCa: string;
  readonly otherClientCert: string;
  readonly otherClientKey: string;
  read(file: string): Buffer;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function key(dir: string, name: string): void {
  openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
}

function ca(dir: string, name: string, cn: string): void {
  key(dir, name);
  openssl(dir, 'req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-days', '3', '-out', `${name}.pem`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
}

/** A certificate `name` for `subject`, signed by the CA `signer`, with the given extensions. */
export function signCertificate(dir: string, name: string, subject: string, extensions: string, signer: string, days = 3): void {
  key(dir, name);
  openssl(dir, 'req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.pem`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-days', String(days), '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}

export const SERVER_EXTENSIONS = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
const CLIENT_EXTENSIONS = 'extendedKeyUsage=clientAuth\n';

/** An expired certificate: `openssl ca` is the one command of OpenSSL 3.0 that sets dates in the past. */
function expired(dir: string, name: string, signer: string): void {
  key(dir, name);
  openssl(dir, 'req', '-new', '-key', `${name}.key`, '-subj', '/CN=localhost', '-out', `${name}.csr`);
  mkdirSync(join(dir, 'ca-db'), { recursive: true });
  writeFileSync(join(dir, 'ca-db/index.txt'), '');
  writeFileSync(join(dir, 'ca-db/serial'), '01\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    '[ca]\ndefault_ca = test\n[test]\ndatabase = ca-db/index.txt\nnew_certs_dir = ca-db\nserial = ca-db/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n' +
      '[any]\ncommonName = supplied\n[ext]\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n',
  );
  openssl(dir, 'ca', '-batch', '-config', 'ca.cnf', '-cert', `${signer}.pem`, '-keyfile', `${signer}.key`, '-in', `${name}.csr`, '-out', `${name}.pem`, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extensions', 'ext', '-notext');
}

export function makeCertificates(dir: string): TestCertificates {
  ca(dir, 'ca', 'tcpkv test CA');
  ca(dir, 'other-ca', 'another CA');
  signCertificate(dir, 'server', '/CN=localhost', SERVER_EXTENSIONS, 'ca');
  signCertificate(dir, 'client', '/CN=home/O=tcpkv test', CLIENT_EXTENSIONS, 'ca');
  signCertificate(dir, 'other-client', '/CN=stranger', CLIENT_EXTENSIONS, 'other-ca');
  expired(dir, 'expired', 'ca');
  const at = (f: string) => join(dir, f);
  return {
    dir,
    ca: at('ca.pem'),
    serverCert: at('server.pem'),
    serverKey: at('server.key'),
    clientCert: at('client.pem'),
    clientKey: at('client.key'),
    expiredCert: at('expired.pem'),
    expiredKey: at('expired.key'),
    otherCa: at('other-ca.pem'),
    otherClientCert: at('other-client.pem'),
    otherClientKey: at('other-client.key'),
    read: (file) => readFileSync(file),
  };
}
