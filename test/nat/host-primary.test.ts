// The primary addresses MASQUERADE and REDIRECT use, as read from `ip -j addr show` and given to StaticHost.
import assert from 'node:assert/strict';
import { StaticHost, parseIpAddrJson } from '../../src/engine/host';
import { formatIpAddr } from '../../src/rules/addr';

describe('host: primary interface addresses (H16)', () => {
  it('takes IPv4 primary (not secondary) and IPv6 global (not deprecated or link-local) addresses', () => {
    const json = JSON.stringify([
      { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', scope: 'host' }, { family: 'inet6', local: '::1', scope: 'host' }] },
      {
        ifname: 'eth0',
        addr_info: [
          { family: 'inet', local: '198.18.0.9', secondary: true },
          { family: 'inet', local: '198.18.0.1' },
          { family: 'inet6', local: 'fe80::1', scope: 'link' },
          { family: 'inet6', local: '2001:db8::5', scope: 'global', deprecated: true },
          { family: 'inet6', local: '2001:db8::1', scope: 'global' },
        ],
      },
      { ifname: 'eth1', addr_info: [] },
    ]);
    const m = parseIpAddrJson(json);
    const get = (k: string): string | undefined => {
      const a = m.get(k);
      return a === undefined ? undefined : formatIpAddr(a);
    };
    assert.equal(get('4:eth0'), '198.18.0.1');
    assert.equal(get('6:eth0'), '2001:db8::1');
    assert.equal(get('4:lo'), '127.0.0.1');
    assert.equal(get('6:lo'), '::1');
    assert.equal(get('4:eth1'), undefined);
    assert.equal(parseIpAddrJson('').size, 0);
  });

  it('StaticHost: the first address given for a device is its primary one', () => {
    const h = new StaticHost({ local: ['198.19.0.1/24@eth1', '198.19.0.7@eth1', '2001:db8:1::1/64@eth1', '198.18.0.1'] });
    assert.equal(formatIpAddr(h.primaryAddress(4, 'eth1')!), '198.19.0.1');
    assert.equal(formatIpAddr(h.primaryAddress(6, 'eth1')!), '2001:db8:1::1');
    assert.equal(h.primaryAddress(4, 'eth0'), undefined);
    assert.equal(h.primaryAddresses().length, 2);
  });
});
