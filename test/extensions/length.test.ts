import assert from 'node:assert/strict';
import length from '../../src/extensions/length';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match length', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--length 100', '--length 100'],
    ['! --length 10:200', '! --length 10:200'],
    ['--length :200', '--length 0:200'],
    ['--length 300:', '--length 300:65535'],
    ['--length 5:3', '--length 5:3'],
    ['--length 5:', '--length 5:65535'],
    ['! --length 0:65535', '! --length 0:65535'],
    ['--length 0:3', '--length 0:3'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(length, input), expected));
  }
  it('refuses values out of range and a missing --length', () => {
    assert.equal(parseError(length, '--length 70000')?.reason, 'length: bad value for option "--length" near "70000", or out of range (0-65535).');
    assert.equal(parseError(length, '--length abc')?.reason, 'length: bad value for option "--length" near "abc", or out of range (0-65535).');
    assert.equal(parseError(length, '--length 0:65536')?.reason, 'length: bad value for option "--length" near "65536", or out of range (0-65535).');
    assert.equal(parseError(length, '')?.reason, 'length: option "--length" must be specified');
  });
  it('uses the IPv4 total length and the IPv6 payload length plus 40', () => {
    const v4 = fixture({ proto: 17, payload: new Array(72).fill(0) }); // 20 + 8 + 72 = 100
    assert.equal(matches(length, parseOpts(length, '--length 100'), v4), true);
    assert.equal(matches(length, parseOpts(length, '--length 101:'), v4), false);
    assert.equal(matches(length, parseOpts(length, '! --length 101:'), v4), true);
    const v6 = fixture({ family: 6, proto: 17, payload: new Array(52).fill(0) }); // 40 + 8 + 52 = 100
    assert.equal(matches(length, parseOpts(length, '--length 100'), v6), true);
    // the header's length counts even when the queue copied less
    const big = fixture({ proto: 17, length: 1500 });
    assert.equal(matches(length, parseOpts(length, '--length 1500'), big), true);
  });
});
