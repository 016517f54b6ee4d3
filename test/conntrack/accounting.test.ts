// Every removal of an entry moves exactly one counter, so created == entries + expired + earlyDrop + deleted + killed +
// discarded holds at every moment (the soak's bound becomes an equality). Also the compact entry's wide counters and
// its times relative to the table's epoch, which must behave as the 64-bit fields they replace.
import type { ConnTable, ConnTableStats } from '../../native/index';
import { addon } from '../../src/native';
import { ACK, assert, FIN, forward, IN, PRE, RST, SYN, SYNACK, tcp, trip, udp } from './helpers';

const C = '198.18.0.1';
const S = '198.18.0.2';
const C6 = '2001:db8::1';
const S6 = '2001:db8::2';
const T0 = 1_000_000;
const DAY = 86_400_000;

function table(max = 1024): ConnTable {
  const t = new addon.ConnTable({ maxEntries: max, manualClock: true, seed: 11 });
  t.setNow(T0);
  return t;
}

function local(t: ConnTable, p: Uint8Array, accept = true): void {
  const a = trip(t, p, { hook: PRE, accept });
  if (accept) trip(t, a.out, { hook: IN });
}

const REMOVALS = ['expired', 'earlyDrop', 'deleted', 'killed', 'discarded'] as const;

/** The identity, and which removal counters moved since `before` (each by how much). */
function check(t: ConnTable, before?: ConnTableStats): Record<string, number> {
  const s = t.stats();
  const gone = REMOVALS.reduce((n, k) => n + s[k], 0);
  assert.equal(s.entries + gone, s.created, `entries ${s.entries} + removals ${gone} = created ${s.created}: ${JSON.stringify(s)}`);
  const moved: Record<string, number> = {};
  if (before) for (const k of REMOVALS) if (s[k] !== before[k]) moved[k] = s[k] - before[k];
  return moved;
}

function handshake(t: ConnTable, port: number): void {
  local(t, tcp(C, port, S, 80, SYN));
  local(t, tcp(S, 80, C, port, SYNACK));
  local(t, tcp(C, port, S, 80, ACK));
}

describe('conntrack table: every removal is counted once', () => {
  it('a SYN reopening a TIME_WAIT connection kills the old entry (killed) and creates a new one', () => {
    const t = table();
    handshake(t, 41000);
    local(t, tcp(C, 41000, S, 80, FIN | ACK));
    local(t, tcp(S, 80, C, 41000, ACK));
    local(t, tcp(S, 80, C, 41000, FIN | ACK));
    local(t, tcp(C, 41000, S, 80, ACK));
    assert.equal(t.list()[0].tcpState, 'TIME_WAIT');
    const before = t.stats();
    local(t, tcp(C, 41000, S, 80, SYN, 9000));
    assert.deepEqual(check(t, before), { killed: 1 });
    assert.equal(t.stats().created - before.created, 1);
    assert.equal(t.list()[0].tcpState, 'SYN_SENT');
  });

  it('an RST before any reply kills the connection (killed)', () => {
    const t = table();
    local(t, tcp(C, 41001, S, 80, SYN));
    const before = t.stats();
    local(t, tcp(C, 41001, S, 80, RST));
    assert.deepEqual(check(t, before), { killed: 1 });
    assert.equal(t.stats().entries, 0);
  });

  it('a dropped or NOTRACKed first packet frees its unconfirmed entry (discarded)', () => {
    const t = table();
    let before = t.stats();
    local(t, udp(C, 5000, S, 53), false);
    assert.deepEqual(check(t, before), { discarded: 1 });
    before = t.stats();
    trip(t, udp(C, 5001, S, 53), { hook: PRE, notrack: true });
    assert.deepEqual(check(t, before), { discarded: 1 });
    assert.equal(t.stats().entries, 0);
  });

  it('a packet that lost the race to confirm: attached to the winner or dropped, its entry is discarded', () => {
    const t = table();
    const a = udp(C, 5100, S, 53);
    const b = udp(C, 5100, S, 53, new Uint8Array([5, 6, 7, 8]));
    const ca = t.classify(a, 4, PRE);
    const cb = t.classify(b, 4, PRE);
    t.commit(ca, { accept: true, natRan: ['DST'] });
    t.commit(cb, { accept: true, natRan: ['DST'] });
    trip(t, a, { hook: IN });
    let before = t.stats();
    trip(t, b, { hook: IN });
    assert.deepEqual(check(t, before), { discarded: 1 });
    assert.equal(t.stats().clashResolve - before.clashResolve, 1);

    const s1 = tcp(C, 41002, S, 80, SYN);
    const s2 = tcp(C, 41002, S, 80, SYN, 1000, new Uint8Array([1]));
    const c1 = t.classify(s1, 4, PRE);
    const c2 = t.classify(s2, 4, PRE);
    t.commit(c1, { accept: true, natRan: ['DST'] });
    t.commit(c2, { accept: true, natRan: ['DST'] });
    trip(t, s1, { hook: IN });
    before = t.stats();
    assert.equal(trip(t, s2, { hook: IN }).ok, false);
    assert.deepEqual(check(t, before), { discarded: 1 });
    assert.equal(t.stats().insertFailed - before.insertFailed, 1);
  });

  it('expiry (by lookup and by sweep), early drop and flush each count their own', () => {
    const t = table(2);
    local(t, udp(C, 5200, S, 53));
    local(t, udp(C, 5201, S, 53));
    let before = t.stats();
    local(t, udp(C, 5202, S, 53));
    assert.deepEqual(check(t, before), { earlyDrop: 1 });
    t.setNow(T0 + 31_000);
    before = t.stats();
    // The lookup meets its expired entry; the other goes by a sweep (classify's own, or this one).
    local(t, udp(C, 5202, S, 53));
    t.sweep(100);
    assert.deepEqual(check(t, before), { expired: 2 });
    before = t.stats();
    assert.equal(t.flush(), 1);
    assert.deepEqual(check(t, before), { deleted: 1 });
  });

  it('holds under a random mix of flows, verdicts, resets, duplicates and time steps on a small table', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const t = table(8);
    const flags = [SYN, SYNACK, ACK, FIN | ACK, RST, RST | ACK];
    for (let i = 0; i < 4000; i++) {
      const port = 6000 + rnd(12);
      const reply = rnd(3) === 0;
      const v6 = rnd(3) === 0;
      const [a, b] = v6 ? [C6, S6] : [C, S];
      const p = rnd(2) === 0
        ? (reply ? tcp(b, 80, a, port, flags[rnd(flags.length)], 1000 + rnd(3)) : tcp(a, port, b, 80, flags[rnd(flags.length)], 1000 + rnd(3)))
        : reply ? udp(b, 53, a, port) : udp(a, port, b, 53, new Uint8Array([rnd(4)]));
      // PREROUTING, perhaps a copy of the packet in flight beside it, then INPUT (the confirmation point) if accepted.
      const f = v6 ? 6 : 4;
      const c = t.classify(p, f, PRE);
      const copy = rnd(5) === 0 ? t.classify(p, f, PRE) : undefined;
      const v = rnd(10);
      t.commit(c, { accept: v !== 0, notrack: v === 1, natRan: c.state === 'NEW' ? ['DST'] : [] });
      if (v !== 0) trip(t, p, { hook: IN });
      if (copy) t.commit(copy, { accept: rnd(2) === 0, final: true });
      if (rnd(20) === 0) t.setNow(T0 + i * 100 + rnd(200_000));
      if (rnd(50) === 0) t.sweep(4);
      if (rnd(400) === 0) t.flush();
      check(t);
    }
    const s = t.stats();
    assert.ok(s.killed > 0 && s.discarded > 0 && s.expired > 0 && s.earlyDrop > 0 && s.deleted > 0, `every kind of removal happened: ${JSON.stringify(s)}`);
  });
});

describe('conntrack table: compact entries behave as the wide fields they replace', () => {
  it('IPv4 and IPv6 tuples read back exactly through NAT, removal and reuse of their slots', () => {
    const t = table();
    const show = () => t.list().map((e) => `${e.orig.src} ${e.orig.sport} ${e.orig.dst} ${e.orig.dport} | ${e.reply.src} ${e.reply.sport} ${e.reply.dst} ${e.reply.dport}`).sort();
    forward(t, tcp(C6, 40000, '2001:db8:1::100', 443, SYN), { manip: 'DST', minAddr: '2001:db8:2::10', minPort: 8443 }, { manip: 'SRC', minAddr: '2001:db8:2::1' });
    forward(t, udp(C, 4000, '198.18.1.100', 53), { manip: 'DST', minAddr: '198.18.2.10', minPort: 5353 }, { manip: 'SRC', minAddr: '198.18.2.1' });
    const both = [
      '198.18.0.1 4000 198.18.1.100 53 | 198.18.2.10 5353 198.18.2.1 4000',
      '2001:db8::1 40000 2001:db8:1::100 443 | 2001:db8:2::10 8443 2001:db8:2::1 40000',
    ];
    assert.deepEqual(show(), both);
    // Replies find them by their translated tuples and are translated back.
    assert.equal(forward(t, tcp('2001:db8:2::10', 8443, '2001:db8:2::1', 40000, SYNACK)).states[0], 'ESTABLISHED');
    assert.equal(forward(t, udp('198.18.2.10', 5353, '198.18.2.1', 4000)).states[0], 'ESTABLISHED');
    assert.equal(t.flush(), 2);
    // The freed slots are reused by the other family first.
    local(t, udp(C, 4001, S, 53));
    local(t, udp(C6, 4002, S6, 53));
    local(t, udp(C6, 4003, S6, 53));
    assert.deepEqual(show(), [
      '198.18.0.1 4001 198.18.0.2 53 | 198.18.0.2 53 198.18.0.1 4001',
      '2001:db8::1 4002 2001:db8::2 53 | 2001:db8::2 53 2001:db8::1 4002',
      '2001:db8::1 4003 2001:db8::2 53 | 2001:db8::2 53 2001:db8::1 4003',
    ]);
    local(t, udp(S6, 53, C6, 4003));
    assert.ok(t.list().some((e) => e.orig.sport === 4003 && e.status & 2), 'the IPv6 reply found its entry');
  });

  it('byte counters go past 2^32 exactly', function () {
    this.timeout(120_000);
    const t = table();
    const big = udp(C, 5300, S, 53, new Uint8Array(60_000));
    const ipLen = big.length;
    const n = Math.ceil(2 ** 32 / ipLen) + 3;
    for (let i = 0; i < n; i++) {
      const c = t.classify(big, 4, PRE);
      t.commit(c, { accept: true, final: true });
    }
    const [e] = t.list();
    assert.equal(e.packets[0], n);
    assert.equal(e.bytes[0], n * ipLen);
    assert.ok(e.bytes[0] > 2 ** 32);
    const before = t.stats();
    assert.equal(t.flush(), 1);
    assert.deepEqual(check(t, before), { deleted: 1 });
    // The slot is reused with counters from zero.
    local(t, udp(C, 5301, S, 53));
    assert.deepEqual(t.list()[0].bytes, [udp(C, 5301, S, 53).length, 0]);
  });

  it('expiry times survive the clock moving far from the table epoch (days, then months)', () => {
    const t = table();
    handshake(t, 41100);
    assert.equal(t.list()[0].expiresSeconds, 432_000);
    t.setNow(T0 + 4 * DAY);
    local(t, tcp(C, 41100, S, 80, ACK, 2000));
    t.setNow(T0 + 8 * DAY);
    local(t, udp(C, 5400, S, 53));
    const byPort = () => new Map(t.list().map((e) => [e.orig.sport, e]));
    assert.equal(byPort().get(41100)?.expiresSeconds, 86_400, 'refreshed at day 4 for 5 days: one day left at day 8');
    t.setNow(T0 + 9 * DAY - 1);
    assert.equal(t.sweep(100), 1, 'only the UDP flow has expired');
    assert.equal(byPort().get(41100)?.expiresSeconds, 0);
    t.setNow(T0 + 9 * DAY);
    assert.equal(t.sweep(100), 1, 'the TCP connection expires on the millisecond');
    local(t, tcp(C, 41101, S, 80, SYN));
    t.setNow(T0 + 200 * DAY);
    assert.equal(t.list().length, 0);
    const before = t.stats();
    assert.equal(t.sweep(100), 1);
    assert.deepEqual(check(t, before), { expired: 1 });
    // A UDP flow that lasts past two seconds is a stream (ASSURED, 120 s) also right after a jump.
    local(t, udp(C, 5401, S, 53));
    local(t, udp(S, 53, C, 5401));
    t.setNow(T0 + 200 * DAY + 2_001);
    local(t, udp(C, 5401, S, 53));
    const [e] = t.list();
    assert.equal(e.expiresSeconds, 120);
    assert.ok(e.status & 4, 'ASSURED');
  });
});
