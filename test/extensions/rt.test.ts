import assert from 'node:assert/strict';
import rt, { type RtOptions } from '../../src/extensions/rt';
import { parseIpAddr } from '../../src/rules/addr';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, roundTrip, uses } from './b-fixture';

const V6 = { family: 6 as const };

function opts(text: string): RtOptions {
  return rt.parse(uses(rt, text), parseCtx(V6));
}

/** A routing header body after the next-header byte: hdrlen, type, segments left, reserved, addresses. */
function routing(type: number, segsleft: number, addrs: string[] = [], reserved = 0): { type: number; body: number[] } {
  const a = addrs.flatMap((x) => [...parseIpAddr(x, 6)!]);
  return { type: 43, body: [addrs.length * 2, type, segsleft, 0, 0, 0, reserved, ...a] };
}

describe('rt match', () => {
  describe('parse and format (ip6tables 1.8.9)', () => {
    kernelCases(rt, KERNEL_CASES.rt!);
    it('prints the ufw rule as the kernel does (corpus 09)', () => {
      assert.equal(roundTrip(rt, '--rt-type 0', V6), '--rt-type 0');
    });
    it('refuses --rt-0-res without --rt-type 0, at --rt-0-res', () => {
      assert.equal(refusal(rt, '--rt-type 1 --rt-0-res', V6).loc.column, 13);
    });
    it('is IPv6 only', () => assert.equal(rt.family, 6));
  });

  describe('match', () => {
    it('type, segments left and length of the routing header', () => {
      const p = packet({ family: 6, ext: [routing(2, 1, ['2001:db8::9'])] });
      assert.equal(rt.match!(opts('--rt-type 2'), context(p)), true);
      assert.equal(rt.match!(opts('--rt-type 0'), context(p)), false);
      assert.equal(rt.match!(opts('! --rt-type 0 --rt-segsleft 1:3'), context(p)), true);
      assert.equal(rt.match!(opts('--rt-len 24'), context(p)), true);
      assert.equal(rt.match!(opts('! --rt-len 24'), context(p)), false);
    });
    it('no routing header: no match, even negated', () => {
      assert.equal(rt.match!(opts('! --rt-type 0'), context(packet({ family: 6 }))), false);
    });
    it('type 0 reserved field and addresses', () => {
      const p = packet({ family: 6, ext: [routing(0, 2, ['2001:db8::1', '2001:db8::2'])] });
      assert.equal(rt.match!(opts('--rt-type 0 --rt-0-res'), context(p)), true);
      const r = packet({ family: 6, ext: [routing(0, 2, ['2001:db8::1'], 1)] });
      assert.equal(rt.match!(opts('--rt-type 0 --rt-0-res'), context(r)), false);
      assert.equal(rt.match!(opts('--rt-type 0 --rt-0-addrs 2001:db8::1,2001:db8::2'), context(p)), true);
      assert.equal(rt.match!(opts('--rt-type 0 --rt-0-addrs 2001:db8::2'), context(p)), false);
      assert.equal(rt.match!(opts('--rt-type 0 --rt-0-addrs 2001:db8::2 --rt-0-not-strict'), context(p)), true);
    });
  });
});
