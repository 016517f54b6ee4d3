import assert from 'node:assert/strict';
import osf from '../../src/extensions/osf';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('osf match', () => {
  kernelCases(osf, KERNEL_CASES.osf!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((osf.unsupported ?? '').startsWith('osf: '));
    assert.equal(osf.match, undefined);
  });
});
