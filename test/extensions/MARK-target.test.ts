import assert from 'node:assert/strict';
import MARK from '../../src/extensions/MARK-target';
import { col, meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('MARK target', () => {
  // Expected strings: iptables-nft 1.8.9 `iptables -S` after loading each form into a lab namespace.
  const saves: [string, string][] = [
    ['--set-mark 5', '--set-xmark 0x5/0xffffffff'],
    ['--set-mark 5/0xff', '--set-xmark 0x5/0xff'],
    ['--set-mark 0x10/0x1', '--set-xmark 0x10/0x11'],
    ['--set-mark 010', '--set-xmark 0x8/0xffffffff'],
    ['--set-mark 0xffffffff/0xffffffff', '--set-xmark 0xffffffff/0xffffffff'],
    ['--and-mark 0xf0', '--set-xmark 0x0/0xffffff0f'],
    ['--or-mark 0x4000', '--set-xmark 0x4000/0x4000'],
    ['--xor-mark 3', '--set-xmark 0x3/0x0'],
    ['--set-xmark 7', '--set-xmark 0x7/0xffffffff'],
    ['--set-xmark 0x10/0x1', '--set-xmark 0x10/0x1'],
    // kube-proxy's rendering in the corpus
    ['--set-xmark 0x4000/0x0', '--set-xmark 0x4000/0x0'],
  ];
  for (const [input, want] of saves) {
    it(`prints ${input} as ${want}`, () => assert.equal(roundTrip(MARK, input, { table: 'mangle' }), want));
  }

  it('refuses what iptables refuses, at the offending word', () => {
    refuses(MARK, '', /One of the --set-xmark/, 1);
    const two = '--set-mark 1 --or-mark 2';
    refuses(MARK, two, /"--set-mark" cannot be used together with "--or-mark"/, col(two, '--or-mark'));
    refuses(MARK, '--set-mark 0x100000000', /bad integer value for option "--set-mark"/, 12);
    refuses(MARK, '--set-mark -1', /bad integer value/, 12);
    refuses(MARK, '--set-xmark 0x1/0x2/0x3', /trailing garbage/, 13);
    refuses(MARK, '--set-xmark 0x1/', /bad integer value/, 13);
    refuses(MARK, '--and-mark 3/4', /bad value for option "--and-mark", or out of range \(0-4294967295\)/, 12);
  });

  it('is allowed in every table (xt_mark registers no table or hook limit)', () => {
    assert.equal(MARK.allowed, undefined);
    assert.equal(roundTrip(MARK, '--set-mark 1', { table: 'nat', chain: 'PREROUTING' }), '--set-xmark 0x1/0xffffffff');
  });

  const arith: [string, number, number][] = [
    ['--set-mark 0x5', 0xffff0000, 0x5],
    ['--set-mark 0x5/0xf', 0xffff00ff, 0xffff00f5],
    ['--and-mark 0xf0', 0x12345678, 0x70],
    ['--or-mark 0x4000', 0x1, 0x4001],
    ['--xor-mark 0x3', 0x1, 0x2],
    ['--set-xmark 0x1/0x3', 0xff, 0xfd],
    ['--set-xmark 0x80000000/0x80000000', 0, 0x80000000],
  ];
  for (const [input, before, after] of arith) {
    it(`${input} turns mark 0x${before.toString(16)} into 0x${after.toString(16)} and continues`, () => {
      const ctx = tctx(packet(), meta('PREROUTING', before));
      assert.deepEqual(run(MARK, input, ctx, { table: 'mangle' }), { verdict: 'continue' });
      assert.equal(ctx.meta.mark, after);
      assert.equal(ctx.rewritten, false);
    });
  }
});
