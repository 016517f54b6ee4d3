import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import type { Hook, Ruleset } from '../../src/rules/model';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import { ACCEPT, DROP, MARK, NFQUEUE, REJECT, RETURN, chainOf, matchFn, ruleset, v4, type ChainSpec } from './build';

function tcp4(hook: Hook, opts: { src?: string; dst?: string; dport?: number; in?: string; out?: string } = {}): PacketInput {
  return {
    family: 4,
    data: craftPacket({
      family: 4,
      src: v4(opts.src ?? '198.18.0.1'),
      dst: v4(opts.dst ?? '198.18.1.1'),
      proto: 6,
      sport: 40000,
      dport: opts.dport ?? 80,
    }),
    meta: { hook, inIface: opts.in, outIface: opts.out, mark: 0, pktType: 'unicast' },
  };
}

function engine(rules4: Ruleset, rules6?: Ruleset): Engine {
  return new Engine({ rules4, rules6, host: new StaticHost(), sets: new EmptySets(), random31: () => 0 });
}

function filter(chains: Record<string, ChainSpec>): Ruleset {
  return ruleset(4, { filter: chains });
}

function connection(state: CtState): ConnInfo {
  const t = { src: Uint8Array.of(198, 18, 0, 2), dst: Uint8Array.of(198, 19, 0, 2), protocol: 6, sport: 1000, dport: 80 };
  return { state, status: 0, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 120, zone: 0 };
}

describe('engine traversal', () => {
  it('jump then RETURN resumes after the jumping rule', () => {
    const rs = filter({
      INPUT: { policy: 'ACCEPT', rules: [{ t: { jump: 'A' } }, { t: DROP }] },
      A: { rules: [{ t: RETURN }, { t: ACCEPT }] },
    });
    const d = engine(rs).decide(tcp4('INPUT'), { trace: true });
    assert.equal(d.verdict, 'drop');
    assert.deepEqual(
      d.path?.map((s) => `${s.chain}:${s.rule}:${s.result}`),
      ['INPUT:1:jump', 'A:1:return', 'INPUT:2:drop'],
    );
  });

  it('falling off the end of a jumped-to chain returns to the caller', () => {
    const rs = filter({
      INPUT: { policy: 'DROP', rules: [{ t: { jump: 'A' } }, { t: ACCEPT }] },
      A: { rules: [{ dst: '10.0.0.0/8', t: DROP }] },
    });
    assert.equal(engine(rs).decide(tcp4('INPUT')).verdict, 'accept');
  });

  it("goto then end of chain continues in the caller's caller", () => {
    const rs = filter({
      INPUT: { policy: 'DROP', rules: [{ t: { jump: 'A' } }, { t: ACCEPT }] },
      A: { rules: [{ t: { goto: 'B' } }, { t: DROP }] },
      B: { rules: [{ t: MARK(7) }] },
    });
    const d = engine(rs).decide(tcp4('INPUT'), { trace: true });
    assert.equal(d.verdict, 'accept');
    assert.equal(d.mark, 7);
    assert.equal(d.markChanged, true);
    assert.deepEqual(
      d.path?.map((s) => `${s.chain}:${s.rule}:${s.result}`),
      ['INPUT:1:jump', 'A:1:goto', 'B:1:continue', 'B:0:return', 'INPUT:2:accept'],
    );
  });

  it('RETURN in a built-in chain applies the policy', () => {
    const rs = filter({ INPUT: { policy: 'DROP', rules: [{ t: RETURN }, { t: ACCEPT }] } });
    const e = engine(rs);
    assert.equal(e.decide(tcp4('INPUT')).verdict, 'drop');
    assert.deepEqual(chainOf(rs, 'filter', 'INPUT').counters.packets, 1);
  });

  it('goto from a built-in chain, then the end of the user chain, applies the policy', () => {
    const rs = filter({
      INPUT: { policy: 'DROP', rules: [{ t: { goto: 'A' } }, { t: ACCEPT }] },
      A: { rules: [] },
    });
    const d = engine(rs).decide(tcp4('INPUT'), { trace: true });
    assert.equal(d.verdict, 'drop');
    assert.deepEqual(d.path?.map((s) => s.result), ['goto', 'return', 'policy']);
    assert.equal(chainOf(rs, 'filter', 'INPUT').counters.packets, 1);
  });

  it('a rule without a target only counts; counters are the IP total length', () => {
    const rs = filter({
      INPUT: { policy: 'ACCEPT', rules: [{ proto: 6 }, { proto: 17 }, { t: DROP }] },
    });
    const input = tcp4('INPUT');
    const d = engine(rs).decide(input);
    assert.equal(d.verdict, 'drop');
    const c = chainOf(rs, 'filter', 'INPUT');
    assert.deepEqual(c.rules[0].counters, { packets: 1, bytes: input.data.length });
    assert.deepEqual(c.rules[1].counters, { packets: 0, bytes: 0 });
    assert.deepEqual(c.rules[2].counters, { packets: 1, bytes: input.data.length });
    assert.deepEqual(c.counters, { packets: 0, bytes: 0 }, 'policy not applied');
  });

  it('a non-terminal target continues with the next rule', () => {
    const rs = filter({ INPUT: { policy: 'ACCEPT', rules: [{ t: MARK(1) }, { t: MARK(2) }] } });
    const d = engine(rs).decide(tcp4('INPUT'));
    assert.equal(d.verdict, 'accept');
    assert.equal(d.mark, 2);
    assert.equal(chainOf(rs, 'filter', 'INPUT').counters.packets, 1);
  });

  it('ACCEPT ends only that table: a later table still drops', () => {
    const rs = ruleset(4, {
      mangle: { INPUT: { rules: [{ t: ACCEPT }] } },
      filter: { INPUT: { rules: [{ t: DROP }] } },
    });
    const d = engine(rs).decide(tcp4('INPUT'), { trace: true });
    assert.equal(d.verdict, 'drop');
    assert.deepEqual(d.path?.map((s) => `${s.table}:${s.result}`), ['mangle:accept', 'filter:drop']);
  });

  it('DROP ends the hook: later tables are not consulted', () => {
    const rs = ruleset(4, {
      mangle: { INPUT: { rules: [{ t: DROP }] } },
      filter: { INPUT: { rules: [{ t: ACCEPT }] } },
    });
    engine(rs).decide(tcp4('INPUT'));
    assert.equal(chainOf(rs, 'filter', 'INPUT').rules[0].counters.packets, 0);
  });

  it('walks the tables of a hook in priority order', () => {
    const seen: string[] = [];
    const spy = (name: string) => matchFn(name, (ctx) => (seen.push(ctx.table), false));
    const rs = ruleset(4, {
      security: { OUTPUT: { rules: [{ matches: [spy('s')] }] } },
      filter: { OUTPUT: { rules: [{ matches: [spy('f')] }] } },
      nat: { OUTPUT: { rules: [{ matches: [spy('n')] }] } },
      mangle: { OUTPUT: { rules: [{ matches: [spy('m')] }] } },
      raw: { OUTPUT: { rules: [{ matches: [spy('r')] }] } },
    });
    const first = { ...tcp4('OUTPUT'), ct: connection('NEW') };
    engine(rs).decide(first);
    assert.deepEqual(seen, ['raw', 'mangle', 'nat', 'filter', 'security']);
    seen.length = 0;
    engine(rs).decide(tcp4('INPUT'));
    assert.deepEqual(seen, [], 'no INPUT chains declared');
  });

  it('consults nat only for the first packet of a tracked connection, as nf_nat_inet_fn does', () => {
    const seen: string[] = [];
    const spy = matchFn('n', (ctx) => (seen.push(ctx.table), false));
    const rs = ruleset(4, { nat: { OUTPUT: { rules: [{ matches: [spy] }] } } });
    const e = engine(rs);
    e.decide(tcp4('OUTPUT'));
    e.decide({ ...tcp4('OUTPUT'), ct: connection('UNTRACKED') });
    e.decide({ ...tcp4('OUTPUT'), ct: connection('ESTABLISHED') });
    assert.deepEqual(seen, [], 'untracked and established packets skip nat');
    e.decide({ ...tcp4('OUTPUT'), ct: connection('NEW') });
    assert.deepEqual(seen, ['nat']);
  });

  it('the policy counters count packets and bytes when the policy applies', () => {
    const rs = filter({ FORWARD: { policy: 'DROP', rules: [{ proto: 17, t: ACCEPT }] } });
    const e = engine(rs);
    const a = tcp4('FORWARD');
    e.decide(a);
    e.decide(a);
    assert.deepEqual(chainOf(rs, 'filter', 'FORWARD').counters, { packets: 2, bytes: 2 * a.data.length });
  });

  it('jump stack overflow drops the packet', () => {
    const rs = filter({
      INPUT: { policy: 'ACCEPT', rules: [{ t: { jump: 'A' } }] },
      A: { rules: [{ t: { jump: 'A' } }] },
    });
    const d = engine(rs).decide(tcp4('INPUT'), { trace: true });
    assert.equal(d.verdict, 'drop');
    assert.equal(d.path?.at(-1)?.result, 'drop');
  });

  it('a legitimate deep jump chain does not overflow the stack', () => {
    const rs = filter({
      INPUT: { policy: 'DROP', rules: [{ t: { jump: 'A' } }] },
      A: { rules: [{ t: { jump: 'B' } }] },
      B: { rules: [{ t: { jump: 'C' } }] },
      C: { rules: [{ t: { jump: 'D' } }] },
      D: { rules: [{ t: ACCEPT }] },
    });
    assert.equal(engine(rs).decide(tcp4('INPUT')).verdict, 'accept');
  });

  it('a goto loop is bounded and drops', () => {
    const rs = filter({
      INPUT: { policy: 'ACCEPT', rules: [{ t: { goto: 'A' } }] },
      A: { rules: [{ t: { goto: 'A' } }] },
    });
    assert.equal(engine(rs).decide(tcp4('INPUT')).verdict, 'drop');
  });

  it('REJECT drops and returns the replies; NFQUEUE returns the queue', () => {
    const r = engine(filter({ INPUT: { rules: [{ t: REJECT }] } })).decide(tcp4('INPUT'));
    assert.equal(r.verdict, 'drop');
    assert.deepEqual(r.replies, [Uint8Array.of(1, 2, 3)]);
    const q = engine(filter({ INPUT: { rules: [{ t: NFQUEUE }] } })).decide(tcp4('INPUT'));
    assert.equal(q.verdict, 'queue');
    assert.equal(q.queue, 3);
  });

  it('no trace path is built unless asked for', () => {
    const d = engine(filter({ INPUT: { rules: [{ t: ACCEPT }] } })).decide(tcp4('INPUT'));
    assert.equal(d.path, undefined);
  });
});

describe('engine base matches', () => {
  function verdict(rule: Parameters<typeof filter>[0]['x']['rules'][number], input: PacketInput): string {
    const rs = filter({ [input.meta.hook]: { policy: 'ACCEPT', rules: [{ ...rule, t: DROP }] } });
    return engine(rs).decide(input).verdict;
  }

  it('-s/-d with masks and !', () => {
    assert.equal(verdict({ src: '198.18.0.0/24' }, tcp4('INPUT')), 'drop');
    assert.equal(verdict({ src: '198.18.0.0/24', notSrc: true }, tcp4('INPUT')), 'accept');
    assert.equal(verdict({ dst: '198.18.1.0/255.255.255.0' }, tcp4('INPUT')), 'drop');
    assert.equal(verdict({ dst: '198.18.2.0/24' }, tcp4('INPUT')), 'accept');
    assert.equal(verdict({ dst: '198.18.2.0/24', notDst: true }, tcp4('INPUT')), 'drop');
  });

  it('-i/-o exact, with +, and negated', () => {
    assert.equal(verdict({ in: 'eth0' }, tcp4('INPUT', { in: 'eth0' })), 'drop');
    assert.equal(verdict({ in: 'eth0' }, tcp4('INPUT', { in: 'eth01' })), 'accept');
    assert.equal(verdict({ in: 'eth+' }, tcp4('INPUT', { in: 'eth01' })), 'drop');
    assert.equal(verdict({ in: '+' }, tcp4('INPUT', {})), 'drop');
    assert.equal(verdict({ in: 'eth+', notIn: true }, tcp4('INPUT', { in: 'veth1' })), 'drop');
    assert.equal(verdict({ out: 'eth1' }, tcp4('FORWARD', { in: 'eth0', out: 'eth1' })), 'drop');
    assert.equal(verdict({ out: 'eth1', notOut: true }, tcp4('FORWARD', { in: 'eth0', out: 'eth1' })), 'accept');
  });

  it('-p number, all (0), and !', () => {
    assert.equal(verdict({ proto: 6 }, tcp4('INPUT')), 'drop');
    assert.equal(verdict({ proto: 17 }, tcp4('INPUT')), 'accept');
    assert.equal(verdict({ proto: 6, notProto: true }, tcp4('INPUT')), 'accept');
    assert.equal(verdict({ proto: 17, notProto: true }, tcp4('INPUT')), 'drop');
    assert.equal(verdict({ proto: 0 }, tcp4('INPUT')), 'drop');
  });

  it('-f matches only later fragments', () => {
    const first = tcp4('INPUT');
    const later = tcp4('INPUT');
    later.data[6] = 0x00;
    later.data[7] = 0x02; // offset 16 bytes
    assert.equal(verdict({ fragment: true }, first), 'accept');
    assert.equal(verdict({ fragment: true }, later), 'drop');
    assert.equal(verdict({ fragment: true, notFragment: true }, first), 'drop');
    assert.equal(verdict({ fragment: true, notFragment: true }, later), 'accept');
  });

  it('IPv6 -p finds the protocol after extension headers and hotdrops a broken chain', () => {
    const src = parseIpAddr('2001:db8::1', 6)!;
    const dst = parseIpAddr('2001:db8::2', 6)!;
    const base = craftPacket({ family: 6, src, dst, proto: 17, sport: 1, dport: 53 });
    // Insert a hop-by-hop header (8 bytes) before UDP.
    const withHbh = new Uint8Array(base.length + 8);
    withHbh.set(base.subarray(0, 40));
    withHbh[6] = 0;
    withHbh[40] = 17;
    withHbh[41] = 0;
    withHbh.set(base.subarray(40), 48);
    withHbh[5] += 8;
    const rs6 = ruleset(6, { filter: { INPUT: { rules: [{ proto: 17, t: DROP }] } } });
    const e = new Engine({ rules6: rs6, host: new StaticHost(), sets: new EmptySets() });
    const meta = { hook: 'INPUT' as const, mark: 0, pktType: 'unicast' as const };
    assert.equal(e.decide({ family: 6, data: withHbh, meta }).verdict, 'drop');
    const rsTcp = ruleset(6, { filter: { INPUT: { rules: [{ proto: 6, t: DROP }] } } });
    const e2 = new Engine({ rules6: rsTcp, host: new StaticHost(), sets: new EmptySets() });
    assert.equal(e2.decide({ family: 6, data: withHbh, meta }).verdict, 'accept');
    // Cut inside the hop-by-hop header's successor: a header says "routing" but the packet ends.
    const broken = withHbh.slice(0, 48);
    broken[40] = 43;
    assert.equal(e2.decide({ family: 6, data: broken, meta }).verdict, 'drop', 'hotdrop');
    assert.equal(chainOf(rsTcp, 'filter', 'INPUT').rules[0].counters.packets, 0, 'a hotdrop counts nothing');
  });
});

describe('engine extensions and state', () => {
  it('state values carry over by rule id across swaps', () => {
    const states: { n: number }[] = [];
    const counter = matchFn<{ n: number }>(
      'count',
      (ctx) => {
        const s = ctx.state as { n: number };
        s.n++;
        if (!states.includes(s)) states.push(s);
        return false;
      },
      () => ({ n: 0 }),
    );
    const build = (id: string) => filter({ INPUT: { rules: [{ id, matches: [counter] }] } });
    const e = engine(build('r1'));
    const input = tcp4('INPUT');
    e.decide(input);
    e.swap(build('r1'));
    e.decide(input);
    assert.equal(states.length, 1);
    assert.equal(states[0].n, 2);
    e.swap(build('r2'));
    e.decide(input);
    assert.equal(states.length, 2);
    assert.equal(states[1].n, 1);
  });

  it('a match that sets hotdrop drops the packet at once, uncounted', () => {
    const hot = matchFn('hot', (ctx) => ((ctx.hotdrop = true), false));
    const rs = filter({ INPUT: { policy: 'ACCEPT', rules: [{ matches: [hot], t: ACCEPT }, { t: ACCEPT }] } });
    const d = engine(rs).decide(tcp4('INPUT'), { trace: true });
    assert.equal(d.verdict, 'drop');
    assert.deepEqual(d.path?.map((s) => `${s.rule}:${s.result}`), ['1:drop']);
    const c = chainOf(rs, 'filter', 'INPUT');
    assert.deepEqual([c.rules[0].counters.packets, c.rules[1].counters.packets, c.counters.packets], [0, 0, 0]);
  });

  it('exceptions from an extension propagate', () => {
    const boom = matchFn('boom', () => {
      throw new Error('boom');
    });
    const e = engine(filter({ INPUT: { rules: [{ matches: [boom] }] } }));
    assert.throws(() => e.decide(tcp4('INPUT')), /boom/);
  });

  it('a target that rewrites yields the payload and later rules see the new header', () => {
    const setTtl = (ctx: Parameters<NonNullable<typeof ACCEPT.apply>>[1]) => {
      ctx.pkt.data[8] = 5;
      ctx.rewritten = true;
    };
    const TTL5 = { ...MARK(0), name: 'TTL', apply: (_o: null, ctx: Parameters<typeof setTtl>[0]) => (setTtl(ctx), { verdict: 'continue' as const }) };
    const ttlIs5 = matchFn('ttl', (ctx) => ctx.pkt.ttl === 5);
    const rs = ruleset(4, { mangle: { INPUT: { rules: [{ t: TTL5 }, { matches: [ttlIs5], t: DROP }] } } });
    const input = tcp4('INPUT');
    const before = input.data.slice();
    const d = engine(rs).decide(input);
    assert.equal(d.verdict, 'drop');
    assert.equal(d.payload?.[8], 5);
    assert.deepEqual(input.data, before, 'the input is not modified');
  });
});
