// Issue 7, acceptance 1: the Terraform recipe parses (no terraform binary here: @cdktf/hcl2json, the
// HCL parser Terraform's own libraries compile to WebAssembly) and has a safe shape by default.
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from '@cdktf/hcl2json';
import { renderCloudInit, templatefileKeys } from './lib/cloud-init.js';
import { repoRoot, terraformDir } from './lib/paths.js';
import { loadModule, one, parseFile, tfFiles, type Hcl, type TerraformModule } from './lib/terraform.js';

const WORLD = ['0.0.0.0/0', '::/0'];

interface IngressRule {
  where: string;
  protocol: unknown;
  from: unknown;
  to: unknown;
  /** every attribute that says where traffic may come from, plus for_each/count */
  sourceText: string;
}

/** All ingress rules of the module, whichever of the three AWS provider styles declares them. */
function ingressRules(m: TerraformModule): IngressRule[] {
  const rules: IngressRule[] = [];
  const text = (...xs: unknown[]): string => JSON.stringify(xs);
  for (const [name, bodies] of Object.entries(m.resource['aws_vpc_security_group_ingress_rule'] ?? {})) {
    for (const r of bodies) {
      rules.push({
        where: `aws_vpc_security_group_ingress_rule.${name}`,
        protocol: r.ip_protocol,
        from: r.from_port,
        to: r.to_port,
        sourceText: text(r.cidr_ipv4, r.cidr_ipv6, r.prefix_list_id, r.referenced_security_group_id, r.for_each, r.count),
      });
    }
  }
  for (const [name, bodies] of Object.entries(m.resource['aws_security_group'] ?? {})) {
    for (const sg of bodies) {
      for (const r of (sg.ingress ?? []) as Hcl[]) {
        rules.push({
          where: `aws_security_group.${name} (inline ingress)`,
          protocol: r.protocol,
          from: r.from_port,
          to: r.to_port,
          sourceText: text(r.cidr_blocks, r.ipv6_cidr_blocks, r.prefix_list_ids, r.security_groups, r.self),
        });
      }
      const dyn = sg.dynamic?.ingress as Hcl[] | undefined;
      for (const d of dyn ?? []) {
        for (const r of (d.content ?? []) as Hcl[]) {
          rules.push({
            where: `aws_security_group.${name} (dynamic ingress)`,
            protocol: r.protocol,
            from: r.from_port,
            to: r.to_port,
            sourceText: text(r.cidr_blocks, r.ipv6_cidr_blocks, r.prefix_list_ids, r.security_groups, d.for_each),
          });
        }
      }
    }
  }
  for (const [name, bodies] of Object.entries(m.resource['aws_security_group_rule'] ?? {})) {
    for (const r of bodies) {
      if (r.type !== 'ingress') continue;
      rules.push({
        where: `aws_security_group_rule.${name}`,
        protocol: r.protocol,
        from: r.from_port,
        to: r.to_port,
        sourceText: text(r.cidr_blocks, r.ipv6_cidr_blocks, r.prefix_list_ids, r.source_security_group_id, r.for_each, r.count),
      });
    }
  }
  return rules;
}

/** Whether a rule may let `port` in. Anything not a literal number counts as "may". */
function covers(rule: IngressRule, port: number): boolean {
  if (rule.protocol === '-1' || rule.protocol === -1 || rule.protocol === 'all') return true;
  if (typeof rule.from !== 'number' || typeof rule.to !== 'number') return true;
  return rule.from <= port && port <= rule.to;
}

/** `local.x` references replaced by their definitions (to follow values through locals). */
function expand(m: TerraformModule, value: unknown, depth = 0): string {
  let s = JSON.stringify(value);
  if (depth > 5) return s;
  for (const [name, def] of Object.entries(m.locals)) {
    if (new RegExp(`\\blocal\\.${name}\\b`).test(s)) s += ` /* local.${name} = */ ${expand(m, def, depth + 1)}`;
  }
  return s;
}

let m: TerraformModule;

beforeAll(async () => {
  m = await loadModule(terraformDir);
});

describe('infra/terraform: every .tf parses with an HCL parser', () => {
  const files = tfFiles(join(repoRoot, 'infra/terraform'));

  it('finds the module files of terraform-aws-modules layout', () => {
    const names = files.map((f) => relative(terraformDir, f));
    expect(names).toEqual(expect.arrayContaining(['versions.tf', 'variables.tf', 'main.tf', 'outputs.tf']));
    expect(existsSync(join(terraformDir, 'terraform.tfvars.example'))).toBe(true);
  });

  it.each(files.map((f) => [relative(repoRoot, f), f]))('%s parses', async (_name, file) => {
    const doc = await parseFile(file);
    expect(Object.keys(doc).length).toBeGreaterThan(0);
  });

  it('the parser does reject broken HCL (the check above means something)', async () => {
    await expect(parse('broken.tf', 'resource "a" "b" {\n  x = \n}\n')).rejects.toThrow();
  });
});

describe('versions.tf: Terraform and the aws provider are pinned', () => {
  it('sets required_version', () => {
    const t = m.terraform.find((b) => b.required_version);
    expect(t?.required_version).toMatch(/^>=\s*1\.\d+/);
  });

  it('pins hashicorp/aws to one major version', () => {
    const providers = m.terraform.flatMap((b) => (b.required_providers ?? []) as Hcl[]);
    for (const name of ['aws', 'tls', 'local']) {
      const p = providers.find((x) => x[name])?.[name] as Hcl | undefined;
      expect(p?.source, name).toBe(`hashicorp/${name}`);
      // "~> 6.0" (or an explicit upper bound such as ">= 6.0, < 7.0"): never an open-ended ">= x".
      expect(p?.version, name).toMatch(/~>\s*\d+\.\d+|<\s*\d+/);
    }
  });
});

describe('variables.tf: the user must say who may connect; the token is a secret', () => {
  it('allowed_client_cidrs has no default, is a list, and is validated (non-empty, CIDRs, no /0)', () => {
    const v = one(m.variable['allowed_client_cidrs'], 'variable allowed_client_cidrs');
    expect(v).not.toHaveProperty('default');
    expect(v.type).toBe('${list(string)}');
    const conditions = ((v.validation ?? []) as Hcl[]).map((x) => String(x.condition));
    expect(conditions.length).toBeGreaterThanOrEqual(1);
    expect(conditions.some((c) => c.includes('length(var.allowed_client_cidrs)'))).toBe(true);
    expect(conditions.some((c) => c.includes('cidrhost('))).toBe(true);
    expect(conditions.some((c) => c.includes('/0'))).toBe(true);
  });

  it('ssh_cidrs opens nothing by default', () => {
    const v = one(m.variable['ssh_cidrs'], 'variable ssh_cidrs');
    expect(v.default).toEqual([]);
  });

  it('shutdown_token is sensitive, has no default, and is validated', () => {
    const v = one(m.variable['shutdown_token'], 'variable shutdown_token');
    expect(v.sensitive).toBe(true);
    expect(v).not.toHaveProperty('default');
    expect((v.validation ?? []).length).toBeGreaterThanOrEqual(1);
  });

  it('shutdown_token refuses the example values (the .env example and terraform.tfvars.example)', () => {
    const conditions = ((one(m.variable['shutdown_token'], 'variable shutdown_token').validation ?? []) as Hcl[]).map((x) => String(x.condition));
    expect(conditions.some((c) => c.includes('"change-me"') && c.includes('"replace-with"'))).toBe(true);
    expect(readFileSync(join(terraformDir, 'terraform.tfvars.example'), 'utf8')).toMatch(/shutdown_token = "replace-with/);
  });

  it('server_image defaults to empty (no release has been published): the instance builds from git', () => {
    expect(one(m.variable['server_image'], 'variable server_image').default).toBe('');
    const built = renderCloudInit(templatefileKeys(String(m.locals['user_data']))).text; // sample server_image: ''
    expect(built).toContain('echo "TCPKV_SERVER_IMAGE=${SERVER_IMAGE:-tcpkv/server:local}"');
    expect(built).toContain('if [ -z "$SERVER_IMAGE" ]; then start_args+=(--build); fi');
  });

  it('has the inputs the issue names', () => {
    for (const name of ['region', 'instance_type', 'allowed_client_cidrs', 'ssh_cidrs', 'key_name', 'shutdown_token', 'git_repo_url', 'git_ref', 'server_image']) {
      expect(m.variable, name).toHaveProperty(name);
    }
  });

  it('every variable has a description and a type', () => {
    for (const [name, bodies] of Object.entries(m.variable)) {
      const v = one(bodies, `variable ${name}`);
      expect(typeof v.description, `${name}.description`).toBe('string');
      expect(v.type, `${name}.type`).toBeTruthy();
    }
  });

  it('terraform.tfvars.example sets every variable without a default, and only declared ones', async () => {
    const file = join(terraformDir, 'terraform.tfvars.example');
    const values = await parse(file, readFileSync(file, 'utf8'));
    for (const [name, bodies] of Object.entries(m.variable)) {
      if (!('default' in one(bodies, name))) expect(values, `tfvars.example must set ${name}`).toHaveProperty(name);
    }
    for (const name of Object.keys(values)) expect(m.variable, `tfvars.example sets undeclared ${name}`).toHaveProperty(name);
    expect(JSON.stringify(values.allowed_client_cidrs)).not.toMatch(/\/0"/);
  });
});

describe('main.tf: security group shape', () => {
  it('no ingress rule may admit the plain port 10000 (it stays on the instance\'s loopback)', () => {
    expect(ingressRules(m).filter((r) => covers(r, 10000)).map((r) => r.where)).toEqual([]);
  });

  it('has ingress rules for the TLS port 10443, and every rule that may admit it comes only from var.allowed_client_cidrs', () => {
    const rules = ingressRules(m).filter((r) => covers(r, 10443));
    expect(rules.length).toBeGreaterThan(0);
    for (const r of rules) {
      expect(r.sourceText, r.where).toContain('var.allowed_client_cidrs');
      expect(new Set(r.sourceText.match(/\bvar\.\w+/g)), `${r.where}: only allowed_client_cidrs`).toEqual(new Set(['var.allowed_client_cidrs']));
      for (const w of WORLD) expect(r.sourceText, r.where).not.toContain(w);
      expect(covers(r, 22), `${r.where} must not also open 22`).toBe(false);
    }
  });

  it('every rule that may admit 22 comes only from var.ssh_cidrs', () => {
    const rules = ingressRules(m).filter((r) => covers(r, 22));
    for (const r of rules) {
      expect(new Set(r.sourceText.match(/\bvar\.\w+/g)), r.where).toEqual(new Set(['var.ssh_cidrs']));
      for (const w of WORLD) expect(r.sourceText, r.where).not.toContain(w);
    }
  });

  it('no ingress rule at all mentions 0.0.0.0/0 or ::/0, and none opens every port', () => {
    for (const r of ingressRules(m)) {
      for (const w of WORLD) expect(r.sourceText, r.where).not.toContain(w);
      expect(['-1', -1, 'all'], r.where).not.toContain(r.protocol);
    }
  });

  it('the instance uses only the security group(s) declared here', () => {
    const inst = one(m.resource['aws_instance']?.['this'], 'aws_instance.this');
    const sgs = inst.vpc_security_group_ids as string[];
    expect(sgs.length).toBeGreaterThan(0);
    for (const ref of sgs) {
      const name = /^\$\{aws_security_group\.(\w+)\.id\}$/.exec(ref)?.[1];
      expect(name, ref).toBeDefined();
      expect(m.resource['aws_security_group'], ref).toHaveProperty(name!);
    }
  });
});

describe('main.tf: the instance', () => {
  const instance = (): Hcl => one(m.resource['aws_instance']?.['this'], 'aws_instance.this');

  it('takes its AMI from an SSM parameter or AMI data source', () => {
    const ami = expand(m, instance().ami);
    expect(ami).toMatch(/data\.aws_ssm_parameter\.|data\.aws_ami\./);
  });

  it('requires IMDSv2 tokens', () => {
    const md = one(instance().metadata_options, 'metadata_options');
    expect(md.http_tokens).toBe('required');
    expect(md.http_endpoint ?? 'enabled').toBe('enabled');
  });

  it('encrypts the root volume', () => {
    expect(one(instance().root_block_device, 'root_block_device').encrypted).toBe(true);
  });

  it('has user data rendered from the cloud-init template, with exactly the variables the template uses', () => {
    const userData = expand(m, instance().user_data);
    expect(userData).toContain('templatefile(');
    expect(userData).toContain('cloud-init.sh.tftpl');
    const keys = templatefileKeys(String(m.locals['user_data']));
    const rendered = renderCloudInit(keys);
    expect([...rendered.used].sort()).toEqual([...keys].sort());
    expect(rendered.text.startsWith('#!/bin/bash\n')).toBe(true);
  });

  it('the bootstrap starts the server with files that exist in this repository', () => {
    const text = renderCloudInit(templatefileKeys(String(m.locals['user_data']))).text;
    expect(text).toContain('infra/remote/start-server.sh');
    expect(existsSync(join(repoRoot, 'infra/remote/start-server.sh'))).toBe(true);
    expect(readFileSync(join(repoRoot, 'infra/remote/start-server.sh'), 'utf8')).toContain('server.compose.yml');
    // the settings the compose file requires are all written
    for (const name of ['TCPKV_ALLOWED_HOSTS', 'TCPKV_ALLOWED_CLIENTS', 'TCPKV_SHUTDOWN_TOKEN']) expect(text).toContain(`${name}=`);
  });

  it('the metadata endpoint is a template variable: AWS\'s address comes from main.tf, the template names none', () => {
    expect(readFileSync(join(terraformDir, 'templates/cloud-init.sh.tftpl'), 'utf8')).not.toMatch(/169\.254\.|fd00:ec2/);
    expect(m.locals['metadata_url']).toBe('http://169.254.169.254');
    expect(String(m.locals['user_data'])).toMatch(/metadata_url_b64\s*=\s*base64encode\(local\.metadata_url\)/);
  });

  it('the server\'s TLS files come from the private CA of tls.tf, and only 10443 is opened for clients', () => {
    const ud = String(m.locals['user_data']);
    expect(ud).toMatch(/tls_server_cert_b64\s*=\s*base64encode\(tls_locally_signed_cert\.server\.cert_pem\)/);
    expect(ud).toMatch(/tls_server_key_b64\s*=\s*base64encode\(tls_private_key\.server\.private_key_pem\)/);
    expect(ud).toMatch(/tls_ca_cert_b64\s*=\s*base64encode\(tls_self_signed_cert\.ca\.cert_pem\)/);
    for (const name of ['client_key', 'client_cert', 'ca_cert']) {
      const f = one(m.resource['local_sensitive_file']?.[name], `local_sensitive_file.${name}`);
      expect(f.file_permission, name).toBe('0600');
      expect(f.directory_permission, name).toBe('0700');
    }
    // the CA's private key is written to no file
    expect(JSON.stringify(m.resource['local_sensitive_file'] ?? {})).not.toContain('tls_private_key.ca');
  });

  it('the allowed clients given to the server are the same CIDRs as the security group', () => {
    expect(String(m.locals['user_data'])).toMatch(/allowed_clients_b64\s*=\s*base64encode\(join\(",", var\.allowed_client_cidrs\)\)/);
  });
});

describe('outputs.tf', () => {
  it('has the public address and a ready-to-paste client command', () => {
    for (const name of ['public_ip', 'public_dns', 'client_command']) {
      const o = one(m.output[name], `output ${name}`);
      expect(o.value, name).toBeTruthy();
      expect(typeof o.description, `${name}.description`).toBe('string');
    }
    const cmd = String(one(m.output['client_command'], 'client_command').value);
    expect(cmd).toContain('scenario');
    for (const file of cmd.match(/infra\/[\w./-]+\.ya?ml/g) ?? []) expect(existsSync(join(repoRoot, file)), file).toBe(true);
  });

  it('every output that reads the token is marked sensitive, and the commands only reference outputs that exist', () => {
    for (const [name, bodies] of Object.entries(m.output)) {
      const o = one(bodies, `output ${name}`);
      if (JSON.stringify(o.value).includes('var.shutdown_token')) expect(o.sensitive, name).toBe(true);
      for (const ref of JSON.stringify(o.value).matchAll(/output -raw (\w+)/g)) expect(m.output, `${name} → ${ref[1]}`).toHaveProperty(ref[1]!);
    }
  });
});
