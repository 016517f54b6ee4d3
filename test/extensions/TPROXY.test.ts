import assert from 'node:assert/strict';
import TPROXY from '../../src/extensions/TPROXY';
import { refuses, roundTrip } from './t-fixture';

const M = { table: 'mangle' as const, chain: 'PREROUTING', proto: 6 };

describe('TPROXY target', () => {
  it('always prints port, address and mark (corpus: Istio tproxy v4 and v6)', () => {
    assert.equal(roundTrip(TPROXY, '--on-port 80', M), '--on-port 80 --on-ip 0.0.0.0 --tproxy-mark 0x0/0x0');
    assert.equal(roundTrip(TPROXY, '--on-port 80 --on-ip 1.2.3.4', M), '--on-port 80 --on-ip 1.2.3.4 --tproxy-mark 0x0/0x0');
    // iptables-nft 1.8.9 prints --on-ip 1.2.3 as 1.2.0.3 (getaddrinfo's inet_aton forms)
    assert.equal(roundTrip(TPROXY, '--on-port ssh --on-ip 1.2.3', M), '--on-port 22 --on-ip 1.2.0.3 --tproxy-mark 0x0/0x0');
    assert.equal(roundTrip(TPROXY, '--on-port 80 --tproxy-mark 5', M), '--on-port 80 --on-ip 0.0.0.0 --tproxy-mark 0x5/0xffffffff');
    assert.equal(roundTrip(TPROXY, '--tproxy-mark 5/7 --on-port 80', { ...M, proto: 17 }), '--on-port 80 --on-ip 0.0.0.0 --tproxy-mark 0x5/0x7');
    assert.equal(
      roundTrip(TPROXY, '--on-port 15006 --on-ip :: --tproxy-mark 0x539/0xffffffff', { ...M, family: 6 }),
      '--on-port 15006 --on-ip :: --tproxy-mark 0x539/0xffffffff',
    );
    assert.equal(roundTrip(TPROXY, '--on-port 80 --on-ip 2001:db8::1', { ...M, family: 6 }), '--on-port 80 --on-ip 2001:db8::1 --tproxy-mark 0x0/0x0');
  });

  it('refuses what iptables and the kernel refuse', () => {
    refuses(TPROXY, '--on-ip 1.2.3.4', /TPROXY: option "--on-port" must be specified/, 1, M);
    refuses(TPROXY, '--on-port 80', /only valid with -p tcp or -p udp/, 1, { ...M, proto: undefined });
    refuses(TPROXY, '--on-port 80', /only valid with -p tcp or -p udp/, 1, { ...M, protoNegated: true });
    refuses(TPROXY, '--on-port 80 --on-ip 2001:db8::1', /invalid IPv4 address/, 22, M);
  });

  it('is mangle PREROUTING only and cannot be enforced from userspace', () => {
    assert.deepEqual(TPROXY.allowed, { tables: ['mangle'], hooks: ['PREROUTING'] });
    assert.match(TPROXY.unsupported ?? '', /socket/);
    assert.equal(TPROXY.apply, undefined);
  });
});
