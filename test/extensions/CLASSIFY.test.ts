import assert from 'node:assert/strict';
import CLASSIFY from '../../src/extensions/CLASSIFY';
import CHECKSUM from '../../src/extensions/CHECKSUM';
import { meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('CLASSIFY target', () => {
  // iptables-nft 1.8.9 output
  const saves: [string, string][] = [
    ['1:10', '0001:0010'],
    ['ffff:ffff', 'ffff:ffff'],
    ['0:0', '0000:0000'],
    ['0x10:0x20', '0010:0020'],
    ['10000:1', '0000:0001'],
    ['1:2:3', '0001:0002'],
    ['a:b', '000a:000b'],
  ];
  for (const [input, want] of saves) {
    it(`prints --set-class ${input} as ${want}`, () =>
      assert.equal(roundTrip(CLASSIFY, `--set-class ${input}`, { table: 'mangle', chain: 'POSTROUTING' }), `--set-class ${want}`));
  }
  it('refuses bad classes and says why it cannot run', () => {
    refuses(CLASSIFY, '--set-class 10', /Bad class value "10"/, 13);
    refuses(CLASSIFY, '--set-class 1:', /Bad class value "1:"/, 13);
    refuses(CLASSIFY, '', /option "--set-class" must be specified/, 1);
    assert.deepEqual(CLASSIFY.allowed, { hooks: ['POSTROUTING', 'FORWARD', 'OUTPUT'] });
    assert.match(CLASSIFY.unsupported ?? '', /priority/);
  });
});

describe('CHECKSUM target', () => {
  it('prints --checksum-fill, needs it, and is mangle-only', () => {
    assert.equal(roundTrip(CHECKSUM, '--checksum-fill', { table: 'mangle' }), '--checksum-fill');
    refuses(CHECKSUM, '', /CHECKSUM: option "--checksum-fill" must be specified/, 1);
    assert.deepEqual(CHECKSUM.allowed, { tables: ['mangle'] });
  });
  it('leaves a packet with a complete checksum as it is (the kernel fills only CHECKSUM_PARTIAL ones)', () => {
    const pkt = packet({ proto: 17, payload: [1, 2] });
    pkt.data[pkt.l4Offset + 6] ^= 0xff; // a wrong checksum stays wrong, as in the kernel
    const before = Uint8Array.from(pkt.data);
    const ctx = tctx(pkt, meta('POSTROUTING'));
    assert.deepEqual(run(CHECKSUM, '--checksum-fill', ctx, { table: 'mangle' }), { verdict: 'continue' });
    assert.deepEqual(ctx.pkt.data, before);
    assert.equal(ctx.rewritten, false);
  });
});
