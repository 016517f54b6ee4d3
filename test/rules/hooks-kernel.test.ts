// The kernel is the oracle for where hook-bound matches and targets may sit: every spec is put in each built-in chain
// of mangle, and in a user chain jumped to from it, in a throwaway namespace; nfqwall must accept exactly what
// iptables-restore (nft backend) accepts. Root only.
import assert from 'node:assert/strict';
import { RuleErrors } from '../../src/rules/errors';
import { HOOKS } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { Netns, whyNoKernel } from './netns';

const SPECS = [
  '-m mac --mac-source 00:11:22:33:44:55',
  '-m addrtype --src-type LOCAL --limit-iface-in',
  '-m addrtype --src-type LOCAL --limit-iface-out',
  '-m physdev --physdev-out eth0',
  '-m physdev --physdev-is-out',
  '-m physdev --physdev-is-bridged --physdev-out eth0',
  '-m physdev ! --physdev-is-bridged --physdev-is-out',
  '-m owner --uid-owner 0',
  '-m socket',
  '-m rpfilter',
  '-m cgroup --cgroup 1',
  '-m realm --realm 1',
  '-m policy --dir in --pol none',
  '-m policy --dir out --pol none',
  '-m devgroup --src-group 1',
  '-m devgroup --dst-group 1',
  '-m devgroup --src-group 1 --dst-group 2',
  '-p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu',
];

function ours(text: string): boolean {
  try {
    parseRuleset(text, 'k.rules', { family: 4 });
    return true;
  } catch (e) {
    if (e instanceof RuleErrors) return false;
    throw e;
  }
}

describe('rules/validate: hooks against the kernel (root)', function () {
  this.timeout(300_000);
  const ns = new Netns('h10hooks');

  before(function () {
    const why = whyNoKernel();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    ns.create();
  });
  after(() => ns.destroy());

  it('accepts and refuses what iptables-restore does, in built-in and user chains', () => {
    const wrong: string[] = [];
    let refused = 0;
    for (const spec of SPECS) {
      for (const hook of HOOKS) {
        const placements = {
          builtin: `*mangle\n-A ${hook} ${spec}\nCOMMIT\n`,
          user: `*mangle\n:U - [0:0]\n-A ${hook} -j U\n-A U ${spec}\nCOMMIT\n`,
          'user, two hooks': `*mangle\n:U - [0:0]\n-A ${hook} -j U\n-A FORWARD -j U\n-A U ${spec}\nCOMMIT\n`,
        };
        for (const [where, text] of Object.entries(placements)) {
          const kernel = ns.restore(4, text).status === 0;
          ns.clear(4, 'mangle');
          if (!kernel) refused++;
          if (ours(text) !== kernel) wrong.push(`${spec} in ${where} ${hook}: kernel ${kernel ? 'accepts' : 'refuses'}`);
        }
      }
    }
    assert.ok(refused > 20, `the kernel refused only ${refused} placements: the test checks nothing`);
    assert.deepEqual(wrong, []);
  });
});
