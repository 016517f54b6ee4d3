import assert from 'node:assert/strict';
import dscp from '../../src/extensions/dscp';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

describe('dscp match', () => {
  kernelCases(dscp, KERNEL_CASES.dscp!);
  it('refuses an unknown class at its argument', () => {
    assert.equal(refusal(dscp, '--dscp-class XX').loc.column, 14);
  });
  it('compares the upper six bits of the TOS byte / traffic class', () => {
    const ef = dscp.parse(uses(dscp, '--dscp-class EF'), parseCtx());
    assert.equal(dscp.match!(ef, context(packet({ tos: 0xb8 }))), true);
    assert.equal(dscp.match!(ef, context(packet({ tos: 0xb9 }))), true); // ECN bits ignored
    assert.equal(dscp.match!(ef, context(packet({ tos: 0x00 }))), false);
    assert.equal(dscp.match!(ef, context(packet({ family: 6, tos: 0xb8 }))), true);
    const not = dscp.parse(uses(dscp, '! --dscp 0'), parseCtx());
    assert.equal(dscp.match!(not, context(packet({ tos: 0x02 }))), false);
  });
});
