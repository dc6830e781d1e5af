// A strict subset of Terraform's templatefile(): enough to render infra/terraform/aws/templates/*.tftpl
// without a terraform binary. Supported: ${name} (a variable of the map), $${ (a literal "${") and
// %%{ (a literal "%{"). Anything else Terraform would evaluate (${expr}, %{directive}) is an error
// here, as is a name missing from the map, so the template stays plain enough to check this way.

export interface Rendered {
  text: string;
  /** the variables the template referenced */
  used: Set<string>;
}

export function renderTemplate(template: string, vars: Record<string, string>): Rendered {
  let text = '';
  const used = new Set<string>();
  let i = 0;
  const where = (at: number): string => `line ${template.slice(0, at).split('\n').length}`;
  while (i < template.length) {
    if (template.startsWith('$${', i)) {
      text += '${';
      i += 3;
    } else if (template.startsWith('%%{', i)) {
      text += '%{';
      i += 3;
    } else if (template.startsWith('${', i)) {
      const end = template.indexOf('}', i);
      if (end < 0) throw new Error(`unterminated \${ at ${where(i)}`);
      const name = template.slice(i + 2, end).trim();
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new Error(`template expression \${${name}} at ${where(i)} is not a plain variable (write $\${ for a shell expansion)`);
      }
      const value = vars[name];
      if (value === undefined) throw new Error(`template variable ${name} at ${where(i)} is not in the map`);
      text += value;
      used.add(name);
      i = end + 1;
    } else if (template.startsWith('%{', i)) {
      throw new Error(`template directive at ${where(i)} is not supported here (write %%{ for a literal)`);
    } else {
      text += template[i];
      i += 1;
    }
  }
  return { text, used };
}
