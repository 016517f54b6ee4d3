// Clashes at confirmation, as the kernel resolves them: a DNAT onto a tuple another connection already uses is made
// unique by the SRC null binding's new source port (nf_nat_alloc_null_binding -> get_unique_tuple), and packets of one
// new flow classified before the first is decided each get their own unconfirmed entry; the first to be confirmed wins
// and __nf_conntrack_confirm / nf_ct_resolve_clash decide for the others (attach, reply-only NAT_CLASH entry, or drop).
import type { CtClassification, CtNatRequest } from '../../native/index';
import { addon } from '../../src/native';
import { ACK, assert, assertChecksums, craft, echo, forward, FWD, POST, PRE, seen, SYN, SYNACK, tcp, trip, udp } from './helpers';

const C = '198.18.0.1'; // client
const VIP = '198.18.1.100'; // the address the client asks for
const B1 = '198.18.2.10'; // backends
const B2 = '198.18.2.11';
const SRC_NAT = 16;
const DST_NAT = 32;
const CONFIRMED = 8;
const T0 = 2_000_000;

function table(maxEntries = 1024) {
  const t = new addon.ConnTable({ maxEntries, manualClock: true, seed: 23 });
  t.setNow(T0);
  return t;
}

type Table = ReturnType<typeof table>;

function stats(t: Table) {
  const s = t.stats();
  assert.equal(typeof s.clashResolve, 'number', 'stats() reports clashResolve');
  return s;
}

function dnat(to: string, port?: number): CtNatRequest {
  return port === undefined ? { manip: 'DST', minAddr: to, maxAddr: to } : { manip: 'DST', minAddr: to, maxAddr: to, minPort: port, maxPort: port };
}

/** The PREROUTING verdict of a packet classified earlier: its nat PREROUTING ran (binding `to`, or the null binding). */
function commitPre(t: Table, c: CtClassification, p: Uint8Array, to?: CtNatRequest) {
  const r = t.finish(c, { accept: true, natRan: ['DST'], nat: to ? [to] : undefined }, p, 4, PRE);
  assert.equal(r.ok, true);
  return r.packet ?? p;
}

/** FORWARD then POSTROUTING (nat SRC ran without a rule: null binding; confirmation). */
function leave(t: Table, p: Uint8Array) {
  const f = trip(t, p, { hook: FWD });
  const o = trip(t, f.out, { hook: POST });
  return { fwd: f.c, post: o.c, out: o.out, ok: o.ok };
}

describe('conntrack clash: a DNAT onto a tuple in use', () => {
  for (const proto of ['tcp', 'udp'] as const) {
    it(`${proto}: the SRC null binding picks another source port; replies are translated back to the client's port`, () => {
      const t = table();
      const first = (s: string, sp: number, d: string, dp: number) => (proto === 'tcp' ? tcp(s, sp, d, dp, SYN) : udp(s, sp, d, dp));
      // Each reply its own packet (IP id, sequence, payload): the table tells packets apart by that fingerprint.
      let n = 0;
      const reply = (s: string, sp: number, d: string, dp: number) => {
        n++;
        return proto === 'tcp' ? tcp(s, sp, d, dp, SYNACK, 7000 + n) : udp(s, sp, d, dp, new Uint8Array([n, n, n]));
      };
      const direct = forward(t, first(C, 40000, B1, 80));
      assert.equal(direct.ok, true);
      assert.deepEqual(seen(direct.out), { src: C, dst: B1, sport: 40000, dport: 80, proto: proto === 'tcp' ? 6 : 17 });

      // The same client port to the VIP, DNATed onto the connection above: kept, made unique at POSTROUTING.
      const via = forward(t, first(C, 40000, VIP, 80), dnat(B1, 80));
      assert.equal(via.ok, true, 'not refused: the DNAT binding is made and the clash resolved');
      const out = seen(via.out);
      assert.deepEqual([out.src, out.dst, out.dport], [C, B1, 80]);
      assert.notEqual(out.sport, 40000, 'a new source port');
      assert.ok(out.sport >= 1024 && out.sport <= 65535, `${out.sport} in the port class of 40000 (1024-65535)`);
      assertChecksums(via.out, 'the rewritten first packet');
      const e = t.entry(via.pre);
      assert.ok(e);
      assert.equal(e.status & (SRC_NAT | DST_NAT | CONFIRMED), SRC_NAT | DST_NAT | CONFIRMED);
      assert.deepEqual([e.reply.src, e.reply.sport, e.reply.dst, e.reply.dport], [B1, 80, C, out.sport]);
      assert.equal(t.list().length, 2);
      assert.equal(stats(t).insertFailed, 0);

      // The backend answers each connection; each reply reaches the client as the connection it asked for.
      const r2 = forward(t, reply(B1, 80, C, out.sport));
      assert.deepEqual(r2.states, ['ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED']);
      assert.equal(r2.pre.handle, via.pre.handle);
      assert.deepEqual(seen(r2.out), { src: VIP, dst: C, sport: 80, dport: 40000, proto: proto === 'tcp' ? 6 : 17 });
      assertChecksums(r2.out, 'the reply translated back');
      const r1 = forward(t, reply(B1, 80, C, 40000));
      assert.equal(r1.pre.handle, direct.pre.handle);
      assert.deepEqual(seen(r1.out), { src: B1, dst: C, sport: 80, dport: 40000, proto: proto === 'tcp' ? 6 : 17 });

      // Later packets of the DNATed connection keep its new port.
      const more = forward(t, proto === 'tcp' ? tcp(C, 40000, VIP, 80, ACK, 1001) : udp(C, 40000, VIP, 80, new Uint8Array([7])));
      assert.equal(more.pre.handle, via.pre.handle);
      assert.equal(seen(more.out).sport, out.sport);
    });
  }

  it('a privileged source port is replaced within its class (600-1023)', () => {
    const t = table();
    forward(t, udp(C, 700, B1, 53));
    const via = forward(t, udp(C, 700, VIP, 53), dnat(B1, 53));
    assert.equal(via.ok, true);
    const p = seen(via.out).sport;
    assert.ok(p >= 600 && p <= 1023 && p !== 700, `${p}`);
  });

  it('ICMP: the DNAT itself takes another echo id (from 0, as nf_nat_l4proto_unique_tuple does for DST), and the reply gets it back', () => {
    const t = table();
    const direct = forward(t, echo(C, B1, 77, 1));
    assert.equal(direct.ok, true);
    const via = forward(t, echo(C, VIP, 77, 2), dnat(B1));
    assert.equal(via.ok, true);
    const out = seen(via.out);
    assert.deepEqual([out.src, out.dst, out.sport], [C, B1, 0], 'echo id 0: the first free id from offset 0');
    assertChecksums(via.out, 'the rewritten echo request');
    const e = t.entry(via.pre);
    assert.ok(e);
    assert.equal(e.status & (SRC_NAT | DST_NAT), DST_NAT, 'only the destination manip changed');
    const r = forward(t, echo(B1, C, 0, 2, true));
    assert.equal(r.pre.handle, via.pre.handle);
    assert.deepEqual([seen(r.out).src, seen(r.out).sport], [VIP, 77]);
    assertChecksums(r.out, 'the echo reply translated back');
    const r1 = forward(t, echo(B1, C, 77, 1, true));
    assert.equal(r1.pre.handle, direct.pre.handle);
  });

  it('a protocol without ports cannot be made unique: insert fails, the packet drops, insert_failed counts', () => {
    const t = table();
    const raw = (s: string, d: string) => craft({ family: 4, src: new Uint8Array(s.split('.').map(Number)), dst: new Uint8Array(d.split('.').map(Number)), proto: 253, payload: new Uint8Array(8) });
    assert.equal(forward(t, raw(C, B1)).ok, true);
    const before = stats(t);
    const via = forward(t, raw(C, VIP), dnat(B1));
    assert.equal(via.ok, false, 'dropped at confirmation');
    assert.equal(t.entry(via.pre), undefined, 'its entry is gone');
    const s = stats(t);
    assert.equal(s.insertFailed - before.insertFailed, 1);
    assert.equal(s.drop - before.drop, 1);
    assert.equal(s.entries, 1);
    assert.equal(s.unconfirmed, 0);
    // The existing connection is untouched.
    assert.equal(forward(t, raw(B1, C)).states[0], 'ESTABLISHED');
  });
});

describe('conntrack clash: packets of one new flow classified before the first is decided', () => {
  it('UDP, same NAT: the second has its own entry, then is attached to the first (clash_resolve)', () => {
    const t = table();
    const p1 = udp(C, 5000, VIP, 53, new Uint8Array([1, 1, 1, 1]));
    const p2 = udp(C, 5000, VIP, 53, new Uint8Array([2, 2, 2, 2, 2, 2]));
    const c1 = t.classify(p1, 4, PRE);
    const c2 = t.classify(p2, 4, PRE);
    assert.equal(c1.state, 'NEW');
    assert.equal(c2.state, 'NEW');
    assert.equal(c1.created && c2.created, true, 'each packet created an entry');
    assert.notEqual(c1.handle, c2.handle);
    assert.equal(stats(t).unconfirmed, 2, 'both count in the table');
    const o1 = commitPre(t, c1, p1, dnat(B1));
    const o2 = commitPre(t, c2, p2, dnat(B1));
    assert.equal(seen(o2).dst, B1, 'the second ran nat itself');
    const l1 = leave(t, o1);
    assert.equal(l1.fwd.handle, c1.handle);
    const l2 = leave(t, o2);
    assert.equal(l2.fwd.handle, c2.handle, 'its later hooks find its own entry');
    assert.equal(l1.ok && l2.ok, true);
    assert.deepEqual(seen(l2.out), { src: C, dst: B1, sport: 5000, dport: 53, proto: 17 });
    assertChecksums(l2.out);
    const s = stats(t);
    assert.equal(s.clashResolve, 1);
    assert.equal(s.insertFailed, 0);
    assert.equal(s.entries, 1, 'the second packet\'s entry is released');
    assert.equal(s.unconfirmed, 0);
    const [e] = t.list();
    assert.equal(e.packets[0], 2, 'the winner counts the attached packet (nf_ct_acct_merge)');
    // The reply finds the one connection.
    const r = forward(t, udp(B1, 53, C, 5000));
    assert.equal(r.pre.handle, c1.handle);
    assert.equal(seen(r.out).src, VIP);
  });

  it('UDP, different DNAT choices: the second is inserted by its reply tuple only (NAT_CLASH, 1 s), as 6.x nf_ct_resolve_clash_harder does', () => {
    const t = table();
    const p1 = udp(C, 5001, VIP, 53, new Uint8Array([1, 1, 1, 1]));
    const p2 = udp(C, 5001, VIP, 53, new Uint8Array([2, 2, 2, 2, 2, 2]));
    const c1 = t.classify(p1, 4, PRE);
    const c2 = t.classify(p2, 4, PRE);
    const o1 = commitPre(t, c1, p1, dnat(B1)); // statistic --mode random chose B1 for the first ...
    const o2 = commitPre(t, c2, p2, dnat(B2)); // ... and B2 for the second
    assert.equal(leave(t, o1).ok, true);
    const l2 = leave(t, o2);
    assert.equal(l2.ok, true, 'not dropped: the reply direction is unique');
    assert.equal(seen(l2.out).dst, B2, 'it keeps its own binding');
    let s = stats(t);
    assert.equal(s.clashResolve, 1);
    assert.equal(s.insertFailed, 0);
    assert.equal(s.entries, 2);
    assert.equal(t.list().length, 1, 'conntrack -L does not show the NAT_CLASH entry');

    // The original direction belongs to the winner; B2's answer still reaches the client as the VIP.
    const next = forward(t, udp(C, 5001, VIP, 53, new Uint8Array([3])));
    assert.equal(next.pre.handle, c1.handle);
    assert.equal(seen(next.out).dst, B1);
    t.setNow(T0 + 500);
    const r2 = forward(t, udp(B2, 53, C, 5001));
    assert.equal(r2.pre.handle, c2.handle);
    assert.deepEqual(r2.states, ['ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED']);
    assert.deepEqual([seen(r2.out).src, seen(r2.out).sport], [VIP, 53]);
    // IPS_FIXED_TIMEOUT: the reply did not extend it; one second after confirmation it is gone.
    t.setNow(T0 + 1100);
    t.sweep();
    s = stats(t);
    assert.equal(s.entries, 1);
    const late = forward(t, udp(B2, 53, C, 5001));
    assert.equal(late.states[0], 'NEW', 'a late answer from B2 opens a connection of its own');
    assert.equal(seen(late.out).src, B2);
  });

  it('TCP, different DNAT choices: TCP allows no clash, the second is dropped and insert_failed counts', () => {
    const t = table();
    const s1 = tcp(C, 40100, VIP, 80, SYN, 1000);
    const s2 = tcp(C, 40100, VIP, 80, SYN, 1000, new Uint8Array([1]));
    const c1 = t.classify(s1, 4, PRE);
    const c2 = t.classify(s2, 4, PRE);
    const o1 = commitPre(t, c1, s1, dnat(B1, 80));
    const o2 = commitPre(t, c2, s2, dnat(B2, 80));
    assert.equal(leave(t, o1).ok, true);
    const l2 = leave(t, o2);
    assert.equal(l2.ok, false);
    const s = stats(t);
    assert.equal(s.insertFailed, 1);
    assert.equal(s.natFailed, 1, 'the loser had a NAT binding');
    assert.equal(s.clashResolve, 0);
    assert.equal(s.entries, 1);
    assert.equal(t.entry(c2), undefined);
  });

  it('TCP SYN twice before either commits: the second is dropped at confirmation', () => {
    const t = table();
    const syn = tcp(C, 40101, B1, 80, SYN);
    const again = tcp(C, 40101, B1, 80, SYN, 1000, new Uint8Array([9])); // another copy: another fingerprint
    const c1 = t.classify(syn, 4, PRE);
    const c2 = t.classify(again, 4, PRE);
    assert.equal(c2.created, true);
    assert.equal(c2.state, 'NEW');
    const o1 = commitPre(t, c1, syn);
    const o2 = commitPre(t, c2, again);
    assert.equal(leave(t, o1).ok, true);
    assert.equal(leave(t, o2).ok, false);
    const s = stats(t);
    assert.equal(s.insertFailed, 1);
    assert.equal(s.drop, 1);
    assert.equal(s.natFailed, 0, 'no NAT involved');
    assert.equal(s.entries, 1);
    assert.equal(s.unconfirmed, 0);
    assert.equal(t.list()[0].tcpState, 'SYN_SENT');
    // The connection goes on.
    assert.equal(forward(t, tcp(B1, 80, C, 40101, SYNACK)).states[0], 'ESTABLISHED');
  });

  it('ICMP echo requests of one id before the first is decided: ICMP allows no clash, the second is dropped', () => {
    const t = table();
    const e1 = echo(C, B1, 9, 1);
    const e2 = echo(C, B1, 9, 2);
    const c1 = t.classify(e1, 4, PRE);
    const c2 = t.classify(e2, 4, PRE);
    assert.notEqual(c1.handle, c2.handle);
    assert.equal(leave(t, commitPre(t, c1, e1)).ok, true);
    assert.equal(leave(t, commitPre(t, c2, e2)).ok, false);
    assert.equal(stats(t).insertFailed, 1);
    assert.equal(stats(t).entries, 1);
  });

  it('the per-packet entries count against the size limit and are released when their packet is dropped', () => {
    const t = table(2);
    const p1 = udp(C, 5002, B1, 53, new Uint8Array([1]));
    const p2 = udp(C, 5002, B1, 53, new Uint8Array([2]));
    const c1 = t.classify(p1, 4, PRE);
    const c2 = t.classify(p2, 4, PRE);
    assert.equal(stats(t).entries, 2);
    const full = t.classify(udp(C, 5003, B1, 53), 4, PRE);
    assert.equal(full.dropped, true, 'the in-flight entries fill the table, as nf_conntrack_max counts unconfirmed ones');
    // The second is dropped at FORWARD (e.g. the overload or close default): its entry goes at once.
    const o2 = commitPre(t, c2, p2);
    const f2 = t.classify(o2, 4, FWD, { ctPoint: false });
    assert.equal(f2.handle, c2.handle);
    t.commit(f2, { accept: false });
    assert.equal(stats(t).entries, 1);
    assert.equal(leave(t, commitPre(t, c1, p1)).ok, true);
    assert.equal(stats(t).entries, 1);
    assert.equal(stats(t).unconfirmed, 0);
    assert.equal(stats(t).clashResolve, 0, 'nothing to resolve: the dropped copy never reached confirmation');
  });
});
