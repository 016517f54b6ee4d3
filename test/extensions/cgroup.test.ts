import assert from 'node:assert/strict';
import cgroup from '../../src/extensions/cgroup';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('cgroup match', () => {
  kernelCases(cgroup, KERNEL_CASES.cgroup!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((cgroup.unsupported ?? '').startsWith('cgroup: '));
    assert.equal(cgroup.match, undefined);
  });
});
