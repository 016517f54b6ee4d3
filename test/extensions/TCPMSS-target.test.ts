import assert from 'node:assert/strict';
import TCPMSS from '../../src/extensions/TCPMSS-target';
import { checksumsValid, col, meta, packet, parse, refuses, roundTrip, run, tctx } from './t-fixture';

const TCP = { table: 'mangle' as const, chain: 'FORWARD', proto: 6 };

describe('TCPMSS target', () => {
  it('prints as iptables-save does; the later of the two forms wins', () => {
    assert.equal(roundTrip(TCPMSS, '--set-mss 1400', TCP), '--set-mss 1400');
    assert.equal(roundTrip(TCPMSS, '--set-mss 0', TCP), '--set-mss 0');
    assert.equal(roundTrip(TCPMSS, '--clamp-mss-to-pmtu', TCP), '--clamp-mss-to-pmtu');
    assert.equal(roundTrip(TCPMSS, '--clamp-mss-to-pmtu --set-mss 5', TCP), '--set-mss 5');
    assert.equal(roundTrip(TCPMSS, '--set-mss 1000 --clamp-mss-to-pmtu', TCP), '--clamp-mss-to-pmtu');
    assert.equal(roundTrip(TCPMSS, '--set-mss 65495', { ...TCP, family: 6 }), '--set-mss 65495');
  });

  it('refuses what iptables and the kernel refuse', () => {
    refuses(TCPMSS, '--set-mss 65516', /out of range \(0-65515\)/, 11, TCP);
    refuses(TCPMSS, '--set-mss 65496', /out of range \(0-65495\)/, 11, { ...TCP, family: 6 });
    refuses(TCPMSS, '', /At least one parameter is required/, 1, TCP);
    refuses(TCPMSS, '--set-mss 1400', /only valid with -p tcp/, 1, { table: 'mangle', chain: 'FORWARD' });
    refuses(TCPMSS, '--set-mss 1400', /only valid with -p tcp/, 1, { ...TCP, protoNegated: true });
    const pre = '--clamp-mss-to-pmtu';
    refuses(TCPMSS, pre, /only supported in FORWARD, OUTPUT and POSTROUTING/, col(pre, '--clamp'), { ...TCP, chain: 'PREROUTING' });
  });

  it('says where clamping is allowed and that it cannot run; --set-mss runs anywhere', () => {
    const clamp = parse(TCPMSS, '--clamp-mss-to-pmtu', TCP);
    assert.deepEqual(TCPMSS.allowedFor?.(clamp), { hooks: ['FORWARD', 'OUTPUT', 'POSTROUTING'] });
    assert.match(TCPMSS.unsupportedFor?.(clamp) ?? '', /route MTU/);
    const set = parse(TCPMSS, '--set-mss 1400', { ...TCP, chain: 'PREROUTING' });
    assert.equal(TCPMSS.allowedFor?.(set), undefined);
    assert.equal(TCPMSS.unsupportedFor?.(set), undefined);
    assert.equal(TCPMSS.allowed, undefined);
  });

  it('lowers an MSS option above the value and fixes the TCP checksum', () => {
    const pkt = packet({ tcpOptions: [2, 4, 0x05, 0xb4] }); // MSS 1460
    const ctx = tctx(pkt, meta('FORWARD'));
    assert.deepEqual(run(TCPMSS, '--set-mss 1400', ctx, TCP), { verdict: 'continue' });
    const o = ctx.pkt.l4Offset + 20;
    assert.equal((ctx.pkt.data[o + 2] << 8) | ctx.pkt.data[o + 3], 1400);
    assert.equal(ctx.rewritten, true);
    assert.ok(checksumsValid(ctx.pkt));
  });

  it('never raises an MSS', () => {
    const ctx = tctx(packet({ tcpOptions: [2, 4, 0x02, 0x00] }), meta('FORWARD')); // 512
    run(TCPMSS, '--set-mss 1400', ctx, TCP);
    assert.equal(ctx.rewritten, false);
  });
});
