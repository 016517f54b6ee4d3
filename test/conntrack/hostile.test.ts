// Hostile and churning input through the N-API wrapper: random bytes and mutated real packets never crash the table,
// and after heavy NAT churn every entry can still be found and removed (the hash chains stay consistent).
import { addon } from '../../src/native';
import { assert, forward, PRE, SYN, tcp, udp } from './helpers';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

describe('conntrack table: hostile input', () => {
  it('survives random and mutated packets at every hook', () => {
    const t = new addon.ConnTable({ maxEntries: 32, manualClock: true, seed: 3 });
    const r = rng(12345);
    const bases = [tcp('198.18.0.1', 1000, '198.18.0.2', 80, SYN), udp('198.18.0.1', 5, '198.18.0.2', 53), udp('2001:db8::1', 5, '2001:db8::2', 53)];
    let now = 0;
    for (let i = 0; i < 20000; i++) {
      let p: Uint8Array;
      if (i % 3 === 0) {
        p = new Uint8Array(r() % 80);
        for (let j = 0; j < p.length; j++) p[j] = r() & 0xff;
        if (p.length) p[0] = (p[0] & 0x0f) | (r() & 1 ? 0x40 : 0x60);
      } else {
        const b = bases[r() % bases.length];
        p = b.slice(0, b.length - (r() % 4 === 0 ? r() % b.length : 0));
        for (let k = r() % 4; k > 0 && p.length; k--) p[r() % p.length] = r() & 0xff;
      }
      const family = p.length && p[0] >> 4 === 6 ? 6 : 4;
      const hook = r() % 5;
      const c = t.classify(p, family, hook, { ctPoint: (r() & 1) === 1 });
      const ok = t.commit(c, { accept: (r() & 3) !== 0, final: (r() & 1) === 1, natRan: r() & 1 ? ['SRC', 'DST'] : [], nat: r() & 1 ? [{ manip: 'SRC', minAddr: family === 4 ? '198.18.9.1' : '2001:db8:9::1', minPort: 1000, maxPort: 1000 + (r() % 4) }] : [] });
      if (ok && p.length) t.translate(c, p, family, hook);
      if (i % 1000 === 0) {
        now += 7000;
        t.setNow(now);
        t.sweep(8);
      }
    }
    const s = t.stats();
    assert.ok(s.entries <= 32);
    assert.ok(s.invalid > 0 && s.created > 0);
  });

  it('finds every NATed connection after churn and empties completely', () => {
    const t = new addon.ConnTable({ maxEntries: 512, buckets: 16, manualClock: true, seed: 9 });
    const snat = { manip: 'SRC' as const, minAddr: '198.18.9.1', minPort: 2000, maxPort: 2999 };
    for (let i = 0; i < 400; i++) {
      const f = forward(t, udp(`198.18.${i >> 8}.${i & 0xff}`, 4000, '198.18.5.5', 53), { manip: 'DST', minAddr: '198.18.6.6' }, snat);
      assert.equal(f.ok, true);
    }
    assert.equal(t.list().length, 400);
    for (const e of t.list()) {
      const reply = forward(t, udp(e.reply.src, e.reply.sport, e.reply.dst, e.reply.dport));
      assert.equal(reply.pre.state, 'ESTABLISHED', e.line);
      assert.equal(reply.pre.direction, 'REPLY');
    }
    t.setNow(10_000_000);
    assert.equal(t.sweep(100000), 400);
    assert.equal(t.stats().entries, 0);
    // Buckets that held stale nodes would make new lookups loop or find ghosts.
    assert.equal(t.classify(udp('198.18.0.1', 4000, '198.18.5.5', 53), 4, PRE).created, true);
  });
});
