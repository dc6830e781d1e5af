// Renders the EC2 bootstrap template the way main.tf's templatefile() call does, with sample values.
import { readFileSync } from 'node:fs';
import { cloudInitTemplate } from './paths.js';
import { renderTemplate, type Rendered } from './tftpl.js';

/** Sample inputs, by the name of the Terraform value behind each template variable. */
export const sampleInputs: Record<string, string> = {
  allowed_clients: '198.51.100.7/32,2001:db8::/64',
  allowed_hosts: '203.0.113.10,ec2-203-0-113-10.compute-1.amazonaws.com',
  shutdown_token: 'sample-token-0123456789abcdef',
  git_repo_url: 'https://github.com/your-account/tcpkv.git',
  git_ref: 'main',
  server_image: '',
  node_image: 'node:24-bookworm-slim',
  log_level: 'info',
  expected_public_ip: '203.0.113.10',
  metadata_url: 'http://169.254.169.254',
  tls_ca_cert: '-----BEGIN CERTIFICATE-----\nsample CA\n-----END CERTIFICATE-----\n',
  tls_server_cert: '-----BEGIN CERTIFICATE-----\nsample server\n-----END CERTIFICATE-----\n',
  tls_server_key: '-----BEGIN PRIVATE KEY-----\nsample key\n-----END PRIVATE KEY-----\n',
};

/** Template variables: `x_b64` gets base64(sample x), others the sample itself. */
export function sampleVars(names: Iterable<string>): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const name of names) {
    const base = name.endsWith('_b64') ? name.slice(0, -4) : name;
    const value = sampleInputs[base];
    if (value === undefined) throw new Error(`no sample value for template variable ${name}`);
    vars[name] = name.endsWith('_b64') ? Buffer.from(value, 'utf8').toString('base64') : value;
  }
  return vars;
}

/** The keys of the map literal in `templatefile("...", { k = ..., ... })`. */
export function templatefileKeys(expression: string): string[] {
  const open = expression.indexOf('{', expression.indexOf('templatefile('));
  if (open < 0) throw new Error('no templatefile(..., { ... }) call');
  return [...expression.slice(open).matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=/gm)].map((m) => m[1]!);
}

export function renderCloudInit(names: Iterable<string>): Rendered {
  return renderTemplate(readFileSync(cloudInitTemplate, 'utf8'), sampleVars(names));
}
