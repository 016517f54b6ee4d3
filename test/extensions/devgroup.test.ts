import assert from 'node:assert/strict';
import devgroup from '../../src/extensions/devgroup';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('devgroup match', () => {
  kernelCases(devgroup, KERNEL_CASES.devgroup!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((devgroup.unsupported ?? '').startsWith('devgroup: '));
    assert.equal(devgroup.match, undefined);
  });
});
