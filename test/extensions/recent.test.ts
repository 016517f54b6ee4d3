import assert from 'node:assert/strict';
import recent, { type RecentOptions } from '../../src/extensions/recent';
import { IP_LIST_TOT, recentStore } from '../../src/extensions/util/b-recent-store';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, roundTrip, uses } from './b-fixture';

function opts(text: string, family: 4 | 6 = 4): RecentOptions {
  return recent.parse(uses(recent, text), parseCtx({ family }));
}

describe('recent match', () => {
  beforeEach(() => recentStore.reset());

  describe('parse and format (iptables 1.8.9)', () => {
    kernelCases(recent, KERNEL_CASES.recent!);
    it('prints the kube-proxy session affinity rules as the kernel does (corpus 01)', () => {
      assert.equal(
        roundTrip(
          recent,
          '--rcheck --seconds 10800 --reap --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource',
        ),
        '--rcheck --seconds 10800 --reap --name KUBE-SEP-I77PXRDZVX7PMWMN --mask 255.255.255.255 --rsource',
      );
      assert.equal(
        roundTrip(recent, '--set --name KUBE-SEP-CKTKXEMIKRIIY55M --mask 255.255.255.255 --rsource'),
        '--set --name KUBE-SEP-CKTKXEMIKRIIY55M --mask 255.255.255.255 --rsource',
      );
    });
    it('refuses two commands at the first one, as libxtables names them', () => {
      const e = refusal(recent, '--rcheck --set');
      assert.equal(e.loc.column, 10);
      assert.match(e.reason, /"--set" cannot be used together with "--rcheck"/);
    });
    it('refuses --reap without --seconds at --reap', () => {
      const e = refusal(recent, '--rcheck --reap');
      assert.equal(e.loc.column, 10);
      assert.match(e.reason, /also requires "--seconds"/);
    });
    it('refuses a bad --seconds at its argument', () => {
      assert.equal(refusal(recent, '--rcheck --seconds 0').loc.column, 20);
    });
  });

  describe('match', () => {
    const a = packet({ src: '198.18.0.1', dst: '198.18.0.9' });
    const b = packet({ src: '198.18.0.2', dst: '198.18.0.9' });

    it('--set always matches and adds the source; --rcheck then matches it only', () => {
      const set = opts('--set --name L');
      const check = opts('--rcheck --name L');
      assert.equal(recent.match!(check, context(a)), false);
      assert.equal(recent.match!(set, context(a)), true);
      assert.equal(recent.match!(check, context(a)), true);
      assert.equal(recent.match!(check, context(b)), false);
    });

    it('lists are global per name: a rule on another list does not see the entry', () => {
      recent.match!(opts('--set --name L1'), context(a));
      assert.equal(recent.match!(opts('--rcheck --name L2'), context(a)), false);
      assert.deepEqual(recentStore.names().sort(), ['L1', 'L2']);
    });

    it('--seconds only counts recent timestamps, --update refreshes them', () => {
      recent.match!(opts('--set'), context(a, { now: 0 }));
      const upd = opts('--update --seconds 10');
      assert.equal(recent.match!(upd, context(a, { now: 9_000 })), true);
      assert.equal(recent.match!(upd, context(a, { now: 18_000 })), true); // refreshed at 9 s
      assert.equal(recent.match!(opts('--rcheck --seconds 10'), context(a, { now: 28_001 })), false);
    });

    it('--hitcount needs that many timestamps within --seconds', () => {
      const set = opts('--set');
      const check = opts('--rcheck --seconds 60 --hitcount 3');
      recent.match!(set, context(a, { now: 1000 }));
      recent.match!(set, context(a, { now: 2000 }));
      assert.equal(recent.match!(check, context(a, { now: 3000 })), false);
      recent.match!(set, context(a, { now: 3000 }));
      assert.equal(recent.match!(check, context(a, { now: 4000 })), true);
      assert.equal(recent.match!(check, context(a, { now: 62_000 })), false);
    });

    it('--remove matches once and forgets the address', () => {
      recent.match!(opts('--set'), context(a));
      assert.equal(recent.match!(opts('--remove'), context(a)), true);
      assert.equal(recent.match!(opts('--remove'), context(a)), false);
      assert.equal(recent.match!(opts('--rcheck'), context(a)), false);
    });

    it('! inverts the result, and `! --set` still records', () => {
      assert.equal(recent.match!(opts('! --set'), context(a)), false);
      assert.equal(recent.match!(opts('! --rcheck'), context(a)), false);
      assert.equal(recent.match!(opts('! --rcheck'), context(b)), true);
    });

    it('--rdest keys on the destination, --mask groups addresses', () => {
      recent.match!(opts('--set --rdest --name D'), context(a));
      assert.equal(recent.match!(opts('--rcheck --rdest --name D'), context(b)), true);
      recent.match!(opts('--set --name M --mask 255.255.255.0'), context(a));
      assert.equal(recent.match!(opts('--rcheck --name M --mask 255.255.255.0'), context(b)), true);
    });

    it('--rttl requires the TTL the address was set with', () => {
      recent.match!(opts('--set'), context(packet({ ttl: 64 })));
      assert.equal(recent.match!(opts('--rcheck --rttl'), context(packet({ ttl: 63 }))), false);
      assert.equal(recent.match!(opts('--rcheck --rttl'), context(packet({ ttl: 64 }))), true);
    });

    it(`keeps at most ${IP_LIST_TOT} entries, evicting the least recently updated`, () => {
      const set = opts('--set');
      for (let i = 0; i <= IP_LIST_TOT; i++) {
        recent.match!(set, context(packet({ src: `198.19.${i >> 8}.${i & 255}` }), { now: i }));
      }
      const check = opts('--rcheck');
      assert.equal(recent.match!(check, context(packet({ src: '198.19.0.0' }))), false);
      assert.equal(recent.match!(check, context(packet({ src: '198.19.0.1' }))), true);
      assert.equal(recentStore.get('DEFAULT')!.entries.size, IP_LIST_TOT);
    });

    it('--reap drops the oldest entry once it is older than --seconds', () => {
      recent.match!(opts('--set'), context(a, { now: 0 }));
      recent.match!(opts('--set'), context(b, { now: 50_000 }));
      recent.match!(opts('--rcheck --seconds 10 --reap'), context(b, { now: 55_000 }));
      assert.equal(recentStore.get('DEFAULT')!.entries.size, 1);
      assert.equal(recent.match!(opts('--rcheck'), context(a)), false);
    });

    it('works for IPv6 with an IPv6 mask', () => {
      const p6 = packet({ family: 6, src: '2001:db8::1' });
      const q6 = packet({ family: 6, src: '2001:db8::2' });
      recent.match!(opts('--set --name V6 --mask ffff:ffff::', 6), context(p6));
      assert.equal(recent.match!(opts('--rcheck --name V6 --mask ffff:ffff::', 6), context(q6)), true);
      assert.equal(
        roundTrip(recent, '--set --mask ffff:ffff::', { family: 6 }),
        '--set --name DEFAULT --mask ffff:ffff:: --rsource',
      );
    });
  });
});
