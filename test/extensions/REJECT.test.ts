import assert from 'node:assert/strict';
import REJECT from '../../src/extensions/REJECT';
import { meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('REJECT target', () => {
  it('always prints the type, defaulting per family (libipt_REJECT.t, libip6t_REJECT.t)', () => {
    assert.equal(roundTrip(REJECT, ''), '--reject-with icmp-port-unreachable');
    assert.equal(roundTrip(REJECT, '', { family: 6 }), '--reject-with icmp6-port-unreachable');
  });

  // iptables-nft 1.8.9: each alias prints as its canonical name.
  const v4: [string, string][] = [
    ['net-unreach', 'icmp-net-unreachable'],
    ['host-unreach', 'icmp-host-unreachable'],
    ['port-unreach', 'icmp-port-unreachable'],
    ['proto-unreach', 'icmp-proto-unreachable'],
    ['net-prohib', 'icmp-net-prohibited'],
    ['host-prohib', 'icmp-host-prohibited'],
    ['admin-prohib', 'icmp-admin-prohibited'],
    ['icmp-host-prohibited', 'icmp-host-prohibited'],
    ['icmp-admin-prohibited', 'icmp-admin-prohibited'],
  ];
  for (const [word, want] of v4) {
    it(`IPv4 --reject-with ${word} prints ${want}`, () =>
      assert.equal(roundTrip(REJECT, `--reject-with ${word}`), `--reject-with ${want}`));
  }
  const v6: [string, string][] = [
    ['no-route', 'icmp6-no-route'],
    ['adm-prohibited', 'icmp6-adm-prohibited'],
    ['addr-unreach', 'icmp6-addr-unreachable'],
    ['port-unreach', 'icmp6-port-unreachable'],
    ['policy-fail', 'icmp6-policy-fail'],
    ['reject-route', 'icmp6-reject-route'],
    ['icmp6-adm-prohibited', 'icmp6-adm-prohibited'],
  ];
  for (const [word, want] of v6) {
    it(`IPv6 --reject-with ${word} prints ${want}`, () =>
      assert.equal(roundTrip(REJECT, `--reject-with ${word}`, { family: 6 }), `--reject-with ${want}`));
  }

  it('takes tcp-reset (and tcp-rst) only on -p tcp rules', () => {
    assert.equal(roundTrip(REJECT, '--reject-with tcp-reset', { proto: 6 }), '--reject-with tcp-reset');
    assert.equal(roundTrip(REJECT, '--reject-with tcp-rst', { proto: 6, family: 6 }), '--reject-with tcp-reset');
    refuses(REJECT, '--reject-with tcp-reset', /only valid with -p tcp/, 1);
    refuses(REJECT, '--reject-with tcp-reset', /only valid with -p tcp/, 1, { proto: 6, protoNegated: true });
    refuses(REJECT, '--reject-with tcp-reset', /only valid with -p tcp/, 1, { proto: 17 });
  });

  it('refuses unknown and wrong-family types at the type word', () => {
    refuses(REJECT, '--reject-with foo', /unknown reject type "foo"/, 15);
    refuses(REJECT, '--reject-with icmp6-no-route', /unknown reject type/, 15);
    refuses(REJECT, '--reject-with icmp-port-unreachable', /unknown reject type/, 15, { family: 6 });
  });

  it('is allowed only in filter INPUT/FORWARD/OUTPUT', () => {
    assert.deepEqual(REJECT.allowed, { tables: ['filter'], hooks: ['INPUT', 'FORWARD', 'OUTPUT'] });
    assert.equal(REJECT.terminal, true);
  });

  it('answers a UDP packet with an ICMP port unreachable to its source', () => {
    const pkt = packet({ proto: 17, src: '198.18.0.1', dst: '198.18.0.2', dport: 53, payload: [1, 2, 3, 4] });
    const ctx = tctx(pkt, meta('INPUT'));
    assert.deepEqual(run(REJECT, '', ctx), { verdict: 'reject' });
    assert.equal(ctx.replies.length, 1);
    const r = ctx.replies[0];
    assert.equal(r[9], 1); // ICMP
    assert.deepEqual([...r.subarray(16, 20)], [198, 18, 0, 1]);
    assert.equal(r[20], 3); // destination unreachable
    assert.equal(r[21], 3); // port unreachable
  });

  it('answers a TCP SYN with a RST when asked', () => {
    const pkt = packet({ proto: 6, flags: 0x02, sport: 40000, dport: 22 });
    const ctx = tctx(pkt, meta('INPUT'));
    assert.deepEqual(run(REJECT, '--reject-with tcp-reset', ctx, { proto: 6 }), { verdict: 'reject' });
    assert.equal(ctx.replies.length, 1);
    const r = ctx.replies[0];
    assert.equal(r[9], 6);
    assert.equal((r[20] << 8) | r[21], 22); // source port of the reset = the SYN's destination port
    assert.equal((r[22] << 8) | r[23], 40000);
    assert.ok(r[33] & 0x04, 'RST flag');
  });

  it('sends an ICMPv6 error for IPv6', () => {
    const pkt = packet({ family: 6, proto: 17, payload: [0, 0] });
    const ctx = tctx(pkt, meta('INPUT'));
    run(REJECT, '--reject-with icmp6-adm-prohibited', ctx, { family: 6 });
    assert.equal(ctx.replies.length, 1);
    const r = ctx.replies[0];
    assert.equal(r[6], 58);
    assert.equal(r[40], 1);
    assert.equal(r[41], 1);
  });

  it('sends nothing for ICMP the kernel itself sends from OUTPUT (its ICMP send lock is held), but answers a local ping', () => {
    // The fixture writes a UDP-shaped header: its first two bytes (the source port) are the ICMP type and code.
    const icmp = (type: number) => packet({ proto: 1, src: '198.18.0.1', dst: '198.18.0.2', sport: type << 8, dport: 1 });
    const kernel = tctx(icmp(0), meta('OUTPUT'));
    assert.deepEqual(run(REJECT, '', kernel), { verdict: 'reject' });
    assert.equal(kernel.replies.length, 0, 'no socket owner: the kernel\'s own echo reply');
    const ping = tctx(icmp(8), { ...meta('OUTPUT'), uid: 0, gid: 0 });
    run(REJECT, '', ping);
    assert.equal(ping.replies.length, 1, 'a process\'s ping is answered');
  });

  it('still drops when the kernel would send nothing (RST answering a RST)', () => {
    const ctx = tctx(packet({ proto: 6, flags: 0x04 }), meta('INPUT'));
    assert.deepEqual(run(REJECT, '--reject-with tcp-reset', ctx, { proto: 6 }), { verdict: 'reject' });
    assert.equal(ctx.replies.length, 0);
  });
});
