import assert from 'node:assert/strict';
import connlimit from '../../src/extensions/connlimit';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases, refusal, roundTrip } from './b-fixture';

const TCP = { proto: { value: 6, negated: false } };

describe('connlimit match', () => {
  kernelCases(connlimit, KERNEL_CASES.connlimit!);
  it('prints the IPv6 default mask and refuses 129 there', () => {
    assert.equal(
      roundTrip(connlimit, '--connlimit-above 2', { ...TCP, family: 6 }),
      '--connlimit-above 2 --connlimit-mask 128 --connlimit-saddr',
    );
    assert.equal(refusal(connlimit, '--connlimit-above 2 --connlimit-mask 129', { ...TCP, family: 6 }).loc.column, 38);
  });
  it('is parsed but not enforced, with a reason', () => {
    assert.match(connlimit.unsupported ?? '', /connection table/);
    assert.equal(connlimit.match, undefined);
  });
});
