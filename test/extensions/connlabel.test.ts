import assert from 'node:assert/strict';
import connlabel from '../../src/extensions/connlabel';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('connlabel match', () => {
  kernelCases(connlabel, KERNEL_CASES.connlabel!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((connlabel.unsupported ?? '').startsWith('connlabel: '));
    assert.equal(connlabel.match, undefined);
  });
});
