// Writes the matcher fuzz target's seeds (fuzz/corpus/matcher/, the layout fuzz/matcher_fuzz.cc reads): small real
// rulesets compiled by src/compile/program.ts, each with a packet and connection aimed at its rules, so a short run
// starts from valid programs. Run `npx tsx fuzz/matcher-seeds.ts` again after changing the program format; the files
// are committed.
import fs from 'node:fs';
import path from 'node:path';
import { compileProgram } from '../src/compile/program';
import { craftPacket } from '../src/engine/craft';
import { parseIpAddr } from '../src/rules/addr';
import { parseRuleset } from '../src/rules/parse';

const OUT = path.join(__dirname, 'corpus', 'matcher');

const FILTER4 = `*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p udp -m udp --dport 53 -j MARK --set-xmark 0x7/0xff
-A PREROUTING -m conntrack --ctstate NEW --ctdir ORIGINAL -m connmark --mark 0x1 -j MARK --or-mark 0x100
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:U0 - [0:0]
-A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
-A INPUT -m mark --mark 0x7/0xff -j U0
-A INPUT -p tcp -m multiport --dports 22,80:90 -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type echo-request -m ttl --ttl-gt 3 -j ACCEPT
-A INPUT -m iprange --src-range 198.19.0.1-198.19.0.9 -m addrtype --dst-type LOCAL -g U0
-A INPUT -p tcp -m tcp --tcp-flags SYN,ACK SYN -m limit --limit 1/sec -j ACCEPT
-A U0 -s 198.19.0.0/16 ! -i veth+ -j NFQUEUE --queue-num 9
-A U0 -j RETURN
COMMIT
`;

function services(family: 4 | 6): string {
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]', ':SVC - [0:0]'];
  lines.push('-A PREROUTING -j SVC', '-A OUTPUT -m conntrack --ctstatus SEEN_REPLY -j SVC');
  for (let k = 0; k < 12; k++) {
    const d = family === 4 ? `198.18.0.${k + 10}/32` : `2001:db8::${(k + 10).toString(16)}/128`;
    lines.push(`-A SVC -d ${d} -p ${k % 2 ? 'tcp' : 'udp'} -m ${k % 2 ? 'tcp' : 'udp'} --dport ${80 + k} -j MARK --set-xmark ${k}/0xffffffff`);
  }
  lines.push('-A SVC -m addrtype --dst-type LOCAL -j DNAT --to-destination ' + (family === 4 ? '198.18.1.1' : '[2001:db8:1::1]'));
  lines.push('COMMIT', '*raw', ':PREROUTING ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', '-A PREROUTING -m conntrack --ctstate INVALID -j ACCEPT', 'COMMIT', '');
  return lines.join('\n');
}

/** kube-proxy's shape: keyed services, statistic random, KUBE-MARK-MASQ, DNAT, MASQUERADE; and REDIRECT, SNAT, NETMAP. */
function kube(family: 4 | 6): string {
  const a = (k: number): string => (family === 4 ? `198.19.0.${k}` : `2001:db8:19::${k}`);
  const ep = (k: number, port: number): string => (family === 4 ? `${a(k)}:${port}` : `[${a(k)}]:${port}`);
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];
  lines.push(':SVC - [0:0]', ':SVC-A - [0:0]', ':SEP-1 - [0:0]', ':SEP-2 - [0:0]', ':MASQ - [0:0]', ':POST - [0:0]');
  lines.push('-A PREROUTING -j SVC', '-A OUTPUT -j SVC', '-A POSTROUTING -j POST');
  for (let k = 0; k < 9; k++) {
    const d = family === 4 ? `198.18.128.${k + 1}/32` : `2001:db8:80::${k + 1}/128`;
    lines.push(`-A SVC -d ${d} -p tcp -m tcp --dport 80 -j ${k === 0 ? 'SVC-A' : 'MASQ'}`);
  }
  lines.push('-A SVC -p tcp -m tcp --dport 81 -j REDIRECT --to-ports 8081');
  lines.push('-A SVC-A -m statistic --mode random --probability 0.50000000000 -j SEP-1', '-A SVC-A -j SEP-2');
  lines.push(`-A SEP-1 -s ${a(1)} -j MASQ`, `-A SEP-1 -p tcp -m tcp -j DNAT --to-destination ${ep(1, 8080)}`);
  lines.push(`-A SEP-2 -s ${a(2)} -j MASQ`, `-A SEP-2 -p tcp -m tcp -j DNAT --to-destination ${ep(2, 8080)} --random`);
  lines.push('-A MASQ -j MARK --or-mark 0x4000');
  lines.push('-A POST -m mark ! --mark 0x4000/0x4000 -j RETURN', '-A POST -j MARK --xor-mark 0x4000', '-A POST -o eth0 -j MASQUERADE --random-fully');
  lines.push(`-A POST -o eth1 -j SNAT --to-source ${family === 4 ? '198.18.6.6-198.18.6.9' : '2001:db8:6::6'}`);
  lines.push(`-A POST -j NETMAP --to ${family === 4 ? '198.18.64.0/24' : '2001:db8:64::/64'}`);
  lines.push('COMMIT', '*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]');
  lines.push(`-A OUTPUT -d ${a(1)} -p tcp -m tcp --dport 8080 -j MARK --set-xmark 0x1/0x1`, 'COMMIT', '');
  return lines.join('\n');
}

const V6 = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m rt --rt-type 0 -j DROP
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -m hl --hl-eq 255 -j ACCEPT
-A FORWARD -d 2001:db8::/32 -o eth1 -p tcp -m tcp ! --dport 22 -j ACCEPT
COMMIT
`;

function header(o: { family: 4 | 6; hook: number; state: number; dir: number; mark: number; status: number; ctmark: number; inIf: number; outIf: number; tracked: boolean; words: number }): Buffer {
  const b = Buffer.alloc(21);
  b[0] = o.family === 6 ? 1 : 0;
  b[1] = o.hook;
  b[2] = o.state;
  b[3] = o.dir;
  b.writeUInt32LE(o.mark, 4);
  b.writeUInt32LE(o.status, 8);
  b.writeUInt32LE(o.ctmark, 12);
  b[16] = o.inIf;
  b[17] = o.outIf;
  b[18] = o.tracked ? 1 : 0;
  b.writeUInt16LE(o.words, 19);
  return b;
}

function seed(name: string, text: string, family: 4 | 6, pkt: { src: string; dst: string; proto: number; dport: number }, hook: number, state: number): void {
  const p = compileProgram(parseRuleset(text, `${name}.rules`, { family }), family);
  const data = craftPacket({
    family,
    src: parseIpAddr(pkt.src, family)!,
    dst: parseIpAddr(pkt.dst, family)!,
    proto: pkt.proto,
    sport: 40000,
    dport: pkt.dport,
    tcpFlags: 2,
    icmpType: family === 4 ? 8 : 128,
    ttl: 255,
  });
  const words = Buffer.alloc(4 * p.words.length);
  p.words.forEach((w, k) => words.writeUInt32LE(w, 4 * k));
  const h = header({ family, hook, state, dir: 0, mark: 0, status: 0, ctmark: 1, inIf: 1, outIf: 2, tracked: state >= 0, words: p.words.length });
  const all = Buffer.concat([h, words, Buffer.from(data)]);
  if (all.length > 4096) throw new Error(`${name}: ${all.length} bytes, more than fuzz.sh's -max_len`);
  fs.writeFileSync(path.join(OUT, name), all);
}

fs.mkdirSync(OUT, { recursive: true });
seed('filter-input-udp', FILTER4, 4, { src: '198.19.0.2', dst: '198.18.0.1', proto: 17, dport: 53 }, 1, 1);
seed('filter-prerouting-mark', FILTER4, 4, { src: '198.19.0.2', dst: '198.18.0.1', proto: 17, dport: 53 }, 0, 1);
seed('filter-input-icmp', FILTER4, 4, { src: '198.19.0.2', dst: '198.18.0.1', proto: 1, dport: 0 }, 1, 1);
seed('filter-input-tcp', FILTER4, 4, { src: '198.19.0.5', dst: '198.18.0.1', proto: 6, dport: 85 }, 1, 2);
seed('services-v4', services(4), 4, { src: '198.19.0.2', dst: '198.18.0.13', proto: 6, dport: 83 }, 0, 1);
seed('services-v4-local', services(4), 4, { src: '198.19.0.2', dst: '127.0.0.5', proto: 17, dport: 9 }, 3, 1);
seed('services-v6', services(6), 6, { src: '2001:db8:9::1', dst: '2001:db8::d', proto: 6, dport: 83 }, 0, 1);
seed('ipv6-filter', V6, 6, { src: '2001:db8:9::1', dst: '2001:db8::1', proto: 58, dport: 0 }, 1, 2);
seed('ipv6-forward', V6, 6, { src: '2001:db8:9::1', dst: '2001:db8:5::1', proto: 6, dport: 443 }, 2, 2);
seed('kube-v4-prerouting', kube(4), 4, { src: '198.18.9.1', dst: '198.18.128.1', proto: 6, dport: 80 }, 0, 1);
seed('kube-v4-output', kube(4), 4, { src: '198.18.0.1', dst: '198.18.128.1', proto: 6, dport: 80 }, 3, 1);
seed('kube-v4-postrouting', kube(4), 4, { src: '198.18.9.1', dst: '198.19.0.1', proto: 6, dport: 8080 }, 4, 1);
seed('kube-v4-redirect', kube(4), 4, { src: '198.18.9.1', dst: '198.18.7.7', proto: 6, dport: 81 }, 0, 1);
seed('kube-v6-prerouting', kube(6), 6, { src: '2001:db8:9::1', dst: '2001:db8:80::1', proto: 6, dport: 80 }, 0, 1);
console.log(`wrote ${fs.readdirSync(OUT).length} seeds to ${OUT}`);
