import assert from 'node:assert/strict';
import ah from '../../src/extensions/ah';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

const AH = { proto: { value: 51, negated: false } };

describe('ah match', () => {
  kernelCases(ah, KERNEL_CASES.ah!);
  it('--ahlen is an ip6tables option only', () => {
    assert.match(refusal(ah, '--ahlen 3', AH).reason, /unknown option/);
  });
  it('IPv4: SPI after next-header, length and reserved', () => {
    const p = packet({ proto: 51, payload: [6, 4, 0, 0, 0, 0, 0, 9] });
    assert.equal(ah.match!(ah.parse(uses(ah, '--ahspi 9'), parseCtx(AH)), context(p)), true);
    assert.equal(ah.match!(ah.parse(uses(ah, '--ahspi 10:20'), parseCtx(AH)), context(p)), false);
  });
  it('IPv6: found among the extension headers, with length and reserved', () => {
    const p = packet({
      family: 6,
      proto: 6,
      ext: [{ type: 51, body: [4, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] }],
    });
    const m = (t: string) => ah.match!(ah.parse(uses(ah, t), parseCtx({ family: 6 })), context(p));
    assert.equal(m('--ahspi 9 --ahlen 24 --ahres'), true);
    assert.equal(m('--ahlen 16'), false);
    assert.equal(m('! --ahspi 9'), false);
  });
});
