// The shadow's own connection table: stateful rules and NAT judged from a crafted capture file, as the daemon would.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import { parseRuleset } from '../../src/rules/parse';
import { StaticRoutes } from '../../src/shadow/hookpath';
import { LINKTYPE, readCaptureFile, writePcap } from '../../src/shadow/pcap';
import { buildReport, formatReport, type ShadowReport } from '../../src/shadow/report';
import { Shadow } from '../../src/shadow/shadow';
import { PEER_MAC, packet, sll } from './helpers';

const CLIENT = '198.18.0.2';
const SERVER = '198.19.0.2';
const FW_CLIENT_SIDE = '198.18.0.1';

const SYN = 0x02;
const ACK = 0x10;

/** Linux cooked frames on fw's client-side interface: 0 = received by fw, 4 = sent by fw. */
const IN = 0;
const OUT = 4;

interface Rec {
  time: number;
  dir: number;
  l3: Uint8Array;
}

function tcp(src: string, sport: number, dst: string, dport: number, flags: number): Uint8Array {
  return packet(src, dst, { proto: 6, sport, dport, tcpFlags: flags, seq: 100, ack: flags & ACK ? 200 : 0 });
}

function udp(src: string, sport: number, dst: string, dport: number): Uint8Array {
  return packet(src, dst, { proto: 17, sport, dport });
}

/** Writes the records as a classic pcap file (cooked capture of fw's client-side interface) and reads it back. */
function replay(s: Shadow, recs: Rec[]): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nfqw-shadow-ct-'));
  try {
    const file = path.join(dir, 'capture.pcap');
    fs.writeFileSync(file, writePcap(LINKTYPE.LINUX_SLL, recs.map((r) => ({ time: r.time, data: sll(r.dir, PEER_MAC, r.l3) }))));
    for (const rec of readCaptureFile(file)) {
      s.process({ iface: 'to-client', linktype: rec.linktype, data: rec.data, origLength: rec.origLength, time: rec.time });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function shadow(candidate: string, against?: string): Shadow {
  const s = new Shadow({
    candidate: { v4: parseRuleset(candidate, 'candidate.rules', { family: 4 }) },
    against: against === undefined ? undefined : { v4: parseRuleset(against, 'against.rules', { family: 4 }) },
    host: new StaticHost({ local: [`${FW_CLIENT_SIDE}@to-client`, '198.19.0.1@to-server'] }),
    sets: new EmptySets(),
    routes: new StaticRoutes((_f, d) => (d.startsWith('198.18.') ? 'to-client' : d.startsWith('198.19.') ? 'to-server' : undefined)),
  });
  s.capture('to-client');
  return s;
}

function report(s: Shadow): ShadowReport {
  return JSON.parse(JSON.stringify(buildReport(s, { source: 'file test.pcap', seconds: 1 }))) as ShadowReport;
}

function counter(save: string, rule: string): number {
  const line = save.split('\n').find((l) => l.endsWith(rule));
  assert.ok(line, `no line ending in ${rule}:\n${save}`);
  const m = /^\[(\d+):\d+\]/.exec(line);
  assert.ok(m, line);
  return Number(m[1]);
}

const STATEFUL = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i to-client -o to-server -m conntrack --ctstate NEW -j ACCEPT
COMMIT
`;

describe('shadow: its own connection table', () => {
  it('accepts replies only of connections the client opened (ctstate from the shadow table)', () => {
    const s = shadow(STATEFUL);
    replay(s, [
      // The client opens a TCP connection; the server answers; the client acknowledges.
      { time: 1000.0, dir: IN, l3: tcp(CLIENT, 40000, SERVER, 80, SYN) },
      { time: 1000.1, dir: OUT, l3: tcp(SERVER, 80, CLIENT, 40000, SYN | ACK) },
      { time: 1000.2, dir: IN, l3: tcp(CLIENT, 40000, SERVER, 80, ACK) },
      // A UDP query and its answer.
      { time: 1001.0, dir: IN, l3: udp(CLIENT, 41000, SERVER, 53) },
      { time: 1001.1, dir: OUT, l3: udp(SERVER, 53, CLIENT, 41000) },
      // The server opens connections towards the client: NEW from the server side, which no rule accepts.
      { time: 1002.0, dir: OUT, l3: tcp(SERVER, 5555, CLIENT, 22, SYN) },
      { time: 1002.1, dir: OUT, l3: udp(SERVER, 53, CLIENT, 41999) },
      // An answer to the UDP query long after the connection expired (its 120 s timeout, on the capture's clock).
      { time: 1400.0, dir: OUT, l3: udp(SERVER, 53, CLIENT, 41000) },
    ]);
    const r = report(s);
    const save = r.counters.v4 ?? '';
    assert.equal(counter(save, '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'), 3);
    assert.equal(counter(save, '-A FORWARD -i to-client -o to-server -m conntrack --ctstate NEW -j ACCEPT'), 2);
    assert.match(save, /^:FORWARD DROP \[3:\d+\]$/m);
    assert.deepEqual(r.packets.states, { NEW: 5, ESTABLISHED: 3 });
    assert.deepEqual(
      r.wouldStop.map((f) => [f.proto, f.src, f.dst, f.dport, f.packets, f.verdict, f.rule?.chain, f.rule?.rule]).sort(),
      [
        ['tcp', SERVER, CLIENT, 22, 1, 'drop', 'FORWARD', 0],
        ['udp', SERVER, CLIENT, 41000, 1, 'drop', 'FORWARD', 0],
        ['udp', SERVER, CLIENT, 41999, 1, 'drop', 'FORWARD', 0],
      ],
    );
    assert.deepEqual(r.nat, []);
  });

  it('a ruleset without state rules differs exactly on the replies (--against)', () => {
    const open = STATEFUL.replace('-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n', '');
    const s = shadow(open, STATEFUL);
    replay(s, [
      { time: 1, dir: IN, l3: tcp(CLIENT, 40000, SERVER, 80, SYN) },
      { time: 1.1, dir: OUT, l3: tcp(SERVER, 80, CLIENT, 40000, SYN | ACK) },
      { time: 1.2, dir: IN, l3: tcp(CLIENT, 40000, SERVER, 80, ACK) },
      { time: 2, dir: OUT, l3: tcp(SERVER, 5555, CLIENT, 22, SYN) },
    ]);
    const d = report(s).differing;
    assert.ok(d);
    // The SYN-ACK and the ACK: dropped by the candidate's policy, accepted by the running rules' ESTABLISHED rule.
    // The server's own SYN is dropped by both, so it is not listed.
    assert.equal(d.packets, 2);
    assert.deepEqual(
      d.flows.map((f) => [f.src, f.dport, f.verdict, f.rule?.rule, f.against?.verdict, f.against?.rule?.text]).sort(),
      [
        [CLIENT, 80, 'drop', 0, 'accept', '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'],
        [SERVER, 40000, 'drop', 0, 'accept', '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'],
      ],
    );
  });

  it('shows the NAT of a DNATed connection\'s first packet, and routes it where the new destination goes', () => {
    const rules = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d ${FW_CLIENT_SIDE}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${SERVER}:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 8080 -j DROP
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -d ${SERVER}/32 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 -m tcp --dport 80 -j ACCEPT
COMMIT
`;
    const s = shadow(rules);
    replay(s, [
      { time: 5, dir: IN, l3: tcp(CLIENT, 40000, FW_CLIENT_SIDE, 8080, SYN) },
      // A retransmitted SYN: NEW again, translated by the table's binding without walking nat.
      { time: 5.9, dir: IN, l3: tcp(CLIENT, 40000, FW_CLIENT_SIDE, 8080, SYN) },
      { time: 6, dir: IN, l3: tcp(CLIENT, 40001, FW_CLIENT_SIDE, 8080, SYN) },
      // Not matched by DNAT: delivered locally and dropped by INPUT.
      { time: 7, dir: IN, l3: tcp(CLIENT, 40002, FW_CLIENT_SIDE, 8081, SYN) },
    ]);
    const r = report(s);
    assert.equal(r.nat.length, 1, JSON.stringify(r.nat));
    const n = r.nat[0];
    assert.deepEqual(
      [n.proto, n.src, n.dst, n.dport, n.toSrc, n.toDst, n.toDport, n.connections, n.verdict],
      ['tcp', CLIENT, FW_CLIENT_SIDE, 8080, CLIENT, SERVER, 80, 2, 'accept'],
    );
    assert.deepEqual(n.rules.map((x) => [x.table, x.chain, x.rule]), [['nat', 'PREROUTING', 1]]);
    const save = r.counters.v4 ?? '';
    // Only the first packet of each connection walks nat; the retransmission gets the binding from the table.
    assert.equal(counter(save, `-A PREROUTING -d ${FW_CLIENT_SIDE}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${SERVER}:80`), 2);
    assert.equal(counter(save, `-A FORWARD -d ${SERVER}/32 -p tcp -m conntrack --ctstate DNAT --ctorigdstport 8080 -m tcp --dport 80 -j ACCEPT`), 3);
    assert.equal(counter(save, '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'), 0);
    // The DNATed packets never reach INPUT: only the port-8081 SYN does (and is not DROPped by the 8080 rule).
    assert.equal(counter(save, '-A INPUT -p tcp -m tcp --dport 8080 -j DROP'), 0);
    assert.match(save, /^:INPUT ACCEPT \[1:\d+\]$/m);
    assert.deepEqual(r.packets.states, { NEW: 4 });
    assert.deepEqual(r.packets.paths, { 'forward (rerouted by NAT)': 3, 'local-in': 1 });
    const text = formatReport(r);
    assert.ok(text.includes(`tcp ${CLIENT} -> ${FW_CLIENT_SIDE}:8080 becomes ${CLIENT} -> ${SERVER}:80: 2 connections`), text);
    assert.ok(text.includes(`by nat/PREROUTING#1: -A PREROUTING -d ${FW_CLIENT_SIDE}/32`), text);
  });

  it('evaluates a reply captured after the host\'s own NAT as it arrived: forwarded and ESTABLISHED, not the host\'s output', () => {
    const rules = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d ${FW_CLIENT_SIDE}/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination ${SERVER}:80
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -d ${SERVER}/32 -p tcp -m conntrack --ctstate NEW -m tcp --dport 80 -j ACCEPT
COMMIT
`;
    const s = shadow(rules);
    replay(s, [
      { time: 5, dir: IN, l3: tcp(CLIENT, 40000, FW_CLIENT_SIDE, 8080, SYN) },
      // On the client side the server's answer leaves with the address the client asked for (the host undid the DNAT).
      { time: 5.1, dir: OUT, l3: tcp(FW_CLIENT_SIDE, 8080, CLIENT, 40000, SYN | ACK) },
      { time: 5.2, dir: IN, l3: tcp(CLIENT, 40000, FW_CLIENT_SIDE, 8080, ACK) },
      // The host's own traffic to the client is still its output (no binding matches it): dropped by OUTPUT's policy.
      { time: 6, dir: OUT, l3: tcp(FW_CLIENT_SIDE, 33000, CLIENT, 22, SYN) },
    ]);
    const r = report(s);
    const save = r.counters.v4 ?? '';
    assert.equal(r.packets.unNatted, 1);
    assert.equal(counter(save, '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'), 2);
    assert.equal(counter(save, `-A FORWARD -d ${SERVER}/32 -p tcp -m conntrack --ctstate NEW -m tcp --dport 80 -j ACCEPT`), 1);
    assert.match(save, /^:OUTPUT DROP \[1:\d+\]$/m);
    assert.match(save, /^:INPUT DROP \[0:0\]$/m);
    assert.deepEqual(r.packets.states, { NEW: 2, ESTABLISHED: 2 });
    assert.deepEqual(r.wouldStop.map((f) => [f.src, f.dport, f.verdict, f.hook]), [[FW_CLIENT_SIDE, 22, 'drop', 'OUTPUT']]);
  });

  it('says libpcap drops are not reported rather than printing a zero', () => {
    const s = shadow(STATEFUL);
    const text = formatReport(buildReport(s, { source: 'live on to-client', seconds: 1 }));
    assert.match(text, /^# drops: not reported by libpcap binding/m);
    assert.match(text, /; drops: not reported by libpcap binding$/m);
    assert.doesNotMatch(text, /drops: 0/);
    const counted = formatReport(buildReport(s, { source: 'live on to-client', seconds: 1, captureDrops: 7 }));
    assert.match(counted, /^# drops: 7/m);
  });
});
