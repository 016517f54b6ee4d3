import assert from 'node:assert/strict';
import cpu from '../../src/extensions/cpu';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('cpu match', () => {
  kernelCases(cpu, KERNEL_CASES.cpu!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((cpu.unsupported ?? '').startsWith('cpu: '));
    assert.equal(cpu.match, undefined);
  });
});
