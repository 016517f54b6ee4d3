// The kernel as the oracle for the part-A match modules: every case is loaded into iptables-nft inside a throwaway
// namespace, and what iptables-save prints back must equal what the module prints; what iptables refuses, the module
// must refuse too. Root only (a network namespace); skipped where iptables-nft is not installed.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { findMatch } from '../../src/extensions/index';
import { RuleError } from '../../src/extensions/types';
import { parseProtocol } from '../../src/rules/services';
import { optionUses, parseCtx } from './packet-fixture';
import { skipBecause, skipUnlessRoot } from '../lab/lab';

interface Case {
  family: 4 | 6;
  chain: string;
  /** `-p NAME` given to the rule, if any. */
  proto?: string;
  match: string;
  text: string;
}

const c = (match: string, text: string, proto?: string, chain = 'INPUT', family: 4 | 6 = 4): Case => ({
  family,
  chain,
  proto,
  match,
  text,
});

const OK: Case[] = [
  c('tcp', '--syn', 'tcp'),
  c('tcp', '! --syn', 'tcp'),
  c('tcp', '--tcp-flags ALL SYN,ACK', 'tcp'),
  c('tcp', '--tcp-flags SYN,FIN SYN --sport 1:1024 --dport 80:', 'tcp'),
  c('tcp', '--dport :1000 ! --sport ssh', 'tcp'),
  c('tcp', '--tcp-option 2 ! --tcp-flags URG,PSH PSH', 'tcp'),
  c('tcp', '--dport 0x50 --sport 010', 'tcp'),
  c('udp', '--sport 53 ! --dport 1:2', 'udp'),
  c('udp', '--dport 70000 --sport 9:1', 'udp'),
  c('udp', '--sport ssh --dport 010', 'udp'),
  c('icmp', '--icmp-type echo-request', 'icmp'),
  c('icmp', '! --icmp-type host-unreachable', 'icmp'),
  c('icmp', '--icmp-type 255', 'icmp'),
  c('icmp', '--icmp-type 3/1:3', 'icmp'),
  c('icmp', '--icmp-type ttl-zero-during-transit', 'icmp'),
  c('sctp', '--sport 1:3 --dport 5 --chunk-types any DATA,INIT', 'sctp'),
  c('sctp', '! --chunk-types only DATA:Be', 'sctp'),
  c('sctp', '--chunk-types any INIT,ABORT:T,SHUTDOWN_COMPLETE:t,DATA:IUBE', 'sctp'),
  c('sctp', '--chunk-types all ALL --sport 0:65535', 'sctp'),
  c('sctp', '--chunk-types any DATA:I,INIT,ABORT:T,SHUTDOWN_COMPLETE:t,DATA:e,I_DATA:U', 'sctp'),
  c('sctp', '--chunk-types ONLY data:-,,INIT', 'sctp'),
  c('multiport', '--ports 1,2:3', 'tcp'),
  c('multiport', '! --sports 1:2,5', 'udp'),
  c('multiport', '--dports ssh,http,0x10,010', 'tcp'),
  c('multiport', '--dports 1:2,3:4,5,6,7,8,9,10,11,12,13,14,15', 'sctp'),
  c('conntrack', '--ctstate NEW,RELATED,ESTABLISHED,INVALID,UNTRACKED,SNAT,DNAT'),
  c('conntrack', '--ctstatus NONE,EXPECTED,SEEN_REPLY,ASSURED,CONFIRMED'),
  c('conntrack', '! --ctproto tcp --ctorigsrc 10.0.0.0/8 ! --ctorigdst 1.2.3.4 --ctreplsrc 1.2.3.4/255.0.255.0 --ctrepldst 5.5.5.5/32'),
  c('conntrack', '--ctorigsrcport 10 ! --ctorigdstport 20:30 --ctreplsrcport ssh --ctrepldstport :6'),
  c('conntrack', '--ctdir REPLY ! --ctexpire 10:'),
  c('conntrack', '--ctstate NEW --ctproto 17 --ctstatus ASSURED --ctdir REPLY --ctorigsrc 1.1.1.1 --ctorigsrcport 5 --ctexpire 5'),
  c('state', '--state NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED'),
  c('state', '! --state new'),
  c('addrtype', '--src-type LOCAL,UNICAST ! --dst-type BLACKHOLE --limit-iface-in'),
  c('addrtype', '--src-type local --limit-iface-out', undefined, 'OUTPUT'),
  c('comment', '--comment "hello world"'),
  c('comment', `--comment 'x"y'`),
  c('comment', `--comment "a'b.c"`),
  c('comment', `--comment ${'z'.repeat(300)}`),
  c('mark', '--mark 5'),
  c('mark', '! --mark 0x5/0xf'),
  c('mark', '--mark 0xffffffff/0xffffffff'),
  c('connmark', '--mark 1/1'),
  c('connmark', '! --mark 010'),
  c('statistic', '--mode random --probability 0.5'),
  c('statistic', '--mode random ! --probability 0.1'),
  c('statistic', '--mode random --probability 0.000244140625'),
  c('statistic', '--mode random --probability 0.333333'),
  c('statistic', '--mode nth ! --every 3 --packet 2'),
  c('limit', ''),
  c('limit', '--limit 60/min --limit-burst 0'),
  c('limit', '--limit 24/day'),
  c('limit', '--limit 61/minute --limit-burst 10000'),
  c('limit', '--limit 1.5/s'),
  c('limit', '--limit 13/h --limit-burst 4'),
  c('iprange', '--src-range 1.2.3.4-1.2.3.10 ! --dst-range 10.0.0.1'),
  c('iprange', '--src-range 1.2.3.10-1.2.3'),
  c('length', '! --length 10:200'),
  c('length', '--length :200'),
  c('ttl', '! --ttl-eq 5'),
  c('ttl', '--ttl-gt 0x10'),
  c('pkttype', '! --pkt-type host'),
  c('mac', '--mac-source 0:11:22:AA:bb:cc'),
  c('physdev', '--physdev-in eth0 ! --physdev-out eth1 --physdev-is-in ! --physdev-is-out --physdev-is-bridged'),
  c('physdev', '--physdev-in br+'),
  c('icmp6', '--icmpv6-type echo-request', 'ipv6-icmp', 'INPUT', 6),
  c('icmp6', '! --icmpv6-type port-unreachable', 'ipv6-icmp', 'INPUT', 6),
  c('icmp6', '--icmpv6-type 1/2:4', 'ipv6-icmp', 'INPUT', 6),
  c('hl', '! --hl-eq 5', undefined, 'INPUT', 6),
  c('hl', '--hl-lt 5', undefined, 'INPUT', 6),
  c('conntrack', '--ctorigsrc 2001:db8::1/64 ! --ctrepldst ::1 --ctreplsrc 2001:db8::1/ffff::ff', undefined, 'INPUT', 6),
  c('iprange', '--src-range 2001:db8::1-2001:db8::5', undefined, 'INPUT', 6),
  c('addrtype', '--dst-type LOCAL --limit-iface-in', undefined, 'INPUT', 6),
];

const FAIL: Case[] = [
  c('tcp', '--syn --tcp-flags SYN SYN', 'tcp'),
  c('tcp', '--tcp-flags ECE SYN', 'tcp'),
  c('tcp', '--dport 5:1', 'tcp'),
  c('tcp', '--tcp-option 0', 'tcp'),
  c('udp', '--dport 0x50', 'udp'),
  c('icmp', '--icmp-type echo', 'icmp'),
  c('icmp', '--icmp-type 3/300', 'icmp'),
  c('sctp', '--chunk-types any INIT:T', 'sctp'),
  c('sctp', '--chunk-types any ALL,DATA:B', 'sctp'),
  c('sctp', '--chunk-types any DATA:I,ABORT:T,SHUTDOWN_COMPLETE:T,I_DATA:E,INIT_ACK:-', 'sctp'),
  c('multiport', '--dports 1', 'icmp'),
  c('multiport', '--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:16', 'tcp'),
  c('multiport', '--dports 1:1', 'tcp'),
  c('conntrack', ''),
  c('conntrack', '--ctstate SNATX'),
  c('conntrack', '--ctorigsrcport 0x10'),
  c('state', '--state SNAT'),
  c('addrtype', '--limit-iface-in --limit-iface-out --src-type LOCAL'),
  c('addrtype', '--src-type LOCAL --limit-iface-out'),
  c('mark', '--mark 4294967296'),
  c('statistic', '--mode nth --every 3 --packet 3'),
  c('statistic', '--mode random --probability 1.5'),
  c('limit', '--limit 10001/sec'),
  c('limit', '--limit 1/seconds'),
  c('iprange', '--src-range 1.2.3.4/24-1.2.3.8'),
  c('length', '--length 70000'),
  c('ttl', '--ttl-eq 5 --ttl-lt 5'),
  c('pkttype', '--pkt-type outgoing'),
  c('mac', '--mac-source 00-11-22-33-44-55'),
  c('mac', '--mac-source 00:11:22:33:44:55', undefined, 'OUTPUT'),
  c('physdev', '--physdev-in abcdefghijklmnop'),
  c('icmp6', '--icmpv6-type mld-listener-query', 'ipv6-icmp', 'INPUT', 6),
  c('addrtype', '--dst-type BROADCAST', undefined, 'INPUT', 6),
];

function hasCmd(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** The words of a case's option text, as a shell would split them (for iptables' argv). */
function argv(text: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]));
  return out;
}

function ruleArgs(k: Case): string[] {
  return ['-A', k.chain, ...(k.proto ? ['-p', k.proto] : []), '-m', k.match, ...argv(k.text)];
}

function moduleFormat(k: Case): string {
  const ext = findMatch(k.match);
  assert.ok(ext, k.match);
  const ctx = parseCtx({ family: k.family, chain: k.chain, proto: k.proto ? parseProtocol(k.proto) : undefined });
  return ext.format(ext.parse(optionUses(ext, k.text), ctx), k.family);
}

/** Refused by the module's parse, or by validation from the hooks the module allows (allowedHooks). */
function refusedByUs(k: Case): boolean {
  const ext = findMatch(k.match);
  assert.ok(ext, k.match);
  const ctx = parseCtx({ family: k.family, chain: k.chain, proto: k.proto ? parseProtocol(k.proto) : undefined });
  let opts: unknown;
  try {
    opts = ext.parse(optionUses(ext, k.text), ctx);
  } catch (e) {
    if (e instanceof RuleError) return true;
    throw e;
  }
  const hooks = ext.allowedHooks?.(opts);
  return hooks !== undefined && !(hooks as readonly string[]).includes(k.chain);
}

describe('part-A matches against kernel iptables-nft in a lab namespace', function () {
  const ns = `nfqw-h5-${process.pid}`;
  before(function () {
    skipUnlessRoot(this, 'matches against kernel iptables-nft');
    skipBecause(this, 'matches against kernel iptables-nft', hasCmd('iptables-nft') && hasCmd('ip6tables-nft') ? undefined : 'iptables-nft is not installed');
    execFileSync('ip', ['netns', 'add', ns]);
  });
  after(() => {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  });

  for (const family of [4, 6] as const) {
    it(`IPv${family}: iptables-save prints what the modules print`, function () {
      this.timeout(60000);
      const bin = family === 4 ? 'iptables-nft' : 'ip6tables-nft';
      const cases = OK.filter((k) => k.family === family);
      for (const chain of ['INPUT', 'OUTPUT']) execFileSync('ip', ['netns', 'exec', ns, bin, '-F', chain]);
      for (const k of cases) execFileSync('ip', ['netns', 'exec', ns, bin, ...ruleArgs(k)], { stdio: 'pipe' });
      const save = execFileSync('ip', ['netns', 'exec', ns, `${bin}-save`], { encoding: 'utf8' });
      const byChain = new Map<string, string[]>();
      for (const line of save.split('\n')) {
        const m = /^-A (\S+) (.*)$/.exec(line);
        if (m) byChain.set(m[1], [...(byChain.get(m[1]) ?? []), m[2]]);
      }
      const seen = new Map<string, number>();
      for (const k of cases) {
        const i = seen.get(k.chain) ?? 0;
        seen.set(k.chain, i + 1);
        const kernelLine = byChain.get(k.chain)?.[i] ?? '';
        const marker = `-m ${k.match}`;
        const at = kernelLine.indexOf(marker);
        assert.ok(at >= 0, `${k.match} ${k.text}: kernel printed "${kernelLine}"`);
        const kernelText = kernelLine.slice(at + marker.length).trim();
        assert.equal(moduleFormat(k), kernelText, `-m ${k.match} ${k.text}`);
      }
    });
  }

  for (const k of FAIL) {
    it(`both refuse: ${k.proto ? `-p ${k.proto} ` : ''}-m ${k.match} ${k.text} (${k.chain}, IPv${k.family})`, () => {
      const bin = k.family === 4 ? 'iptables-nft' : 'ip6tables-nft';
      const r = spawnSync('ip', ['netns', 'exec', ns, bin, ...ruleArgs(k)], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, `the kernel accepted it: ${r.stderr}`);
      assert.ok(refusedByUs(k), 'nfqwall accepts it');
    });
  }
});
