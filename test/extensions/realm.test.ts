import assert from 'node:assert/strict';
import realm from '../../src/extensions/realm';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('realm match', () => {
  kernelCases(realm, KERNEL_CASES.realm!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((realm.unsupported ?? '').startsWith('realm: '));
    assert.equal(realm.match, undefined);
  });
});
