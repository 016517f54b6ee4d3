import assert from 'node:assert/strict';
import icmp from '../../src/extensions/icmp';
import { fixture, matchCtx, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

// Kernel iptables-save output (v1.8.9 nf_tables): types print as numbers, a single code as /N, 255 as any.
const OK: [string, string][] = [
  ['--icmp-type echo-request', '--icmp-type 8'],
  ['--icmp-type any', '--icmp-type any'],
  ['! --icmp-type 3/1', '! --icmp-type 3/1'],
  ['--icmp-type host-unreachable', '--icmp-type 3/1'],
  ['--icmp-type 3', '--icmp-type 3'],
  ['--icmp-type 255', '--icmp-type any'],
  ['--icmp-type echo-reply', '--icmp-type 0'],
  ['--icmp-type Echo-Request', '--icmp-type 8'],
  ['--icmp-type ping', '--icmp-type 8'],
  ['--icmp-type 8/0', '--icmp-type 8/0'],
  ['--icmp-type 0/0', '--icmp-type 0/0'],
  ['--icmp-type 13', '--icmp-type 13'],
  ['--icmp-type network-unreachable', '--icmp-type 3/0'],
  ['--icmp-type destination-unreachable', '--icmp-type 3'],
  ['--icmp-type 0x8', '--icmp-type 8'],
  ['--icmp-type 3/255', '--icmp-type 3/255'],
  ['--icmp-type 3/0x3', '--icmp-type 3/3'],
  ['--icmp-type redirect', '--icmp-type 5'],
  ['--icmp-type timestamp-request', '--icmp-type 13'],
  ['--icmp-type ttl-zero-during-transit', '--icmp-type 11/0'],
  // libipt_icmp.t
  ['--icmp-type 255/255', '--icmp-type any'],
  ['--icmp-type 255/0:255', '--icmp-type any'],
  // a code range prints only its minimum
  ['--icmp-type 3/1:3', '--icmp-type 3/1'],
];

const FAIL: [string, string][] = [
  ['--icmp-type foo', "Unknown ICMP type `foo'"],
  ['--icmp-type 3/300', "Unknown ICMP code `3/300'"],
  ['--icmp-type 256', "Unknown ICMP type `256'"],
  ['--icmp-type echo', "Ambiguous ICMP type `echo': `echo-reply' or `echo-request'?"],
  ['--icmp-type 8/', "Unknown ICMP code `8/'"],
  ['--icmp-type a', "Ambiguous ICMP type `a': `any' or `address-mask-request'?"],
];

describe('match icmp', () => {
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(icmp, input, { proto: 1 }), expected));
  }
  for (const [input, reason] of FAIL) {
    it(`refuses "${input}"`, () => {
      const e = parseError(icmp, input, { proto: 1 });
      assert.ok(e);
      assert.equal(e.reason, reason);
      assert.equal(e.loc.column, 13);
    });
  }
  it('requires --icmp-type, located at -m icmp', () => {
    const e = parseError(icmp, '', { proto: 1 });
    assert.ok(e);
    assert.equal(e.reason, 'icmp: option "--icmp-type" must be specified');
    assert.equal(e.loc.column, 100);
  });
  it('is IPv4 only', () => assert.equal(icmp.family, 4));

  it('matches type and code range; any matches all ICMP', () => {
    const unreachPort = fixture({ proto: 1, icmpType: 3, icmpCode: 3 });
    const echo = fixture({ proto: 1, icmpType: 8, icmpCode: 0 });
    assert.equal(matches(icmp, parseOpts(icmp, '--icmp-type destination-unreachable'), unreachPort), true);
    assert.equal(matches(icmp, parseOpts(icmp, '--icmp-type port-unreachable'), unreachPort), true);
    assert.equal(matches(icmp, parseOpts(icmp, '--icmp-type host-unreachable'), unreachPort), false);
    assert.equal(matches(icmp, parseOpts(icmp, '! --icmp-type host-unreachable'), unreachPort), true);
    assert.equal(matches(icmp, parseOpts(icmp, '--icmp-type any'), echo), true);
    assert.equal(matches(icmp, parseOpts(icmp, '! --icmp-type any'), echo), false);
    assert.equal(matches(icmp, parseOpts(icmp, '--icmp-type 8'), fixture({ proto: 1, fragOffset: 8 })), false);
    assert.equal(matches(icmp, parseOpts(icmp, '--icmp-type 3/1:3'), unreachPort), true);
    assert.equal(matches(icmp, parseOpts(icmp, '--icmp-type 3/4:9'), unreachPort), false);
    const short = matchCtx(fixture({ proto: 1, cutL4: 4 }));
    assert.equal(icmp.match!(parseOpts(icmp, '! --icmp-type 0'), short), false);
    assert.equal(short.hotdrop, true);
  });
});
