import assert from 'node:assert/strict';
import comment from '../../src/extensions/comment';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match comment', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--comment "hello world"', '--comment "hello world"'],
    [`--comment 'x"y'`, '--comment "x\\"y"'],
    ['--comment abc', '--comment abc'],
    ['--comment ""', '--comment ""'],
    [`--comment "a'b"`, `--comment "a\\'b"`],
    ['--comment "a\\\\b"', '--comment "a\\\\b"'],
    ['--comment "a.b"', '--comment "a.b"'],
    ['--comment "a:b/c"', '--comment "a:b/c"'],
  ];
  for (const [input, expected] of OK) {
    it(`${input} -> ${expected}`, () => assert.equal(roundTrip(comment, input), expected));
  }
  it('keeps 255 bytes and cuts longer comments there, as iptables does', () => {
    const a255 = 'a'.repeat(255);
    assert.equal(roundTrip(comment, `--comment ${a255}`), `--comment ${a255}`);
    assert.equal(roundTrip(comment, `--comment ${'a'.repeat(300)}`), `--comment ${a255}`);
    // never splits a UTF-8 character
    const cut = parseOpts(comment, `--comment ${'é'.repeat(130)}`).comment;
    assert.equal(cut, 'é'.repeat(127));
  });
  it('requires --comment and always matches', () => {
    assert.equal(parseError(comment, '')?.reason, 'comment: option "--comment" must be specified');
    assert.equal(comment.options[0].invertible, undefined);
    assert.equal(matches(comment, parseOpts(comment, '--comment x'), fixture()), true);
  });
});
