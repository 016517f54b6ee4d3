import assert from 'node:assert/strict';
import { LinuxHost, StaticHost, parseIpRouteJson } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import { parseIpAddr } from '../../src/rules/addr';
import { v4 } from './build';
import { skipBecause } from '../lab/lab';

describe('host views (addrtype)', () => {
  it('StaticHost: local, broadcast, multicast, unicast, and the interface limit', () => {
    const h = new StaticHost({
      local: ['198.18.1.1@eth0', '2001:db8::1'],
      routes: [{ dst: '198.18.1.255', type: 'BROADCAST', dev: 'eth0' }],
    });
    assert.equal(h.addressType(4, v4('198.18.1.1')), 'LOCAL');
    assert.equal(h.addressType(4, v4('198.18.1.1'), 'eth0'), 'LOCAL');
    assert.equal(h.addressType(4, v4('198.18.1.1'), 'eth1'), 'UNICAST');
    assert.equal(h.addressType(4, v4('198.18.1.255')), 'BROADCAST');
    assert.equal(h.addressType(4, v4('255.255.255.255')), 'BROADCAST');
    assert.equal(h.addressType(4, v4('0.0.0.0')), 'BROADCAST');
    assert.equal(h.addressType(4, v4('239.1.2.3')), 'MULTICAST');
    assert.equal(h.addressType(4, v4('8.8.8.8')), 'UNICAST');
    assert.equal(h.addressType(6, parseIpAddr('2001:db8::1', 6)!), 'LOCAL');
    assert.equal(h.addressType(6, parseIpAddr('ff02::1', 6)!), 'MULTICAST');
    assert.equal(h.addressType(6, parseIpAddr('2001:db8::2', 6)!), 'UNICAST');
  });

  it('parses `ip -j route show table local` output', () => {
    const text =
      '[{"type":"local","dst":"127.0.0.0/8","dev":"lo"},{"type":"broadcast","dst":"192.0.2.255","dev":"eth0"},' +
      '{"dst":"default","gateway":"192.0.2.1","dev":"eth0"},{"type":"blackhole","dst":"203.0.113.0/24"}]';
    const r = parseIpRouteJson(text, 4);
    assert.deepEqual(
      r.map((x) => [x.type, x.prefix, x.dev]),
      [
        ['LOCAL', 8, 'lo'],
        ['BROADCAST', 32, 'eth0'],
        ['BLACKHOLE', 24, undefined],
      ],
    );
  });

  it('LinuxHost reads the current namespace (read-only): loopback is local', async function () {
    let h: LinuxHost;
    try {
      h = await LinuxHost.load();
    } catch (e) {
      // Only a missing `ip` binary is a reason to skip; anything else is a failure.
      skipBecause(this, 'LinuxHost', (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'the `ip` command is not installed' : undefined);
      throw e;
    }
    assert.equal(h.addressType(4, v4('127.0.0.1')), 'LOCAL');
  });

  it('EmptySets knows no set', () => {
    assert.equal(new EmptySets().test('x', undefined as never, undefined as never, ['src']), undefined);
  });
});
