// nfqwall trace: the filter, the nft-style formatter, the hub's selection and rate limit, the processor's wiring.
import assert from 'node:assert/strict';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import { Engine } from '../../src/engine/engine';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import type { Family, Hook, Ruleset } from '../../src/rules/model';
import { parseIpAddr } from '../../src/rules/addr';
import { parseRuleset } from '../../src/rules/parse';
import {
  filterMatches,
  formatPacket,
  formatTrace,
  parseTraceFilter,
  TraceHub,
  type TraceEvent,
} from '../../src/daemon/trace';
import { cliFilter, renderStreamLine } from '../../src/cli/trace';

function addr(s: string, family: Family): Uint8Array {
  const a = parseIpAddr(s, family);
  if (a === undefined) throw new Error(`bad address ${s}`);
  return a;
}

function udp(opts: { src?: string; dst?: string; sport?: number; dport: number; hook?: Hook; in?: string; out?: string; family?: Family }): PacketInput {
  const family = opts.family ?? 4;
  const src = opts.src ?? (family === 4 ? '198.18.0.2' : '2001:db8::2');
  const dst = opts.dst ?? (family === 4 ? '198.19.0.2' : '2001:db8:1::2');
  return {
    family,
    data: craftPacket({ family, src: addr(src, family), dst: addr(dst, family), proto: 17, sport: opts.sport ?? 40000, dport: opts.dport }),
    meta: { hook: opts.hook ?? 'FORWARD', inIface: opts.in ?? 'to-client', outIface: opts.out ?? 'to-server', mark: 0, pktType: 'unicast' },
  };
}

const RULES = `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 5002 -j TRACE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:udpin - [0:0]
-A FORWARD -p udp -j udpin
-A udpin -p udp -m udp --dport 5001 -j DROP
-A udpin -p udp -m udp --dport 5003 -j RETURN
COMMIT
`;

function load(text = RULES): { rules: Ruleset; engine: Engine } {
  const rules = parseRuleset(text, 'trace.rules');
  return { rules, engine: new Engine({ rules4: rules, host: new StaticHost(), sets: new EmptySets() }) };
}

describe('trace filter', () => {
  it('validates fields, protocols, addresses and ports', () => {
    assert.deepEqual(parseTraceFilter({}), {});
    assert.equal(parseTraceFilter({ proto: 'udp' }).proto, 17);
    assert.equal(parseTraceFilter({ proto: 6 }).proto, 6);
    assert.equal(parseTraceFilter({ src: '2001:db8::/32' }).family, 6);
    assert.throws(() => parseTraceFilter({ dport: 70000 }), /"dport" must be a port/);
    assert.throws(() => parseTraceFilter({ sport: '53' }), /"sport" must be a port/);
    assert.throws(() => parseTraceFilter({ proto: 'nosuch' }), /unknown protocol/);
    assert.throws(() => parseTraceFilter({ port: 1 }), /unknown field "port"/);
    assert.throws(() => parseTraceFilter({ src: '198.18.0.300' }), /"src"/);
    assert.throws(() => parseTraceFilter({ family: 4, dst: '2001:db8::1' }), /not an IPv4 address/);
    assert.throws(() => parseTraceFilter({ iface: 'a b' }), /interface name/);
  });

  it('selects packets by port, protocol, address, interface and family', () => {
    const p = udp({ dport: 5001 });
    const yes = [{ dport: 5001 }, { proto: 'udp', sport: 40000 }, { src: '198.18.0.0/24' }, { dst: '198.19.0.2' }, { iface: 'to-server' }, { family: 4 }];
    const no = [{ dport: 5000 }, { proto: 'tcp' }, { src: '198.19.0.0/16' }, { iface: 'eth9' }, { family: 6 }, { sport: 1 }];
    for (const f of yes) assert.equal(filterMatches(parseTraceFilter(f), p), true, JSON.stringify(f));
    for (const f of no) assert.equal(filterMatches(parseTraceFilter(f), p), false, JSON.stringify(f));
    const p6 = udp({ dport: 5001, family: 6 });
    assert.equal(filterMatches(parseTraceFilter({ dst: '2001:db8:1::/48', dport: 5001 }), p6), true);
    assert.equal(filterMatches(parseTraceFilter({ dport: 5001, family: 4 }), p6), false);
  });

  it('the command line builds the same filter and refuses bad input before connecting', () => {
    assert.deepEqual(cliFilter({ control: 'x', dport: '5001', proto: 'udp', ipv4: true }), { family: 4, proto: 'udp', dport: 5001 });
    assert.deepEqual(cliFilter({ control: 'x', proto: '17' }), { proto: 17 });
    assert.throws(() => cliFilter({ control: 'x', dport: 'http' }), /--dport/);
    assert.throws(() => cliFilter({ control: 'x', ipv4: true, ipv6: true }), /-4 or -6/);
    assert.throws(() => cliFilter({ control: 'x', src: 'nonsense' }), /"src"/);
  });
});

describe('trace formatter', () => {
  it('prints the packet as nft monitor trace does', () => {
    assert.equal(
      formatPacket(udp({ dport: 5001 })),
      'iif "to-client" oif "to-server" ip saddr 198.18.0.2 ip daddr 198.19.0.2 udp sport 40000 dport 5001',
    );
    assert.equal(
      formatPacket(udp({ dport: 53, family: 6, in: 'eth0' })),
      'iif "eth0" oif "to-server" ip6 saddr 2001:db8::2 ip6 daddr 2001:db8:1::2 udp sport 40000 dport 53',
    );
  });

  it('prints each step: packet line, jump, the rule in iptables-save form with its verdict, policy', () => {
    const { rules, engine } = load();
    const drop = udp({ dport: 5001 });
    const d = engine.decide(drop, { trace: true });
    assert.deepEqual(formatTrace('0000abcd', drop, d.path ?? [], rules), [
      'trace id 0000abcd ip filter FORWARD packet: iif "to-client" oif "to-server" ip saddr 198.18.0.2 ip daddr 198.19.0.2 udp sport 40000 dport 5001',
      'trace id 0000abcd ip filter FORWARD rule -A FORWARD -p udp -j udpin (verdict jump udpin)',
      'trace id 0000abcd ip filter udpin rule -A udpin -p udp -m udp --dport 5001 -j DROP (verdict drop)',
    ]);
    const ret = udp({ dport: 5003 });
    const d2 = engine.decide(ret, { trace: true });
    assert.deepEqual(formatTrace('1', ret, d2.path ?? [], rules).slice(2), [
      'trace id 1 ip filter udpin rule -A udpin -p udp -m udp --dport 5003 -j RETURN (verdict return)',
      'trace id 1 ip filter FORWARD policy accept',
    ]);
  });

  it('the client prints trace lines on stdout and suppression reports on stderr', () => {
    const ev: TraceEvent = { id: 'a', family: 4, hook: 'FORWARD', verdict: 'drop', marked: false, lines: ['l1', 'l2'] };
    assert.deepEqual(renderStreamLine(JSON.stringify({ trace: ev }), false), { out: 'l1\nl2\n', err: '' });
    assert.deepEqual(renderStreamLine(JSON.stringify({ trace: ev }), true), { out: JSON.stringify(ev) + '\n', err: '' });
    assert.deepEqual(renderStreamLine('{"suppressed":7}', false), { out: '', err: 'trace: 7 events suppressed\n' });
  });
});

/** A subscriber that collects what the hub sends. */
function collector(): { events: TraceEvent[]; suppressed: number[]; write(line: string): boolean } {
  const c = {
    events: [] as TraceEvent[],
    suppressed: [] as number[],
    write(line: string): boolean {
      const m = JSON.parse(line) as { trace?: TraceEvent; suppressed?: number };
      if (m.trace) c.events.push(m.trace);
      if (m.suppressed !== undefined) c.suppressed.push(m.suppressed);
      return true;
    },
  };
  return c;
}

describe('trace hub', () => {
  it('is inactive until someone subscribes, and again once they leave', () => {
    const { rules } = load();
    const hub = new TraceHub(() => rules);
    assert.equal(hub.active, false);
    const off = hub.subscribe(parseTraceFilter({ dport: 5001 }), collector());
    assert.equal(hub.active, true);
    assert.equal(hub.stats.subscribers, 1);
    off();
    assert.equal(hub.active, false);
    assert.equal(hub.stats.subscribers, 0);
  });

  it('a filter gets the packets it matches; no filter gets only TRACE-marked packets', () => {
    const { rules, engine } = load();
    const hub = new TraceHub(() => rules);
    const filtered = collector();
    const all = collector();
    hub.subscribe(parseTraceFilter({ dport: 5001 }), filtered);
    hub.subscribe({}, all);
    const run = (p: PacketInput): void => {
      const d = hub.wants(p) ? engine.decide(p, { trace: true }) : engine.decide(p);
      hub.publish(p, d);
    };
    run(udp({ dport: 5000 }));
    run(udp({ dport: 5001 }));
    run(udp({ dport: 5002, hook: 'PREROUTING', out: undefined }));
    assert.deepEqual(filtered.events.map((e) => e.verdict), ['drop']);
    assert.match(filtered.events[0]!.lines.at(-1)!, /--dport 5001 -j DROP \(verdict drop\)$/);
    assert.equal(all.events.length, 1);
    assert.equal(all.events[0]!.marked, true);
    assert.equal(all.events[0]!.hook, 'PREROUTING');
    assert.ok(all.events[0]!.lines.some((l) => / ip raw PREROUTING rule -A PREROUTING -p udp -m udp --dport 5002 -j TRACE \(verdict continue\)$/.test(l)));
    assert.match(all.events[0]!.lines.at(-1)!, / ip raw PREROUTING policy accept$/);
  });

  it('without a TRACE rule only filtered packets are decided with a path', () => {
    const { rules } = load(RULES.replace(/-A PREROUTING .*-j TRACE\n/, ''));
    const hub = new TraceHub(() => rules);
    hub.subscribe(parseTraceFilter({ dport: 5001 }), collector());
    hub.subscribe({}, collector());
    assert.equal(hub.wants(udp({ dport: 5001 })), true);
    assert.equal(hub.wants(udp({ dport: 5000 })), false);
  });

  it('sends at most `rate` events a second per subscriber and reports the rest', () => {
    const { rules, engine } = load();
    let now = 0;
    const hub = new TraceHub(() => rules, () => now);
    const c = collector();
    hub.subscribe(parseTraceFilter({ dport: 5001 }), c, 3);
    const p = udp({ dport: 5001 });
    for (let i = 0; i < 10; i++) hub.publish(p, engine.decide(p, { trace: true }));
    assert.equal(c.events.length, 3);
    assert.equal(hub.stats.suppressed, 7);
    now = 1500;
    hub.tick();
    assert.deepEqual(c.suppressed, [7]);
    hub.publish(p, engine.decide(p, { trace: true }));
    assert.equal(c.events.length, 4);
    assert.equal(new Set(c.events.map((e) => e.id)).size, 4, 'each event has its own trace id');
  });
});
