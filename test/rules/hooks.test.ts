// Hook rules of matches (their xt_match .hooks) checked for every hook a chain is reached from, and the checkentry
// restrictions that iptables-nft applies to built-in chains only. The kernel agrees: test/rules/hooks-kernel.test.ts.
import assert from 'node:assert/strict';
import { RuleErrors } from '../../src/rules/errors';
import { parseRuleset } from '../../src/rules/parse';

function errorsOf(text: string): string[] {
  try {
    parseRuleset(text, 'h.rules', { family: 4 });
  } catch (e) {
    if (e instanceof RuleErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  return [];
}

const mangle = (...l: string[]) => `*mangle\n${l.join('\n')}\nCOMMIT\n`;

describe('rules/validate: match hooks', () => {
  it('refuses mac in a built-in chain of another hook, in the kernel words', () => {
    assert.deepEqual(errorsOf(mangle('-A OUTPUT -m mac --mac-source 00:11:22:33:44:55')), [
      'h.rules:2:14: mac match: used from hooks OUTPUT, but only valid from PREROUTING/INPUT/FORWARD',
    ]);
    assert.deepEqual(errorsOf(mangle('-A INPUT -m mac --mac-source 00:11:22:33:44:55')), []);
  });

  it('refuses a match in a user chain reached from a hook it may not run at, naming every hook', () => {
    assert.deepEqual(
      errorsOf(mangle(':U - [0:0]', '-A INPUT -j U', '-A OUTPUT -j U', '-A U -m mac --mac-source 00:11:22:33:44:55')),
      [
        'h.rules:5:9: mac match: used from hooks INPUT/OUTPUT, but only valid from PREROUTING/INPUT/FORWARD (chain U is reached from INPUT, OUTPUT)',
      ],
    );
    // Through two user chains, and only once the jump is there.
    assert.deepEqual(errorsOf(mangle(':U - [0:0]', ':V - [0:0]', '-A INPUT -j U', '-A U -g V', '-A V -m owner --uid-owner 0')), [
      'h.rules:6:9: owner match: used from hooks INPUT, but only valid from OUTPUT/POSTROUTING (chain V is reached from INPUT)',
    ]);
    assert.deepEqual(errorsOf(mangle(':U - [0:0]', '-A U -m owner --uid-owner 0')), []);
  });

  it('has every module with a kernel .hooks say so', () => {
    const cases: [string, string, boolean][] = [
      ['-m owner --uid-owner 0', 'POSTROUTING', true],
      ['-m owner --uid-owner 0', 'FORWARD', false],
      ['-m socket', 'INPUT', true],
      ['-m socket', 'FORWARD', false],
      ['-m rpfilter', 'PREROUTING', true],
      ['-m rpfilter', 'INPUT', false],
      ['-m cgroup --cgroup 1', 'INPUT', true],
      ['-m cgroup --cgroup 1', 'PREROUTING', false],
      ['-m realm --realm 1', 'FORWARD', true],
      ['-m realm --realm 1', 'PREROUTING', false],
    ];
    for (const [spec, hook, ok] of cases) {
      const got = errorsOf(mangle(':U - [0:0]', `-A ${hook} -j U`, `-A U ${spec}`));
      assert.equal(got.length === 0, ok, `${spec} reached from ${hook}: ${got.join('; ')}`);
    }
  });

  it('applies checkentry restrictions to built-in chains only, as iptables-nft does', () => {
    const cases = [
      '-m addrtype --src-type LOCAL --limit-iface-in',
      '-m physdev --physdev-out eth0',
      '-m physdev --physdev-is-out',
      '-m policy --dir in --pol none',
      '-m devgroup --src-group 1',
    ];
    for (const spec of cases) {
      assert.equal(errorsOf(mangle(`-A OUTPUT ${spec}`)).length, 1, `${spec} in OUTPUT`);
      assert.deepEqual(errorsOf(mangle(':U - [0:0]', '-A OUTPUT -j U', `-A U ${spec}`)), [], `${spec} in U from OUTPUT`);
    }
    assert.deepEqual(errorsOf(mangle('-A OUTPUT -m physdev --physdev-is-bridged --physdev-out eth0')), []);
    assert.match(errorsOf(mangle('-A OUTPUT -m physdev ! --physdev-is-bridged --physdev-out eth0'))[0] ?? '', /FORWARD and POSTROUTING/);
  });

  it('checks TCPMSS --clamp-mss-to-pmtu in built-in chains only', () => {
    const clamp = '-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu';
    assert.equal(errorsOf(mangle(`-A INPUT ${clamp}`)).length, 1);
    assert.deepEqual(errorsOf(mangle(`-A FORWARD ${clamp}`)), []);
    assert.deepEqual(errorsOf(mangle(':U - [0:0]', '-A INPUT -j U', `-A U ${clamp}`)), []);
  });
});
