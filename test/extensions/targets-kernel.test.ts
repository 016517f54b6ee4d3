// Differential check against the kernel: load target rules into a throwaway network namespace with iptables-nft,
// read them back with iptables-nft-save, and compare with what the modules print. Root only (CI runs as root).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { findTarget } from '../../src/extensions/index';
import type { Family, Hook, TableName } from '../../src/rules/model';
import { pctx, uses } from './t-fixture';

interface Case {
  family: Family;
  table: TableName;
  chain: string;
  proto?: string;
  target: string;
  text: string;
}

const PROTO: Readonly<Record<string, number>> = { tcp: 6, udp: 17 };

function c(family: Family, table: TableName, chain: string, proto: string | undefined, target: string, text: string): Case {
  return proto === undefined ? { family, table, chain, target, text } : { family, table, chain, proto, target, text };
}

const CASES: Case[] = [
  c(4, 'filter', 'INPUT', undefined, 'REJECT', ''),
  c(4, 'filter', 'INPUT', undefined, 'REJECT', '--reject-with host-prohib'),
  c(4, 'filter', 'INPUT', 'tcp', 'REJECT', '--reject-with tcp-rst'),
  c(6, 'filter', 'FORWARD', undefined, 'REJECT', '--reject-with adm-prohibited'),
  c(4, 'mangle', 'PREROUTING', undefined, 'MARK', '--or-mark 0x4000'),
  c(4, 'mangle', 'PREROUTING', undefined, 'MARK', '--set-mark 0x10/0x1'),
  c(4, 'mangle', 'PREROUTING', undefined, 'MARK', '--and-mark 0xf0'),
  c(6, 'filter', 'OUTPUT', undefined, 'MARK', '--xor-mark 3'),
  c(4, 'mangle', 'PREROUTING', undefined, 'CONNMARK', '--save-mark --mask 0xff'),
  c(4, 'mangle', 'PREROUTING', undefined, 'CONNMARK', '--restore-mark --nfmask 0xf --ctmask 0xf0'),
  c(4, 'mangle', 'PREROUTING', undefined, 'CONNMARK', '--set-mark 1 --mask 3'),
  c(4, 'mangle', 'PREROUTING', undefined, 'CONNMARK', '--save-mark --left-shift-mark 3'),
  c(4, 'filter', 'INPUT', undefined, 'LOG', '--log-level warning --log-prefix "a b"'),
  c(4, 'filter', 'INPUT', undefined, 'LOG', '--log-uid --log-level crit --log-prefix 01234567890123456789012345678901'),
  c(6, 'filter', 'INPUT', undefined, 'LOG', '--log-macdecode --log-tcp-sequence'),
  c(4, 'filter', 'INPUT', undefined, 'NFLOG', '--nflog-threshold 3 --nflog-size 4 --nflog-prefix p --nflog-group 2'),
  c(4, 'filter', 'INPUT', undefined, 'NFLOG', '--nflog-range 20 --nflog-group 0'),
  c(4, 'nat', 'PREROUTING', 'tcp', 'DNAT', '--to-destination 10.0.0.1-10.0.0.3:80-90/100 --persistent --random'),
  c(4, 'nat', 'OUTPUT', 'udp', 'DNAT', '--to-destination :53'),
  c(6, 'nat', 'PREROUTING', 'tcp', 'DNAT', '--to-destination [2001:db8::1-2001:db8::5]:80-90'),
  c(6, 'nat', 'PREROUTING', undefined, 'DNAT', '--to-destination 2001:db8::1:80'),
  c(4, 'nat', 'POSTROUTING', 'udp', 'SNAT', '--to-source 198.18.0.1:1000-2000/3000 --random-fully'),
  c(4, 'nat', 'INPUT', undefined, 'SNAT', '--to-source 198.18.0.1'),
  c(4, 'nat', 'POSTROUTING', 'tcp', 'MASQUERADE', '--to-port 1024-65535 --random-fully --random'),
  c(6, 'nat', 'POSTROUTING', undefined, 'MASQUERADE', ''),
  c(4, 'nat', 'PREROUTING', 'tcp', 'REDIRECT', '--to-ports 15001 --random'),
  c(4, 'nat', 'POSTROUTING', undefined, 'NETMAP', '--to 10.1/16'),
  c(6, 'nat', 'PREROUTING', undefined, 'NETMAP', '--to 2001:db8::/64'),
  c(4, 'raw', 'PREROUTING', undefined, 'CT', '--zone 5 --ctevents destroy,new --expevents new'),
  c(4, 'raw', 'PREROUTING', undefined, 'CT', '--zone-orig 1 --zone-reply mark'),
  c(4, 'raw', 'OUTPUT', 'tcp', 'CT', '--notrack --helper ftp'),
  c(4, 'raw', 'PREROUTING', undefined, 'NOTRACK', ''),
  c(4, 'mangle', 'POSTROUTING', undefined, 'CHECKSUM', '--checksum-fill'),
  c(4, 'mangle', 'FORWARD', 'tcp', 'TCPMSS', '--clamp-mss-to-pmtu'),
  c(6, 'mangle', 'PREROUTING', 'tcp', 'TCPMSS', '--set-mss 1220'),
  c(4, 'mangle', 'PREROUTING', undefined, 'TTL', '--ttl-dec 1'),
  c(6, 'mangle', 'PREROUTING', undefined, 'HL', '--hl-inc 2'),
  c(4, 'mangle', 'PREROUTING', undefined, 'DSCP', '--set-dscp-class af41'),
  c(6, 'mangle', 'PREROUTING', undefined, 'TOS', '--set-tos Minimize-Cost'),
  c(4, 'mangle', 'PREROUTING', undefined, 'TOS', '--and-tos 0x3'),
  c(4, 'mangle', 'POSTROUTING', undefined, 'CLASSIFY', '--set-class 0x1:0X2'),
  c(4, 'mangle', 'PREROUTING', 'tcp', 'TPROXY', '--on-port ssh --on-ip 1.2.3 --tproxy-mark 5'),
  c(6, 'mangle', 'PREROUTING', 'udp', 'TPROXY', '--tproxy-mark 0x1/0x1 --on-port 53'),
  c(4, 'filter', 'INPUT', undefined, 'NFQUEUE', '--queue-bypass'),
  c(4, 'filter', 'INPUT', undefined, 'NFQUEUE', '--queue-balance 0x1:0x3 --queue-cpu-fanout'),
  c(4, 'raw', 'PREROUTING', undefined, 'TRACE', ''),
  c(4, 'filter', 'INPUT', undefined, 'AUDIT', '--type DROP'),
  c(4, 'security', 'INPUT', undefined, 'CONNSECMARK', '--restore'),
  c(4, 'filter', 'INPUT', undefined, 'IDLETIMER', '--alarm --label foo --timeout 10'),
  c(4, 'filter', 'INPUT', 'tcp', 'SYNPROXY', '--mss 1460 --wscale 7 --sack-perm --timestamp --ecn'),
  c(4, 'mangle', 'PREROUTING', undefined, 'TEE', '--oif eth0 --gateway 1.2.3'),
  c(4, 'filter', 'INPUT', undefined, 'ACCEPT', ''),
  c(4, 'filter', 'INPUT', undefined, 'DROP', ''),
];

// Rules iptables-nft or the kernel refuse; the modules must refuse them too (in parse, or through allowed/allowedFor).
const BAD: Case[] = [
  c(4, 'filter', 'INPUT', undefined, 'REJECT', '--reject-with tcp-reset'),
  c(4, 'mangle', 'INPUT', undefined, 'REJECT', ''),
  c(6, 'filter', 'INPUT', undefined, 'REJECT', '--reject-with icmp-port-unreachable'),
  c(4, 'mangle', 'PREROUTING', undefined, 'MARK', '--set-mark 1 --or-mark 2'),
  c(4, 'mangle', 'PREROUTING', undefined, 'CONNMARK', '--save-mark --mask 1 --ctmask 2'),
  c(4, 'filter', 'INPUT', undefined, 'LOG', '--log-level 8'),
  c(4, 'filter', 'INPUT', undefined, 'NFLOG', '--nflog-group 65536'),
  c(4, 'nat', 'PREROUTING', undefined, 'DNAT', '--to-destination 1.2.3.4:80'),
  c(4, 'nat', 'POSTROUTING', undefined, 'DNAT', '--to-destination 1.2.3.4'),
  c(4, 'nat', 'PREROUTING', 'tcp', 'DNAT', '--to-destination 1.2.3.4:80-https'),
  c(4, 'nat', 'OUTPUT', undefined, 'SNAT', '--to-source 1.2.3.4'),
  c(4, 'nat', 'OUTPUT', undefined, 'MASQUERADE', ''),
  c(4, 'nat', 'POSTROUTING', 'udp', 'REDIRECT', '--to-ports 53'),
  c(4, 'mangle', 'PREROUTING', undefined, 'CT', '--notrack'),
  c(4, 'raw', 'PREROUTING', undefined, 'CT', '--helper ftp'),
  c(4, 'filter', 'INPUT', undefined, 'CHECKSUM', '--checksum-fill'),
  c(4, 'mangle', 'FORWARD', undefined, 'TCPMSS', '--set-mss 1400'),
  c(4, 'mangle', 'PREROUTING', 'tcp', 'TCPMSS', '--clamp-mss-to-pmtu'),
  c(4, 'filter', 'INPUT', undefined, 'TTL', '--ttl-set 5'),
  c(4, 'mangle', 'PREROUTING', undefined, 'TTL', '--ttl-dec 0'),
  c(4, 'mangle', 'PREROUTING', undefined, 'DSCP', '--set-dscp 64'),
  c(4, 'mangle', 'PREROUTING', undefined, 'TOS', '--set-tos 0x10/0x100'),
  c(4, 'mangle', 'INPUT', undefined, 'CLASSIFY', '--set-class 1:1'),
  c(4, 'mangle', 'PREROUTING', undefined, 'TPROXY', '--on-port 80'),
  c(4, 'mangle', 'INPUT', 'tcp', 'TPROXY', '--on-port 80'),
  c(4, 'filter', 'INPUT', undefined, 'NFQUEUE', '--queue-balance 0:65535'),
  c(4, 'filter', 'INPUT', undefined, 'NFQUEUE', '--queue-cpu-fanout'),
  c(4, 'filter', 'INPUT', undefined, 'SYNPROXY', ''),
  c(4, 'filter', 'INPUT', undefined, 'CONNSECMARK', '--save'),
];

function refusedByModules(k: Case): boolean {
  const ext = findTarget(k.target);
  if (!ext) return true;
  const ctx = pctx({ family: k.family, table: k.table, chain: k.chain });
  if (k.proto) ctx.proto = { value: PROTO[k.proto], negated: false };
  let opts: unknown;
  try {
    opts = ext.parse(uses(ext, k.text), ctx);
  } catch {
    return true;
  }
  const hook = k.chain as Hook;
  for (const rule of [ext.allowed, ext.allowedFor?.(opts)]) {
    if (!rule) continue;
    if (rule.tables && !rule.tables.includes(k.table)) return true;
    if (rule.hooks && !rule.hooks.includes(hook)) return true;
  }
  return false;
}

function hasCmd(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function restoreText(cases: Case[]): string {
  const lines: string[] = [];
  for (const table of ['raw', 'mangle', 'nat', 'filter', 'security'] as const) {
    const mine = cases.filter((k) => k.table === table);
    if (mine.length === 0) continue;
    lines.push(`*${table}`);
    for (const k of mine) lines.push(`-A ${k.chain}${k.proto ? ` -p ${k.proto}` : ''} -j ${k.target}${k.text ? ` ${k.text}` : ''}`);
    lines.push('COMMIT');
  }
  return `${lines.join('\n')}\n`;
}

/** `table chain NAME text` of each rule as iptables-save printed it (it orders chains its own way, so sorted). */
function savedTargets(save: string): string[] {
  const out: string[] = [];
  let table = '';
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    const m = /^-A (\S+) .*?-j ([A-Z]+)(?: (.*))?$/.exec(line);
    if (m) out.push(`${table} ${m[1]} ${m[2]} ${m[3] ?? ''}`.trim());
  }
  return out.sort();
}

describe('targets against kernel iptables-nft in a lab namespace', function () {
  const ns = `nfqw-${process.pid}-h7targets`;
  before(function () {
    if (process.getuid?.() !== 0) {
      console.log('    skipped: not root, and a network namespace needs root');
      this.skip();
    }
    if (!hasCmd('iptables-nft-restore') || !hasCmd('ip6tables-nft-restore')) {
      console.log('    skipped: iptables-nft-restore / ip6tables-nft-restore not installed');
      this.skip();
    }
    execFileSync('ip', ['netns', 'add', ns]);
  });
  after(() => {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not created (skipped)
    }
  });

  for (const family of [4, 6] as const) {
    it(`IPv${family}: iptables-save prints what the modules print`, () => {
      const cases = CASES.filter((k) => k.family === family);
      const ordered = (['raw', 'mangle', 'nat', 'filter', 'security'] as const).flatMap((t) => cases.filter((k) => k.table === t));
      assert.ok(ordered.length > 10);
      const bin = family === 4 ? 'iptables-nft' : 'ip6tables-nft';
      execFileSync('ip', ['netns', 'exec', ns, `${bin}-restore`], { input: restoreText(ordered), stdio: ['pipe', 'pipe', 'pipe'] });
      const save = execFileSync('ip', ['netns', 'exec', ns, `${bin}-save`], { encoding: 'utf8' });
      const kernel = savedTargets(save);
      const mine = ordered.map((k) => {
        const ext = findTarget(k.target);
        assert.ok(ext, k.target);
        const ctx = pctx({ family, table: k.table, chain: k.chain });
        if (k.proto) ctx.proto = { value: PROTO[k.proto], negated: false };
        return `${k.table} ${k.chain} ${k.target} ${ext.format(ext.parse(uses(ext, k.text), ctx), family)}`.trim();
      });
      assert.deepEqual(mine.sort(), kernel);
    });
  }

  it('what the kernel or iptables-nft refuses, the modules refuse', () => {
    const wrong: string[] = [];
    for (const k of BAD) {
      const bin = k.family === 4 ? 'iptables-nft' : 'ip6tables-nft';
      let kernelRefused = false;
      try {
        execFileSync('ip', ['netns', 'exec', ns, `${bin}-restore`], { input: restoreText([k]), stdio: ['pipe', 'pipe', 'pipe'] });
      } catch {
        kernelRefused = true;
      }
      const line = restoreText([k]).split('\n')[1];
      assert.ok(kernelRefused, `the kernel took ${line}: the case is wrong`);
      if (!refusedByModules(k)) wrong.push(`${k.table} ${line}`);
    }
    assert.deepEqual(wrong, []);
  });
});
