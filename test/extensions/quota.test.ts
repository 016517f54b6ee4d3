import assert from 'node:assert/strict';
import quota from '../../src/extensions/quota';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, uses } from './b-fixture';

describe('quota match', () => {
  kernelCases(quota, KERNEL_CASES.quota!);
  it('matches until the bytes are used up, then never again (even for small packets)', () => {
    const o = quota.parse(uses(quota, '--quota 100'), parseCtx());
    const state = quota.createState!(o);
    const p = packet({ proto: 17, payload: 'x'.repeat(12) }); // 40 bytes
    const small = packet({ proto: 99 }); // 20 bytes
    const m = (pk: typeof p) => quota.match!(o, context(pk, { state }));
    assert.deepEqual([m(p), m(p), m(p), m(small)], [true, true, false, false]);
  });
  it('`!` matches once the quota is spent', () => {
    const o = quota.parse(uses(quota, '! --quota 40'), parseCtx());
    const state = quota.createState!(o);
    const p = packet({ proto: 17, payload: 'x'.repeat(12) });
    assert.deepEqual([quota.match!(o, context(p, { state })), quota.match!(o, context(p, { state }))], [false, true]);
  });
});
