import assert from 'node:assert/strict';
import helper from '../../src/extensions/helper';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases, refusal } from './b-fixture';

describe('helper match', () => {
  kernelCases(helper, KERNEL_CASES.helper!);
  it('refuses names of 30 characters or more', () => {
    assert.match(refusal(helper, `--helper ${'h'.repeat(30)}`).reason, /longer than 29/);
  });
  it('is parsed but not enforced, with a reason', () => {
    assert.match(helper.unsupported ?? '', /conntrack helpers/);
  });
});
