import assert from 'node:assert/strict';
import rpfilter from '../../src/extensions/rpfilter';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('rpfilter match', () => {
  kernelCases(rpfilter, KERNEL_CASES.rpfilter!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((rpfilter.unsupported ?? '').startsWith('rpfilter: '));
    assert.equal(rpfilter.match, undefined);
  });
});
