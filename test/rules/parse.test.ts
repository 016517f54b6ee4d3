import assert from 'node:assert/strict';
import { checkEnforceable } from '../../src/rules/enforce';
import { RuleErrors } from '../../src/rules/errors';
import type { Family } from '../../src/rules/model';
import { assignRuleIds, parseRuleset } from '../../src/rules/parse';
import { Rng } from '../rng';
import { saveRuleset } from '../../src/rules/save';
import { FAKE } from './fake-extensions';

const parse = (text: string, family?: Family) =>
  parseRuleset(text, 'test.rules', { extensions: FAKE, ...(family ? { family } : {}) });
const save = (text: string, family?: Family) => saveRuleset(parse(text, family));
const filter = (...lines: string[]) => `*filter\n${lines.join('\n')}\nCOMMIT\n`;
const body = (out: string) => out.split('\n').filter((l) => l.startsWith('-A ') || l.startsWith(':'));

function errorsOf(text: string, family?: Family): string[] {
  try {
    parse(text, family);
  } catch (e) {
    if (e instanceof RuleErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  assert.fail('expected the file to be refused');
}

describe('rules/parse', () => {
  it('prints built-in chains, sorted user chains and canonical rule text', () => {
    const out = save(
      filter(
        ':ZED - [0:0]',
        ':ALPHA - [0:0]',
        ':INPUT DROP [3:4]',
        '-A INPUT -j ZED',
        '-A ZED -m comment --comment "kube x" -m tcp -p tcp -d 10.0.0.1 --dport 80 -j ACCEPT',
        '-A ALPHA ! -s 10.0.0.0/255.0.0.0 -i eth+ ! -o lo -p 17 -f -j DROP',
      ),
    );
    assert.equal(
      out,
      [
        '*filter',
        ':INPUT DROP [0:0]',
        ':FORWARD ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        ':ALPHA - [0:0]',
        ':ZED - [0:0]',
        '-A INPUT -j ZED',
        '-A ALPHA ! -s 10.0.0.0/8 -i eth+ ! -o lo -p udp -f -j DROP',
        '-A ZED -d 10.0.0.1/32 -p tcp -m comment --comment "kube x" -m tcp --dport 80 -j ACCEPT',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  it('loads the protocol match implicitly on an unknown option after -p', () => {
    assert.deepEqual(body(save(filter('-A INPUT -p tcp --dport ssh ! --sport=0x10 -j ACCEPT'))).slice(-1), [
      '-A INPUT -p tcp -m tcp ! --sport 16 --dport 22 -j ACCEPT',
    ]);
  });

  it('loads icmp6 implicitly under any of its names, and by number', () => {
    for (const p of ['icmpv6', 'ipv6-icmp', 'IPv6-ICMP', '58'])
      assert.deepEqual(body(save(filter(`-A INPUT -p ${p} --icmpv6-type 1 -j ACCEPT`), 6)).slice(3), [
        '-A INPUT -p ipv6-icmp -m icmp6 -j ACCEPT',
      ]);
    assert.deepEqual(body(save(filter('-A INPUT -p ipv6-icmp -m icmpv6 -j ACCEPT'), 6)).slice(3), ['-A INPUT -p ipv6-icmp -m icmp6 -j ACCEPT']);
  });

  it('prints counters with -c and keeps tables in iptables-nft order', () => {
    const rs = parse('*nat\n:PREROUTING ACCEPT [5:6]\n[1:2] -A PREROUTING -j ACCEPT\nCOMMIT\n*raw\nCOMMIT\n*mangle\n-F\nCOMMIT\n');
    assert.deepEqual([...rs.tables.keys()], ['mangle', 'nat']);
    const out = saveRuleset(rs, { counters: true });
    assert.match(out, /:PREROUTING ACCEPT \[5:6\]\n/);
    assert.match(out, /\n\[1:2\] -A PREROUTING -j ACCEPT\n/);
  });

  it('runs -I, -D (number and spec), -R, -E, -X, -F, -P in order', () => {
    const out = save(
      filter(
        '-N A',
        '-N B',
        '-A A -s 1.1.1.1 -j ACCEPT',
        '-A A -s 2.2.2.2 -j ACCEPT',
        '-I A -s 3.3.3.3 -j ACCEPT',
        '-I A 2 -s 4.4.4.4 -j DROP',
        '--delete A -s 1.1.1.1 -j ACCEPT',
        '-D A 1',
        '-R A 1 -s 5.5.5.5 -j DROP',
        '-E B C',
        '-A INPUT -j C',
        '-N D',
        '-X D',
        '-P FORWARD DROP',
        '-A OUTPUT -j DROP',
        '-F OUTPUT',
      ),
    );
    assert.deepEqual(body(out), [
      ':INPUT ACCEPT [0:0]',
      ':FORWARD DROP [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':A - [0:0]',
      ':C - [0:0]',
      '-A INPUT -j C',
      '-A A -s 5.5.5.5/32 -j DROP',
      '-A A -s 2.2.2.2/32 -j ACCEPT',
    ]);
  });

  it('drops /0 addresses, as iptables-nft stores and prints nothing for them', () => {
    assert.deepEqual(body(save(filter('-A INPUT -s 0.0.0.0/0 -d 10.0.0.0/0 -j ACCEPT'))).slice(3), ['-A INPUT -j ACCEPT']);
    assert.match(errorsOf(filter('-A INPUT ! -s 0/0 -j ACCEPT'))[0], /^test\.rules:2:10: "! -s 0\/0" can never match/);
  });

  it('gathers tcp/udp options into the first such match, as iptables-nft reads them back', () => {
    assert.deepEqual(body(save(filter('-A INPUT -p tcp -m tcp --dport 1 -m comment --comment x -m tcp --sport 2 -m tcp'))).slice(3), [
      '-A INPUT -p tcp -m tcp --sport 2 --dport 1 -m comment --comment x -m tcp',
    ]);
  });

  it('refuses ! with address lists and input interfaces on output chains', () => {
    assert.deepEqual(errorsOf(filter('-A INPUT ! -s 1.2.3.4 -d 1.1.1.1,2.2.2.2 -j ACCEPT')), [
      'test.rules:2:1: ! not allowed with multiple source or destination IP addresses',
    ]);
    assert.deepEqual(errorsOf(filter('-A OUTPUT -i eth0 -j ACCEPT')), ["test.rules:2:11: can't use -i with OUTPUT"]);
  });

  it('expands address lists into one rule each, as iptables', () => {
    assert.deepEqual(body(save(filter('-A INPUT -s 1.2.3.4,5.6.7.0/24 -d 9.9.9.9 -j ACCEPT'))).slice(3), [
      '-A INPUT -s 1.2.3.4/32 -d 9.9.9.9/32 -j ACCEPT',
      '-A INPUT -s 5.6.7.0/24 -d 9.9.9.9/32 -j ACCEPT',
    ]);
  });

  it('gives identical rules distinct, stable ids', () => {
    const a = parse(filter('-A INPUT -j ACCEPT', '-A INPUT -j DROP', '-A INPUT -j ACCEPT'));
    const b = parse(filter('-A INPUT -j DROP', '-A INPUT -j ACCEPT'));
    const ia = a.tables.get('filter')?.chains.get('INPUT')?.rules.map((r) => r.id) ?? [];
    const ib = b.tables.get('filter')?.chains.get('INPUT')?.rules.map((r) => r.id) ?? [];
    assert.equal(ia.length, 3);
    assert.equal(new Set(ia).size, 3);
    assert.equal(ia[2], `${ia[0]}#2`);
    assert.equal(ib[1], ia[0]);
    assert.equal(ib[0], ia[1]);
  });

  it('numbers repeated ids as numbering every chain afresh does, in short and long chains, after any command', () => {
    const rng = new Rng(7);
    const lines = ['-j ACCEPT', '-j DROP', '-p tcp -j ACCEPT', '-s 198.18.0.1/32 -j DROP', '-m comment --comment x -j ACCEPT'];
    const commands = ['-I', '-D', '-R', '-F', '-X', '-N', '-P', '-Z'];
    let repeated = 0;
    for (let round = 0; round < 200; round++) {
      const body: string[] = [':a - [0:0]', ':b - [0:0]'];
      for (const chain of ['INPUT', 'a', 'b']) {
        const n = rng.chance(0.3) ? rng.int(15, 40) : rng.int(0, 6);
        // Some long chains begin with 16 different rules, so their first repeat comes after them.
        const distinct = n > 16 && rng.chance(0.5);
        for (let k = 0; k < n; k++)
          body.push(
            distinct && k < 16
              ? `-A ${chain} -s 198.18.1.${k}/32 -j ACCEPT`
              : distinct && rng.chance(0.5)
                ? `-A ${chain} -s 198.18.1.${rng.int(0, 15)}/32 -j ACCEPT`
                : `-A ${chain} ${lines[rng.int(0, rng.chance(0.5) ? 1 : lines.length - 1)]}`,
          );
      }
      if (rng.chance(0.3)) {
        const cmd = commands[rng.int(0, commands.length - 1)];
        const arg = { '-I': 'INPUT -j DROP', '-D': 'INPUT -j ACCEPT', '-R': 'INPUT 1 -j DROP', '-F': 'a', '-X': 'b', '-N': 'c', '-P': 'INPUT DROP', '-Z': 'INPUT' }[cmd];
        body.push(`${cmd} ${arg}`, '-A INPUT -j ACCEPT', '-A a -j DROP');
      }
      let rs;
      try {
        rs = parseRuleset(['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ...body, 'COMMIT', ''].join('\n'), 'ids.rules', { family: 4 });
      } catch (e) {
        if (e instanceof RuleErrors) continue;
        throw e;
      }
      const table = rs.tables.get('filter')!;
      const ids = () => [...table.chains.values()].map((c) => c.rules.map((r) => r.id));
      const parsed = ids();
      repeated += parsed.flat().filter((id) => id.includes('#')).length;
      assignRuleIds(table, 4);
      assert.deepEqual(parsed, ids(), `round ${round}`);
    }
    assert.ok(repeated > 500, `${repeated} repeated ids`);
  });

  it('infers IPv6 from addresses and family-only matches, IPv4 otherwise', () => {
    assert.equal(parse(filter('-A INPUT -s 2001:db8::1 -j ACCEPT')).family, 6);
    assert.equal(parse(filter('-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT')).family, 6);
    assert.equal(parse(filter('-A INPUT -j ACCEPT')).family, 4);
    assert.equal(save(filter('-A INPUT -s 2001:DB8::1/64 -j ACCEPT')).includes('-s 2001:db8::/64'), true);
  });

  it('skips -4 lines in IPv6 files and -6 lines in IPv4 files', () => {
    assert.deepEqual(body(save(filter('-6 -A INPUT -j DROP', '-4 -A INPUT -j ACCEPT'), 4)).slice(3), ['-A INPUT -j ACCEPT']);
  });

  it('refuses bad lines with file:line:column, all of them at once', () => {
    const text = [
      '*filter', // 1
      '-A INPUT -s example.com -j ACCEPT', // 2
      '-A INPUT -i abcdefghijklmnopq -j ACCEPT', // 3
      '-A INPUT -m nosuch -j ACCEPT', // 4
      '-A NOCHAIN -j ACCEPT', // 5
      '-A INPUT --dport 22 -j ACCEPT', // 6
      '-A INPUT -j MISSING', // 7
      ':TOOLONGCHAINNAME_ABCDEFGHIJKLMN - [0:0]', // 8
      '-P INPUT RETURN', // 9
      '-A INPUT -p tcp ! --comment x -j ACCEPT', // 10
      '-A INPUT ! -m tcp -j ACCEPT', // 11
      '-A INPUT -p bogus -j ACCEPT', // 12
      '-t nat -A INPUT -j ACCEPT', // 13
      'COMMIT',
    ].join('\n');
    assert.deepEqual(errorsOf(text), [
      'test.rules:2:13: host/network "example.com" not found: hostnames are not resolved, write a numeric address',
      'test.rules:3:13: interface name "abcdefghijklmnopq" must be shorter than 16 characters',
      'test.rules:4:13: unknown match "nosuch"',
      'test.rules:5:4: chain "NOCHAIN" does not exist in table filter',
      'test.rules:6:10: unknown option "--dport"',
      'test.rules:7:13: unknown target or chain "MISSING" (no such chain in table filter)',
      'test.rules:8:2: invalid chain name "TOOLONGCHAINNAME_ABCDEFGHIJKLMN" (28 chars max)',
      'test.rules:9:10: invalid policy "RETURN" (ACCEPT or DROP)',
      'test.rules:10:19: unknown option "--comment"',
      'test.rules:11:10: cannot have ! before -m',
      'test.rules:12:13: unknown protocol "bogus" specified',
      'test.rules:13:1: the -t option cannot be used in iptables-restore',
    ]);
  });

  it('refuses structural errors: missing COMMIT, rules outside a table, unknown table', () => {
    assert.deepEqual(errorsOf('*filter\n-A INPUT -j ACCEPT\n'), ['test.rules:1:1: table "filter" is not closed by COMMIT']);
    assert.deepEqual(errorsOf('-A INPUT -j ACCEPT\n'), [
      'test.rules:1:1: "-A" outside of a table (no *table line before it)',
    ]);
    assert.deepEqual(errorsOf('*bogus\nCOMMIT\n'), ['test.rules:1:2: unknown table "bogus" (tables: raw mangle nat filter security)']);
  });

  it('checks family when it is given', () => {
    assert.deepEqual(errorsOf(filter('-A INPUT -d 2001:db8::1 -j ACCEPT'), 4), [
      'test.rules:2:13: "2001:db8::1" is an IPv6 address, in an IPv4 rule',
    ]);
    // The kernel takes any protocol number in either family; only the family-only matches refuse.
    assert.equal(parse(filter('-A INPUT -p icmpv6 -j ACCEPT'), 4).family, 4);
    assert.deepEqual(errorsOf(filter('-A INPUT -m icmp6 -j ACCEPT'), 4), ['test.rules:2:13: match "icmp6" is IPv6-only, in an IPv4 rule']);
    assert.deepEqual(errorsOf(filter('-A INPUT -f -j ACCEPT'), 6), ['test.rules:2:10: -f is not supported by ip6tables (use -m frag)']);
  });
});

describe('rules/validate', () => {
  it('refuses loops among user chains', () => {
    assert.deepEqual(errorsOf(filter(':A - [0:0]', ':B - [0:0]', '-A A -j B', '-A B -g A')), [
      'test.rules:5:9: loop among chains: A -> B -> A',
    ]);
  });
  it('applies target table and hook rules, inherited through user chains', () => {
    assert.deepEqual(errorsOf(filter('-A INPUT -j DNAT --to-destination 1.2.3.4')), [
      'test.rules:2:13: target DNAT is only valid in table nat, not filter',
    ]);
    const nat = (...l: string[]) => `*nat\n${l.join('\n')}\nCOMMIT\n`;
    assert.equal(parse(nat(':S - [0:0]', '-A PREROUTING -j S', '-A OUTPUT -j S', '-A S -j DNAT --to-destination 1.2.3.4')).tables.size, 1);
    assert.deepEqual(errorsOf(nat(':S - [0:0]', '-A PREROUTING -j S', '-A POSTROUTING -j S', '-A S -j DNAT --to-destination 1.2.3.4')), [
      'test.rules:5:9: target DNAT used from hook POSTROUTING, but only usable from PREROUTING, OUTPUT (chain S is reached from PREROUTING, POSTROUTING)',
    ]);
  });
  it('refuses -X of a referenced or built-in chain and policies on user chains', () => {
    assert.deepEqual(errorsOf(filter(':A - [0:0]', '-A INPUT -j A', '-X A')), [
      'test.rules:4:4: cannot delete chain "A": still referenced (test.rules:3, chain INPUT)',
    ]);
    assert.deepEqual(errorsOf(filter('-X INPUT')), ['test.rules:2:4: cannot delete built-in chain "INPUT"']);
    assert.deepEqual(errorsOf(filter(':A ACCEPT [0:0]')), [
      'test.rules:2:4: cannot set policy "ACCEPT" on user chain "A" (built-in chains only; write "-")',
    ]);
    assert.deepEqual(errorsOf(filter(':A - [0:0]', '-P A DROP')), ['test.rules:3:4: cannot set a policy on user chain "A"']);
  });
});

describe('rules/enforce', () => {
  it('names each rule whose extension nfqwall cannot honour, with the reason', () => {
    const rs = parse('*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j TPROXY\n-A PREROUTING -j ACCEPT\n-A PREROUTING -j TPROXY\nCOMMIT\n');
    assert.throws(
      () => checkEnforceable(rs),
      (e: unknown) =>
        e instanceof RuleErrors &&
        e.message ===
          'test.rules:3:25: target "TPROXY" cannot be enforced by nfqwall: transparent proxying needs the kernel socket lookup\n' +
            'test.rules:5:18: target "TPROXY" cannot be enforced by nfqwall: transparent proxying needs the kernel socket lookup',
    );
    assert.doesNotThrow(() => checkEnforceable(parse(filter('-A INPUT -j ACCEPT'))));
  });
});
