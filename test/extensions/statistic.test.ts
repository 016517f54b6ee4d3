import assert from 'node:assert/strict';
import statistic, { formatProbability, type NthState } from '../../src/extensions/statistic';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match statistic', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables): lround(2^31 p) printed back with %.11f.
  const OK: [string, string][] = [
    ['--mode random --probability 0.5', '--mode random --probability 0.50000000000'],
    ['--mode random --probability 0.5000000000', '--mode random --probability 0.50000000000'],
    ['--mode random ! --probability 0.1', '--mode random ! --probability 0.10000000009'],
    ['--mode random --probability 0.333333', '--mode random --probability 0.33333300008'],
    ['--mode random --probability 1', '--mode random --probability 1.00000000000'],
    ['--mode random --probability 0', '--mode random --probability 0.00000000000'],
    ['--mode random --probability 1e-1', '--mode random --probability 0.10000000009'],
    ['--mode random --probability 0.0000000001', '--mode random --probability 0.00000000000'],
    ['--mode random --probability .5', '--mode random --probability 0.50000000000'],
    // exact ties of the 12th digit round to even, as glibc printf does
    ['--mode random --probability 0.000244140625', '--mode random --probability 0.00024414062'],
    ['--mode random --probability 0.00073242187', '--mode random --probability 0.00073242188'],
    ['--mode nth --every 3 --packet 1', '--mode nth --every 3 --packet 1'],
    ['--mode nth --every 3 --packet 0', '--mode nth --every 3 --packet 0'],
    ['--mode nth ! --every 3 --packet 0', '--mode nth ! --every 3 --packet 0'],
    ['--mode nth --every 1 --packet 0', '--mode nth --every 1 --packet 0'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(statistic, input), expected));
  }

  const FAIL: [string, string][] = [
    ['', '--probability must be specified when using random mode'],
    ['--mode random', '--probability must be specified when using random mode'],
    ['--probability 0.5', 'statistic: option "--mode" must be specified'],
    ['--mode random --probability 1.5', 'statistic: bad value for option "--probability", or out of range (0-1).'],
    ['--mode random --probability -0.5', 'statistic: bad value for option "--probability", or out of range (0-1).'],
    ['--mode random --probability abc', 'statistic: bad value for option "--probability", or out of range (0-1).'],
    ['--mode nth --every 3', 'statistic: option "--every" also requires "--packet".'],
    ['--mode nth --packet 0', 'statistic: option "--packet" also requires "--every".'],
    ['--mode nth --every 3 --packet 3', 'the --packet p must be 0 <= p <= n-1'],
    ['--mode nth --every 0 --packet 0', 'statistic: bad value for option "--every", or out of range (1-4294967295).'],
    ['--mode foo', 'Bad mode "foo"'],
    ['--mode nth --every 2 --packet 1 --probability 0.5', 'statistic: option "--probability" cannot be used together with "--every".'],
    ['--mode random --every 2 --packet 1 --probability 0.5', 'statistic: option "--probability" cannot be used together with "--every".'],
  ];
  for (const [input, reason] of FAIL) {
    it(`refuses "${input}"`, () => assert.equal(parseError(statistic, input)?.reason, reason));
  }

  it('formats stored values exactly', () => {
    assert.equal(formatProbability(0x80000000), '1.00000000000');
    assert.equal(formatProbability(1), '0.00000000047');
    assert.equal(formatProbability(Math.round(0x80000000 / 3)), '0.33333333349');
  });

  it('random: matches when the 31 random bits are below the stored probability', () => {
    const o = parseOpts(statistic, '--mode random --probability 0.5');
    const p = fixture();
    assert.equal(matches(statistic, o, p, { random: () => 0x3fffffff }), true);
    assert.equal(matches(statistic, o, p, { random: () => 0x40000000 }), false);
    // only the low 31 bits count
    assert.equal(matches(statistic, o, p, { random: () => 0x80000001 }), true);
    const inv = parseOpts(statistic, '--mode random ! --probability 0.5');
    assert.equal(matches(statistic, inv, p, { random: () => 0x40000000 }), true);
    assert.equal(matches(statistic, parseOpts(statistic, '--mode random --probability 1'), p, { random: () => 0x7fffffff }), true);
    assert.equal(matches(statistic, parseOpts(statistic, '--mode random --probability 0'), p, { random: () => 0 }), false);
  });

  it('nth: one shared counter per rule; --packet p matches packet p of every n', () => {
    const run = (text: string, n: number): string => {
      const o = parseOpts(statistic, text);
      const state = statistic.createState!(o) as NthState;
      let s = '';
      for (let i = 0; i < n; i++) s += matches(statistic, o, fixture(), { state }) ? '1' : '0';
      return s;
    };
    assert.equal(run('--mode nth --every 3 --packet 0', 7), '1001001');
    assert.equal(run('--mode nth --every 3 --packet 1', 7), '0100100');
    assert.equal(run('--mode nth --every 3 --packet 2', 7), '0010010');
    assert.equal(run('--mode nth ! --every 3 --packet 0', 4), '0110');
    assert.equal(run('--mode nth --every 1 --packet 0', 3), '111');
  });
});
