import assert from 'node:assert/strict';
import addrtype from '../../src/extensions/addrtype';
import type { AddrType } from '../../src/extensions/types';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match addrtype', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string, string?][] = [
    ['--src-type LOCAL,UNICAST ! --dst-type BLACKHOLE --limit-iface-in', '--src-type UNICAST,LOCAL ! --dst-type BLACKHOLE --limit-iface-in'],
    ['--dst-type MULTICAST', '--dst-type MULTICAST'],
    ['--src-type LOCAL --limit-iface-out', '--src-type LOCAL --limit-iface-out', 'OUTPUT'],
    ['--src-type local', '--src-type LOCAL'],
    ['--src-type LOCAL,local', '--src-type LOCAL'],
    [
      '--src-type UNSPEC,UNICAST,LOCAL,BROADCAST,ANYCAST,MULTICAST,BLACKHOLE,UNREACHABLE,PROHIBIT,THROW,NAT,XRESOLVE',
      '--src-type UNSPEC,UNICAST,LOCAL,BROADCAST,ANYCAST,MULTICAST,BLACKHOLE,UNREACHABLE,PROHIBIT,THROW,NAT,XRESOLVE',
    ],
    ['! --src-type LOCAL', '! --src-type LOCAL'],
  ];
  for (const [input, expected, chain] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(addrtype, input, { chain }), expected));
  }
  it('refuses what iptables and the kernel refuse', () => {
    assert.equal(parseError(addrtype, '')?.reason, 'addrtype: you must specify --src-type or --dst-type');
    assert.equal(parseError(addrtype, '--src-type FOO')?.reason, 'addrtype: bad type "FOO"');
    assert.equal(parseError(addrtype, '--src-type FOO')?.loc.column, 12);
    assert.equal(
      parseError(addrtype, '--limit-iface-in --limit-iface-out --src-type LOCAL')?.reason,
      'addrtype: option "--limit-iface-in" cannot be used together with "--limit-iface-out".',
    );
    assert.match(parseError(addrtype, '--limit-iface-out --src-type LOCAL', { chain: 'INPUT' })?.reason ?? '', /only valid in OUTPUT/);
    assert.match(parseError(addrtype, '--dst-type BLACKHOLE', { family: 6 })?.reason ?? '', /BLACKHOLE/);
    assert.match(parseError(addrtype, '--dst-type BROADCAST', { family: 6 })?.reason ?? '', /BROADCAST/);
    assert.equal(roundTrip(addrtype, '--dst-type LOCAL --limit-iface-in', { family: 6 }), '--dst-type LOCAL --limit-iface-in');
  });

  it('asks the host view, limited to the in/out interface when told', () => {
    const seen: (string | undefined)[] = [];
    const host = (_f: 4 | 6, a: Uint8Array, iface?: string): AddrType => {
      seen.push(iface);
      return a[3] === 2 ? 'LOCAL' : 'UNICAST';
    };
    const pkt = fixture({ src: '198.18.0.1', dst: '198.18.0.2' });
    assert.equal(matches(addrtype, parseOpts(addrtype, '--dst-type LOCAL'), pkt, { addressType: host }), true);
    assert.equal(matches(addrtype, parseOpts(addrtype, '--src-type LOCAL'), pkt, { addressType: host }), false);
    assert.equal(matches(addrtype, parseOpts(addrtype, '! --src-type LOCAL --dst-type LOCAL'), pkt, { addressType: host }), true);
    assert.equal(matches(addrtype, parseOpts(addrtype, '--dst-type UNICAST,LOCAL'), pkt, { addressType: host }), true);
    seen.length = 0;
    matches(addrtype, parseOpts(addrtype, '--dst-type LOCAL --limit-iface-in'), pkt, { addressType: host, meta: { inIface: 'eth7' } });
    assert.deepEqual(seen, ['eth7']);
  });

  it('IPv6: multicast and unicast come from the address, LOCAL from the routes', () => {
    const pkt = fixture({ family: 6, proto: 17, dst: 'ff02::1' });
    const host = (): AddrType => 'LOCAL';
    assert.equal(matches(addrtype, parseOpts(addrtype, '--dst-type MULTICAST', { family: 6 }), pkt, { addressType: host }), true);
    assert.equal(matches(addrtype, parseOpts(addrtype, '--dst-type UNICAST', { family: 6 }), pkt, { addressType: host }), false);
    const uni = fixture({ family: 6, proto: 17, dst: '2001:db8::2' });
    assert.equal(matches(addrtype, parseOpts(addrtype, '--dst-type LOCAL', { family: 6 }), uni, { addressType: host }), true);
    assert.equal(matches(addrtype, parseOpts(addrtype, '--dst-type LOCAL', { family: 6 }), uni, { addressType: () => 'UNICAST' }), false);
  });
});
