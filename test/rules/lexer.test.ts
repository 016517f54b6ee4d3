import assert from 'node:assert/strict';
import { LexError, lexLine } from '../../src/rules/lexer';

const texts = (line: string) => lexLine(line).map((w) => w.text);

describe('rules/lexer', () => {
  it('splits on blanks and gives 1-based columns', () => {
    assert.deepEqual(lexLine('-A  INPUT\t-j ACCEPT'), [
      { text: '-A', col: 1 },
      { text: 'INPUT', col: 5 },
      { text: '-j', col: 11 },
      { text: 'ACCEPT', col: 14 },
    ]);
  });
  it('groups quoted text and unescapes inside quotes', () => {
    assert.deepEqual(texts('--comment "a b \\"c\\" \\\\ d"'), ['--comment', 'a b "c" \\ d']);
  });
  it('lets quotes start mid-word and ends the word at the closing quote', () => {
    assert.deepEqual(texts('ab"c d"e f'), ['abc d', 'e', 'f']);
  });
  it('keeps an empty quoted word and backslashes outside quotes', () => {
    assert.deepEqual(texts('x "" a\\b'), ['x', '', 'a\\b']);
  });
  it('runs an unterminated quote to the end of the line, as iptables 1.8.9', () => {
    assert.deepEqual(texts('--comment "abc -j ACCEPT'), ['--comment', 'abc -j ACCEPT']);
  });
  it('refuses a word longer than iptables\' buffer', () => {
    assert.throws(() => lexLine(`x ${'a'.repeat(1024)}`), (e: unknown) => e instanceof LexError && e.col === 3);
  });
});
