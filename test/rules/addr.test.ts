import assert from 'node:assert/strict';
import { AddrError, formatIpNet, parseIpNet } from '../../src/rules/addr';
import { parsePort, parseProtocol, protocolName } from '../../src/rules/services';

const fmt = (w: string, f: 4 | 6) => formatIpNet(parseIpNet(w, f));

describe('rules/addr', () => {
  it('prints IPv4 prefixes and masks as iptables-save', () => {
    assert.equal(fmt('10.1.2.3', 4), '10.1.2.3/32');
    assert.equal(fmt('10.1.2.3/8', 4), '10.0.0.0/8');
    assert.equal(fmt('10.1.2.3/255.255.0.0', 4), '10.1.0.0/16');
    assert.equal(fmt('10.1.2.3/255.0.255.0', 4), '10.0.2.0/255.0.255.0');
    assert.equal(fmt('0/0', 4), '0.0.0.0/0');
  });
  it('prints IPv6 as inet_ntop', () => {
    assert.equal(fmt('2001:DB8:0:0:0:0:0:1', 6), '2001:db8::1/128');
    assert.equal(fmt('::/0', 6), '::/0');
    assert.equal(fmt('fe80::1/10', 6), 'fe80::/10');
    assert.equal(fmt('::ffff:1.2.3.4', 6), '::ffff:1.2.3.4/128');
    assert.equal(fmt('1:0:0:2:0:0:0:3', 6), '1:0:0:2::3/128');
    assert.equal(fmt('1:0:2:0:3:0:4:0', 6), '1:0:2:0:3:0:4:0/128');
    assert.equal(fmt('2001:db8::/ffff:ffff::ff', 6), '2001:db8::/ffff:ffff::ff');
  });
  it('refuses hostnames, other families and bad masks with a reason', () => {
    assert.throws(() => parseIpNet('example.com', 4), (e: unknown) => e instanceof AddrError && /not resolved/.test(e.message));
    assert.throws(() => parseIpNet('2001:db8::1', 4), /IPv6 address, in an IPv4 rule/);
    assert.throws(() => parseIpNet('1.2.3.4', 6), /IPv4 address, in an IPv6 rule/);
    assert.throws(() => parseIpNet('1.2.3.4/33', 4), /invalid mask/);
    assert.throws(() => parseIpNet('1.2.3.256', 4), /invalid IPv4 address/);
  });
});

describe('rules/services', () => {
  it('reads ports as numbers (any base, as strtoul) and service names', () => {
    assert.equal(parsePort('22'), 22);
    assert.equal(parsePort('0x16'), 22);
    assert.equal(parsePort('ssh', 'tcp'), 22);
    assert.throws(() => parsePort('65536'), /invalid port\/service `65536'/);
    assert.throws(() => parsePort('nosuchservice'), /invalid port/);
  });
  it('reads and names protocols as iptables', () => {
    assert.equal(parseProtocol('TCP'), 6);
    assert.equal(parseProtocol('icmpv6'), 58);
    assert.equal(parseProtocol('all'), 0);
    assert.equal(protocolName(58), 'ipv6-icmp');
    assert.equal(protocolName(6), 'tcp');
    assert.equal(protocolName(47), 'gre');
    assert.throws(() => parseProtocol('bogus'), /unknown protocol/);
  });
});
