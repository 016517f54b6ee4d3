import assert from 'node:assert/strict';
import mark from '../../src/extensions/mark';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match mark', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--mark 5', '--mark 0x5'],
    ['! --mark 0x5/0xf', '! --mark 0x5/0xf'],
    ['--mark 0xffffffff/0xffffffff', '--mark 0xffffffff'],
    ['--mark 010', '--mark 0x8'],
    ['--mark 0x10/0x0', '--mark 0x10/0x0'],
    ['--mark 0x4000/0x4000', '--mark 0x4000/0x4000'],
    ['--mark 0xfeedcafe/0xfeedcafe', '--mark 0xfeedcafe/0xfeedcafe'],
    ['--mark 0x0', '--mark 0x0'],
    ['--mark 4294967295', '--mark 0xffffffff'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(mark, input), expected));
  }
  for (const bad of ['foo', '4294967296', '1/foo', '-1']) {
    it(`refuses --mark ${bad}`, () => {
      const e = parseError(mark, `--mark ${bad}`);
      assert.equal(e?.reason, 'mark: bad integer value for option "--mark", or out of range.');
      assert.equal(e?.loc.column, 8);
    });
  }
  it('requires --mark', () => assert.equal(parseError(mark, '')?.reason, 'mark: option "--mark" must be specified'));
  it('matches (mark & mask) == value', () => {
    const p = fixture();
    assert.equal(matches(mark, parseOpts(mark, '--mark 0x4000/0x4000'), p, { meta: { mark: 0x4001 } }), true);
    assert.equal(matches(mark, parseOpts(mark, '--mark 0x4000/0x4000'), p, { meta: { mark: 0x1 } }), false);
    assert.equal(matches(mark, parseOpts(mark, '! --mark 0x4000/0x4000'), p, { meta: { mark: 0x1 } }), true);
    assert.equal(matches(mark, parseOpts(mark, '--mark 0x539'), p, { meta: { mark: 0x539 } }), true);
    assert.equal(matches(mark, parseOpts(mark, '--mark 0xffffffff'), p, { meta: { mark: 0xffffffff } }), true);
    assert.equal(matches(mark, parseOpts(mark, '--mark 0x10/0x0'), p, { meta: { mark: 0x10 } }), false);
  });
});
