import assert from 'node:assert/strict';
import tcpmss, { type TcpmssOptions } from '../../src/extensions/tcpmss';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

const TCP = { proto: { value: 6, negated: false } };

function opts(text: string): TcpmssOptions {
  return tcpmss.parse(uses(tcpmss, text), parseCtx(TCP));
}

describe('tcpmss match', () => {
  describe('parse and format (iptables 1.8.9)', () => {
    kernelCases(tcpmss, KERNEL_CASES.tcpmss!);
    it('refuses an empty range at its argument and a rule without -p tcp', () => {
      assert.equal(refusal(tcpmss, '--mss 200:100', TCP).loc.column, 7);
      assert.match(refusal(tcpmss, '--mss 1460').reason, /-p tcp/);
    });
  });

  describe('match', () => {
    const syn = (mss: number) => packet({ tcpOptions: [1, 1, 2, 4, mss >> 8, mss & 255] });
    it('reads the MSS option after other options', () => {
      assert.equal(tcpmss.match!(opts('--mss 1000:1460'), context(syn(1460))), true);
      assert.equal(tcpmss.match!(opts('--mss 1000:1460'), context(syn(1500))), false);
      assert.equal(tcpmss.match!(opts('! --mss 1460'), context(syn(1500))), true);
    });
    it('a segment without an MSS option gives the inversion flag', () => {
      assert.equal(tcpmss.match!(opts('--mss 0:65535'), context(packet())), false);
      assert.equal(tcpmss.match!(opts('! --mss 1460'), context(packet())), true);
    });
  });
});
