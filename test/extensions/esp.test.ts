import assert from 'node:assert/strict';
import esp from '../../src/extensions/esp';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, uses } from './b-fixture';

const ESP = { proto: { value: 50, negated: false } };

describe('esp match', () => {
  kernelCases(esp, KERNEL_CASES.esp!);
  it('compares the SPI at the start of the ESP header', () => {
    const p = packet({ proto: 50, payload: [0, 0, 1, 0, 0, 0, 0, 1] });
    const m = (t: string) => esp.match!(esp.parse(uses(esp, t), parseCtx(ESP)), context(p));
    assert.equal(m('--espspi 256'), true);
    assert.equal(m('--espspi 1:255'), false);
    assert.equal(m('! --espspi 1:255'), true);
    assert.equal(m(''), true);
  });
});
