import assert from 'node:assert/strict';
import icmp6 from '../../src/extensions/icmp6';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

// Kernel ip6tables-save output (v1.8.9 nf_tables).
const OK: [string, string][] = [
  ['--icmpv6-type echo-request', '--icmpv6-type 128'],
  ['--icmpv6-type 1/3', '--icmpv6-type 1/3'],
  ['! --icmpv6-type destination-unreachable', '! --icmpv6-type 1'],
  ['--icmpv6-type port-unreachable', '--icmpv6-type 1/4'],
  ['--icmpv6-type 255', '--icmpv6-type 255'],
  ['--icmpv6-type 1/0', '--icmpv6-type 1/0'],
  ['--icmpv6-type neighbour-solicitation', '--icmpv6-type 135'],
  ['--icmpv6-type neighbor-solicitation', '--icmpv6-type 135'],
  ['--icmpv6-type 3', '--icmpv6-type 3'],
  ['--icmpv6-type 1/2:4', '--icmpv6-type 1/2'],
];

describe('match icmp6', () => {
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(icmp6, input, { family: 6, proto: 58 }), expected));
  }
  it('has no `any` and refuses types above 255', () => {
    assert.equal(parseError(icmp6, '--icmpv6-type any', { family: 6 })?.reason, "Unknown ICMPv6 type `any'");
    assert.equal(parseError(icmp6, '--icmpv6-type 300', { family: 6 })?.reason, "Unknown ICMPv6 type `300'");
    // ip6tables 1.8.9 knows no MLD names
    assert.equal(parseError(icmp6, '--icmpv6-type mld-listener-query', { family: 6 })?.reason, "Unknown ICMPv6 type `mld-listener-query'");
    assert.equal(parseError(icmp6, '', { family: 6 })?.reason, 'icmp6: option "--icmpv6-type" must be specified');
  });
  it('is IPv6 only, implicit for protocol 58', () => {
    assert.equal(icmp6.family, 6);
    assert.equal(icmp6.protocolMatch, 58);
  });
  it('matches type/code; 255 is an ordinary type', () => {
    const ns = fixture({ family: 6, proto: 58, icmpType: 135, icmpCode: 0 });
    assert.equal(matches(icmp6, parseOpts(icmp6, '--icmpv6-type neighbour-solicitation', { family: 6 }), ns), true);
    assert.equal(matches(icmp6, parseOpts(icmp6, '--icmpv6-type 255', { family: 6 }), ns), false);
    assert.equal(matches(icmp6, parseOpts(icmp6, '! --icmpv6-type 136', { family: 6 }), ns), true);
    assert.equal(matches(icmp6, parseOpts(icmp6, '--icmpv6-type 135/1', { family: 6 }), ns), false);
  });
});
