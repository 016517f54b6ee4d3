import assert from 'node:assert/strict';
import physdev from '../../src/extensions/physdev';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match physdev', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    [
      '--physdev-in eth0 ! --physdev-out eth1 --physdev-is-in ! --physdev-is-out --physdev-is-bridged',
      '--physdev-is-in --physdev-in eth0 ! --physdev-is-out ! --physdev-out eth1 --physdev-is-bridged',
    ],
    ['--physdev-in br+', '--physdev-in br+'],
    ['--physdev-is-bridged', '--physdev-is-bridged'],
    ['! --physdev-is-bridged', '! --physdev-is-bridged'],
    ['--physdev-out eth0', '--physdev-out eth0'],
    ['--physdev-in abcdefghijklmno', '--physdev-in abcdefghijklmno'],
    ['! --physdev-is-in', '! --physdev-is-in'],
    ['--physdev-in vethwe-bridge', '--physdev-in vethwe-bridge'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(physdev, input), expected));
  }
  it('refuses an empty match and a too long name', () => {
    assert.equal(parseError(physdev, '')?.reason, 'PHYSDEV: no physdev option specified');
    assert.equal(
      parseError(physdev, '--physdev-in abcdefghijklmnop')?.reason,
      "interface name `abcdefghijklmnop' must be shorter than IFNAMSIZ (15)",
    );
  });
  it('bridged packets: ports with + wildcards; is-in/is-out/is-bridged', () => {
    const p = fixture();
    const meta = { physIn: 'veth1', physOut: 'veth2' };
    assert.equal(matches(physdev, parseOpts(physdev, '--physdev-in veth+'), p, { meta }), true);
    assert.equal(matches(physdev, parseOpts(physdev, '--physdev-in veth'), p, { meta }), false);
    assert.equal(matches(physdev, parseOpts(physdev, '! --physdev-in veth2 --physdev-out veth2'), p, { meta }), true);
    assert.equal(matches(physdev, parseOpts(physdev, '--physdev-is-bridged --physdev-is-in --physdev-is-out'), p, { meta }), true);
    const inOnly = { physIn: 'veth1' };
    assert.equal(matches(physdev, parseOpts(physdev, '--physdev-is-bridged'), p, { meta: inOnly }), false);
    assert.equal(matches(physdev, parseOpts(physdev, '! --physdev-is-out'), p, { meta: inOnly }), true);
    // no out port yet: --physdev-out is not tested
    assert.equal(matches(physdev, parseOpts(physdev, '--physdev-out nomatch'), p, { meta: inOnly }), true);
  });
  it('not bridged: matches only when every option used is inverted', () => {
    const p = fixture();
    assert.equal(matches(physdev, parseOpts(physdev, '! --physdev-is-in'), p), true);
    assert.equal(matches(physdev, parseOpts(physdev, '! --physdev-is-bridged ! --physdev-in eth0'), p), true);
    assert.equal(matches(physdev, parseOpts(physdev, '! --physdev-is-bridged --physdev-in eth0'), p), false);
  });
});
