// NAT bindings: DNAT/SNAT/MASQUERADE/NETMAP rewrites in both directions, unique tuples, ICMP errors about NATed
// connections. Every rewritten packet's checksums are recomputed from scratch.
import { addon } from '../../src/native';
import { ACK, addr, assert, assertChecksums, craft, echo, forward, FWD, icmpError, OUT, POST, PRE, seen, SYN, SYNACK, tcp, trip, udp } from './helpers';

const CLIENT = '198.18.0.1';
const CLIENT2 = '198.18.0.5';
const VIP = '198.18.1.100';
const BACKEND = '198.18.2.10';
const GW = '198.18.2.1';
const SRC_NAT = 16;
const DST_NAT = 32;
const SRC_NAT_DONE = 128;
const DST_NAT_DONE = 256;

function table() {
  const t = new addon.ConnTable({ maxEntries: 4096, manualClock: true, seed: 11 });
  t.setNow(5_000_000);
  return t;
}

describe('conntrack NAT: DNAT and SNAT', () => {
  it('rewrites a DNAT+SNAT connection in both directions with correct checksums', () => {
    const t = table();
    const dnat = { manip: 'DST' as const, minAddr: BACKEND, minPort: 8080 };
    const snat = { manip: 'SRC' as const, minAddr: GW, masqIfindex: 3 };
    const f = forward(t, tcp(CLIENT, 40000, VIP, 80, SYN), dnat, snat);
    assert.deepEqual(f.states, ['NEW', 'NEW', 'NEW']);
    assert.deepEqual(seen(f.out), { src: GW, dst: BACKEND, sport: 40000, dport: 8080, proto: 6 });
    assertChecksums(f.out, 'SYN after DNAT+SNAT');

    const [e] = t.list();
    assert.deepEqual(t.entry(f.pre), e, 'entry() of the classification is the listed entry');
    assert.equal(e.status & (SRC_NAT | DST_NAT | SRC_NAT_DONE | DST_NAT_DONE), SRC_NAT | DST_NAT | SRC_NAT_DONE | DST_NAT_DONE);
    assert.deepEqual([e.reply.src, e.reply.sport, e.reply.dst, e.reply.dport], [BACKEND, 8080, GW, 40000]);

    // The reply is de-SNATed at PREROUTING and de-DNATed at POSTROUTING.
    const r = forward(t, tcp(BACKEND, 8080, GW, 40000, SYNACK));
    assert.deepEqual(r.states, ['ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED']);
    assert.deepEqual(seen(r.out), { src: VIP, dst: CLIENT, sport: 80, dport: 40000, proto: 6 });
    assertChecksums(r.out, 'SYN-ACK after reverse NAT');

    // Later packets follow the binding without any rule: the engine passes no NAT request.
    const a = forward(t, tcp(CLIENT, 40000, VIP, 80, ACK, 1001, new Uint8Array([1, 2, 3, 4, 5])));
    assert.deepEqual(a.states, ['ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED']);
    assert.deepEqual(seen(a.out), { src: GW, dst: BACKEND, sport: 40000, dport: 8080, proto: 6 });
    assertChecksums(a.out, 'ACK with payload');
    assert.ok(t.list()[0].status & 4, 'ASSURED');
  });

  it('FORWARD sees the DNATed packet and finds its connection', () => {
    const t = table();
    const p = udp(CLIENT, 5353, VIP, 53);
    const a = trip(t, p, { hook: PRE, nat: [{ manip: 'DST', minAddr: BACKEND }] });
    assert.equal(seen(a.out).dst, BACKEND);
    const b = t.classify(a.out, 4, FWD, { ctPoint: false });
    assert.equal(b.state, 'NEW');
    assert.equal(b.handle, a.c.handle);
    assert.equal(b.direction, 'ORIGINAL');
  });

  it('a connection no NAT rule matched gets null bindings and is never rewritten', () => {
    const t = table();
    const f = forward(t, udp(CLIENT, 5000, BACKEND, 53));
    assert.deepEqual(seen(f.out), { src: CLIENT, dst: BACKEND, sport: 5000, dport: 53, proto: 17 });
    const [e] = t.list();
    assert.equal(e.status & (SRC_NAT | DST_NAT), 0);
    assert.equal(e.status & (SRC_NAT_DONE | DST_NAT_DONE), SRC_NAT_DONE | DST_NAT_DONE);
    // A rule that would match now does not bind an existing connection (NAT only on the first packet).
    const again = forward(t, udp(CLIENT, 5000, BACKEND, 53), { manip: 'DST', minAddr: VIP });
    assert.equal(seen(again.out).dst, BACKEND);
  });

  it('DNAT with a port range and /baseport maps with the offset', () => {
    const t = table();
    const f = forward(t, tcp(CLIENT, 40010, VIP, 85, SYN), { manip: 'DST', minAddr: BACKEND, minPort: 8000, maxPort: 8010, basePort: 80 });
    assert.equal(seen(f.out).dport, 8005);
    assertChecksums(f.out);
  });

  it('DNAT to an address range picks by hash, the same for the same client (--persistent)', () => {
    const t = table();
    const range = { manip: 'DST' as const, minAddr: '198.18.2.10', maxAddr: '198.18.2.19', persistent: true };
    const picks = new Set<string>();
    for (let port = 41000; port < 41020; port++) {
      const f = forward(t, tcp(CLIENT, port, VIP, 80, SYN), range);
      const d = seen(f.out).dst;
      const last = Number(d.split('.')[3]);
      assert.ok(last >= 10 && last <= 19, `${d} in range`);
      picks.add(d);
      assertChecksums(f.out);
    }
    assert.equal(picks.size, 1, 'persistent: one address per client');
    const other = new Set<string>();
    for (let i = 1; i < 60; i++) other.add(seen(forward(t, tcp(`198.18.3.${i}`, 1234, VIP, 80, SYN), range).out).dst);
    assert.ok(other.size > 3, `clients spread over the range (${other.size} addresses)`);
  });

  it('keeps the source port when unique and picks another one when two clients collide', () => {
    const t = table();
    const masq = { manip: 'SRC' as const, minAddr: GW, masqIfindex: 4 };
    const a = forward(t, udp(CLIENT, 40000, BACKEND, 53), undefined, masq);
    const b = forward(t, udp(CLIENT2, 40000, BACKEND, 53), undefined, masq);
    const sa = seen(a.out);
    const sb = seen(b.out);
    assert.equal(sa.src, GW);
    assert.equal(sa.sport, 40000, 'the first keeps its port');
    assert.equal(sb.src, GW);
    assert.notEqual(sb.sport, 40000, 'the second gets another');
    assert.ok(sb.sport >= 1024, 'ports >= 1024 stay >= 1024');
    assertChecksums(a.out);
    assertChecksums(b.out);
    // Replies reach the right client.
    const ra = forward(t, udp(BACKEND, 53, GW, sa.sport));
    const rb = forward(t, udp(BACKEND, 53, GW, sb.sport));
    assert.deepEqual([seen(ra.out).dst, seen(ra.out).dport], [CLIENT, 40000]);
    assert.deepEqual([seen(rb.out).dst, seen(rb.out).dport], [CLIENT2, 40000]);
    assertChecksums(ra.out);
    assertChecksums(rb.out);
  });

  it('a privileged source port is remapped within 512-1023 / 1-511 as the kernel does', () => {
    const t = table();
    const masq = { manip: 'SRC' as const, minAddr: GW };
    forward(t, udp(CLIENT, 700, BACKEND, 53), undefined, masq);
    const b = forward(t, udp(CLIENT2, 700, BACKEND, 53), undefined, masq);
    const p = seen(b.out).sport;
    assert.ok(p >= 600 && p <= 1023 && p !== 700, `${p}`);
    forward(t, udp(CLIENT, 100, BACKEND, 53), undefined, masq);
    const c = forward(t, udp(CLIENT2, 100, BACKEND, 53), undefined, masq);
    const q = seen(c.out).sport;
    assert.ok(q >= 1 && q <= 511 && q !== 100, `${q}`);
  });

  it('SNAT to a port range uses it, and fails (drop) when every port is taken', () => {
    const t = table();
    const snat = { manip: 'SRC' as const, minAddr: GW, minPort: 1000, maxPort: 1001 };
    const ports = [];
    for (const c of ['198.18.0.11', '198.18.0.12']) {
      const f = forward(t, tcp(c, 5555, BACKEND, 80, SYN), undefined, snat);
      assert.equal(f.ok, true);
      ports.push(seen(f.out).sport);
    }
    assert.deepEqual(ports.sort(), [1000, 1001]);
    const third = forward(t, tcp('198.18.0.13', 5555, BACKEND, 80, SYN), undefined, snat);
    assert.equal(third.ok, false, 'no unique tuple: the packet is dropped');
    assert.equal(t.entry(third.pre), undefined, 'and its entry is gone');
    assert.equal(t.stats().natFailed, 1);
    assert.equal(t.stats().entries, 2);
  });

  it('a client keeps its SNAT mapping across destinations (find_appropriate_src)', () => {
    const t = table();
    const snat = { manip: 'SRC' as const, minAddr: GW, minPort: 20000, maxPort: 29999 };
    const a = forward(t, udp(CLIENT, 40000, BACKEND, 53), undefined, snat);
    const b = forward(t, udp(CLIENT, 40000, '198.18.2.11', 53), undefined, snat);
    const c = forward(t, udp(CLIENT2, 40000, '198.18.2.12', 53), undefined, snat);
    const pa = seen(a.out).sport;
    assert.ok(pa >= 20000 && pa <= 29999);
    assert.equal(seen(b.out).sport, pa, 'same source, same mapping');
    assert.notEqual(seen(c.out).sport, pa, 'another source gets its own');
    // The same mapping to the same destination would clash: then a fresh port is chosen.
    const d = forward(t, udp(CLIENT, 40000, BACKEND, 54), undefined, snat);
    assert.equal(seen(d.out).sport, pa, 'a different destination port does not clash');
  });

  it('bind() installs the OUTPUT DNAT before filter OUTPUT sees the packet; commit() does not bind twice', () => {
    const t = table();
    const p = tcp('198.18.0.9', 33001, VIP, 80, SYN);
    const c = t.classify(p, 4, OUT);
    assert.equal(t.bind(c, { natRan: ['DST'], nat: [{ manip: 'DST', minAddr: BACKEND }] }), true);
    const mid = t.translate(c, p, 4, OUT);
    assert.ok(mid, 'rewritten in the same trip');
    assert.equal(seen(mid).dst, BACKEND);
    assert.equal(t.commit(c, { accept: true, natRan: ['DST'], nat: [{ manip: 'DST', minAddr: '198.18.2.99' }] }), true);
    trip(t, mid, { hook: POST });
    const [e] = t.list();
    assert.equal(e.reply.src, BACKEND, 'the first binding stands');
  });

  it('--random-fully chooses the port at random even when the original is free', () => {
    const t = table();
    const f = forward(t, udp(CLIENT, 40000, BACKEND, 53), undefined, { manip: 'SRC', minAddr: GW, randomFully: true });
    assert.notEqual(seen(f.out).sport, 40000);
    assertChecksums(f.out);
  });

  it('NETMAP maps the host part into the new prefix', () => {
    const t = table();
    const f = forward(t, udp('198.18.0.77', 1000, BACKEND, 53), undefined, { manip: 'SRC', minAddr: '198.19.5.0', maxAddr: '198.19.5.255', netmap: true });
    assert.equal(seen(f.out).src, '198.19.5.77');
    assertChecksums(f.out);
  });

  it('OUTPUT DNAT (REDIRECT to loopback) for a local connection, and its reply', () => {
    const t = table();
    const a = trip(t, tcp('198.18.0.9', 33000, VIP, 80, SYN), { hook: OUT, nat: [{ manip: 'DST', minAddr: '127.0.0.1', minPort: 8080 }] });
    assert.deepEqual([seen(a.out).dst, seen(a.out).dport], ['127.0.0.1', 8080]);
    trip(t, a.out, { hook: POST });
    const r = trip(t, tcp('127.0.0.1', 8080, '198.18.0.9', 33000, SYNACK), { hook: OUT });
    const r2 = trip(t, r.out, { hook: POST });
    assert.equal(r.c.direction, 'REPLY');
    assert.deepEqual([seen(r2.out).src, seen(r2.out).sport], [VIP, 80]);
    assertChecksums(r2.out);
  });

  it('IPv6 DNAT+SNAT with TCP checksums', () => {
    const t = table();
    const f = forward(t, tcp('2001:db8::1', 40000, '2001:db8:1::100', 443, SYN), { manip: 'DST', minAddr: '2001:db8:2::10', minPort: 8443 }, { manip: 'SRC', minAddr: '2001:db8:2::1' });
    assert.deepEqual(seen(f.out), { src: '2001:db8:2::1', dst: '2001:db8:2::10', sport: 40000, dport: 8443, proto: 6 });
    assertChecksums(f.out);
    const r = forward(t, tcp('2001:db8:2::10', 8443, '2001:db8:2::1', 40000, SYNACK));
    assert.deepEqual(seen(r.out), { src: '2001:db8:1::100', dst: '2001:db8::1', sport: 443, dport: 40000, proto: 6 });
    assertChecksums(r.out);
  });

  it('SCTP SNAT recomputes the CRC32c', () => {
    const t = table();
    const init = new Uint8Array(20);
    init[0] = 1; // INIT chunk
    init[3] = 20;
    const p = craft({ family: 4, src: addr(CLIENT), dst: addr(BACKEND), proto: 132, sport: 2905, dport: 2905, payload: init });
    const f = forward(t, p, undefined, { manip: 'SRC', minAddr: GW, minPort: 3000 });
    assert.deepEqual([seen(f.out).src, seen(f.out).sport], [GW, 3000]);
    assertChecksums(f.out, 'SCTP');
  });

  it('UDP over IPv4 without a checksum keeps none', () => {
    const t = table();
    const p = craft({ family: 4, src: addr(CLIENT), dst: addr(VIP), proto: 17, sport: 1, dport: 2, udpNoChecksum: true, payload: new Uint8Array(3) });
    const f = forward(t, p, { manip: 'DST', minAddr: BACKEND, minPort: 99 });
    assert.equal((f.out[26] << 8) | f.out[27], 0);
    assert.equal(seen(f.out).dport, 99);
  });
});

describe('conntrack NAT: ICMP', () => {
  it('SNATs ICMP echo identifiers uniquely and translates the replies back', () => {
    const t = table();
    const masq = { manip: 'SRC' as const, minAddr: GW };
    const a = forward(t, echo(CLIENT, BACKEND, 0x77, 1), undefined, masq);
    const b = forward(t, echo(CLIENT2, BACKEND, 0x77, 1), undefined, masq);
    assert.equal(seen(a.out).sport, 0x77);
    assert.notEqual(seen(b.out).sport, 0x77);
    assertChecksums(a.out);
    assertChecksums(b.out);
    const rb = forward(t, echo(BACKEND, GW, seen(b.out).sport, 1, true));
    assert.deepEqual([seen(rb.out).dst, seen(rb.out).sport], [CLIENT2, 0x77]);
    assertChecksums(rb.out);
  });

  it('translates the quoted header of an ICMP error about a NATed connection', () => {
    const t = table();
    const dnat = { manip: 'DST' as const, minAddr: BACKEND, minPort: 8053 };
    const snat = { manip: 'SRC' as const, minAddr: GW };
    const f = forward(t, udp(CLIENT, 40000, VIP, 53), dnat, snat);
    // The backend's port is closed: its error quotes the translated datagram and goes to the SNAT address.
    const err = icmpError(BACKEND, GW, f.out);
    const r = forward(t, err);
    assert.deepEqual(r.states, ['RELATED', 'RELATED', 'RELATED']);
    assert.equal(r.pre.direction, 'REPLY');
    const outer = seen(r.out);
    assert.deepEqual([outer.src, outer.dst], [VIP, CLIENT]);
    const inner = seen(r.out.subarray(28));
    assert.deepEqual(inner, { src: CLIENT, dst: VIP, sport: 40000, dport: 53, proto: 17 });
    assertChecksums(r.out, 'ICMP error');
  });

  it('an ICMPv6 error about a NATed connection', () => {
    const t = table();
    const f = forward(t, udp('2001:db8::1', 40000, '2001:db8:1::100', 53), { manip: 'DST', minAddr: '2001:db8:2::10' }, { manip: 'SRC', minAddr: '2001:db8:2::1' });
    const err = icmpError('2001:db8:2::10', '2001:db8:2::1', f.out);
    const r = forward(t, err);
    assert.equal(r.pre.state, 'RELATED');
    const outer = seen(r.out);
    assert.deepEqual([outer.src, outer.dst], ['2001:db8:1::100', '2001:db8::1']);
    const inner = seen(r.out.subarray(48));
    assert.deepEqual(inner, { src: '2001:db8::1', dst: '2001:db8:1::100', sport: 40000, dport: 53, proto: 17 });
    assertChecksums(r.out, 'ICMPv6 error');
  });
});

describe('conntrack NAT: MASQUERADE bindings go with their interface', () => {
  it('flushInterface and flushAddress forget only the matching bindings', () => {
    const t = table();
    forward(t, udp(CLIENT, 1, BACKEND, 53), undefined, { manip: 'SRC', minAddr: GW, masqIfindex: 7 });
    forward(t, udp(CLIENT, 2, BACKEND, 53), undefined, { manip: 'SRC', minAddr: '198.18.2.2', masqIfindex: 8 });
    forward(t, udp(CLIENT, 3, BACKEND, 53));
    assert.equal(t.flushInterface(9), 0);
    assert.equal(t.flushInterface(7), 1);
    assert.equal(t.list().length, 2);
    assert.equal(t.flushAddress('198.18.2.1'), 0);
    assert.equal(t.flushAddress('198.18.2.2'), 1);
    assert.equal(t.list().length, 1);
    assert.equal(t.list()[0].masqIfindex, 0);
  });
});
