import assert from 'node:assert/strict';
import CONNMARK from '../../src/extensions/CONNMARK-target';
import { col, conn, meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('CONNMARK target', () => {
  // Expected: iptables-nft 1.8.9 output for each form (and the corpus' Istio rules for save/restore).
  const saves: [string, string][] = [
    ['--set-mark 5', '--set-xmark 0x5/0xffffffff'],
    ['--set-mark 5/0xff', '--set-xmark 0x5/0xff'],
    ['--set-mark 0x10/0x1', '--set-xmark 0x10/0x11'],
    ['--set-mark 1 --mask 3', '--set-xmark 0x1/0x3'],
    ['--mask 3 --set-mark 1', '--set-xmark 0x1/0xffffffff'],
    ['--and-mark 3', '--set-xmark 0x0/0xfffffffc'],
    ['--or-mark 3', '--set-xmark 0x3/0x3'],
    ['--xor-mark 3', '--set-xmark 0x3/0x0'],
    ['--set-xmark 3/5', '--set-xmark 0x3/0x5'],
    ['--save-mark', '--save-mark --nfmask 0xffffffff --ctmask 0xffffffff'],
    ['--restore-mark', '--restore-mark --nfmask 0xffffffff --ctmask 0xffffffff'],
    ['--save-mark --mask 0xff', '--save-mark --nfmask 0xff --ctmask 0xff'],
    ['--save-mark --nfmask 0xf', '--save-mark --nfmask 0xf --ctmask 0xffffffff'],
    ['--save-mark --ctmask 0xf', '--save-mark --nfmask 0xffffffff --ctmask 0xf'],
    ['--restore-mark --nfmask 0xf --ctmask 0xf0', '--restore-mark --nfmask 0xf --ctmask 0xf0'],
    ['--save-mark --left-shift-mark 3', '--save-mark --nfmask 0xffffffff --ctmask 0xffffffff --left-shift-mark 3'],
    ['--restore-mark --right-shift-mark 3', '--restore-mark --nfmask 0xffffffff --ctmask 0xffffffff --right-shift-mark 3'],
    ['--set-mark 1 --left-shift-mark 3', '--set-xmark 0x1/0xffffffff --left-shift-mark 3'],
  ];
  for (const [input, want] of saves) {
    it(`prints ${input} as ${want}`, () => assert.equal(roundTrip(CONNMARK, input, { table: 'mangle' }), want));
  }

  it('refuses what iptables refuses', () => {
    refuses(CONNMARK, '', /No operation specified/, 1);
    const a = '--set-mark 1 --save-mark';
    refuses(CONNMARK, a, /"--set-mark" cannot be used together with "--save-mark"/, col(a, '--save-mark'));
    const b = '--save-mark --mask 0xf --ctmask 0xff';
    refuses(CONNMARK, b, /"--ctmask" cannot be used together with "--mask"/, col(b, '--ctmask'));
    refuses(CONNMARK, '--save-mark --left-shift-mark 32', /out of range \(0-31\)/, 31);
  });

  it('set: ct mark = (ct mark & ~mask) ^ value; the packet mark is untouched', () => {
    const ct = conn(0xf0f0);
    const ctx = tctx(packet(), meta('PREROUTING', 7), ct);
    assert.deepEqual(run(CONNMARK, '--set-mark 0x5/0xff', ctx), { verdict: 'continue' });
    assert.equal(ct.mark, 0xf005);
    assert.equal(ctx.meta.mark, 7);
  });

  it('save: ct mark takes the nfmask bits of the packet mark, within ctmask', () => {
    const ct = conn(0xffff0000);
    const ctx = tctx(packet(), meta('PREROUTING', 0x1234), ct);
    run(CONNMARK, '--save-mark --nfmask 0xff --ctmask 0xfff', ctx);
    // (0xffff0000 & ~0xfff) ^ ((0x1234 & 0xff) & 0xfff)
    assert.equal(ct.mark, 0xffff0034);
    assert.equal(ctx.meta.mark, 0x1234);
  });

  it('restore: packet mark takes the ctmask bits of the ct mark, within nfmask', () => {
    const ct = conn(0xabcd);
    const ctx = tctx(packet(), meta('PREROUTING', 0xffff0000), ct);
    run(CONNMARK, '--restore-mark --nfmask 0xff00ff --ctmask 0xff', ctx);
    // (0xffff0000 & ~0xff00ff) ^ ((0xabcd & 0xff) & 0xff00ff)
    assert.equal(ctx.meta.mark, 0xff0000cd);
    assert.equal(ct.mark, 0xabcd);
  });

  it('save/restore XOR in bits outside the other mask, as connmark_tg_shift does', () => {
    const ct = conn(0);
    const ctx = tctx(packet(), meta('PREROUTING', 0x1200), ct);
    run(CONNMARK, '--save-mark --nfmask 0xff00 --ctmask 0xff', ctx);
    assert.equal(ct.mark, 0x1200);
    const ctx2 = tctx(packet(), meta('PREROUTING', 0), conn(0x3400));
    run(CONNMARK, '--restore-mark --nfmask 0xff --ctmask 0xff00', ctx2);
    assert.equal(ctx2.meta.mark, 0x3400);
  });

  it('shifts the saved and restored bits (revision 2)', () => {
    const ct = conn(0);
    const ctx = tctx(packet(), meta('PREROUTING', 0x3), ct);
    run(CONNMARK, '--save-mark --left-shift-mark 8', ctx);
    assert.equal(ct.mark, 0x300);
    const ctx2 = tctx(packet(), meta('PREROUTING', 0), conn(0x300));
    run(CONNMARK, '--restore-mark --right-shift-mark 8', ctx2);
    assert.equal(ctx2.meta.mark, 0x3);
  });

  it('does nothing without a connection or for an untracked one', () => {
    const ctx = tctx(packet(), meta('PREROUTING', 5));
    assert.deepEqual(run(CONNMARK, '--restore-mark', ctx), { verdict: 'continue' });
    assert.equal(ctx.meta.mark, 5);
    const ct = conn(9, 'UNTRACKED');
    const ctx2 = tctx(packet(), meta('PREROUTING', 5), ct);
    run(CONNMARK, '--set-mark 1', ctx2);
    run(CONNMARK, '--restore-mark', ctx2);
    assert.equal(ct.mark, 9);
    assert.equal(ctx2.meta.mark, 5);
  });
});
