// The Node.js lines tcpkv supports, checked when a program starts: package.json's `engines` says the
// same, but npm only warns about it, and a program that half works on an unsupported line is worse
// than one clear line. Node 20 is past its end of life; 22 from 22.12 and 24 are the maintained LTS
// lines (22.12 is the first 22 release whose `require(esm)` and stream fixes tcpkv relies on).

/** The oldest supported release of each supported major line. */
const SUPPORTED: readonly (readonly [major: number, minor: number])[] = [
  [22, 12],
  [24, 0],
];

/** Why `version` (as `process.version` gives it, e.g. `v20.20.2`) cannot run tcpkv; undefined = it can. */
export function nodeVersionProblem(version: string): string | undefined {
  const match = /^v?(\d+)\.(\d+)\./.exec(version);
  if (match === null) return `cannot read the Node.js version "${version}"`;
  const major = Number(match[1]);
  const minor = Number(match[2]);
  const newest = SUPPORTED[SUPPORTED.length - 1]!;
  if (major > newest[0]) return undefined;
  const line = SUPPORTED.find(([m]) => m === major);
  if (line !== undefined && minor >= line[1]) return undefined;
  return `Node.js ${version} is not supported: tcpkv needs Node.js 22.12 or newer (22 or 24 LTS)`;
}

/** One line on stderr and exit status 2 when this Node.js cannot run `program`. */
export function refuseUnsupportedNode(program: string): void {
  const problem = nodeVersionProblem(process.version);
  if (problem === undefined) return;
  process.stderr.write(`${program}: ${problem}\n`);
  process.exit(2);
}
