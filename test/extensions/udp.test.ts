import assert from 'node:assert/strict';
import udp from '../../src/extensions/udp';
import { fixture, matchCtx, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

// Kernel iptables-save output (v1.8.9 nf_tables) for each input.
const OK: [string, string][] = [
  ['--sport 53 ! --dport 1:2', '--sport 53 ! --dport 1:2'],
  ['--sport ssh', '--sport 22'],
  ['--dport :', ''],
  ['--dport 13001:13011', '--dport 13001:13011'],
  ['--destination-port 60000:61000', '--dport 60000:61000'],
  ['--source-port 15053', '--sport 15053'],
  // XTTYPE_PORTRC quirks: decimal only, 16-bit truncation, reversed ranges kept
  ['--dport 70000', '--dport 4464'],
  ['--dport 9:1', '--dport 9:1'],
  ['--dport 010', '--dport 10'],
  ['--dport 5:', '--dport 5:65535'],
  ['--dport :5', '--dport 0:5'],
  ['--dport http', '--dport 80'],
  // libxt_udp.t, and the 16-bit truncation the .t file calls an error
  ['--sport 4:3', '--sport 4:3'],
  ['--sport 65536', '--sport 0'],
  ['--sport 1024:', '--sport 1024:65535'],
  ['! --sport 1 --dport 65535', '! --sport 1 --dport 65535'],
];

describe('match udp', () => {
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(udp, input, { proto: 17 }), expected));
  }

  for (const bad of ['abc', '0x50', '-1']) {
    it(`refuses --dport ${bad} at the value`, () => {
      const e = parseError(udp, `--dport ${bad}`, { proto: 17 });
      assert.ok(e);
      assert.equal(e.reason, `Port "${bad}" does not resolve to anything.`);
      assert.equal(e.loc.column, 9);
    });
  }

  it('a reversed range never matches (and always does inverted)', () => {
    const p = fixture({ proto: 17, dport: 5 });
    assert.equal(matches(udp, parseOpts(udp, '--dport 9:1'), p), false);
    assert.equal(matches(udp, parseOpts(udp, '! --dport 9:1'), p), true);
  });

  it('matches ports of UDP packets only, never later fragments', () => {
    const o = parseOpts(udp, '--dport 53');
    assert.equal(matches(udp, o, fixture({ proto: 17, dport: 53 })), true);
    assert.equal(matches(udp, o, fixture({ proto: 17, dport: 54 })), false);
    assert.equal(matches(udp, o, fixture({ proto: 6, dport: 53 })), false);
    assert.equal(matches(udp, parseOpts(udp, '! --dport 53'), fixture({ proto: 17, fragOffset: 16 })), false);
    assert.equal(matches(udp, parseOpts(udp, '! --dport 53'), fixture({ proto: 17, cutL4: 2 })), false);
    // nft loads only the 4 port bytes
    assert.equal(matches(udp, parseOpts(udp, '--dport 53'), fixture({ proto: 17, dport: 53, cutL4: 4 })), true);
  });

  it('an empty udp match is the xt match: it hotdrops a header shorter than 8 bytes', () => {
    const c = matchCtx(fixture({ proto: 17, cutL4: 6 }));
    assert.equal(udp.match!(parseOpts(udp, ''), c), false);
    assert.equal(c.hotdrop, true);
    assert.equal(matches(udp, parseOpts(udp, ''), fixture({ proto: 17 })), true);
  });

  it('two negated single ports: one 4-byte compare (iptables-nft 1.8.9)', () => {
    const o = parseOpts(udp, '! --sport 6 ! --dport 5');
    assert.equal(matches(udp, o, fixture({ proto: 17, sport: 6, dport: 7 })), true);
    assert.equal(matches(udp, o, fixture({ proto: 17, sport: 6, dport: 5 })), false);
  });

});
