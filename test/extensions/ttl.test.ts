import assert from 'node:assert/strict';
import ttl from '../../src/extensions/ttl';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match ttl', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--ttl-eq 5', '--ttl-eq 5'],
    ['! --ttl-eq 5', '! --ttl-eq 5'],
    ['--ttl-lt 5', '--ttl-lt 5'],
    ['--ttl-gt 5', '--ttl-gt 5'],
    ['--ttl-gt 0x10', '--ttl-gt 16'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(ttl, input), expected));
  }
  it('refuses what iptables refuses', () => {
    assert.equal(parseError(ttl, '--ttl-eq 5 --ttl-lt 5')?.reason, 'ttl: option "--ttl-lt" cannot be used together with "--ttl-eq".');
    assert.equal(parseError(ttl, '--ttl-eq 5 --ttl-lt 5')?.loc.column, 12);
    assert.equal(parseError(ttl, '--ttl-eq 256')?.reason, 'ttl: bad value for option "--ttl-eq", or out of range (0-255).');
    assert.equal(parseError(ttl, '')?.reason, "TTL match: You must specify one of `--ttl-eq', `--ttl-lt', `--ttl-gt'");
    assert.equal(ttl.options.find((o) => o.name === 'ttl-lt')?.invertible, undefined);
    assert.equal(ttl.family, 4);
  });
  it('compares the TTL', () => {
    const p = fixture({ ttl: 64 });
    assert.equal(matches(ttl, parseOpts(ttl, '--ttl-eq 64'), p), true);
    assert.equal(matches(ttl, parseOpts(ttl, '! --ttl-eq 64'), p), false);
    assert.equal(matches(ttl, parseOpts(ttl, '--ttl-lt 64'), p), false);
    assert.equal(matches(ttl, parseOpts(ttl, '--ttl-lt 65'), p), true);
    assert.equal(matches(ttl, parseOpts(ttl, '--ttl-gt 63'), p), true);
    assert.equal(matches(ttl, parseOpts(ttl, '--ttl-gt 64'), p), false);
  });
});
