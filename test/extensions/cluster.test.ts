import assert from 'node:assert/strict';
import cluster from '../../src/extensions/cluster';
import { KERNEL_CASES } from './b-kernel-cases';
import { kernelCases } from './b-fixture';

describe('cluster match', () => {
  kernelCases(cluster, KERNEL_CASES.cluster!);
  it('parses and prints, but is not enforced: it says why', () => {
    assert.ok((cluster.unsupported ?? '').startsWith('cluster: '));
    assert.equal(cluster.match, undefined);
  });
});
