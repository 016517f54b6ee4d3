import assert from 'node:assert/strict';
import hl from '../../src/extensions/hl';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match hl', () => {
  // Kernel ip6tables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--hl-eq 5', '--hl-eq 5'],
    ['! --hl-eq 5', '! --hl-eq 5'],
    ['--hl-lt 5', '--hl-lt 5'],
    ['--hl-gt 5', '--hl-gt 5'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(hl, input, { family: 6 }), expected));
  }
  it('refuses two tests at once, and is IPv6 only', () => {
    assert.equal(parseError(hl, '--hl-gt 5 --hl-lt 3', { family: 6 })?.reason, 'hl: option "--hl-lt" cannot be used together with "--hl-gt".');
    assert.equal(hl.options.find((o) => o.name === 'hl-lt')?.invertible, undefined);
    assert.equal(hl.family, 6);
    assert.equal(parseError(hl, '--hl-eq 256', { family: 6 })?.reason, 'hl: bad value for option "--hl-eq", or out of range (0-255).');
    assert.equal(parseError(hl, '', { family: 6 })?.reason, "HL match: You must specify one of `--hl-eq', `--hl-lt', `--hl-gt'");
  });
  it('compares the hop limit', () => {
    const p = fixture({ family: 6, proto: 58, ttl: 255 });
    assert.equal(matches(hl, parseOpts(hl, '--hl-eq 255', { family: 6 }), p), true);
    assert.equal(matches(hl, parseOpts(hl, '--hl-lt 255', { family: 6 }), p), false);
    assert.equal(matches(hl, parseOpts(hl, '! --hl-eq 1', { family: 6 }), p), true);
  });
});
