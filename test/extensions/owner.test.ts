import assert from 'node:assert/strict';
import owner, { type OwnerOptions } from '../../src/extensions/owner';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, roundTrip, uses } from './b-fixture';

function opts(text: string): OwnerOptions {
  return owner.parse(uses(owner, text), parseCtx({ chain: 'OUTPUT' }));
}

describe('owner match', () => {
  describe('parse and format (iptables 1.8.9)', () => {
    kernelCases(owner, KERNEL_CASES.owner!);
    it('prints the Istio rules as the kernel does (corpus 04)', () => {
      assert.equal(roundTrip(owner, '! --uid-owner 1337', { chain: 'OUTPUT' }), '! --uid-owner 1337');
      assert.equal(roundTrip(owner, '--gid-owner 1337', { chain: 'ISTIO_OUTPUT' }), '--gid-owner 1337');
    });
    it('resolves names through /etc/passwd and /etc/group', () => {
      assert.equal(
        roundTrip(owner, '--uid-owner root --gid-owner root', { chain: 'OUTPUT' }),
        '--uid-owner 0 --gid-owner 0',
      );
    });
    it('runs at OUTPUT and POSTROUTING only, and refuses an unknown user at its argument', () => {
      // The hook is the validator's business (test/rules/hooks.test.ts); the module says which.
      assert.deepEqual(owner.allowedHooks?.(opts('--uid-owner 0')), ['OUTPUT', 'POSTROUTING']);
      const e = refusal(owner, '--uid-owner nosuchuser-h6', { chain: 'OUTPUT' });
      assert.equal(e.loc.column, 13);
    });
    it('refuses --suppl-groups before --gid-owner', () => {
      assert.equal(refusal(owner, '--suppl-groups --gid-owner 5', { chain: 'OUTPUT' }).loc.column, 1);
    });
  });

  describe('match', () => {
    const pkt = packet();
    it('compares uid and gid ranges, with negation', () => {
      assert.equal(owner.match!(opts('--uid-owner 1000-2000'), context(pkt, { meta: { uid: 1500, gid: 5 } })), true);
      assert.equal(owner.match!(opts('--uid-owner 1000-2000'), context(pkt, { meta: { uid: 999, gid: 5 } })), false);
      assert.equal(owner.match!(opts('! --uid-owner 1337'), context(pkt, { meta: { uid: 1337, gid: 5 } })), false);
      assert.equal(owner.match!(opts('! --uid-owner 1337'), context(pkt, { meta: { uid: 0, gid: 5 } })), true);
      assert.equal(
        owner.match!(opts('--uid-owner 0 --gid-owner 7'), context(pkt, { meta: { uid: 0, gid: 5 } })),
        false,
      );
    });
    it('without a socket only all-negated rules match', () => {
      const none = context(pkt);
      assert.equal(owner.match!(opts('--uid-owner 0'), none), false);
      assert.equal(owner.match!(opts('! --uid-owner 0'), none), true);
      assert.equal(owner.match!(opts('! --socket-exists'), none), true);
      assert.equal(owner.match!(opts('--socket-exists'), none), false);
      assert.equal(owner.match!(opts('--socket-exists'), context(pkt, { meta: { uid: 3, gid: 3 } })), true);
      assert.equal(owner.match!(opts('! --socket-exists'), context(pkt, { meta: { uid: 3, gid: 3 } })), false);
    });
  });
});
