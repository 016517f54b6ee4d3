import assert from 'node:assert/strict';
import pkttype from '../../src/extensions/pkttype';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match pkttype', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--pkt-type unicast', '--pkt-type unicast'],
    ['! --pkt-type broadcast', '! --pkt-type broadcast'],
    ['--pkt-type multicast', '--pkt-type multicast'],
    ['--pkt-type host', '--pkt-type unicast'],
    ['--pkt-type Host', '--pkt-type unicast'],
    ['--pkt-type BROADCAST', '--pkt-type broadcast'],
    ['--pkt-type otherhost', '--pkt-type otherhost'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(pkttype, input), expected));
  }
  it('refuses unknown types', () => {
    assert.equal(parseError(pkttype, '--pkt-type outgoing')?.reason, "Bad packet type 'outgoing'");
    assert.equal(parseError(pkttype, '--pkt-type loopback')?.reason, "Bad packet type 'loopback'");
    assert.equal(parseError(pkttype, '')?.reason, 'pkttype: option "--pkt-type" must be specified');
  });
  it('compares the class the queue reported', () => {
    const p = fixture();
    assert.equal(matches(pkttype, parseOpts(pkttype, '--pkt-type broadcast'), p, { meta: { pktType: 'broadcast' } }), true);
    assert.equal(matches(pkttype, parseOpts(pkttype, '--pkt-type broadcast'), p, { meta: { pktType: 'unicast' } }), false);
    assert.equal(matches(pkttype, parseOpts(pkttype, '! --pkt-type broadcast'), p, { meta: { pktType: 'multicast' } }), true);
    assert.equal(matches(pkttype, parseOpts(pkttype, '--pkt-type otherhost'), p, { meta: { pktType: 'unicast' } }), false);
  });
});
