import assert from 'node:assert/strict';
import iprange from '../../src/extensions/iprange';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match iprange', () => {
  // Kernel iptables-save / ip6tables-save output (v1.8.9 nf_tables).
  const OK: [string, string, (4 | 6)?][] = [
    ['--src-range 1.2.3.4-1.2.3.10 ! --dst-range 10.0.0.1-10.0.0.1', '--src-range 1.2.3.4-1.2.3.10 ! --dst-range 10.0.0.1-10.0.0.1'],
    ['! --src-range 1.2.3.4-1.2.3.10', '! --src-range 1.2.3.4-1.2.3.10'],
    ['--src-range 1.2.3.4', '--src-range 1.2.3.4-1.2.3.4'],
    ['--src-range 1.2.3.10-1.2.3.4', '--src-range 1.2.3.10-1.2.3.4'],
    ['--src-range 1.2.3', '--src-range 1.2.3.0-1.2.3.0'],
    ['--src-range 2001:db8::1-2001:db8::5', '--src-range 2001:db8::1-2001:db8::5', 6],
  ];
  for (const [input, expected, family] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(iprange, input, { family: family ?? 4 }), expected));
  }
  it('refuses bad addresses at the value, and an empty match', () => {
    const e = parseError(iprange, '--src-range 1.2.3.4/24-1.2.3.8');
    assert.equal(e?.reason, 'iprange: Bad value for "--src-range" option: "1.2.3.4/24"');
    assert.equal(e?.loc.column, 13);
    assert.equal(parseError(iprange, '--src-range 1.2.3.4-')?.reason, 'iprange: Bad value for "--src-range" option: ""');
    assert.equal(parseError(iprange, '')?.reason, "iprange match: You must specify `--src-range' or `--dst-range'");
  });
  it('matches inclusive ranges; a reversed range never matches', () => {
    const p = fixture({ src: '198.18.0.5', dst: '198.18.1.0' });
    assert.equal(matches(iprange, parseOpts(iprange, '--src-range 198.18.0.5-198.18.0.9'), p), true);
    assert.equal(matches(iprange, parseOpts(iprange, '--src-range 198.18.0.1-198.18.0.5'), p), true);
    assert.equal(matches(iprange, parseOpts(iprange, '--src-range 198.18.0.6-198.18.0.9'), p), false);
    assert.equal(matches(iprange, parseOpts(iprange, '! --src-range 198.18.0.6-198.18.0.9'), p), true);
    assert.equal(matches(iprange, parseOpts(iprange, '--dst-range 198.18.0.250-198.18.1.3'), p), true);
    assert.equal(matches(iprange, parseOpts(iprange, '--src-range 198.18.0.9-198.18.0.1'), p), false);
    const p6 = fixture({ family: 6, src: '2001:db8::3' });
    assert.equal(matches(iprange, parseOpts(iprange, '--src-range 2001:db8::1-2001:db8::5', { family: 6 }), p6), true);
  });
});
