// The host checks behind hook skipping (src/daemon/skip-guard.ts): policy routing rules that read the skip bit, and
// the smallest MTU a forwarded packet could meet. Fed with `ip -j` output as iproute2 prints it; the root test reads it
// from a throwaway network namespace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { DEFAULT_SKIP_MARK, isSkipMark, markRulesOf, skipBits, smallestMtu } from '../../src/daemon/skip-guard';
import { skipUnlessRoot } from '../lab/lab';

const BIT = 0x30000000;

describe('daemon/skip-guard', () => {
  it('the default mark is two bits clear of the marks kube-proxy and WireGuard use', () => {
    assert.equal(DEFAULT_SKIP_MARK, BIT);
    assert.ok(isSkipMark(DEFAULT_SKIP_MARK));
    assert.deepEqual(skipBits(DEFAULT_SKIP_MARK), { forward: 0x10000000, post: 0x20000000 });
    for (const other of [0x4000, 0x8000, 0xff0000, 0xca6c]) assert.equal(DEFAULT_SKIP_MARK & other, 0);
  });

  it('isSkipMark: exactly two bits of a 32-bit mark', () => {
    for (const yes of [3, 5, 0x30000000, 0x80000001, 0xc0000000, 0x10001, 0x300]) assert.equal(isSkipMark(yes), true, yes.toString(16));
    // None, one bit, three or more bits, past 32 bits, negative, not an integer.
    for (const no of [0, 1, 2, 0x10000000, 0x80000000, 7, 0x70000000, 0xffffffff, 0x100000001, 2 ** 32 + 2 ** 31, 2 ** 33 + 1, -3, -0x30000000, 1.5, 3.5, NaN, Infinity]) {
      assert.equal(isSkipMark(no), false, String(no));
    }
  });

  it('skipBits: the lower bit for FORWARD, the higher for POSTROUTING', () => {
    assert.deepEqual(skipBits(0x30000000), { forward: 0x10000000, post: 0x20000000 });
    assert.deepEqual(skipBits(3), { forward: 1, post: 2 });
    assert.deepEqual(skipBits(0x80000001), { forward: 1, post: 0x80000000 });
    assert.deepEqual(skipBits(0xc0000000), { forward: 0x40000000, post: 0x80000000 });
    assert.deepEqual(skipBits(0x10100), { forward: 0x100, post: 0x10000 });
    for (const m of [3, 0x30000000, 0x80000001, 0xc0000000, 0x10100]) {
      const { forward, post } = skipBits(m);
      assert.ok(forward > 0 && post > forward, m.toString(16));
      assert.equal((forward | post) >>> 0, m);
    }
  });

  describe('markRulesOf', () => {
    const rules =
      '[{"priority":0,"src":"all","table":"local"},{"priority":32765,"src":"all","fwmark":"0x10","fwmask":"0xff","table":"100"}]';

    it('ignores rules without fwmark and rules whose mask covers neither bit', () => {
      assert.deepEqual(markRulesOf(rules, BIT, 4), []);
    });

    it('reports a rule whose mask covers either of the two bits', () => {
      const one = (mask: string): string => `[{"priority":5,"src":"all","fwmark":"0x0","fwmask":"${mask}","table":"8"}]`;
      assert.deepEqual(markRulesOf(one('0x10000000'), BIT, 4), ['ipv4 rule 5: fwmark 0x0/0x10000000'], 'the FORWARD bit');
      assert.deepEqual(markRulesOf(one('0x20000000'), BIT, 4), ['ipv4 rule 5: fwmark 0x0/0x20000000'], 'the POSTROUTING bit');
      assert.deepEqual(markRulesOf(one('0xcfffffff'), BIT, 4), [], 'every other bit');
    });

    it('reports a rule whose mask covers the bit, naming its priority, mark and mask', () => {
      // The same rules with the bit under the mask: proves the one above was left out for its mask.
      assert.deepEqual(markRulesOf(rules, 0x10, 4), ['ipv4 rule 32765: fwmark 0x10/0xff']);
      const covering =
        '[{"priority":0,"src":"all","table":"local"},' +
        '{"priority":100,"src":"all","fwmark":"0x20000000","fwmask":"0x20000000","table":"8"},' +
        '{"priority":200,"src":"all","fwmark":"0x0","fwmask":"0xf0000000","table":"9"},' +
        '{"priority":300,"src":"all","fwmark":"0x1","fwmask":"0xfffffff","table":"10"}]';
      assert.deepEqual(markRulesOf(covering, BIT, 6), [
        'ipv6 rule 100: fwmark 0x20000000/0x20000000',
        'ipv6 rule 200: fwmark 0x0/0xf0000000',
      ]);
    });

    it('a fwmark without a mask compares the whole mark: reported whatever its value', () => {
      assert.deepEqual(markRulesOf('[{"priority":32764,"src":"all","fwmark":"0x7","table":"7"}]', BIT, 4), [
        'ipv4 rule 32764: fwmark 0x7',
      ]);
      assert.deepEqual(markRulesOf('[{"fwmark":"0x7"}]', 0x80000001, 6), ['ipv6 rule ?: fwmark 0x7']);
    });

    it('empty output means no rules; anything but a JSON array is an error', () => {
      assert.deepEqual(markRulesOf('', BIT, 4), []);
      assert.deepEqual(markRulesOf('\n', BIT, 4), []);
      assert.deepEqual(markRulesOf('[]', BIT, 6), []);
      assert.throws(() => markRulesOf('{"priority":0}', BIT, 4), /ip rule: expected a JSON array/);
      assert.throws(() => markRulesOf('[{', BIT, 4), SyntaxError);
    });
  });

  describe('smallestMtu', () => {
    const links =
      '[{"ifindex":1,"ifname":"lo","link_type":"loopback","mtu":65536},{"ifname":"v0","mtu":1500,"link_type":"ether"}]';

    it('takes the smallest link MTU, loopback aside', () => {
      assert.equal(smallestMtu(links, []), 1500);
      assert.equal(smallestMtu('[{"ifname":"lo","link_type":"loopback","mtu":65536}]', []), 0, 'loopback alone: none');
      assert.equal(
        smallestMtu('[{"ifname":"a","mtu":9000,"link_type":"ether"},{"ifname":"wg0","mtu":1420,"link_type":"none"}]', []),
        1420,
      );
    });

    it('takes a route mtu metric below the links, from any of the route outputs', () => {
      const routes4 =
        '[{"dst":"198.18.5.0/24","dev":"v0","scope":"link","flags":[],"metrics":[{"mtu":1400}]},' +
        '{"dst":"198.18.0.0/24","dev":"v0","protocol":"kernel","scope":"link","flags":[]}]';
      const routes6 = '[{"dst":"2001:db8::/64","dev":"v0","metrics":[{"mtu":1280}]}]';
      assert.equal(smallestMtu(links, [routes4]), 1400);
      assert.equal(smallestMtu(links, [routes4, routes6]), 1280);
      assert.equal(smallestMtu(links, ['[{"dst":"198.18.6.0/24","metrics":[{"mtu":9000}]}]']), 1500, 'a larger route mtu');
      assert.equal(smallestMtu('', [routes4]), 1400, 'routes alone');
    });

    it('empty outputs know no MTU: 0', () => {
      assert.equal(smallestMtu('', []), 0);
      assert.equal(smallestMtu('[]', ['', '[]']), 0);
      assert.throws(() => smallestMtu('{}', []), /ip link: expected a JSON array/);
      assert.throws(() => smallestMtu('[]', ['"x"']), /ip route: expected a JSON array/);
    });
  });
});

const NS = `nfqw-skipguard-${process.pid}`;

function sh(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

const inNs = (...argv: string[]): string => sh(['ip', 'netns', 'exec', NS, ...argv]);

describe('daemon/skip-guard on real ip -j output (root)', function () {
  let created = false;

  before(function () {
    skipUnlessRoot(this, 'daemon/skip-guard in a network namespace');
    sh(['ip', 'netns', 'add', NS]);
    created = true;
    inNs('ip', 'link', 'set', 'lo', 'up');
    inNs('ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    inNs('ip', 'link', 'set', 'v0', 'mtu', '1450', 'up');
    inNs('ip', 'link', 'set', 'v1', 'up');
    inNs('ip', 'addr', 'add', '198.18.0.1/24', 'dev', 'v0');
  });

  after(function () {
    if (created) spawnSync('ip', ['netns', 'del', NS]);
  });

  it('reads the rules and MTUs iproute2 prints', () => {
    const rules = (family: 4 | 6): string => inNs('ip', `-${family}`, '-j', 'rule', 'show');
    const mtu = (): number =>
      smallestMtu(inNs('ip', '-j', 'link', 'show'), [
        inNs('ip', '-4', '-j', 'route', 'show', 'table', 'all'),
        inNs('ip', '-6', '-j', 'route', 'show', 'table', 'all'),
      ]);
    assert.deepEqual(markRulesOf(rules(4), BIT, 4), [], 'the default rules read no mark');
    assert.equal(mtu(), 1450);

    inNs('ip', '-4', 'rule', 'add', 'fwmark', '0x10/0xff', 'table', '100', 'priority', '1000');
    assert.deepEqual(markRulesOf(rules(4), BIT, 4), [], 'mask 0xff leaves the bit alone');
    inNs('ip', '-4', 'rule', 'add', 'fwmark', '0x7', 'table', '7', 'priority', '1001');
    inNs('ip', '-6', 'rule', 'add', 'fwmark', '0x10000000/0x10000000', 'table', '8', 'priority', '1002');
    inNs('ip', '-6', 'rule', 'add', 'fwmark', '0x20000000/0x20000000', 'table', '9', 'priority', '1003');
    assert.deepEqual(markRulesOf(rules(4), BIT, 4), ['ipv4 rule 1001: fwmark 0x7']);
    assert.deepEqual(markRulesOf(rules(6), BIT, 6), [
      'ipv6 rule 1002: fwmark 0x10000000/0x10000000',
      'ipv6 rule 1003: fwmark 0x20000000/0x20000000',
    ]);

    inNs('ip', 'route', 'add', '198.18.5.0/24', 'dev', 'v0', 'mtu', '1400');
    assert.equal(mtu(), 1400);
    inNs('ip', 'route', 'add', '198.18.6.0/24', 'dev', 'v0', 'mtu', 'lock', '1300', 'table', '100');
    assert.equal(mtu(), 1300, 'routes of every table count');
  });
});
