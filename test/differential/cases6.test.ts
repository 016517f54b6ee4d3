// IPv6: small hand-made rulesets through the kernel (ip6tables) and through nfqwall (--rules6).
import assert from 'node:assert/strict';
import { isRoot } from '../lab/lab';
import { sleep } from '../lab/daemon';
import { compareCounters, compareWire, hitRules } from './compare';
import { createPair, ORACLE_MODE, type DiffSide } from './harness';
import { build, type PacketSpec } from './packets';
import { skipBecause } from '../lab/lab';

function pkt(over: Partial<PacketSpec>): PacketSpec {
  return {
    dir: 'fwd-cs', src: '2001:db8::2', dst: '2001:db8:1::2', proto: 17, sport: 40000, dport: 80, flags: 2,
    icmpType: 128, icmpCode: 0, ttl: 64, tos: 0, payloadLen: 4, ...over,
  };
}
const IN = { dir: 'in-c', dst: '2001:db8::1' } as const;
const OUT = { dir: 'out', src: '2001:db8:1::1', dst: '2001:db8:1::3' } as const;

interface Case {
  title: string;
  rules: string;
  packets: PacketSpec[];
  unmatched?: number;
  /** Meaningless against an untracked kernel (NFQW_ORACLE=notrack). */
  conntrackOnly?: boolean;
}

/** The reply of a forwarded packet: the other way, addresses and ports swapped. */
function reply(p: PacketSpec, over: Partial<PacketSpec>): PacketSpec {
  return { ...p, dir: p.dir === 'fwd-cs' ? 'fwd-sc' : 'fwd-cs', src: p.dst, dst: p.src, sport: p.dport, dport: p.sport, ...over };
}

const SYN = pkt({ proto: 6, flags: 0x02, payloadLen: 0, seq: 1000 });
const UDP_A = pkt({ sport: 40001, dport: 53 });
const UDP_B = pkt({ src: '2001:db8::3', sport: 5353, dport: 40000 });
const PING = pkt({ proto: 58, icmpType: 128, payloadLen: 8 });

const CASES: Case[] = [
  {
    title: 'IPv6 verdicts: addresses and masks, -i/-o, ports, tcp flags, icmpv6 types, hl, policies',
    rules: `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:U1 - [0:0]
-A INPUT -p udp -m udp --dport 81 -j DROP
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -m hl --hl-lt 10 -j DROP
-A FORWARD -s 2001:db8::/120 -d 2001:db8:1::/64 -i to-client -o to-server -j U1
-A FORWARD -s 2001:db8:1::2/128 -p ipv6-icmp -m icmp6 --icmpv6-type 129 -j ACCEPT
-A U1 -p udp -m multiport --dports 80,443 -j ACCEPT
-A U1 -p tcp -m tcp --tcp-flags SYN,ACK SYN -m hl --hl-eq 64 -j ACCEPT
-A U1 ! -s 2001:db8::66/128 -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT
-A OUTPUT -d 2001:db8:1::3/128 -p udp -j DROP
COMMIT
`,
    packets: [
      pkt({}),
      pkt({ dport: 81 }),
      pkt({ dport: 443 }),
      pkt({ proto: 6, flags: 0x02, payloadLen: 0 }),
      pkt({ proto: 6, flags: 0x02, payloadLen: 0, ttl: 65 }),
      pkt({ proto: 6, flags: 0x12, payloadLen: 0 }),
      pkt({ proto: 58, icmpType: 128 }),
      pkt({ proto: 58, icmpType: 128, src: '2001:db8::66' }),
      pkt({ dir: 'fwd-sc', src: '2001:db8:1::2', dst: '2001:db8::2', proto: 58, icmpType: 129 }),
      pkt({ dir: 'fwd-sc', src: '2001:db8:1::3', dst: '2001:db8::2', proto: 58, icmpType: 129 }),
      pkt({ ...IN, dport: 81 }),
      pkt({ ...IN, dport: 82 }),
      pkt({ ...IN, proto: 58, icmpType: 128, ttl: 5 }),
      pkt({ ...IN, proto: 58, icmpType: 128 }),
      pkt({ ...OUT }),
      pkt({ ...OUT, dst: '2001:db8:1::2' }),
    ],
  },
  {
    title: 'IPv6 REJECT replies: icmp6-port-unreachable, icmp6-adm-prohibited, icmp6-addr-unreachable, icmp6-no-route, tcp-reset',
    rules: `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 84 -j REJECT --reject-with icmp6-adm-prohibited
-A INPUT -p tcp -m tcp --dport 85 -j REJECT --reject-with tcp-reset
-A FORWARD -p tcp -m tcp --dport 82 -j REJECT --reject-with tcp-reset
-A FORWARD -p udp -m udp --dport 83 -j REJECT
-A FORWARD -p udp -m udp --dport 86 -j REJECT --reject-with icmp6-addr-unreachable
-A FORWARD -p udp -m udp --dport 87 -j REJECT --reject-with icmp6-no-route
-A OUTPUT -p udp -m udp --dport 88 -j REJECT --reject-with icmp6-adm-prohibited
COMMIT
`,
    packets: [
      pkt({ proto: 6, dport: 82, flags: 0x02, payloadLen: 0 }),
      pkt({ proto: 6, dport: 82, flags: 0x18, payloadLen: 10 }),
      pkt({ dport: 83 }),
      pkt({ dport: 86, payloadLen: 100 }),
      pkt({ dport: 87 }),
      pkt({ ...IN, dport: 84 }),
      pkt({ ...IN, proto: 6, dport: 85, flags: 0x02, payloadLen: 0 }),
      pkt({ ...OUT, dport: 88 }),
    ],
  },
  {
    title: 'IPv6 mangle: HL set/dec/inc, TOS/DSCP (traffic class), MARK then -m mark',
    rules: `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 80 -j HL --hl-set 9
-A PREROUTING -p udp -m udp --dport 81 -j HL --hl-dec 2
-A FORWARD -p udp -m udp --dport 82 -j HL --hl-inc 3
-A POSTROUTING -p udp -m udp --dport 83 -j TOS --set-tos 0x10
-A POSTROUTING -p udp -m udp --dport 84 -j DSCP --set-dscp 0x2e
-A PREROUTING -p udp -m udp --dport 87 -j MARK --set-xmark 0x7/0xffffffff
-A FORWARD -m mark --mark 0x7 -j TOS --set-tos 0x08/0x0f
-A OUTPUT -p udp -m udp --dport 85 -j HL --hl-set 1
COMMIT
`,
    packets: [
      ...[80, 81, 82, 83, 84, 87, 88].map((dport) => pkt({ dport, tos: 0xfc })),
      pkt({ ...IN, dport: 81 }),
      pkt({ ...OUT, dport: 85 }),
    ],
  },
  {
    title: 'IPv6 connection states over real exchanges (TCP handshake, UDP, ICMPv6 echo and errors), and DNAT',
    conntrackOnly: true,
    rules: `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i to-client -p udp -m udp --dport 8080 -j DNAT --to-destination [2001:db8:1::3]:80
-A POSTROUTING -o to-server -p udp -m udp --dport 81 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate NEW
-A INPUT -m conntrack --ctstate INVALID
-A FORWARD -m conntrack --ctstate NEW
-A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir REPLY
-A FORWARD -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL
-A FORWARD -m conntrack --ctstate RELATED
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -m conntrack --ctstate DNAT
-A FORWARD -m state --state RELATED,ESTABLISHED -j ACCEPT
-A OUTPUT -m conntrack --ctstate ESTABLISHED
COMMIT
`,
    packets: [
      SYN,
      reply(SYN, { flags: 0x12, seq: 5000, ack: 1001 }),
      pkt({ proto: 6, flags: 0x10, payloadLen: 0, seq: 1001, ack: 5001 }),
      UDP_A,
      reply(UDP_A, {}),
      UDP_A,
      UDP_B,
      pkt({ dir: 'fwd-sc', src: '2001:db8:1::2', dst: '2001:db8::3', proto: 58, icmpType: 1, icmpCode: 4, payloadLen: 48 }),
      pkt({ dir: 'fwd-sc', src: '2001:db8:1::3', dst: '2001:db8::66', proto: 58, icmpType: 1, icmpCode: 4, payloadLen: 48 }),
      PING,
      reply(PING, { icmpType: 129 }),
      pkt({ dir: 'fwd-sc', src: '2001:db8:1::66', dst: '2001:db8::66', proto: 58, icmpType: 129, payloadLen: 8 }),
      pkt({ ...IN, proto: 58, icmpType: 128, payloadLen: 8 }),
      pkt({ ...IN, proto: 58, icmpType: 129, payloadLen: 8 }),
      pkt({ dport: 8080 }),
      pkt({ dir: 'fwd-sc', src: '2001:db8:1::3', dst: '2001:db8::2', sport: 80, dport: 40000 }),
      pkt({ dport: 81 }),
      pkt({ dir: 'fwd-sc', src: '2001:db8:1::2', dst: '2001:db8:1::1', sport: 81, dport: 40000 }),
    ],
  },
];

describe('differential: IPv6 cases, kernel vs nfqwall', function () {
  let pair: { kernel: DiffSide; nfqwall: DiffSide } | undefined;
  before(async function () {
    this.timeout(120_000);
    if (!isRoot()) {
      process.stderr.write('differential: skipping: network-namespace tests need root\n');
      this.skip();
    }
    pair = await createPair();
    // A new link's MLD reports go out during its first second or two; fw would count its own.
    await sleep(2500);
  });
  after(async function () {
    this.timeout(60_000);
    if (pair) await Promise.allSettled([pair.kernel.destroy(), pair.nfqwall.destroy()]);
  });

  for (const c of CASES) {
    it(c.title, async function () {
      this.timeout(60_000);
      skipBecause(this, c.title, c.conntrackOnly && ORACLE_MODE !== 'conntrack' ? 'needs the tracking oracle (NFQW_ORACLE=notrack is set)' : undefined);
      const p = pair!;
      const items = c.packets.map((s, i) => build(s, i));
      await Promise.all([p.kernel.load(c.rules, 6), p.nfqwall.load(c.rules, 6)]);
      const [k, n] = await Promise.all([p.kernel.run(items, 5), p.nfqwall.run(items, 5)]);
      const [ks, ns] = await Promise.all([p.kernel.save(6), p.nfqwall.save(6)]);
      const diffs = [...compareWire(c.packets, k, n), ...compareCounters(c.rules, ks, ns), ...(await p.nfqwall.selfReported())];
      assert.ok(diffs.length === 0, `${diffs.length} differences:\n  ${diffs.join('\n  ')}`);
      const cover = hitRules(ks, c.rules);
      assert.equal(cover.total - cover.hit, c.unmatched ?? 0, `rules the packets missed on the kernel side:\n${ks}`);
    });
  }
});
