import assert from 'node:assert/strict';
import connmark from '../../src/extensions/connmark';
import { conn, fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match connmark', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--mark 1/1', '--mark 0x1/0x1'],
    ['! --mark 0', '! --mark 0x0'],
    ['--mark 5/0xffffffff', '--mark 0x5'],
    ['--mark 0xffffffff', '--mark 0xffffffff'],
    ['--mark 0x539', '--mark 0x539'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(connmark, input), expected));
  }
  it('requires --mark', () => assert.equal(parseError(connmark, '')?.reason, 'connmark: option "--mark" must be specified'));
  it("tests the connection's mark; no connection never matches, even inverted", () => {
    const p = fixture();
    assert.equal(matches(connmark, parseOpts(connmark, '--mark 0x539'), p, { ct: conn({ mark: 0x539 }) }), true);
    assert.equal(matches(connmark, parseOpts(connmark, '--mark 0x539'), p, { ct: conn({ mark: 1 }), meta: { mark: 0x539 } }), false);
    assert.equal(matches(connmark, parseOpts(connmark, '! --mark 0x539'), p, { ct: conn({ mark: 1 }) }), true);
    assert.equal(matches(connmark, parseOpts(connmark, '! --mark 0x539'), p), false);
    assert.equal(matches(connmark, parseOpts(connmark, '! --mark 0x539'), p, { ct: conn({ state: 'UNTRACKED' }) }), false);
  });
});
