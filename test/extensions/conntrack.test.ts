import assert from 'node:assert/strict';
import conntrack from '../../src/extensions/conntrack';
import type { ConnInfo } from '../../src/extensions/types';
import { addrBytes, conn, fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

// Kernel iptables-save / ip6tables-save output (v1.8.9 nf_tables).
const OK: [string, string, (4 | 6)?][] = [
  ['--ctstate NEW,RELATED,ESTABLISHED,INVALID,UNTRACKED,SNAT,DNAT', '--ctstate INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED,SNAT,DNAT'],
  ['--ctstatus NONE,EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED', '--ctstatus EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED'],
  [
    '! --ctproto tcp --ctorigsrc 10.0.0.0/8 ! --ctorigdst 1.2.3.4 --ctreplsrc 1.0.0.0/255.0.255.0 --ctrepldst 5.5.5.5/32',
    '! --ctproto 6 --ctorigsrc 10.0.0.0/8 ! --ctorigdst 1.2.3.4 --ctreplsrc 1.0.0.0 --ctrepldst 5.5.5.5',
  ],
  ['--ctorigsrcport 10 ! --ctorigdstport 20:30 --ctreplsrcport 5 --ctrepldstport 6', '--ctorigsrcport 10 ! --ctorigdstport 20:30 --ctreplsrcport 5 --ctrepldstport 6'],
  ['--ctdir ORIGINAL --ctexpire 10:20', '--ctexpire 10:20 --ctdir ORIGINAL'],
  ['--ctdir REPLY ! --ctexpire 10', '! --ctexpire 10 --ctdir REPLY'],
  ['--ctexpire 5:5', '--ctexpire 5'],
  ['--ctexpire 0:4294967295', '--ctexpire 0:4294967295'],
  ['--ctstate SNAT,DNAT', '--ctstate SNAT,DNAT'],
  ['--ctreplsrc 1.2.3.4/255.0.255.0', '--ctreplsrc 1.2.3.4'],
  ['--ctreplsrc 1.2.3.4/255.255.0.0', '--ctreplsrc 1.2.3.4/16'],
  ['--ctorigsrc 1.2.3.4/0', '--ctorigsrc 1.2.3.4/0'],
  // XTTYPE_HOSTMASK: the host through getaddrinfo (inet_aton forms), the mask a strtoul prefix length if it fits.
  ['--ctorigsrc 1', '--ctorigsrc 0.0.0.1'],
  ['--ctorigdst 10.1/16', '--ctorigdst 10.0.0.1/16'],
  ['--ctreplsrc 0x10', '--ctreplsrc 0.0.0.16'],
  ['--ctrepldst 1.2.3', '--ctrepldst 1.2.0.3'],
  ['--ctorigsrc 010.1', '--ctorigsrc 8.0.0.1'],
  ['--ctorigsrc 1.65535', '--ctorigsrc 1.0.255.255'],
  ['--ctorigsrc 4294967295', '--ctorigsrc 255.255.255.255'],
  ['--ctorigsrc 1.2.3.4/0x10', '--ctorigsrc 1.2.3.4/16'],
  ['--ctorigsrc 1.2.3.4/33', '--ctorigsrc 1.2.3.4'],
  ['--ctorigsrc 1.2.3.4/255.255', '--ctorigsrc 1.2.3.4'],
  ['--ctorigsrc 2001:db8::1/0x40', '--ctorigsrc 2001:db8::1/64', 6],
  ['--ctstate new', '--ctstate NEW'],
  ['--ctproto all', '--ctproto 0'],
  ['! --ctproto all', '! --ctproto 0'],
  ['--ctexpire 20:10', '--ctexpire 20:10'],
  ['--ctexpire 5:', '--ctexpire 5:4294967295'],
  ['--ctexpire :5', '--ctexpire 0:5'],
  ['--ctorigsrcport 0', '--ctorigsrcport 0'],
  ['--ctorigsrcport 10:5', '--ctorigsrcport 10:5'],
  ['--ctorigsrcport ssh', '--ctorigsrcport 22'],
  ['--ctorigsrcport :5', '--ctorigsrcport 0:5'],
  ['--ctdir original', '--ctdir ORIGINAL'],
  ['--ctstatus NONE', '--ctstatus NONE'],
  ['--ctstatus NONE,ASSURED', '--ctstatus ASSURED'],
  [
    '--ctstate NEW --ctproto 17 --ctstatus ASSURED --ctdir REPLY --ctorigsrc 1.1.1.1 --ctorigsrcport 5 --ctexpire 5',
    '--ctstate NEW --ctproto 17 --ctorigsrc 1.1.1.1 --ctorigsrcport 5 --ctstatus ASSURED --ctexpire 5 --ctdir REPLY',
  ],
  ['--ctstate RELATED,ESTABLISHED', '--ctstate RELATED,ESTABLISHED'],
  ['! --ctstate RELATED,ESTABLISHED,DNAT', '! --ctstate RELATED,ESTABLISHED,DNAT'],
  ['--ctorigsrc 2001:db8::1/64 ! --ctrepldst ::1', '--ctorigsrc 2001:db8::1/64 ! --ctrepldst ::1', 6],
  ['--ctorigsrc 2001:db8::1/ffff::ff', '--ctorigsrc 2001:db8::1', 6],
];

const FAIL: [string, string, number][] = [
  ['', 'conntrack: At least one option is required', 100],
  ['--ctstate FOO', 'Bad ctstate "FOO"', 11],
  ['--ctstatus FOO', 'Bad ctstatus "FOO"', 12],
  ['--ctdir foo', 'conntrack: Bad value for "--ctdir" option: "foo"', 9],
  ['--ctexpire 42949672956', 'conntrack: bad value for option "--ctexpire" near "42949672956", or out of range (0-4294967295).', 12],
  ['--ctexpire -1', 'conntrack: bad value for option "--ctexpire" near "-1", or out of range (0-4294967295).', 12],
  ['--ctstate ""', 'Bad ctstate ""', 11],
  ['--ctexpire abc', 'conntrack: bad value for option "--ctexpire" near "abc", or out of range (0-4294967295).', 12],
  ['--ctorigsrcport 0x10', 'Port "0x10" does not resolve to anything.', 17],
  ['--ctorigsrcport abc', 'Port "abc" does not resolve to anything.', 17],
  ['--ctorigsrc 1.2.3.256', "host/network `1.2.3.256' not found (hostnames are not resolved; write a numeric address)", 13],
  ['--ctorigsrc 08', "host/network `08' not found (hostnames are not resolved; write a numeric address)", 13],
  ['--ctorigsrc 1.2.3.4/08', "invalid mask `08' specified", 13],
  ['--ctorigsrc 1.2.3.4/', "invalid mask `' specified", 13],
];

describe('match conntrack', () => {
  describe('parse and format', () => {
    for (const [input, expected, family] of OK) {
      it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(conntrack, input, { family: family ?? 4 }), expected));
    }
  });
  describe('refusals', () => {
    for (const [input, reason, column] of FAIL) {
      it(`refuses "${input}"`, () => {
        const e = parseError(conntrack, input);
        assert.ok(e);
        assert.equal(e.reason, reason);
        assert.equal(e.loc.column, column);
      });
    }
    it('--ctdir cannot be inverted (the option spec says so)', () => {
      assert.equal(conntrack.options.find((o) => o.name === 'ctdir')?.invertible, undefined);
      assert.equal(conntrack.options.find((o) => o.name === 'ctstate')?.invertible, true);
    });
  });

  describe('match', () => {
    const pkt = fixture();
    const est = conn({ state: 'ESTABLISHED' });
    /** `null`: the engine has no connection for the packet. */
    const m = (text: string, ct: ConnInfo | null = est): boolean =>
      matches(conntrack, parseOpts(conntrack, text), pkt, { ct: ct ?? undefined });

    it('states, including the virtual SNAT/DNAT from the NAT status bits', () => {
      assert.equal(m('--ctstate ESTABLISHED'), true);
      assert.equal(m('--ctstate NEW'), false);
      assert.equal(m('! --ctstate NEW'), true);
      assert.equal(m('--ctstate DNAT'), false);
      const dnat = conn({ state: 'NEW', status: 0x20 });
      assert.equal(m('--ctstate DNAT', dnat), true);
      assert.equal(m('--ctstate SNAT', dnat), false);
      assert.equal(m('! --ctstate RELATED,ESTABLISHED,DNAT', dnat), false);
    });

    it('a packet without a connection is untracked: only the state test can match', () => {
      assert.equal(m('--ctstate UNTRACKED', null), true);
      assert.equal(m('--ctstate NEW', null), false);
      assert.equal(m('! --ctstate NEW', null), true);
      assert.equal(m('--ctproto 6', null), false);
      assert.equal(m('! --ctproto 17', null), false);
      assert.equal(m('--ctstate UNTRACKED --ctproto 17', null), true);
      assert.equal(m('--ctstate INVALID', conn({ state: 'INVALID' })), true);
      assert.equal(m('--ctstate INVALID', null), false);
    });

    it('tuple addresses with masks, ports, protocol', () => {
      assert.equal(m('--ctorigsrc 198.18.0.0/15'), true);
      assert.equal(m('--ctorigsrc 198.18.0.9/255.255.255.0'), true);
      assert.equal(m('! --ctorigsrc 198.18.0.0/15'), false);
      assert.equal(m('--ctrepldst 198.18.0.1'), true);
      assert.equal(m('--ctreplsrc 198.18.0.1'), false);
      assert.equal(m('--ctproto tcp --ctorigdstport 80 --ctreplsrcport 80'), true);
      assert.equal(m('--ctorigsrcport 1:1000'), false);
      assert.equal(m('--ctorigdstport 90:10'), false);
      const v6 = conn({ orig: { src: addrBytes('2001:db8::5', 6), dst: addrBytes('2001:db8::1', 6), protocol: 6, sport: 1, dport: 2 } });
      assert.equal(matches(conntrack, parseOpts(conntrack, '--ctorigsrc 2001:db8::/64', { family: 6 }), pkt, { ct: v6 }), true);
    });

    it('status: NONE never matches; direction; expiry (0 with a fixed timeout)', () => {
      assert.equal(m('--ctstatus NONE'), false);
      assert.equal(m('! --ctstatus NONE'), true);
      assert.equal(m('--ctstatus SEEN_REPLY'), true);
      assert.equal(m('--ctstatus ASSURED'), false);
      assert.equal(m('--ctdir ORIGINAL'), true);
      assert.equal(m('--ctdir REPLY'), false);
      assert.equal(m('--ctdir REPLY', conn({ direction: 'REPLY' })), true);
      assert.equal(m('--ctexpire 50:150'), true);
      assert.equal(m('! --ctexpire 50:150'), false);
      assert.equal(m('--ctexpire 0', conn({ status: 0x40a })), true);
    });
  });
});
