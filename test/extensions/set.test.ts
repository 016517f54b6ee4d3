import assert from 'node:assert/strict';
import set, { unsupportedReason, type SetOptions } from '../../src/extensions/set';
import type { SetView } from '../../src/extensions/types';
import { context, packet, parseCtx, refusal, roundTrip, uses } from './b-fixture';

function opts(text: string): SetOptions {
  return set.parse(uses(set, text), parseCtx());
}

describe('set match', () => {
  describe('parse and format', () => {
    // iptables-save lines of corpus 17 (anti-portscan) and 20 (weave-npc), as the kernel printed them.
    const corpus: [string, string][] = [
      ['--match-set scanner-ipv4-set src', '--match-set scanner-ipv4-set src'],
      ['! --match-set ipv4-egress-port-set dst,dst', '! --match-set ipv4-egress-port-set dst,dst'],
      [
        '--match-set scanner-ipv4-set src ! --update-counters --packets-gt 3',
        '--match-set scanner-ipv4-set src ! --update-counters --packets-gt 3',
      ],
      ['--match-set weave-41s)5vQ^o/xWGz6a20N:~?#|E src', '--match-set weave-41s)5vQ^o/xWGz6a20N:~?#|E src'],
      ['--match-set weave-;rGqyMIl1HN^cfDki~Z$3]6!N dst', '--match-set weave-;rGqyMIl1HN^cfDki~Z$3]6!N dst'],
      ['--set foo src,dst --return-nomatch', '--match-set foo src,dst --return-nomatch'],
      [
        '--match-set foo src ! --update-subcounters ! --bytes-eq 5',
        '--match-set foo src ! --update-subcounters ! --bytes-eq 5',
      ],
    ];
    for (const [input, expected] of corpus) {
      it(`${input} -> ${expected}`, () => assert.equal(roundTrip(set, input), expected));
    }
    it('refuses more than six dimensions and anything but src/dst, at the flags', () => {
      assert.equal(refusal(set, '--match-set foo src,dst,src,src,dst,src,dst').loc.column, 17);
      assert.match(refusal(set, '--match-set foo src,any').reason, /'src' or 'dst'/);
    });
    it('refuses a rule without --match-set and a set name of 32 characters', () => {
      assert.match(refusal(set, '--return-nomatch').reason, /--match-set/);
      assert.match(refusal(set, `--match-set ${'x'.repeat(32)} src`).reason, /too long/);
    });
    it('refuses `!` on --return-nomatch (not invertible)', () => {
      assert.throws(() => uses(set, '--match-set foo src ! --return-nomatch'));
    });
  });

  describe('match', () => {
    const seen: { name: string; dims: string[] }[] = [];
    const sets: SetView = {
      test(name, pkt, _meta, dims) {
        seen.push({ name, dims });
        if (name !== 'blocked') return undefined;
        return pkt.src[3] === 1;
      },
    };
    it('asks the set view with the rule dimensions and honours `!`', () => {
      const o = opts('--match-set blocked src,dst');
      assert.equal(set.match!(o, context(packet({ src: '198.18.0.1' }), { sets })), true);
      assert.deepEqual(seen.at(-1), { name: 'blocked', dims: ['src', 'dst'] });
      assert.equal(set.match!(o, context(packet({ src: '198.18.0.3' }), { sets })), false);
      assert.equal(
        set.match!(opts('! --match-set blocked src'), context(packet({ src: '198.18.0.3' }), { sets })),
        true,
      );
    });
    it('reports counter conditions as unsupported', () => {
      assert.equal(unsupportedReason(opts('--match-set a src')), undefined);
      assert.match(unsupportedReason(opts('--match-set a src --packets-gt 3')) ?? '', /counters/);
    });
  });
});
