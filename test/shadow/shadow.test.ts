import assert from 'node:assert/strict';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import { parseRuleset } from '../../src/rules/parse';
import { StaticRoutes } from '../../src/shadow/hookpath';
import { LINKTYPE } from '../../src/shadow/pcap';
import { CONNTRACK_NOTE, buildReport, formatReport, type ShadowReport } from '../../src/shadow/report';
import { Shadow, type Rulesets } from '../../src/shadow/shadow';
import { FW_MAC, PEER_MAC, eth, packet } from './helpers';

const CANDIDATE = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset
-A FORWARD -i to-client -o to-server -p udp -m udp --dport 5002 -j DROP
-A FORWARD -p udp -m conntrack --ctstate NEW -m udp --dport 5003 -j DROP
-A FORWARD -p udp -m udp --dport 9999 -j ACCEPT
-A OUTPUT -o to-client -j ACCEPT
COMMIT
`;

const AGAINST = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j DROP
-A FORWARD -p udp -m udp --dport 5001 -j DROP
-A FORWARD -p udp -m conntrack --ctstate NEW -m udp --dport 5003 -j DROP
COMMIT
`;

function rules(text: string): Rulesets {
  return { v4: parseRuleset(text, 'test.rules', { family: 4 }) };
}

function newShadow(candidate: string, against?: string, maxFlows?: number): Shadow {
  const s = new Shadow({
    candidate: rules(candidate),
    against: against === undefined ? undefined : rules(against),
    host: new StaticHost({ local: ['198.18.0.1', '198.19.0.1'] }),
    sets: new EmptySets(),
    routes: new StaticRoutes((_f, d) => (d.startsWith('198.18.') ? 'to-client' : d.startsWith('198.19.') ? 'to-server' : undefined)),
    ifaceMacs: new Map([['to-client', FW_MAC]]),
    maxFlows,
  });
  s.capture('to-client');
  return s;
}

const udp = (dst: string, dport: number) => packet('198.18.0.2', dst, { proto: 17, dport });
const tcp22 = packet('198.18.0.2', '198.18.0.1', { proto: 6, dport: 22, tcpFlags: 2 });
const fromFw = packet('198.18.0.1', '198.18.0.2', { proto: 17, sport: 53, dport: 40000 });

/** The synthetic traffic: [frame, count]. */
function traffic(): [Uint8Array, number][] {
  return [
    [eth(PEER_MAC, FW_MAC, udp('198.19.0.2', 5001)), 3],
    [eth(PEER_MAC, FW_MAC, udp('198.19.0.2', 5002)), 2],
    [eth(PEER_MAC, FW_MAC, udp('198.19.0.2', 5003)), 1],
    [eth(PEER_MAC, FW_MAC, udp('198.18.0.1', 53)), 1],
    [eth(PEER_MAC, FW_MAC, tcp22), 2],
    [eth(FW_MAC, PEER_MAC, fromFw), 1],
    // Unicast to another MAC: the IP layer never sees it.
    [eth(PEER_MAC, Uint8Array.from([2, 0, 0, 0, 0, 9]), udp('198.19.0.2', 5002)), 4],
    // ARP
    [Uint8Array.from([...FW_MAC, ...PEER_MAC, 0x08, 0x06, ...new Array<number>(28).fill(0)]), 1],
  ];
}

function feed(s: Shadow): void {
  for (const [data, n] of traffic())
    for (let i = 0; i < n; i++) s.process({ iface: 'to-client', linktype: LINKTYPE.ETHERNET, data, origLength: data.length });
}

function report(s: Shadow): ShadowReport {
  // Through JSON, as --json prints it.
  return JSON.parse(JSON.stringify(buildReport(s, { source: 'test', seconds: 1 }))) as ShadowReport;
}

describe('shadow: evaluation and report', () => {
  const len = (p: Uint8Array) => p.length;

  it('counts each rule as the kernel would on the reconstructed hook path', () => {
    const s = newShadow(CANDIDATE);
    feed(s);
    assert.equal(s.stats.frames, 15);
    assert.equal(s.stats.evaluated, 10);
    assert.equal(s.stats.skipped.get('addressed to another host (never reaches IP)'), 4);
    assert.equal(s.stats.skipped.get('not IPv4 or IPv6'), 1);
    assert.deepEqual(s.stats.verdicts, { accept: 5, drop: 3, reject: 2, queue: 0 });
    const saved = report(s).counters.v4 ?? '';
    const u = len(udp('198.19.0.2', 5001));
    assert.match(saved, new RegExp(`^:FORWARD ACCEPT \\[3:${3 * u}\\]$`, 'm'));
    assert.match(saved, new RegExp(`^:INPUT ACCEPT \\[0:0\\]$`, 'm'));
    assert.ok(saved.includes(`[1:${u}] -A INPUT -p udp -m udp --dport 53 -j ACCEPT`), saved);
    assert.ok(saved.includes(`[2:${2 * len(tcp22)}] -A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset`), saved);
    assert.ok(saved.includes(`[2:${2 * u}] -A FORWARD -i to-client -o to-server -p udp -m udp --dport 5002 -j DROP`), saved);
    assert.ok(saved.includes(`[1:${u}] -A FORWARD -p udp -m conntrack --ctstate NEW -m udp --dport 5003 -j DROP`), saved);
    assert.ok(saved.includes(`[0:0] -A FORWARD -p udp -m udp --dport 9999 -j ACCEPT`), saved);
    assert.ok(saved.includes(`[1:${len(fromFw)}] -A OUTPUT -o to-client -j ACCEPT`), saved);
  });

  it('groups the flows it would stop, with the rule responsible, and lists rules never hit', () => {
    const s = newShadow(CANDIDATE);
    feed(s);
    const r = report(s);
    assert.deepEqual(
      r.wouldStop.map((f) => [f.proto, f.src, f.dst, f.dport, f.packets, f.verdict, f.hook, f.rule?.chain, f.rule?.rule]),
      [
        ['tcp', '198.18.0.2', '198.18.0.1', 22, 2, 'reject', 'INPUT', 'INPUT', 2],
        ['udp', '198.18.0.2', '198.19.0.2', 5002, 2, 'drop', 'FORWARD', 'FORWARD', 1],
        ['udp', '198.18.0.2', '198.19.0.2', 5003, 1, 'drop', 'FORWARD', 'FORWARD', 2],
      ],
    );
    assert.equal(r.wouldStop[1].rule?.text, '-A FORWARD -i to-client -o to-server -p udp -m udp --dport 5002 -j DROP');
    assert.deepEqual(r.neverHit.map((h) => h.text), ['-A FORWARD -p udp -m udp --dport 9999 -j ACCEPT']);
    assert.equal(r.differing, undefined);
    const text = formatReport(r);
    assert.ok(text.includes(CONNTRACK_NOTE));
    assert.ok(text.includes('udp 198.18.0.2 -> 198.19.0.2 dport 5002: 2 packets'), text);
    assert.ok(text.includes('DROP at FORWARD by filter/FORWARD#1: -A FORWARD -i to-client'), text);
    assert.ok(text.includes('## Rules never hit (1)'), text);
    assert.ok(text.includes('10 packets evaluated: 5 accepted, 3 dropped, 2 rejected'), text);
  });

  it('--against lists exactly the flows whose fate differs, with both rules', () => {
    const s = newShadow(CANDIDATE, AGAINST);
    feed(s);
    const d = report(s).differing;
    assert.ok(d);
    assert.equal(d.packets, 7);
    const rows = d.flows.map((f) => [f.dport, f.packets, f.verdict, f.rule?.chain ?? null, f.rule?.rule ?? null, f.against?.verdict, f.against?.rule?.rule ?? null]);
    assert.deepEqual(rows, [
      [5001, 3, 'accept', 'FORWARD', 0, 'drop', 1],
      [22, 2, 'reject', 'INPUT', 2, 'drop', 2],
      [5002, 2, 'drop', 'FORWARD', 1, 'accept', 0],
    ]);
    assert.equal(d.flows[0].rule?.text, ':FORWARD ACCEPT');
    const text = formatReport(report(s));
    assert.ok(text.includes('against:   DROP at FORWARD by filter/FORWARD#1: -A FORWARD -p udp -m udp --dport 5001 -j DROP'), text);
    // The two rulesets count separately.
    assert.match(report(s).againstCounters?.v4 ?? '', /\[3:\d+\] -A FORWARD -p udp -m udp --dport 5001 -j DROP/);
  });

  it('bounds the flow table and counts what did not fit', () => {
    const s = newShadow(CANDIDATE, AGAINST, 1);
    feed(s);
    const r = report(s);
    assert.equal(r.wouldStop.length, 1);
    assert.equal(r.wouldStop[0].packets + r.flowOverflow, 5);
    assert.equal(r.differing?.flows.length, 1);
    assert.equal((r.differing?.flows[0].packets ?? 0) + (r.differing?.overflow ?? 0), 7);
    assert.match(formatReport(r), /packets not grouped: flow table full/);
  });

  it('carries the mark from one hook to the next, as the kernel keeps skb->mark', () => {
    const s = newShadow(`*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 5001 -j MARK --set-xmark 0x7/0xffffffff
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m mark --mark 0x7 -j DROP
COMMIT
`);
    feed(s);
    const r = report(s);
    assert.deepEqual(r.wouldStop.filter((f) => f.verdict === 'drop').map((f) => [f.dport, f.packets, f.rule?.table, f.rule?.chain]), [[5001, 3, 'filter', 'FORWARD']]);
  });

  it('does not evaluate a family it has no ruleset for', () => {
    const s = newShadow(CANDIDATE);
    const v6 = eth(PEER_MAC, FW_MAC, packet('2001:db8::2', '2001:db8:1::2'));
    s.process({ iface: 'to-client', linktype: LINKTYPE.ETHERNET, data: v6, origLength: v6.length });
    assert.equal(s.stats.evaluated, 0);
    assert.equal(s.stats.skipped.get('IPv6: no ruleset for this family'), 1);
  });
});
