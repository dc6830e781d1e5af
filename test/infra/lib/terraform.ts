// Parsing Terraform files with @cdktf/hcl2json (HCL → the JSON shape of Terraform's JSON syntax:
// blocks become arrays of objects, expressions become "${...}" strings) and merging a directory.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from '@cdktf/hcl2json';

/* eslint-disable @typescript-eslint/no-explicit-any -- HCL's JSON form is untyped by nature */
export type Hcl = Record<string, any>;

export interface TerraformModule {
  files: string[];
  /** block type → (for resource/data: type → name → body[]) or (variable/output: name → body[]) */
  resource: Record<string, Record<string, Hcl[]>>;
  data: Record<string, Record<string, Hcl[]>>;
  variable: Record<string, Hcl[]>;
  output: Record<string, Hcl[]>;
  locals: Hcl;
  terraform: Hcl[];
  provider: Record<string, Hcl[]>;
}

export function tfFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.tf') && !f.split('/').includes('.terraform'))
    .sort()
    .map((f) => join(dir, f));
}

export async function parseFile(file: string): Promise<Hcl> {
  return parse(file, readFileSync(file, 'utf8'));
}

/** Parses every .tf directly in `dir` (one module) and merges the blocks. */
export async function loadModule(dir: string): Promise<TerraformModule> {
  const files = readdirSync(dir).filter((f) => f.endsWith('.tf')).sort().map((f) => join(dir, f));
  const m: TerraformModule = { files, resource: {}, data: {}, variable: {}, output: {}, locals: {}, terraform: [], provider: {} };
  for (const file of files) {
    const doc = await parseFile(file);
    for (const kind of ['resource', 'data'] as const) {
      for (const [type, byName] of Object.entries<Record<string, Hcl[]>>(doc[kind] ?? {})) {
        m[kind][type] ??= {};
        Object.assign(m[kind][type]!, byName);
      }
    }
    Object.assign(m.variable, doc.variable ?? {});
    Object.assign(m.output, doc.output ?? {});
    Object.assign(m.provider, doc.provider ?? {});
    for (const l of doc.locals ?? []) Object.assign(m.locals, l);
    m.terraform.push(...(doc.terraform ?? []));
  }
  return m;
}

/** The single body of a block such as variable "x" (hcl2json wraps every block body in an array). */
export function one(bodies: Hcl[] | undefined, what: string): Hcl {
  if (!bodies || bodies.length !== 1) throw new Error(`expected exactly one ${what}, found ${bodies?.length ?? 0}`);
  return bodies[0]!;
}
