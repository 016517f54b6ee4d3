// Cases the wave-1 differential runs found, replayed against the kernel (iptables-nft 1.8.9) in a throwaway namespace:
// nfqwall must accept what iptables-restore accepts and print what iptables-save prints. Root only.
import assert from 'node:assert/strict';
import { RuleErrors } from '../../src/rules/errors';
import { parseRuleset } from '../../src/rules/parse';
import { saveRuleset } from '../../src/rules/save';
import { Netns, whyNoKernel } from './netns';

type Case = [family: 4 | 6, table: string, line: string];

const CASES: Case[] = [
  // udp ports resolve service names of any protocol (http is tcp-only in /etc/services).
  [4, 'filter', '-A INPUT -p udp -m udp --dport http'],
  [4, 'filter', '-A INPUT -p udp --sport ssh:http'],
  // XTTYPE_HOSTMASK: inet_aton hosts, strtoul prefix lengths, masks with holes become full.
  [4, 'filter', '-A INPUT -m conntrack --ctorigsrc 1'],
  [4, 'filter', '-A INPUT -m conntrack --ctorigdst 10.1/16'],
  [4, 'filter', '-A INPUT -m conntrack --ctreplsrc 0x10'],
  [4, 'filter', '-A INPUT -m conntrack --ctrepldst 1.2.3'],
  [4, 'filter', '-A INPUT -m conntrack --ctorigsrc 010.1/0x10'],
  [4, 'filter', '-A INPUT -m conntrack --ctorigsrc 1.2.3.4/255.0.255.0'],
  [4, 'filter', '-A INPUT -m conntrack --ctorigsrc 1.2.3.4/33'],
  [4, 'filter', '-A INPUT -m conntrack --ctorigsrc 1.2.3.4/08'],
  [4, 'filter', '-A INPUT -m conntrack --ctorigsrc 1.2.3.256'],
  [6, 'filter', '-A INPUT -m conntrack --ctorigsrc 2001:db8::1/0x40'],
  [6, 'filter', '-A INPUT -m conntrack --ctorigsrc 2001:db8::1/ffff::ff'],
  [4, 'nat', '-A OUTPUT -j NETMAP --to 0x10'],
  [4, 'nat', '-A OUTPUT -j NETMAP --to 0x10/0xff'],
  [4, 'nat', '-A OUTPUT -j NETMAP --to 1.2.3.4/255.0.255.0'],
  [4, 'nat', '-A OUTPUT -j NETMAP --to 1.2.3.4/0x10'],
  [4, 'nat', '-A OUTPUT -j NETMAP --to 1.2.3.4/08'],
  [6, 'nat', '-A OUTPUT -j NETMAP --to 0x10'],
  // tee_tg_check: no all-zero gateway.
  [4, 'nat', '-A OUTPUT -j TEE --gateway 0 --oif eth0'],
  [4, 'mangle', '-A OUTPUT -j TEE --gateway 0'],
  [6, 'mangle', '-A OUTPUT -j TEE --gateway ::'],
  [4, 'mangle', '-A OUTPUT -j TEE --gateway 1.2.3.4 --oif eth0'],
  // mobility header: printed name and implicit loading.
  [6, 'filter', '-A INPUT -p mh --mh-type 5'],
  [6, 'filter', '-A INPUT -p 135 --mh-type 5'],
  [6, 'filter', '-A INPUT -p ipv6-mh -m mh --mh-type 5'],
  [4, 'filter', '-A INPUT -p mobility-header'],
  [4, 'filter', '-A INPUT -p mh --mh-type 5'],
  [4, 'filter', '-A INPUT -p icmp --icmp-type 8'],
  [6, 'filter', '-A INPUT -p icmp --icmp-type 8'],
];

function ours(family: 4 | 6, text: string): string | null {
  try {
    const out = saveRuleset(parseRuleset(text, 'f.rules', { family }));
    return out.split('\n').filter((l) => l.startsWith('-A ')).join('\n');
  } catch (e) {
    if (e instanceof RuleErrors) return null;
    throw e;
  }
}

describe('rules: wave-1 differential findings against the kernel (root)', function () {
  this.timeout(120_000);
  const ns = new Netns('h10find');

  before(function () {
    const why = whyNoKernel();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    ns.create();
  });
  after(() => ns.destroy());

  function kernel(family: 4 | 6, table: string, text: string): string | null {
    const ok = ns.restore(family, text).status === 0;
    const out = ok
      ? ns
          .exec([family === 6 ? 'ip6tables-save' : 'iptables-save', '-t', table])
          .stdout.split('\n')
          .filter((l) => l.startsWith('-A '))
          .join('\n')
      : null;
    ns.clear(family, table);
    return out;
  }

  it('accepts, refuses and prints each case as iptables-save does', () => {
    const wrong: string[] = [];
    let refused = 0;
    for (const [family, table, line] of CASES) {
      const text = `*${table}\n${line}\nCOMMIT\n`;
      const k = kernel(family, table, text);
      if (k === null) refused++;
      const o = ours(family, text);
      if (k !== o) wrong.push(`IPv${family} ${table} ${line}: kernel ${k ?? 'refuses'}, nfqwall ${o ?? 'refuses'}`);
    }
    assert.ok(refused >= 5 && refused < CASES.length, `the kernel refused ${refused} of ${CASES.length}`);
    assert.deepEqual(wrong, []);
  });

  it('prints every protocol number as iptables-save does, in both families', () => {
    for (const family of [4, 6] as const) {
      const lines: string[] = [];
      for (let n = 1; n < 256; n++) lines.push(`-A INPUT -p ${n}`);
      const text = `*filter\n${lines.join('\n')}\nCOMMIT\n`;
      const k = kernel(family, 'filter', text);
      assert.ok(k, 'the kernel refused the protocol list');
      assert.equal(ours(family, text), k);
    }
  });
});
