// The connection table through its N-API wrapper: states, the TCP state machine, timeouts, confirmation, limits.
import { addon } from '../../src/native';
import { ACK, assert, craft, echo, FIN, forward, FWD, icmpError, IN, OUT, POST, PRE, RST, SYN, SYNACK, tcp, trip, udp } from './helpers';

const C = '198.18.0.1';
const S = '198.18.0.2';
const SEEN_REPLY = 2;
const ASSURED = 4;
const CONFIRMED = 8;

function table(max = 1024) {
  const t = new addon.ConnTable({ maxEntries: max, manualClock: true, seed: 7 });
  t.setNow(1_000_000);
  return t;
}

/** A locally received packet: PREROUTING (conntrack point), then INPUT (confirmation). */
function local(t: InstanceType<typeof addon.ConnTable>, p: Uint8Array, accept = true) {
  const a = trip(t, p, { hook: PRE, accept });
  if (!accept) return a.c;
  trip(t, a.out, { hook: IN });
  return a.c;
}

describe('conntrack table: TCP', () => {
  it('tracks a handshake to ESTABLISHED and ASSURED, with the kernel timeouts', () => {
    const t = table();
    const syn = local(t, tcp(C, 40000, S, 80, SYN));
    assert.equal(syn.state, 'NEW');
    assert.equal(syn.direction, 'ORIGINAL');
    assert.equal(syn.created, true);
    let [e] = t.list();
    assert.equal(e.tcpState, 'SYN_SENT');
    assert.equal(e.expiresSeconds, 120);
    assert.equal(e.status & (SEEN_REPLY | CONFIRMED), CONFIRMED);
    assert.match(e.line, /^tcp {6}6 120 SYN_SENT src=198\.18\.0\.1 dst=198\.18\.0\.2 sport=40000 dport=80 \[UNREPLIED\] src=198\.18\.0\.2 dst=198\.18\.0\.1 sport=80 dport=40000 mark=0 use=1$/);

    const sa = local(t, tcp(S, 80, C, 40000, SYNACK));
    assert.equal(sa.state, 'ESTABLISHED');
    assert.equal(sa.direction, 'REPLY');
    [e] = t.list();
    assert.equal(e.tcpState, 'SYN_RECV');
    assert.equal(e.expiresSeconds, 60);
    assert.ok(e.status & SEEN_REPLY);
    assert.equal(e.status & ASSURED, 0);

    const ack = local(t, tcp(C, 40000, S, 80, ACK));
    assert.equal(ack.state, 'ESTABLISHED');
    assert.equal(ack.direction, 'ORIGINAL');
    [e] = t.list();
    assert.equal(e.tcpState, 'ESTABLISHED');
    assert.equal(e.expiresSeconds, 432000);
    assert.ok(e.status & ASSURED);
    assert.match(e.line, /ESTABLISHED src=.* \[ASSURED\] mark=0 use=1$/);
    assert.deepEqual(e.packets, [2, 1]);
    assert.equal(t.list().length, 1);
  });

  it('follows FIN/ACK to TIME_WAIT and expires after its timeout', () => {
    const t = table();
    local(t, tcp(C, 40001, S, 80, SYN));
    local(t, tcp(S, 80, C, 40001, SYNACK));
    local(t, tcp(C, 40001, S, 80, ACK));
    local(t, tcp(C, 40001, S, 80, FIN | ACK));
    assert.equal(t.list()[0].tcpState, 'FIN_WAIT');
    local(t, tcp(S, 80, C, 40001, ACK));
    assert.equal(t.list()[0].tcpState, 'CLOSE_WAIT');
    local(t, tcp(S, 80, C, 40001, FIN | ACK));
    assert.equal(t.list()[0].tcpState, 'LAST_ACK');
    local(t, tcp(C, 40001, S, 80, ACK));
    const [e] = t.list();
    assert.equal(e.tcpState, 'TIME_WAIT');
    assert.equal(e.expiresSeconds, 120);
    t.setNow(1_000_000 + 119_000);
    assert.equal(t.list().length, 1);
    t.setNow(1_000_000 + 120_001);
    assert.equal(t.list().length, 0, 'expired entries are not listed');
    assert.equal(t.sweep(), 1);
    assert.equal(t.stats().entries, 0);
  });

  it('a SYN in TIME_WAIT reopens the connection as NEW', () => {
    const t = table();
    for (const [p, _] of [[tcp(C, 40002, S, 80, SYN), 0], [tcp(S, 80, C, 40002, SYNACK), 0], [tcp(C, 40002, S, 80, ACK), 0], [tcp(C, 40002, S, 80, FIN | ACK), 0], [tcp(S, 80, C, 40002, FIN | ACK), 0], [tcp(C, 40002, S, 80, ACK), 0]] as const) local(t, p);
    assert.equal(t.list()[0].tcpState, 'TIME_WAIT');
    const again = local(t, tcp(C, 40002, S, 80, SYN, 9999));
    assert.equal(again.state, 'NEW');
    assert.equal(again.created, true);
    const l = t.list();
    assert.equal(l.length, 1);
    assert.equal(l[0].tcpState, 'SYN_SENT');
  });

  it('an RST in reply to a SYN deletes the connection at once; an RST later closes it for 10 s', () => {
    const t = table();
    local(t, tcp(C, 40003, S, 81, SYN));
    const r = local(t, tcp(S, 81, C, 40003, RST | ACK));
    assert.equal(r.state, 'ESTABLISHED');
    assert.equal(t.list().length, 0);
    assert.equal(t.stats().entries, 0);

    local(t, tcp(C, 40004, S, 80, SYN));
    local(t, tcp(S, 80, C, 40004, SYNACK));
    local(t, tcp(C, 40004, S, 80, ACK));
    local(t, tcp(C, 40004, S, 80, RST));
    const [e] = t.list();
    assert.equal(e.tcpState, 'CLOSE');
    assert.equal(e.expiresSeconds, 10);
  });

  it('packets the state machine refuses are INVALID, at their conntrack hook and at later hooks', () => {
    const t = table();
    const fin = local(t, tcp(C, 40005, S, 80, FIN | ACK));
    assert.equal(fin.state, 'INVALID');
    assert.equal(fin.handle, 0);
    assert.equal(t.list().length, 0, 'an invalid first packet creates nothing');

    local(t, tcp(C, 40006, S, 80, SYN));
    local(t, tcp(S, 80, C, 40006, SYNACK));
    local(t, tcp(C, 40006, S, 80, ACK));
    // A SYN-ACK from the client in ESTABLISHED: sIV.
    const bad = tcp(C, 40006, S, 80, SYNACK, 77);
    const a = trip(t, bad, { hook: PRE });
    assert.equal(a.c.state, 'INVALID');
    const b = trip(t, bad, { hook: FWD });
    assert.equal(b.c.state, 'INVALID', 'the same packet at FORWARD keeps the state it got at PREROUTING');
    const good = trip(t, tcp(C, 40006, S, 80, ACK, 1500), { hook: FWD });
    assert.equal(good.c.state, 'ESTABLISHED');
    assert.equal(t.list()[0].tcpState, 'ESTABLISHED', 'the connection survives');
  });

  it('flag combinations the kernel refuses (tcp_valid_flags) are INVALID, new or established, and create nothing', () => {
    const t = table();
    for (const flags of [SYN | FIN, SYN | RST, FIN, 0, SYN | FIN | ACK]) {
      const c = local(t, tcp(C, 41000 + flags, S, 80, flags));
      assert.equal(c.state, 'INVALID', `flags 0x${flags.toString(16)}`);
    }
    assert.equal(t.list().length, 0, 'no invalid first packet creates an entry');
    local(t, tcp(C, 40007, S, 80, SYN));
    local(t, tcp(S, 80, C, 40007, SYNACK));
    local(t, tcp(C, 40007, S, 80, ACK));
    assert.equal(local(t, tcp(C, 40007, S, 80, SYN | FIN, 100)).state, 'INVALID', 'inside a connection too');
    assert.equal(local(t, tcp(C, 40007, S, 80, ACK | 0x08, 100)).state, 'ESTABLISHED', 'PSH does not count');
  });

  it('picks up a connection from a mid-stream ACK unless tcpLoose is off', () => {
    const t = table();
    const a = local(t, tcp(C, 40007, S, 80, ACK));
    assert.equal(a.state, 'NEW');
    assert.equal(t.list()[0].tcpState, 'ESTABLISHED');
    const strict = new addon.ConnTable({ manualClock: true, tcpLoose: false });
    assert.equal(local(strict, tcp(C, 40007, S, 80, ACK)).state, 'INVALID');
  });
});

describe('conntrack table: confirmation', () => {
  it('a dropped first packet leaves no entry; an accepted one is unconfirmed until its last hook', () => {
    const t = table();
    const p = tcp(C, 41000, S, 80, SYN);
    trip(t, p, { hook: PRE, accept: false });
    assert.equal(t.stats().entries, 0);

    const a = trip(t, p, { hook: PRE });
    assert.equal(t.stats().unconfirmed, 1);
    const b = trip(t, a.out, { hook: FWD });
    assert.equal(b.c.state, 'NEW');
    assert.equal(b.c.handle, a.c.handle, 'a later hook finds the same entry');
    // Dropped in FORWARD: the kernel frees the unconfirmed connection with the packet.
    t.commit(t.classify(a.out, 4, FWD, { ctPoint: false }), { accept: false });
    assert.equal(t.stats().entries, 0);

    const x = trip(t, p, { hook: PRE });
    trip(t, x.out, { hook: FWD });
    trip(t, x.out, { hook: POST });
    assert.equal(t.stats().unconfirmed, 0);
    assert.equal(t.stats().entries, 1);
    // Once confirmed, a dropped packet does not remove it.
    trip(t, p, { hook: PRE, accept: false });
    assert.equal(t.stats().entries, 1);
  });

  it('an unconfirmed entry that never reaches its confirmation point is forgotten', () => {
    const t = table();
    trip(t, udp(C, 5000, S, 53), { hook: PRE });
    assert.equal(t.stats().unconfirmed, 1);
    t.setNow(1_000_000 + 11_000);
    t.sweep();
    assert.equal(t.stats().entries, 0);
  });

  it('CT --notrack leaves the packet UNTRACKED at later hooks and creates nothing', () => {
    const t = table();
    const p = udp(C, 5001, S, 53);
    const a = trip(t, p, { hook: PRE, notrack: true });
    assert.equal(a.c.created, true);
    assert.equal(t.stats().entries, 0);
    assert.equal(t.classify(p, 4, IN, { ctPoint: false }).state, 'UNTRACKED');
  });

  it('keeps the connection mark CONNMARK writes', () => {
    const t = table();
    trip(t, udp(C, 5002, S, 53), { hook: OUT, connmark: 0x4000 });
    trip(t, udp(C, 5002, S, 53), { hook: POST });
    const r = local(t, udp(S, 53, C, 5002));
    assert.equal(r.mark, 0x4000);
    assert.equal(t.list()[0].mark, 0x4000);
  });
});

describe('conntrack table: UDP, ICMP, other protocols', () => {
  it('UDP: 30 s unreplied, ESTABLISHED on reply, ASSURED with 120 s once it lasts past 2 s', () => {
    const t = table();
    assert.equal(local(t, udp(C, 6000, S, 53)).state, 'NEW');
    assert.equal(t.list()[0].expiresSeconds, 30);
    assert.equal(local(t, udp(C, 6000, S, 53)).state, 'NEW', 'still unreplied');
    assert.equal(local(t, udp(S, 53, C, 6000)).state, 'ESTABLISHED');
    assert.equal(t.list()[0].status & ASSURED, 0);
    assert.equal(local(t, udp(C, 6000, S, 53)).state, 'ESTABLISHED');
    t.setNow(1_000_000 + 2_500);
    local(t, udp(C, 6000, S, 53));
    const [e] = t.list();
    assert.ok(e.status & ASSURED);
    assert.equal(e.expiresSeconds, 120);
    assert.match(e.line, /^udp {6}17 120 src=198\.18\.0\.1 dst=198\.18\.0\.2 sport=6000 dport=53 src=198\.18\.0\.2 dst=198\.18\.0\.1 sport=53 dport=6000 \[ASSURED\] mark=0 use=1$/);
  });

  it('UDP without a reply expires after 30 s, lazily on lookup', () => {
    const t = table();
    local(t, udp(C, 6001, S, 53));
    t.setNow(1_000_000 + 30_001);
    const again = local(t, udp(C, 6001, S, 53));
    assert.equal(again.state, 'NEW');
    assert.equal(again.created, true);
    assert.equal(t.stats().expired, 1);
  });

  it('ICMP echo: request NEW, reply ESTABLISHED; a reply alone is INVALID', () => {
    const t = table();
    assert.equal(local(t, echo(C, S, 0x1234, 1)).state, 'NEW');
    assert.match(t.list()[0].line, /^icmp {5}1 30 src=198\.18\.0\.1 dst=198\.18\.0\.2 type=8 code=0 id=4660 \[UNREPLIED\] src=198\.18\.0\.2 dst=198\.18\.0\.1 type=0 code=0 id=4660 mark=0 use=1$/);
    assert.equal(local(t, echo(S, C, 0x1234, 1, true)).state, 'ESTABLISHED');
    assert.equal(local(t, echo(S, C, 0x9999, 1, true)).state, 'INVALID');
  });

  it('ICMPv6 echo is tracked; neighbour discovery is UNTRACKED', () => {
    const t = table();
    const c6 = '2001:db8::1';
    const s6 = '2001:db8::2';
    assert.equal(local(t, echo(c6, s6, 7, 1)).state, 'NEW');
    assert.equal(local(t, echo(s6, c6, 7, 1, true)).state, 'ESTABLISHED');
    const ns = icmpError(c6, s6, new Uint8Array(0), 135, 0);
    assert.equal(t.classify(ns, 6, PRE).state, 'UNTRACKED');
  });

  it('an ICMP error quoting a tracked packet is RELATED (reply direction); others are INVALID', () => {
    const t = table();
    const q = udp(C, 6002, S, 9);
    local(t, q);
    const err = icmpError(S, C, q);
    const r = local(t, err);
    assert.equal(r.state, 'RELATED');
    assert.equal(r.direction, 'REPLY');
    assert.equal(t.stats().related, 1);
    assert.equal(local(t, icmpError(S, C, udp(C, 6003, S, 9))).state, 'INVALID');
    // The error must be addressed to the quoted packet's sender.
    assert.equal(t.classify(icmpError(S, '198.18.0.77', q), 4, PRE).state, 'INVALID');
  });

  it('tracks other protocols by address with the generic 600 s timeout', () => {
    const t = table();
    const gre = (s: string, d: string) => ({ family: 4 as const, src: new Uint8Array(s.split('.').map(Number)), dst: new Uint8Array(d.split('.').map(Number)), proto: 47, payload: new Uint8Array(8) });
    assert.equal(local(t, craft(gre(C, S))).state, 'NEW');
    assert.equal(local(t, craft(gre(S, C))).state, 'ESTABLISHED');
    const [e] = t.list();
    assert.equal(e.expiresSeconds, 600);
    assert.match(e.line, /^unknown  47 600 src=198\.18\.0\.1 dst=198\.18\.0\.2 src=198\.18\.0\.2 dst=198\.18\.0\.1 mark=0 use=1$/);
  });

  it('does not track non-first fragments', () => {
    const t = table();
    const p = udp(C, 6004, S, 53);
    p[6] = 0x00;
    p[7] = 0x10; // offset 128 bytes
    const c = t.classify(p, 4, PRE);
    assert.equal(c.state, 'INVALID');
    assert.equal(c.fragment, true);
  });
});

describe('conntrack table: malformed and corrupt packets (tcp_error, udp_error, icmp_error)', () => {
  it('a TCP data offset under 5 or past the segment, a UDP length under 8 or past the datagram: INVALID, nothing created', () => {
    const t = table();
    for (const doff of [4, 15]) {
      const p = tcp(C, 41000 + doff, S, 80, SYN);
      p[20 + 12] = (doff << 4) | (p[20 + 12]! & 0x0f);
      assert.equal(t.classify(p, 4, PRE).state, 'INVALID', `data offset ${doff}`);
    }
    for (const len of [7, 200]) {
      const p = udp(C, 42000 + len, S, 53);
      p[20 + 4] = len >> 8;
      p[20 + 5] = len & 0xff;
      assert.equal(t.classify(p, 4, PRE).state, 'INVALID', `udp length ${len}`);
    }
    assert.equal(t.classify(udp(C, 42999, S, 53), 4, PRE).state, 'NEW', 'the same datagram well formed');
    assert.equal(t.stats().created, 1);
  });

  it('a bad checksum is INVALID only where the kernel checks it: received, at the conntrack point, not yet verified', () => {
    const t = table();
    const bad = udp(C, 43000, S, 53);
    bad[20 + 6] ^= 0xff;
    assert.equal(t.classify(bad, 4, PRE, { checksumUnverified: true }).state, 'INVALID');
    assert.equal(t.classify(bad, 4, PRE).state, 'NEW', 'verified by the device (CHECKSUM_UNNECESSARY): not checked again');
    assert.equal(t.classify(udp(C, 43001, S, 53), 4, PRE, { checksumUnverified: true }).state, 'NEW', 'a good checksum');
    const noSum = udp(C, 43002, S, 53);
    noSum[20 + 6] = 0;
    noSum[20 + 7] = 0;
    assert.equal(t.classify(noSum, 4, PRE, { checksumUnverified: true }).state, 'NEW', 'UDP checksum 0: none');
    const own = udp(C, 43003, S, 53);
    own[20 + 6] ^= 0xff;
    assert.equal(t.classify(own, 4, OUT, { checksumUnverified: true }).state, 'NEW', 'locally generated: never checked');
  });
});

describe('conntrack table: limits', () => {
  it('when full, evicts a connection not yet ASSURED (early drop)', () => {
    const t = table(2);
    local(t, udp(C, 7000, S, 53));
    local(t, udp(C, 7001, S, 53));
    const c = local(t, udp(C, 7002, S, 53));
    assert.equal(c.state, 'NEW');
    assert.equal(c.dropped, false);
    assert.equal(t.stats().earlyDrop, 1);
    assert.equal(t.stats().entries, 2);
  });

  it('when full of ASSURED connections, drops the new packet and counts it', () => {
    const t = table(2);
    for (const port of [7100, 7101]) {
      local(t, tcp(C, port, S, 80, SYN));
      local(t, tcp(S, 80, C, port, SYNACK));
      local(t, tcp(C, port, S, 80, ACK));
    }
    const c = t.classify(tcp(C, 7102, S, 80, SYN), 4, PRE);
    assert.equal(c.dropped, true);
    assert.equal(c.handle, 0);
    assert.equal(t.stats().drop, 1);
    assert.equal(t.stats().entries, 2);
    // Existing connections still work.
    assert.equal(local(t, tcp(C, 7100, S, 80, ACK, 2000)).state, 'ESTABLISHED');
  });

  it('when full, also evicts an unconfirmed entry whose packet never reached its confirmation point', () => {
    const t = table(2);
    trip(t, udp(C, 7200, S, 53), { hook: PRE });
    trip(t, udp(C, 7201, S, 53), { hook: PRE });
    assert.equal(t.stats().unconfirmed, 2);
    assert.equal(t.classify(udp(C, 7202, S, 53), 4, PRE).dropped, true, 'in flight for less than a second: kept');
    t.setNow(1_000_000 + 1_500);
    const c = t.classify(udp(C, 7203, S, 53), 4, PRE);
    assert.equal(c.dropped, false);
    assert.equal(t.stats().earlyDrop, 1);
  });

  it('the periodic sweep removes expired entries without a lookup', () => {
    const t = table();
    for (let i = 0; i < 50; i++) local(t, udp(C, 8000 + i, S, 53));
    assert.equal(t.stats().entries, 50);
    t.setNow(1_000_000 + 31_000);
    assert.equal(t.sweep(20), 20, 'bounded by its budget');
    t.sweep(1000);
    assert.equal(t.stats().entries, 0);
    assert.equal(t.stats().expired, 50);
  });

  it('classify of a reply at a later hook without a conntrack point still finds the entry', () => {
    const t = table();
    const f = forward(t, udp(C, 9000, S, 53));
    assert.deepEqual(f.states, ['NEW', 'NEW', 'NEW']);
    const r = forward(t, udp(S, 53, C, 9000));
    assert.deepEqual(r.states, ['ESTABLISHED', 'ESTABLISHED', 'ESTABLISHED']);
  });
});
