// Packets that keep a connection the table no longer lets anyone else find, as an skb keeps its nf_conn: the RST that
// killed a connection (nf_ct_kill_acct) is still translated at its later hooks, and the replies REJECT sends belong to
// the rejected packet's connection (nf_ct_attach) even though that connection dies with the rejected first packet.
import type { CtNatRequest } from '../../native/index';
import { addon } from '../../src/native';
import { ACK, assert, assertChecksums, forward, FWD, icmpError, IN, OUT, POST, PRE, RST, seen, SYN, tcp, trip, udp } from './helpers';

const C = '198.18.0.2'; // client
const F = '198.18.0.1'; // the firewall
const S = '198.19.0.2'; // server behind the DNAT
const V = '198.19.0.9'; // the address the client asks for
const SEEN_REPLY = 2;
const CONFIRMED = 8;
const SRC_NAT_DONE = 128;
const DST_NAT_DONE = 256;
const T0 = 1_000_000;

const DNAT: CtNatRequest = { manip: 'DST', minAddr: S, maxAddr: S, minPort: 80, maxPort: 80 };
const REDIRECT: CtNatRequest = { manip: 'DST', minAddr: F, maxAddr: F, minPort: 1081, maxPort: 1081 };

function table() {
  const t = new addon.ConnTable({ maxEntries: 1024, manualClock: true, seed: 11 });
  t.setNow(T0);
  return t;
}

type Table = ReturnType<typeof table>;

/** A forwarded first packet DNATed at PREROUTING and dropped (REJECT) at FORWARD, its reply sent before the verdict. */
function rejectAtForward(t: Table, p: Uint8Array, replied: boolean) {
  const pre = trip(t, p, { hook: PRE, nat: [DNAT] });
  const fwd = t.classify(pre.out, 4, FWD, { ctPoint: false });
  assert.equal(fwd.state, 'NEW');
  return { pre, drop: () => t.finish(fwd, { accept: false, replied }, pre.out, 4, FWD) };
}

describe('conntrack table: an RST answering a SYN', () => {
  it('kills the connection at once but is translated back at its later hooks (DNAT, forwarded)', () => {
    const t = table();
    const syn = tcp(C, 40001, V, 8080, SYN);
    const f = forward(t, syn, DNAT);
    assert.deepEqual([seen(f.out).dst, seen(f.out).dport], [S, 80]);

    const a = trip(t, tcp(S, 80, C, 40001, RST | ACK, 0), { hook: PRE });
    assert.equal(a.c.state, 'ESTABLISHED');
    assert.equal(a.c.direction, 'REPLY');
    assert.equal(t.list().length, 0, 'out of the table for every other packet');
    const b = trip(t, a.out, { hook: FWD });
    assert.equal(b.c.state, 'ESTABLISHED', 'FORWARD sees the state the RST had at PREROUTING');
    const c = trip(t, b.out, { hook: POST });
    assert.equal(c.c.handle, a.c.handle);
    const out = seen(c.out);
    assert.deepEqual([out.src, out.sport, out.dst, out.dport], [V, 8080, C, 40001], 'leaves from where the client sent the SYN');
    assertChecksums(c.out, 'RST');
    assert.equal(t.stats().entries, 0, 'gone after the RST\'s last hook');

    const again = trip(t, syn, { hook: PRE, nat: [DNAT] });
    assert.equal(again.c.state, 'NEW');
    assert.equal(again.c.created, true);
    assert.equal(again.c.status & DST_NAT_DONE, 0, 'the next SYN is a first packet, for the nat chains too');
  });

  it('from the firewall itself: a RST from a REDIRECTed port leaves from the port the client asked for', () => {
    const t = table();
    const pre = trip(t, tcp(C, 40002, F, 80, SYN), { hook: PRE, nat: [REDIRECT] });
    assert.equal(seen(pre.out).dport, 1081);
    trip(t, pre.out, { hook: IN });
    const o = trip(t, tcp(F, 1081, C, 40002, RST | ACK, 0), { hook: OUT });
    assert.equal(o.c.state, 'ESTABLISHED');
    const p = trip(t, o.out, { hook: POST });
    assert.deepEqual([seen(p.out).src, seen(p.out).sport], [F, 80]);
    assertChecksums(p.out, 'RST');
    assert.equal(t.stats().entries, 0);
  });

  it('keeps its connection even when a new SYN of the same tuple came first; lets go after 2 s if it never returns', () => {
    const t = table();
    const syn = tcp(C, 40003, V, 8080, SYN);
    forward(t, syn, DNAT);
    const a = trip(t, tcp(S, 80, C, 40003, RST | ACK, 0), { hook: PRE });
    // The client retries before the RST reached POSTROUTING: a new connection with the same tuple.
    const retry = forward(t, tcp(C, 40003, V, 8080, SYN, 2000), DNAT);
    assert.equal(retry.pre.created, true);
    assert.notEqual(retry.pre.handle, a.c.handle);
    const c = trip(t, a.out, { hook: POST });
    assert.equal(c.c.handle, a.c.handle, 'the RST belongs to the connection it killed');
    assert.equal(seen(c.out).src, V);
    assert.equal(t.list().length, 1, 'the new connection stays');

    // An RST whose later hooks never come: its connection goes with the hold.
    const t2 = table();
    forward(t2, syn, DNAT);
    trip(t2, tcp(S, 80, C, 40003, RST | ACK, 0), { hook: PRE });
    assert.equal(t2.stats().entries, 1);
    t2.setNow(T0 + 1900);
    t2.sweep();
    assert.equal(t2.stats().entries, 1, 'held while its packet may still come back');
    t2.setNow(T0 + 2100);
    t2.sweep();
    assert.equal(t2.stats().entries, 0);
  });
});

describe('conntrack table: REJECT replies and the rejected first packet', () => {
  for (const order of ['reply classified after the drop', 'reply classified before the drop'] as const) {
    it(`an ICMP error is RELATED to the rejected connection, which dies with it (${order})`, () => {
      const t = table();
      const first = udp(C, 5000, V, 53);
      const r = rejectAtForward(t, first, true);
      const err = icmpError(F, C, r.pre.out);
      let o;
      if (order === 'reply classified after the drop') {
        r.drop();
        assert.equal(t.list().length, 0, 'gone for everything but its reply');
        o = trip(t, err, { hook: OUT });
      } else {
        const c = t.classify(err, 4, OUT);
        r.drop();
        o = { c, out: t.finish(c, { accept: true }, err, 4, OUT).packet ?? err };
      }
      assert.equal(o.c.state, 'RELATED');
      assert.equal(o.c.direction, 'REPLY');
      const p = trip(t, o.out, { hook: POST });
      assert.equal(p.c.state, 'RELATED');
      assert.equal(p.c.handle, o.c.handle);
      // nf_nat_icmp_reply_translation: the quote shows the packet as the client sent it.
      const quoted = seen(p.out.subarray(28));
      assert.deepEqual([quoted.dst, quoted.dport], [V, 53]);
      assertChecksums(p.out, 'ICMP error');
      assert.equal(t.stats().entries, 0, 'the reply\'s last hook confirms nothing: the connection is gone');

      const again = trip(t, first, { hook: PRE, nat: [DNAT] });
      assert.equal(again.c.created, true, 'the next packet of the flow is a first packet again');
      assert.equal(again.c.status & DST_NAT_DONE, 0);
      assert.equal(seen(again.out).dst, S);
    });
  }

  it('without a reply, a rejected (dropped) first packet leaves nothing a later error could relate to', () => {
    const t = table();
    const r = rejectAtForward(t, udp(C, 5001, V, 53), false);
    r.drop();
    assert.equal(t.stats().entries, 0);
    assert.equal(trip(t, icmpError(F, C, r.pre.out), { hook: OUT }).c.state, 'INVALID');
  });

  it('a tcp-reset is RELATED_REPLY: no state change, nat SRC still unbound, translated back, and the connection dies', () => {
    const t = table();
    const syn = tcp(C, 40004, V, 8080, SYN);
    const r = rejectAtForward(t, syn, true);
    // What REJECT --reject-with tcp-reset sends for the SYN as FORWARD saw it (DNATed).
    const o = trip(t, tcp(S, 80, C, 40004, RST | ACK, 0), { hook: OUT });
    assert.equal(o.c.state, 'RELATED');
    assert.equal(o.c.direction, 'REPLY');
    assert.equal(o.c.status & DST_NAT_DONE, DST_NAT_DONE, 'nat OUTPUT is not walked for it (DST bound at PREROUTING)');
    const [e] = t.list();
    assert.equal(e.tcpState, 'SYN_SENT', 'nf_conntrack_in leaves an attached packet alone');
    assert.equal(e.status & (SEEN_REPLY | CONFIRMED), 0);
    r.drop();
    assert.equal(t.list().length, 0);

    const p = trip(t, o.out, { hook: POST, natRan: ['SRC'] });
    assert.equal(p.c.state, 'RELATED');
    assert.equal(p.c.status & SRC_NAT_DONE, 0, 'nat POSTROUTING is walked for it (nf_nat_inet_fn, non-ICMP RELATED)');
    const out = seen(p.out);
    assert.deepEqual([out.src, out.sport, out.dst, out.dport], [V, 8080, C, 40004]);
    assertChecksums(p.out, 'RST');
    assert.equal(t.stats().entries, 0);
    assert.equal(trip(t, syn, { hook: PRE, nat: [DNAT] }).c.created, true);
  });

  it('a second copy of a first packet in flight has its own connection, which lives on when the first is rejected', () => {
    const t = table();
    const first = udp(C, 5002, V, 53);
    const r = rejectAtForward(t, first, true);
    const dup = t.classify(first, 4, PRE);
    assert.equal(dup.created, true, 'each packet gets its own unconfirmed entry, as each skb gets its own nf_conn');
    assert.notEqual(dup.handle, r.pre.c.handle);
    r.drop();
    // It ran the nat chains itself: its own DNAT binding.
    const d = t.finish(dup, { accept: true, natRan: ['DST'], nat: [DNAT] }, first, 4, PRE);
    const out = d.packet ?? first;
    assert.equal(seen(out).dst, S);
    assert.equal(trip(t, out, { hook: FWD }).c.handle, dup.handle, 'its later hooks find its own entry');
    assert.equal(trip(t, out, { hook: POST }).ok, true);
    const [e] = t.list();
    assert.ok(e.status & CONFIRMED, 'the copy confirmed its own connection');
    assert.equal(t.list().length, 1, 'the rejected copy\'s entry is out of the table');
    t.setNow(T0 + 2100);
    t.sweep();
    assert.equal(t.stats().entries, 1, 'and gone once its REJECT reply can no longer come');
  });

  it('an ACK in the reply direction of a confirmed connection is no REJECT reply: tracked as usual', () => {
    const t = table();
    forward(t, tcp(C, 40005, V, 8080, SYN), DNAT);
    const sa = trip(t, tcp(S, 80, C, 40005, SYN | ACK), { hook: PRE });
    assert.equal(sa.c.state, 'ESTABLISHED');
    assert.equal(t.list()[0].tcpState, 'SYN_RECV');
  });
});
