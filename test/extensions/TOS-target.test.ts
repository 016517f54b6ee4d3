import assert from 'node:assert/strict';
import TOS from '../../src/extensions/TOS-target';
import { checksumsValid, col, meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('TOS target', () => {
  // iptables-nft 1.8.9 output
  const saves: [string, string][] = [
    ['--set-tos 0x10', '--set-tos 0x10/0xff'],
    ['--set-tos Minimize-Delay', '--set-tos 0x10/0x3f'],
    ['--set-tos Normal-Service', '--set-tos 0x00/0x3f'],
    ['--set-tos Maximize-Throughput', '--set-tos 0x08/0x3f'],
    ['--set-tos minimize-cost', '--set-tos 0x02/0x3f'],
    ['--set-tos 0x10/0x1', '--set-tos 0x10/0x01'],
    ['--set-tos 0x3/0x7', '--set-tos 0x03/0x07'],
    ['--and-tos 0x3', '--set-tos 0x00/0xfc'],
    ['--or-tos 0x3', '--set-tos 0x03/0x03'],
    ['--xor-tos 0x3', '--set-tos 0x03/0x00'],
  ];
  for (const [input, want] of saves) {
    it(`prints ${input} as ${want}`, () => {
      assert.equal(roundTrip(TOS, input, { table: 'mangle' }), want);
      assert.equal(roundTrip(TOS, input, { table: 'mangle', family: 6 }), want);
    });
  }

  it('refuses what iptables refuses', () => {
    refuses(TOS, '--set-tos 0x100', /Symbolic name "0x100" is unknown|Illegal value/, 11);
    refuses(TOS, '--set-tos -1', /Symbolic name "-1" is unknown/, 11);
    refuses(TOS, '--set-tos 0x10/0x100', /Illegal value: "0x10\/0x100"/, 11);
    refuses(TOS, '--and-tos 0x100', /TOS: bad value for option "--and-tos", or out of range \(0-255\)/, 11);
    refuses(TOS, '', /TOS: An action is required/, 1);
    const two = '--set-tos 1 --or-tos 2';
    refuses(TOS, two, /"--set-tos" cannot be used together with "--or-tos"/, col(two, '--or-tos'));
  });

  it('computes (tos & ~mask) ^ value on IPv4 and keeps the header checksum right', () => {
    const ctx = tctx(packet({ tos: 0xe3 }), meta('PREROUTING'));
    run(TOS, '--set-tos Minimize-Delay', ctx, { table: 'mangle' });
    // (0xe3 & ~0x3f) ^ 0x10 = 0xc0 ^ 0x10
    assert.equal(ctx.pkt.data[1], 0xd0);
    assert.equal(ctx.rewritten, true);
    assert.ok(checksumsValid(ctx.pkt));
  });

  it('rewrites the IPv6 traffic class', () => {
    const ctx = tctx(packet({ family: 6, tos: 0x01 }), meta('PREROUTING'));
    run(TOS, '--or-tos 0xb8', ctx, { table: 'mangle', family: 6 });
    assert.equal(ctx.pkt.tos, 0xb9);
    assert.equal(((ctx.pkt.data[0] & 0x0f) << 4) | (ctx.pkt.data[1] >> 4), 0xb9);
  });

  it('leaves an unchanged packet alone', () => {
    const ctx = tctx(packet({ tos: 0x10 }), meta('PREROUTING'));
    run(TOS, '--set-tos 0x10', ctx, { table: 'mangle' });
    assert.equal(ctx.rewritten, false);
  });
});
