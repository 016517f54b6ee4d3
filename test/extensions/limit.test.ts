import assert from 'node:assert/strict';
import limit, { type LimitState } from '../../src/extensions/limit';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match limit', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables, which loads the match as nft's native limit).
  const OK: [string, string][] = [
    ['', '--limit 3/hour'],
    ['--limit 1/sec', '--limit 1/sec'],
    ['--limit 10/second --limit-burst 5', '--limit 10/sec'],
    ['--limit 60/min', '--limit 1/sec'],
    ['--limit 3600/hour', '--limit 1/sec'],
    ['--limit 7/day', '--limit 7/day'],
    ['--limit 1000/s', '--limit 1000/sec'],
    ['--limit 100/minute --limit-burst 1', '--limit 100/min --limit-burst 1'],
    ['--limit 24/day', '--limit 1/hour'],
    ['--limit 2/h', '--limit 2/hour'],
    ['--limit 10000/sec', '--limit 10000/sec'],
    ['--limit 1/d', '--limit 1/day'],
    ['--limit 1/m', '--limit 1/min'],
    ['--limit 1/SEC', '--limit 1/sec'],
    ['--limit 5', '--limit 5/sec'],
    ['--limit-burst 0', '--limit 3/hour'],
    ['--limit-burst 10000', '--limit 3/hour --limit-burst 10000'],
    ['--limit 1.5/sec', '--limit 1/sec'],
    ['--limit 7/min', '--limit 7/min'],
    ['--limit 13/hour', '--limit 13/hour'],
    ['--limit 61/min', '--limit 61/min'],
    ['--limit 59/min --limit-burst 3', '--limit 59/min --limit-burst 3'],
    ['--limit 1/day --limit-burst 10000', '--limit 1/day --limit-burst 10000'],
    ['--limit 50/sec --limit-burst 50', '--limit 50/sec --limit-burst 50'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(limit, input), expected));
  }
  const FAIL: [string, string][] = [
    ['--limit 0/sec', 'bad rate "0/sec"\''],
    ['--limit abc', 'bad rate "abc"\''],
    ['--limit 5/fortnight', 'bad rate "5/fortnight"\''],
    ['--limit 5/', 'bad rate "5/"\''],
    ['--limit 1/seconds', 'bad rate "1/seconds"\''],
    ['--limit 100000/sec', 'Rate too fast "100000/sec"'],
    ['--limit 10001/sec', 'Rate too fast "10001/sec"'],
    ['--limit -5/sec', 'Rate too fast "-5/sec"'],
    ['--limit-burst 10001', 'limit: bad value for option "--limit-burst", or out of range (0-10000).'],
  ];
  for (const [input, reason] of FAIL) {
    it(`refuses "${input}" at the value`, () => {
      const e = parseError(limit, input);
      assert.equal(e?.reason, reason);
      assert.equal(e?.loc.column, input.indexOf(' ') + 2);
    });
  }

  const run = (text: string, times: number[]): string => {
    const o = parseOpts(limit, text);
    const state = limit.createState!(o) as LimitState;
    return times.map((now) => (matches(limit, o, fixture(), { state, now }) ? '1' : '0')).join('');
  };

  it('lets a burst through, then one packet per interval', () => {
    assert.equal(run('--limit 1/sec --limit-burst 3', [0, 0, 0, 0, 500, 999, 1000, 1500, 2000, 2001]), '1110001010');
  });
  it('refills at most to the burst', () => {
    assert.equal(run('--limit 1/sec --limit-burst 2', [0, 0, 0, 100000, 100000, 100000]), '110110');
  });
  it('defaults to 3/hour with a burst of 5', () => {
    const m = 60 * 1000;
    assert.equal(run('', [0, 0, 0, 0, 0, 0, 19 * m, 20 * m, 20 * m]), '111110010');
  });
  it('keeps nanosecond credit, capped at cost * burst', () => {
    // 3/sec costs 333333333 ns. At 334 ms the bucket would hold 334 ms of credit but is capped at one cost, so
    // nothing carries over and the next packet needs another full 333.33 ms.
    assert.equal(run('--limit 3/sec --limit-burst 1', [0, 333, 334, 667, 668, 1000, 1001]), '1010100');
    // burst 2: two packets at once, then nothing until a whole cost (333.33 ms) has accrued again
    assert.equal(run('--limit 3/sec --limit-burst 2', [0, 0, 0, 333, 334]), '11001');
  });
});
