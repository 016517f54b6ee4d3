import assert from 'node:assert/strict';
import mh from '../../src/extensions/mh';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

const MH = { family: 6 as const, proto: { value: 135, negated: false } };

describe('mh match', () => {
  kernelCases(mh, KERNEL_CASES.mh!);
  it('refuses a rule without -p ipv6-mh and unknown type names', () => {
    assert.match(refusal(mh, '--mh-type 5', { family: 6 }).reason, /ipv6-mh/);
    assert.equal(refusal(mh, '--mh-type nope', MH).loc.column, 11);
  });
  it('matches the type byte of the mobility header', () => {
    const o = mh.parse(uses(mh, '--mh-type bu:ba'), parseCtx(MH));
    const p = (type: number) => packet({ family: 6, proto: 135, payload: [59, 1, type, 0, 0, 0, 0, 0] });
    assert.equal(mh.match!(o, context(p(5))), true);
    assert.equal(mh.match!(o, context(p(7))), false);
  });
});
