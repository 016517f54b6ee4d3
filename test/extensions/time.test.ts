import assert from 'node:assert/strict';
import time, { timeMatch, type TimeOptions } from '../../src/extensions/time';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, roundTrip, uses } from './b-fixture';

function opts(text: string): TimeOptions {
  return time.parse(uses(time, text), parseCtx());
}

const at = (iso: string) => new Date(iso);

describe('time match', () => {
  describe('parse and format (iptables 1.8.9)', () => {
    kernelCases(time, KERNEL_CASES.time!);
    const more: [string, string][] = [
      ['--weekdays Monday,Su', '--weekdays Mon,Sun --datestop 2038-01-19T03:14:07'],
      ['--monthdays 0,31', '--monthdays 31 --datestop 2038-01-19T03:14:07'],
      ['--datestart 2038-06-01', '--datestart 2038-06-01T00:00:00 --datestop 2038-01-19T03:14:07'],
      ['--datestart 2020-00-00', '--datestart 2019-11-30T00:00:00 --datestop 2038-01-19T03:14:07'],
      ['--datestart 2020-02-31T23:59:59', '--datestart 2020-03-02T23:59:59 --datestop 2038-01-19T03:14:07'],
      ['--timestart 1:2', '--timestart 01:02:00 --timestop 23:59:59 --datestop 2038-01-19T03:14:07'],
      ['--datestart 2020-1-2T3', '--datestart 2020-01-02T03:00:00 --datestop 2038-01-19T03:14:07'],
      ['--datestop 1970-01-01', ''],
      [
        '--timestart 10:00 --timestop 09:00 --contiguous --utc',
        '--timestart 10:00:00 --timestop 09:00:00 --datestop 2038-01-19T03:14:07 --contiguous',
      ],
    ];
    for (const [input, expected] of more)
      it(`${input} -> ${expected}`, () => assert.equal(roundTrip(time, input), expected));
    it('refuses a lower-case day name and a bad time at the argument', () => {
      assert.match(refusal(time, '--weekdays mon').reason, /mon is not a valid day specifier/);
      assert.equal(refusal(time, '--timestart 1').loc.column, 13);
    });
  });

  describe('match', () => {
    it('time of day, inclusive at both ends', () => {
      const o = opts('--timestart 08:00 --timestop 17:00');
      assert.equal(timeMatch(o, at('2024-01-01T08:00:00Z')), true);
      assert.equal(timeMatch(o, at('2024-01-01T17:00:59Z')), false);
      assert.equal(timeMatch(o, at('2024-01-01T17:00:00Z')), true);
      assert.equal(timeMatch(o, at('2024-01-01T07:59:59Z')), false);
    });
    it('a window across midnight; --contiguous counts its morning to the previous day', () => {
      const o = opts('--timestart 22:00 --timestop 02:00 --weekdays Mon');
      // 2024-01-01 is a Monday.
      assert.equal(timeMatch(o, at('2024-01-01T23:00:00Z')), true);
      assert.equal(timeMatch(o, at('2024-01-02T01:00:00Z')), false);
      assert.equal(timeMatch(o, at('2024-01-01T01:00:00Z')), true);
      const c = opts('--timestart 22:00 --timestop 02:00 --weekdays Mon --contiguous');
      assert.equal(timeMatch(c, at('2024-01-02T01:00:00Z')), true);
      assert.equal(timeMatch(c, at('2024-01-01T01:00:00Z')), false);
    });
    it('weekdays, month days and dates', () => {
      assert.equal(timeMatch(opts('--weekdays Sun'), at('2024-01-07T12:00:00Z')), true);
      assert.equal(timeMatch(opts('! --weekdays Sun'), at('2024-01-07T12:00:00Z')), false);
      assert.equal(timeMatch(opts('--monthdays 1,15'), at('2024-02-15T00:00:00Z')), true);
      assert.equal(timeMatch(opts('--monthdays 1,15'), at('2024-02-16T00:00:00Z')), false);
      const d = opts('--datestart 2024-01-01 --datestop 2024-01-31T23:59:59');
      assert.equal(timeMatch(d, at('2024-01-31T23:59:59Z')), true);
      assert.equal(timeMatch(d, at('2024-02-01T00:00:00Z')), false);
    });
    it('reads the wall clock from the context', () => {
      const o = opts('--timestart 12:00 --timestop 12:30');
      assert.equal(time.match!(o, context(packet(), { wallclock: at('2024-05-05T12:15:00Z') })), true);
      assert.equal(time.match!(o, context(packet(), { wallclock: at('2024-05-05T13:15:00Z') })), false);
    });
  });
});
