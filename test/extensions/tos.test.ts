import assert from 'node:assert/strict';
import tos from '../../src/extensions/tos';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, roundTrip, uses } from './b-fixture';

describe('tos match', () => {
  kernelCases(tos, KERNEL_CASES.tos!);
  it('accepts symbolic names in any case', () => {
    assert.equal(roundTrip(tos, '--tos minimize-cost'), '--tos 0x02/0x3f');
  });
  it('refuses an unknown name at its argument', () => {
    assert.equal(refusal(tos, '--tos 0x1ff').loc.column, 7);
  });
  it('compares under the mask', () => {
    const o = tos.parse(uses(tos, '--tos Minimize-Delay'), parseCtx());
    assert.equal(tos.match!(o, context(packet({ tos: 0x10 }))), true);
    assert.equal(tos.match!(o, context(packet({ tos: 0xd0 }))), true); // precedence bits outside 0x3f
    assert.equal(tos.match!(o, context(packet({ tos: 0x18 }))), false);
    const exact = tos.parse(uses(tos, '! --tos 0x10'), parseCtx());
    assert.equal(tos.match!(exact, context(packet({ tos: 0xd0 }))), true);
  });
});
