import assert from 'node:assert/strict';
import TTL from '../../src/extensions/TTL-target';
import HL from '../../src/extensions/HL-target';
import { checksumsValid, col, meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('TTL and HL targets', () => {
  it('print as iptables-save does', () => {
    assert.equal(roundTrip(TTL, '--ttl-set 5', { table: 'mangle' }), '--ttl-set 5');
    assert.equal(roundTrip(TTL, '--ttl-set 0', { table: 'mangle' }), '--ttl-set 0');
    assert.equal(roundTrip(TTL, '--ttl-dec 1', { table: 'mangle' }), '--ttl-dec 1');
    assert.equal(roundTrip(TTL, '--ttl-inc 2', { table: 'mangle' }), '--ttl-inc 2');
    assert.equal(roundTrip(HL, '--hl-set 5', { table: 'mangle', family: 6 }), '--hl-set 5');
    assert.equal(roundTrip(HL, '--hl-dec 1', { table: 'mangle', family: 6 }), '--hl-dec 1');
    assert.equal(roundTrip(HL, '--hl-inc 1', { table: 'mangle', family: 6 }), '--hl-inc 1');
  });

  it('refuse what iptables refuses', () => {
    refuses(TTL, '--ttl-dec 0', /TTL: bad value for option "--ttl-dec", or out of range \(1-255\)/, 11);
    refuses(TTL, '--ttl-inc 0', /out of range \(1-255\)/, 11);
    refuses(TTL, '--ttl-set 256', /out of range \(0-255\)/, 11);
    const two = '--ttl-set 5 --ttl-dec 1';
    refuses(TTL, two, /"--ttl-set" cannot be used together with "--ttl-dec"/, col(two, '--ttl-dec'));
    refuses(TTL, '', /TTL: You must specify an action/, 1);
    refuses(HL, '', /HL: You must specify an action/, 1, { family: 6 });
  });

  it('are mangle-only and family-bound', () => {
    assert.deepEqual(TTL.allowed, { tables: ['mangle'] });
    assert.deepEqual(HL.allowed, { tables: ['mangle'] });
    assert.equal(TTL.family, 4);
    assert.equal(HL.family, 6);
  });

  const cases: [string, number, number][] = [
    ['--ttl-set 5', 64, 5],
    ['--ttl-set 0', 64, 0],
    ['--ttl-dec 1', 64, 63],
    ['--ttl-dec 1', 1, 0],
    ['--ttl-dec 1', 0, 0], // xt_HL clamps at 0
    ['--ttl-dec 10', 3, 0],
    ['--ttl-inc 1', 255, 255], // and at 255
    ['--ttl-inc 10', 250, 255],
    ['--ttl-inc 2', 64, 66],
  ];
  for (const [opt, before, after] of cases) {
    it(`TTL ${opt} on TTL ${before} gives ${after}, header checksum kept right`, () => {
      const pkt = packet({ ttl: before });
      const ctx = tctx(pkt, meta('PREROUTING'));
      assert.deepEqual(run(TTL, opt, ctx, { table: 'mangle' }), { verdict: 'continue' });
      assert.equal(ctx.pkt.data[8], after);
      assert.equal(ctx.pkt.ttl, after);
      assert.equal(ctx.rewritten, before !== after);
      assert.ok(checksumsValid(ctx.pkt));
    });
  }

  it('HL rewrites the IPv6 hop limit with the same clamping', () => {
    const ctx = tctx(packet({ family: 6, ttl: 1 }), meta('PREROUTING'));
    run(HL, '--hl-dec 5', ctx, { table: 'mangle', family: 6 });
    assert.equal(ctx.pkt.data[7], 0);
    const ctx2 = tctx(packet({ family: 6, ttl: 200 }), meta('PREROUTING'));
    run(HL, '--hl-inc 100', ctx2, { table: 'mangle', family: 6 });
    assert.equal(ctx2.pkt.data[7], 255);
    assert.ok(checksumsValid(ctx2.pkt));
  });
});
