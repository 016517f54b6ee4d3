import assert from 'node:assert/strict';
import ecn from '../../src/extensions/ecn';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

const TCP = { proto: { value: 6, negated: false } };

describe('ecn match', () => {
  kernelCases(ecn, KERNEL_CASES.ecn!);
  it('refuses TCP flags without -p tcp and ECT values above 3', () => {
    assert.match(refusal(ecn, '--ecn-tcp-cwr').reason, /-p tcp/);
    assert.equal(refusal(ecn, '--ecn-ip-ect 4', TCP).loc.column, 14);
  });
  it('tests the ECN field and the TCP ECE/CWR flags', () => {
    const o = ecn.parse(uses(ecn, '--ecn-tcp-ece ! --ecn-tcp-cwr --ecn-ip-ect 3'), parseCtx(TCP));
    assert.equal(ecn.match!(o, context(packet({ tos: 3, tcpFlags: 0x40 | 0x02 }))), true);
    assert.equal(ecn.match!(o, context(packet({ tos: 3, tcpFlags: 0xc0 }))), false);
    assert.equal(ecn.match!(o, context(packet({ tos: 2, tcpFlags: 0x40 }))), false);
    assert.equal(ecn.match!(o, context(packet({ tos: 3, proto: 17 }))), false);
  });
});
