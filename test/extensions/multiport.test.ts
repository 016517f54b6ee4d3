import assert from 'node:assert/strict';
import multiport from '../../src/extensions/multiport';
import { fixture, matchCtx, matches, parseError, parseOpts, roundTrip, type CtxOptions } from './packet-fixture';

const TCP: CtxOptions = { proto: 6 };

// Kernel iptables-save output (v1.8.9 nf_tables).
const OK: [string, string, number][] = [
  ['--ports 1,2:3', '--ports 1,2:3', 6],
  ['! --sports 1:2,5', '! --sports 1:2,5', 6],
  ['--destination-ports 53', '--dports 53', 17],
  ['--dports 1', '--dports 1', 132],
  ['--dports 1', '--dports 1', 33],
  ['--dports 1', '--dports 1', 136],
  ['--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15', '--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15', 6],
  ['--dports 1:2,3,4,5,6,7,8,9,10,11,12,13,14,15', '--dports 1:2,3,4,5,6,7,8,9,10,11,12,13,14,15', 6],
  ['--dports 1:2,3:4,5,6,7,8,9,10,11,12,13', '--dports 1:2,3:4,5,6,7,8,9,10,11,12,13', 6],
  ['--dports ssh,http', '--dports 22,80', 6],
  ['--dports 1:2,3:4,5,6,7,8,9,10,11,12,13,14,15', '--dports 1:2,3:4,5,6,7,8,9,10,11,12,13,14,15', 6],
  ['--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14:15', '--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14:15', 6],
  ['--dports 0x10,010', '--dports 16,8', 6],
  ['! --ports 5,6', '! --ports 5,6', 6],
];

const FAIL: [string, CtxOptions, string][] = [
  ['--dports 1', {}, "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"],
  ['--dports 1', { proto: 1 }, 'multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP'],
  ['--dports 1', { proto: 0 }, "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'"],
  ['--dports 1', { proto: 6, protoNegated: true }, 'multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP'],
  ['--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16', TCP, 'too many ports specified'],
  ['--dports 1:2,3:4,5,6,7,8,9,10,11,12,13,14,15,16', TCP, 'too many ports specified'],
  ['--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16', TCP, 'too many ports specified'],
  ['--dports 5:1', TCP, 'invalid portrange specified'],
  ['--dports 1:1', TCP, 'invalid portrange specified'],
  ['--dports 1 --sports 2', TCP, 'multiport: option "--source-ports" cannot be used together with "--destination-ports".'],
  ['--sports 1 --ports 2', TCP, 'multiport: option "--source-ports" cannot be used together with "--ports".'],
  ['--dports 1,', TCP, "invalid port/service `' specified"],
  ['--dports :5', TCP, "invalid port/service `' specified"],
  ['', TCP, 'multiport expection an option'],
];

describe('match multiport', () => {
  for (const [input, expected, proto] of OK) {
    it(`"${input}" (-p ${proto}) -> "${expected}"`, () => assert.equal(roundTrip(multiport, input, { proto }), expected));
  }
  for (const [input, ctx, reason] of FAIL) {
    it(`refuses "${input}" with ${JSON.stringify(ctx)}`, () => assert.equal(parseError(multiport, input, ctx)?.reason, reason));
  }
  it('locates a bad value at the value', () => assert.equal(parseError(multiport, '--dports 5:1', TCP)?.loc.column, 10));

  it('matches single ports and ranges in the chosen direction', () => {
    const p = fixture({ sport: 5000, dport: 443 });
    assert.equal(matches(multiport, parseOpts(multiport, '--dports 80,443', TCP), p), true);
    assert.equal(matches(multiport, parseOpts(multiport, '--dports 80,444:500', TCP), p), false);
    assert.equal(matches(multiport, parseOpts(multiport, '! --dports 80,444:500', TCP), p), true);
    assert.equal(matches(multiport, parseOpts(multiport, '--sports 4000:6000', TCP), p), true);
    assert.equal(matches(multiport, parseOpts(multiport, '--ports 5000', TCP), p), true);
    assert.equal(matches(multiport, parseOpts(multiport, '--ports 6000', TCP), p), false);
    assert.equal(matches(multiport, parseOpts(multiport, '! --ports 1', TCP), fixture({ fragOffset: 8 })), false);
    // only the 4 port bytes are read; fewer is a hotdrop
    assert.equal(matches(multiport, parseOpts(multiport, '--dports 443', TCP), fixture({ dport: 443, cutL4: 4 })), true);
    const c = matchCtx(fixture({ cutL4: 3 }));
    assert.equal(multiport.match!(parseOpts(multiport, '! --dports 443', TCP), c), false);
    assert.equal(c.hotdrop, true);
  });
});
