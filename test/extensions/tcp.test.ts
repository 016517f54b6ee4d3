import assert from 'node:assert/strict';
import tcp from '../../src/extensions/tcp';
import { fixture, matchCtx, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

// Inputs and the kernel's own iptables-save output (iptables v1.8.9 nf_tables, checked in a namespace), plus the
// relevant lines of extensions/libxt_tcp.t.
const OK: [string, string][] = [
  ['--syn', '--tcp-flags FIN,SYN,RST,ACK SYN'],
  ['! --syn', '! --tcp-flags FIN,SYN,RST,ACK SYN'],
  ['--tcp-flags ALL SYN,ACK', '--tcp-flags FIN,SYN,RST,PSH,ACK,URG SYN,ACK'],
  ['--tcp-flags NONE NONE', ''],
  ['--tcp-flags SYN,FIN SYN --sport 1:1024 --dport 80:', '--sport 1:1024 --dport 80:65535 --tcp-flags FIN,SYN SYN'],
  ['--dport :1000 ! --sport ssh', '! --sport 22 --dport 0:1000'],
  ['--tcp-option 2 ! --tcp-flags URG,PSH PSH', '--tcp-option 2 ! --tcp-flags PSH,URG PSH'],
  ['! --tcp-option 3', '! --tcp-option 3'],
  ['--source-port 5 --destination-port 6', '--sport 5 --dport 6'],
  ['--dport 5:5', '--dport 5'],
  ['--sport 0:65535', ''],
  ['--sport 0:65534', '--sport 0:65534'],
  ['--dport 0', '--dport 0'],
  ['--tcp-flags syn,ack SYN', '--tcp-flags SYN,ACK SYN'],
  ['--tcp-flags ALL ALL', '--tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,SYN,RST,PSH,ACK,URG'],
  ['--tcp-flags ALL NONE', '--tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE'],
  ['--tcp-flags SYN,SYN SYN', '--tcp-flags SYN SYN'],
  ['--tcp-flags SYN ACK', '--tcp-flags SYN ACK'],
  ['--dport 80 ! --tcp-flags SYN,ACK SYN --sport 5 --tcp-option 5', '--sport 5 --dport 80 --tcp-option 5 ! --tcp-flags SYN,ACK SYN'],
  ['--dport 1:', '--dport 1:65535'],
  ['--sport 0:0', '--sport 0'],
  ['--sport 65535:', '--sport 65535'],
  ['--dport 0x50', '--dport 80'],
  ['', ''],
  ['--tcp-flags "" ""', ''],
  ['--tcp-flags FIN,SYN,RST,PSH,ACK,URG RST', '--tcp-flags FIN,SYN,RST,PSH,ACK,URG RST'],
  // libxt_tcp.t
  ['--sport 1', '--sport 1'],
  ['--sport 65535', '--sport 65535'],
  ['--sport 1024:65535', '--sport 1024:65535'],
  ['--sport :', ''],
  ['--sport :4', '--sport 0:4'],
  ['--dport 4:4', '--dport 4'],
  ['! --sport 65535 --dport 1', '! --sport 65535 --dport 1'],
  ['--tcp-flags FIN,SYN,RST,PSH,ACK,URG SYN', '--tcp-flags FIN,SYN,RST,PSH,ACK,URG SYN'],
];

const FAIL: [string, string, number][] = [
  ['--syn --tcp-flags SYN SYN', "Only one of `--syn' or `--tcp-flags'", 7],
  ['--tcp-flags FOO SYN', "Unknown TCP flag `FOO'", 13],
  ['--tcp-flags SYN ECE', "Unknown TCP flag `ECE'", 17],
  ['--dport 5:1', 'invalid portrange (min > max)', 9],
  ['--dport 70000', "invalid port/service `70000' specified", 9],
  ['--sport nosuchservice', "invalid port/service `nosuchservice' specified", 9],
  ['--tcp-option 0', 'Bad TCP option "0"', 14],
  ['--sport 4:3', 'invalid portrange (min > max)', 9],
  ['--sport 65536', "invalid port/service `65536' specified", 9],
  ['--sport -1', "invalid port/service `-1' specified", 9],
  ['--tcp-option 256', 'Bad TCP option "256"', 14],
];

describe('match tcp', () => {
  describe('parse and format as iptables-save prints', () => {
    for (const [input, expected] of OK) {
      it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(tcp, input, { proto: 6 }), expected));
    }
  });

  describe('refusals, located at the offending word', () => {
    for (const [input, reason, column] of FAIL) {
      it(`refuses "${input}"`, () => {
        const e = parseError(tcp, input, { proto: 6 });
        assert.ok(e, 'expected a RuleError');
        assert.ok(e.reason.startsWith(reason), e.reason);
        assert.equal(e.loc.column, column);
        assert.equal(e.loc.line, 1);
      });
    }
  });

  it('is the implicit match of -p tcp', () => assert.equal(tcp.protocolMatch, 6));

  describe('match', () => {
    const syn = fixture({ tcpFlags: 0x02, sport: 40000, dport: 443 });
    const synAck = fixture({ tcpFlags: 0x12, sport: 40000, dport: 443 });
    const synEce = fixture({ tcpFlags: 0x42, sport: 40000, dport: 443 });

    it('--syn matches SYN only, ignoring ECE/CWR bits', () => {
      const o = parseOpts(tcp, '--syn');
      assert.equal(matches(tcp, o, syn), true);
      assert.equal(matches(tcp, o, synEce), true);
      assert.equal(matches(tcp, o, synAck), false);
      const n = parseOpts(tcp, '! --syn');
      assert.equal(matches(tcp, n, syn), false);
      assert.equal(matches(tcp, n, synAck), true);
    });

    it('--tcp-flags compares the masked flags', () => {
      assert.equal(matches(tcp, parseOpts(tcp, '--tcp-flags SYN,ACK SYN,ACK'), synAck), true);
      assert.equal(matches(tcp, parseOpts(tcp, '--tcp-flags SYN,ACK SYN,ACK'), syn), false);
      // cmp bits outside the mask can never match
      assert.equal(matches(tcp, parseOpts(tcp, '--tcp-flags SYN ACK'), synAck), false);
    });

    it('port ranges and their inversion', () => {
      assert.equal(matches(tcp, parseOpts(tcp, '--dport 400:500'), syn), true);
      assert.equal(matches(tcp, parseOpts(tcp, '--dport 444:'), syn), false);
      assert.equal(matches(tcp, parseOpts(tcp, '! --dport 444:'), syn), true);
      assert.equal(matches(tcp, parseOpts(tcp, '--sport :40000 --dport 443'), syn), true);
      assert.equal(matches(tcp, parseOpts(tcp, '--sport :39999'), syn), false);
    });

    it('never matches a later fragment, even inverted', () => {
      const frag = fixture({ fragOffset: 8 });
      assert.equal(matches(tcp, parseOpts(tcp, '! --dport 1'), frag), false);
      assert.equal(matches(tcp, parseOpts(tcp, ''), frag), false);
    });

    it('port and flag tests are nft payload loads: a short header is no match, never a hotdrop', () => {
      const eight = fixture({ dport: 80, cutL4: 8 });
      const c1 = matchCtx(eight);
      assert.equal(tcp.match!(parseOpts(tcp, '--dport 80'), c1), true); // only 4 bytes are loaded
      assert.equal(c1.hotdrop, undefined);
      const c2 = matchCtx(eight);
      assert.equal(tcp.match!(parseOpts(tcp, '--syn'), c2), false); // byte 13 is missing
      assert.equal(c2.hotdrop, undefined);
      assert.equal(tcp.match!(parseOpts(tcp, '! --dport 1'), matchCtx(fixture({ cutL4: 2 }))), false);
    });

    it('the xt tcp match (an option test, or no test) hotdrops short headers and offset-8 fragments', () => {
      const short = matchCtx(fixture({ cutL4: 8 }));
      assert.equal(tcp.match!(parseOpts(tcp, '--tcp-option 2'), short), false);
      assert.equal(short.hotdrop, true);
      const empty = matchCtx(fixture({ cutL4: 19 }));
      assert.equal(tcp.match!(parseOpts(tcp, ''), empty), false);
      assert.equal(empty.hotdrop, true);
      const evil = matchCtx(fixture({ fragOffset: 8 }));
      assert.equal(tcp.match!(parseOpts(tcp, ''), evil), false);
      assert.equal(evil.hotdrop, true);
      const later = matchCtx(fixture({ fragOffset: 16 }));
      assert.equal(tcp.match!(parseOpts(tcp, ''), later), false);
      assert.equal(later.hotdrop, undefined);
      // options running past the packet
      const cutOpts = fixture({ tcpOptions: [2, 4, 5, 0xb4] });
      const c = matchCtx({ ...cutOpts, data: cutOpts.data.slice(0, cutOpts.data.length - 2) });
      assert.equal(tcp.match!(parseOpts(tcp, '--tcp-option 8'), c), false);
      assert.equal(c.hotdrop, true);
    });

    it('two negated single ports are one compare in iptables-nft 1.8.9: no match only when both are equal', () => {
      const o = parseOpts(tcp, '! --sport 6 ! --dport 5');
      assert.equal(matches(tcp, o, fixture({ sport: 6, dport: 5 })), false);
      assert.equal(matches(tcp, o, fixture({ sport: 6, dport: 7 })), true); // xt_tcpudp would say false
      assert.equal(matches(tcp, o, fixture({ sport: 7, dport: 7 })), true);
      const mixed = parseOpts(tcp, '! --sport 6 --dport 5');
      assert.equal(matches(tcp, mixed, fixture({ sport: 6, dport: 5 })), false);
      assert.equal(matches(tcp, mixed, fixture({ sport: 7, dport: 5 })), true);
      const ranges = parseOpts(tcp, '! --sport 6:7 ! --dport 5');
      assert.equal(matches(tcp, ranges, fixture({ sport: 6, dport: 9 })), false);
    });

    it('an inverted full range loads nothing: every TCP packet matches, later fragments too', () => {
      const o = parseOpts(tcp, '! --sport 0:65535');
      assert.equal(matches(tcp, o, fixture()), true);
      assert.equal(matches(tcp, o, fixture({ fragOffset: 16 })), true);
    });

    it('--tcp-option finds an option kind by walking the option list', () => {
      // NOP, NOP, MSS(2) len 4, then SACK-permitted(4) len 2
      const p = fixture({ tcpOptions: [1, 1, 2, 4, 0x05, 0xb4, 4, 2] });
      assert.equal(matches(tcp, parseOpts(tcp, '--tcp-option 2'), p), true);
      assert.equal(matches(tcp, parseOpts(tcp, '--tcp-option 4'), p), true);
      assert.equal(matches(tcp, parseOpts(tcp, '--tcp-option 8'), p), false);
      assert.equal(matches(tcp, parseOpts(tcp, '! --tcp-option 8'), p), true);
      // the value byte 0x05 of MSS is not taken for an option kind
      assert.equal(matches(tcp, parseOpts(tcp, '--tcp-option 5'), p), false);
      // no options at all: the inverted test matches
      assert.equal(matches(tcp, parseOpts(tcp, '! --tcp-option 2'), fixture()), true);
    });

    it('is not fooled by a non-TCP packet', () => {
      assert.equal(matches(tcp, parseOpts(tcp, ''), fixture({ proto: 17 })), false);
    });
  });
});
