// The client's pure parts: the prompt's word splitting (a shell's), command completion, the request
// bytes of the seed dialect (its Content-Length in characters), the pair hints, and the scenario
// table (control characters escaped, 120 columns).

import { describe, expect, it } from 'vitest';
import { buildRequest } from '../../services/client/client.js';
import { pairHints } from '../../services/client/commands.js';
import { completeCommand, splitWords } from '../../services/client/repl.js';
import { columns, escapeControls, formatTable, TABLE_WIDTH } from '../../services/client/scenario.js';
import { seedRequestBytes } from '../support/net.js';

describe('splitWords: the words a POSIX shell would pass', () => {
  it.each([
    ['create "a: 1" "b: 2"', ['create', 'a: 1', 'b: 2']],
    ["put 'k' 'it''s'", ['put', 'k', 'its']],
    ['put k "say \\"hi\\" \\\\ $x"', ['put', 'k', 'say "hi" \\ $x']],
    ['put k a\\ b', ['put', 'k', 'a b']],
    ['  get   ', ['get']],
    ['put k ""', ['put', 'k', '']],
    ['put k "x & y: z"', ['put', 'k', 'x & y: z']],
  ])('%s', (line, words) => expect(splitWords(line)).toEqual(words));
  it('an unterminated quote is an error, not a guess', () => {
    expect(() => splitWords('create "a: 1')).toThrow(/unterminated " quote/);
    expect(() => splitWords("get 'x")).toThrow(/unterminated ' quote/);
  });
});

describe('completeCommand', () => {
  it('completes the command word, and the word after help', () => {
    expect(completeCommand('ge', () => undefined)).toEqual([['get '], 'ge']);
    expect(completeCommand('s', () => undefined)).toEqual([['shutdown ', 'scenario '], 's']);
    expect(completeCommand('help sc', () => undefined)).toEqual([['scenario'], 'sc']);
    expect(completeCommand('get some', () => undefined)).toEqual([[], 'get some']);
  });
});

describe('the seed dialect counts Content-Length in characters, as the seed client does', () => {
  it.each(['ID: 20182793', '이름: 김민식', 'emoji: 🚀', 'é: ü'])('%s', (body) => {
    const bytes = buildRequest({ method: 'POST', path: 'create', body }, 'seed', '127.0.0.1', 10000);
    expect(bytes.toString('utf8')).toContain(`Content-Length: ${[...body].length}\r\n\n`);
    if (!/[\u{10000}-\u{10ffff}]/u.test(body)) expect(bytes.toString('utf8')).toBe(seedRequestBytes('POST', '127.0.0.1/create', body));
    const standard = buildRequest({ method: 'POST', path: 'create', body }, 'standard', '127.0.0.1', 10000);
    expect(standard.toString('utf8')).toContain(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n`);
  });
});

describe('pairHints', () => {
  it('names the pair and what is wrong with it', () => {
    expect(pairHints('a: 1&b2')).toEqual(['pair 2 of 2 "b2" has no ":" — write it as "key: value"']);
    expect(pairHints(': 95')).toEqual(['pair 1 of 1 ": 95" has a blank key']);
    expect(pairHints('a: 1&&b: 2')).toEqual(['pair 2 of 3 "" is empty (an extra "&"?)']);
    expect(pairHints('a: 1&a: 2')).toEqual(['key "a" is given twice']);
    expect(pairHints('a: x\ny')).toEqual(['pair 1 of 1 "a: x\\ny" holds a line break or another control character']);
    expect(pairHints('a: 1&url: http://x')).toEqual([]);
  });
});

describe('the scenario table', () => {
  it('escapes control characters and fits 120 columns whatever the server said', () => {
    expect(escapeControls('200 ID:1\r\n\x1b[2J\t')).toBe('200 ID:1\\r\\n\\x1b[2J\\t');
    const long = 'x'.repeat(300);
    const table = formatTable([
      { n: 7, request: `POST 127.0.0.1/create "${long}"`, expected: `200 ${long}`, got: `200 ${long}\r\x1b[2J`, ok: true, answered: true },
      { n: 16, request: 'END 127.0.0.1/', expected: 'server stops', got: 'connection closed, no answer', ok: true, answered: true },
    ]);
    // eslint-disable-next-line no-control-regex
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    for (const line of table.split('\n')) expect([...line].length).toBeLessThanOrEqual(TABLE_WIDTH);
    expect(table).toContain('2/2 cases passed');
    // Korean takes two columns a character on a terminal
    const wide = formatTable([{ n: 7, request: `POST "${'과목'.repeat(40)}"`, expected: '200', got: `200 ${'컴퓨터네트워크'.repeat(10)}`, ok: true, answered: true }]);
    for (const line of wide.split('\n')) expect(columns(line)).toBeLessThanOrEqual(TABLE_WIDTH);
    expect(wide).toContain('200 컴퓨터네트워크');
  });
});
