import assert from 'node:assert/strict';
import policy from '../../src/extensions/policy';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases, refusal } from './b-fixture';

describe('policy match', () => {
  kernelCases(policy, KERNEL_CASES.policy!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((policy.unsupported ?? '').startsWith('policy: '));
    assert.equal(policy.match, undefined);
  });
});

describe('policy match, more', () => {
  it('refuses tunnel addresses outside tunnel mode, at the address option', () => {
    const e = refusal(policy, '--dir in --pol ipsec --strict --tunnel-src 198.18.0.1', { chain: 'INPUT' });
    assert.equal(e.loc.column, 31);
  });
});
