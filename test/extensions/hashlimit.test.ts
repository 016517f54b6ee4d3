import assert from 'node:assert/strict';
import hashlimit, { type HashlimitOptions } from '../../src/extensions/hashlimit';
import { hashlimitStore } from '../../src/extensions/util/b-hashlimit-store';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

function opts(text: string): HashlimitOptions {
  return hashlimit.parse(uses(hashlimit, text), parseCtx());
}

/** How many of `n` packets sent at `at(i)` ms match. */
function count(o: HashlimitOptions, n: number, at: (i: number) => number, spec = {}): number {
  let hits = 0;
  for (let i = 0; i < n; i++) if (hashlimit.match!(o, context(packet(spec), { now: at(i) }))) hits++;
  return hits;
}

describe('hashlimit match', () => {
  beforeEach(() => hashlimitStore.reset());

  describe('parse and format (iptables 1.8.9)', () => {
    kernelCases(hashlimit, KERNEL_CASES.hashlimit!);
    it('refuses a missing --hashlimit-name at the match', () => {
      const e = refusal(hashlimit, '--hashlimit-upto 10/sec');
      assert.match(e.reason, /--hashlimit-name" must be specified/);
    });
    it('refuses a bad rate at its argument', () => {
      const e = refusal(hashlimit, '--hashlimit-name x --hashlimit-upto 0/sec');
      assert.equal(e.loc.column, 37);
      assert.match(e.reason, /Bad value for "--hashlimit-upto" option: "0\/sec"/);
    });
    it('refuses what overflows the kernel credits (1/day with burst 5: ERANGE)', () => {
      assert.match(
        refusal(hashlimit, '--hashlimit-upto 1/day --hashlimit-name y').reason,
        /Numerical result out of range/,
      );
    });
  });

  describe('match', () => {
    it('--hashlimit-upto lets the burst through, then the rate', () => {
      const o = opts('--hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-name t1');
      assert.equal(
        count(o, 20, () => 1000),
        5,
      );
      // 1 s later: 10 more credits, capped at the burst of 5.
      assert.equal(
        count(o, 20, () => 2000),
        5,
      );
      // One packet every 100 ms is exactly the rate.
      assert.equal(
        count(o, 50, (i) => 10_000 + i * 100),
        50,
      );
    });

    it('--hashlimit-above is the complement', () => {
      const o = opts('--hashlimit-above 1/sec --hashlimit-burst 2 --hashlimit-name t2');
      assert.equal(
        count(o, 5, () => 0),
        3,
      );
    });

    it('buckets are per flow key: srcip mode separates sources, no mode shares one bucket', () => {
      const per = opts('--hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name t3');
      assert.equal(
        count(per, 3, () => 0, { src: '198.18.0.1' }),
        1,
      );
      assert.equal(
        count(per, 3, () => 0, { src: '198.18.0.2' }),
        1,
      );
      const shared = opts('--hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-name t4');
      assert.equal(
        count(shared, 1, () => 0, { src: '198.18.0.1' }) + count(shared, 1, () => 0, { src: '198.18.0.2' }),
        1,
      );
    });

    it('--hashlimit-srcmask groups sources into one bucket', () => {
      const o = opts(
        '--hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name t5',
      );
      assert.equal(count(o, 1, () => 0, { src: '198.18.0.1' }) + count(o, 1, () => 0, { src: '198.18.0.200' }), 1);
    });

    it('the table is global per name: a second rule with the same name shares the buckets', () => {
      const a = opts('--hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-name shared');
      const b = opts('--hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-name shared');
      assert.equal(
        count(a, 1, () => 0),
        1,
      );
      assert.equal(
        count(b, 1, () => 0),
        0,
      );
    });

    it('idle buckets expire after --hashlimit-htable-expire and start full again', () => {
      const o = opts(
        '--hashlimit-upto 1/hour --hashlimit-burst 1 --hashlimit-name t6 --hashlimit-htable-expire 2000 --hashlimit-htable-gcinterval 500',
      );
      assert.equal(
        count(o, 2, () => 0),
        1,
      );
      assert.equal(
        count(o, 1, () => 1000),
        0,
      );
      assert.equal(
        count(o, 1, () => 5000),
        1,
      );
    });

    it('port modes do not match packets without ports', () => {
      const o = opts('--hashlimit-upto 10/sec --hashlimit-mode dstport --hashlimit-name t7');
      assert.equal(
        count(o, 1, () => 0, { proto: 47 }),
        0,
      );
      assert.equal(
        count(o, 1, () => 0, { proto: 17 }),
        1,
      );
    });

    it('bytes mode spends credits by packet length', () => {
      const o = opts('--hashlimit-upto 1kb/s --hashlimit-name t8');
      // 1 KiB per second with no burst: about one second's worth of 100-byte packets at once.
      const n = count(o, 30, () => 0, { proto: 17, payload: 'x'.repeat(72) });
      assert.ok(n >= 9 && n <= 11, `got ${n}`);
    });
  });
});
