import assert from 'node:assert/strict';
import connbytes from '../../src/extensions/connbytes';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('connbytes match', () => {
  kernelCases(connbytes, KERNEL_CASES.connbytes!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((connbytes.unsupported ?? '').startsWith('connbytes: '));
    assert.equal(connbytes.match, undefined);
  });
});
