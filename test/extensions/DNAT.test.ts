import assert from 'node:assert/strict';
import DNAT from '../../src/extensions/DNAT';
import SNAT from '../../src/extensions/SNAT';
import MASQUERADE from '../../src/extensions/MASQUERADE';
import REDIRECT from '../../src/extensions/REDIRECT';
import NETMAP from '../../src/extensions/NETMAP';
import { col, refuses, roundTrip } from './t-fixture';

const NAT = { table: 'nat' as const, chain: 'PREROUTING' };
const TCP = { ...NAT, proto: 6 };

describe('NAT targets', () => {
  describe('DNAT', () => {
    // iptables-nft 1.8.9 output and libipt_DNAT.t / libip6t_DNAT.t forms.
    const v4: [string, string, number?][] = [
      ['--to-destination 1.2.3.4', '1.2.3.4'],
      ['--to-destination 1.2.3.4-1.2.3.10', '1.2.3.4-1.2.3.10'],
      ['--to-destination 1.2.3.5-1.2.3.4', '1.2.3.5-1.2.3.4'],
      ['--to-destination 1.2.3.4:80', '1.2.3.4:80', 6],
      ['--to-destination 1.2.3.4:80-90', '1.2.3.4:80-90', 6],
      ['--to-destination 1.2.3.4:80-90/100', '1.2.3.4:80-90/100', 6],
      ['--to-destination 1.2.3.4-1.2.3.5:80-90', '1.2.3.4-1.2.3.5:80-90', 6],
      ['--to-destination :80', ':80', 6],
      ['--to-destination 1.2.3.4:ssh', '1.2.3.4:22', 6],
      ['--to-destination 1.2.3.4:0', '1.2.3.4:0', 6],
      ['--to-destination 1.2.3.4:0x50', '1.2.3.4:80', 6],
      ['--to-destination 1.2.3.4:80', '1.2.3.4:80', 1],
      ['--to-destination 1.2.3.4:80', '1.2.3.4:80', 132],
      ['--to-destination 10.180.0.1:80', '10.180.0.1:80', 6],
    ];
    for (const [input, want, proto] of v4) {
      it(`IPv4 ${input}${proto ? ` (-p ${proto})` : ''}`, () =>
        assert.equal(roundTrip(DNAT, input, { ...NAT, proto }), `--to-destination ${want}`));
    }
    const v6: [string, string][] = [
      ['--to-destination [2001:db8::1]:80', '[2001:db8::1]:80'],
      ['--to-destination [2001:db8::1-2001:db8::5]:80-90', '[2001:db8::1-2001:db8::5]:80-90'],
      ['--to-destination [2001:db8::1]:80-90/100', '[2001:db8::1]:80-90/100'],
      ['--to-destination 2001:db8::1', '2001:db8::1'],
      ['--to-destination 2001:db8::1-2001:db8::5', '2001:db8::1-2001:db8::5'],
      ['--to-destination 2001:db8::1:80', '2001:db8::1:80'],
      ['--to-destination [2001:db8::1]', '2001:db8::1'],
      ['--to-destination :80', ':80'],
    ];
    for (const [input, want] of v6) {
      it(`IPv6 ${input}`, () => assert.equal(roundTrip(DNAT, input, { ...TCP, family: 6 }), `--to-destination ${want}`));
    }
    it('prints --random and --persistent after the range', () => {
      assert.equal(
        roundTrip(DNAT, '--persistent --random --to-destination 1.2.3.4:80', TCP),
        '--to-destination 1.2.3.4:80 --random --persistent',
      );
    });
    it('refuses what iptables refuses', () => {
      const at = (s: string) => col(s, ' ', 0) + 1;
      let s = '--to-destination 1.2.3.4:80';
      refuses(DNAT, s, /Need TCP, UDP, SCTP or DCCP with port specification/, at(s), NAT);
      refuses(DNAT, s, /Need TCP, UDP, SCTP or DCCP/, at(s), { ...NAT, proto: 136 });
      s = '--to-destination 1.2.3.4:90-80';
      refuses(DNAT, s, /Port range `80' funky/, at(s), TCP);
      s = '--to-destination 1.2.3.4:65536';
      refuses(DNAT, s, /Port `65536' not valid/, at(s), TCP);
      s = '--to-destination 1.2.3.4:';
      refuses(DNAT, s, /Port `' not valid/, at(s), TCP);
      s = '--to-destination 1.2.3.4:80/100';
      refuses(DNAT, s, /Garbage after port value: `\/100'/, at(s), TCP);
      s = '--to-destination 1.2.3.4:http-https';
      refuses(DNAT, s, /Port `http-https' not valid/, at(s), TCP);
      s = '--to-destination 1.2.3.4:80-https';
      refuses(DNAT, s, /Port `https' not valid/, at(s), TCP);
      s = '--to-destination 1.2.3.4:80x';
      refuses(DNAT, s, /Garbage after port value: `x'/, at(s), TCP);
      s = '--to-destination 01.2.3.4';
      refuses(DNAT, s, /Bad IP address "01.2.3.4"/, at(s), TCP);
      s = '--to-destination 1.2.3';
      refuses(DNAT, s, /Bad IP address "1.2.3"/, at(s), TCP);
      s = '--to-destination 1.2.3.4/24';
      refuses(DNAT, s, /Bad IP address "1.2.3.4\/24"/, at(s), TCP);
      s = '--to-destination 1.2.3.4:80 --random-fully';
      refuses(DNAT, s, /unknown option "--random-fully"/, col(s, '--random-fully'), TCP);
      refuses(DNAT, '', /DNAT: option "--to-destination" must be specified/, 1, NAT);
      s = '--to-destination 1.2.3.4 --to-destination 1.2.3.5';
      refuses(DNAT, s, /"--to-destination" can only be used once/, col(s, '--to', 1), NAT);
    });
    it('is nat PREROUTING/OUTPUT, terminal, and enforceable (H16: binds through the connection table)', () => {
      assert.deepEqual(DNAT.allowed, { tables: ['nat'], hooks: ['PREROUTING', 'OUTPUT'] });
      assert.equal(DNAT.terminal, true);
      assert.equal(typeof DNAT.apply, 'function');
      assert.equal(DNAT.unsupported, undefined);
    });
  });

  describe('SNAT', () => {
    it('prints ranges and flags in libxt_NAT order', () => {
      const P = { table: 'nat' as const, chain: 'POSTROUTING', proto: 17 };
      assert.equal(roundTrip(SNAT, '--to-source 1.2.3.4', P), '--to-source 1.2.3.4');
      assert.equal(
        roundTrip(SNAT, '--to-source 1.2.3.4:1000-2000 --persistent --random-fully --random', P),
        '--to-source 1.2.3.4:1000-2000 --random --random-fully --persistent',
      );
      assert.equal(roundTrip(SNAT, '--to-source :53', P), '--to-source :53');
      assert.equal(roundTrip(SNAT, '--to-source 192.168.49.1:53', P), '--to-source 192.168.49.1:53');
      // the kernel drops the base of a SNAT /baseport but keeps its flag
      assert.equal(roundTrip(SNAT, '--to-source 1.2.3.4:80-90/100', P), '--to-source 1.2.3.4:80-90/0');
      assert.equal(roundTrip(SNAT, '--to-source [2001:db8::1]:80-90', { ...P, family: 6 }), '--to-source [2001:db8::1]:80-90');
      refuses(SNAT, '', /SNAT: option "--to-source" must be specified/, 1, P);
      assert.deepEqual(SNAT.allowed, { tables: ['nat'], hooks: ['POSTROUTING', 'INPUT'] });
    });
  });

  describe('MASQUERADE', () => {
    const P = { table: 'nat' as const, chain: 'POSTROUTING' };
    it('prints as iptables-save does', () => {
      assert.equal(roundTrip(MASQUERADE, '', P), '');
      assert.equal(roundTrip(MASQUERADE, '--random-fully', P), '--random-fully');
      assert.equal(roundTrip(MASQUERADE, '--to-ports 1000', { ...P, proto: 6 }), '--to-ports 1000');
      assert.equal(roundTrip(MASQUERADE, '--to-ports 1024-65535', { ...P, proto: 6 }), '--to-ports 1024-65535');
      assert.equal(roundTrip(MASQUERADE, '--random-fully --random', { ...P, proto: 6 }), '--random --random-fully');
      assert.equal(roundTrip(MASQUERADE, '--to-ports 5-6 --random-fully', { ...P, proto: 6, family: 6 }), '--to-ports 5-6 --random-fully');
    });
    it('refuses ports without a port protocol', () => {
      refuses(MASQUERADE, '--to-ports 1000', /Need TCP, UDP, SCTP or DCCP/, 12, P);
      assert.deepEqual(MASQUERADE.allowed, { tables: ['nat'], hooks: ['POSTROUTING'] });
    });
  });

  describe('REDIRECT', () => {
    const P = { table: 'nat' as const, chain: 'PREROUTING' };
    it('prints as iptables-save does', () => {
      assert.equal(roundTrip(REDIRECT, '', P), '');
      assert.equal(roundTrip(REDIRECT, '--to-ports 15001', { ...P, proto: 6 }), '--to-ports 15001');
      // Istio writes the getopt abbreviation (corpus 04-istio-tproxy-v4.rules)
      assert.equal(roundTrip(REDIRECT, '--to-port 15001', { ...P, proto: 6 }), '--to-ports 15001');
      assert.equal(roundTrip(REDIRECT, '--to-ports 1000-2000 --random', { ...P, proto: 6 }), '--to-ports 1000-2000 --random');
      refuses(REDIRECT, '--to-ports 80', /Need TCP, UDP, SCTP or DCCP/, 12, P);
      refuses(REDIRECT, '--to-ports 2000-1000', /funky/, 12, { ...P, proto: 6 });
      refuses(REDIRECT, '--random-fully', /unknown option/, 1, P);
      assert.deepEqual(REDIRECT.allowed, { tables: ['nat'], hooks: ['PREROUTING', 'OUTPUT'] });
    });
  });

  describe('NETMAP', () => {
    it('prints the network as prefix/length', () => {
      assert.equal(roundTrip(NETMAP, '--to 10.0.0.0/24', NAT), '--to 10.0.0.0/24');
      assert.equal(roundTrip(NETMAP, '--to 10.0.0.0/255.255.255.0', NAT), '--to 10.0.0.0/24');
      assert.equal(roundTrip(NETMAP, '--to 10.0.0.1', NAT), '--to 10.0.0.1/32');
      assert.equal(roundTrip(NETMAP, '--to 10.0.0.1/8', NAT), '--to 10.0.0.0/8');
      // getaddrinfo reads `10.1` as 10.0.0.1 (iptables-nft: --to 10.1/16 prints --to 10.0.0.0/16)
      assert.equal(roundTrip(NETMAP, '--to 10.1/16', NAT), '--to 10.0.0.0/16');
      assert.equal(roundTrip(NETMAP, '--to 10.1.2/32', NAT), '--to 10.1.0.2/32');
      // libxtables keeps only a mask's prefix length: one with holes (or past /32) is the full mask (kernel-checked).
      assert.equal(roundTrip(NETMAP, '--to 10.0.0.0/255.0.255.0', NAT), '--to 10.0.0.0/32');
      assert.equal(roundTrip(NETMAP, '--to 0x10/0xff', NAT), '--to 0.0.0.16/32');
      assert.equal(roundTrip(NETMAP, '--to 1.2.3.4/0x10', NAT), '--to 1.2.0.0/16');
      refuses(NETMAP, '--to 1.2.3.4/08', /invalid mask/, 6, NAT);
      assert.equal(roundTrip(NETMAP, '--to 2001:db8::/64', { ...NAT, family: 6 }), '--to 2001:db8::/64');
      refuses(NETMAP, '', /NETMAP: option "--to" must be specified/, 1, NAT);
      refuses(NETMAP, '--to 10.0.0.300/8', /host\/network `10.0.0.300' not found/, 6, NAT);
    });
  });
});
