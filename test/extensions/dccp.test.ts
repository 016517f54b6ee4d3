import assert from 'node:assert/strict';
import dccp from '../../src/extensions/dccp';
import { KERNEL_CASES } from './b-kernel-cases';
import { RuleError } from '../../src/extensions/types';
import { context, kernelCases, packet, parseCtx, roundTrip, uses } from './b-fixture';

const DCCP = { proto: { value: 33, negated: false } };

/** A DCCP REQUEST (type 0, X=1): 16-byte generic header, 4-byte service code, then options. */
function request(sport: number, dport: number, options: number[]): number[] {
  const doff = (16 + 4 + options.length) / 4;
  return [
    sport >> 8,
    sport & 255,
    dport >> 8,
    dport & 255,
    doff,
    0,
    0,
    0,
    (0 << 1) | 1,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    42,
    ...options,
  ];
}

describe('dccp match', () => {
  kernelCases(dccp, KERNEL_CASES.dccp!);
  it('ports, types and options', () => {
    const p = packet({ proto: 33, payload: request(5000, 80, [32, 3, 1, 0]) });
    const m = (t: string) => dccp.match!(dccp.parse(uses(dccp, t), parseCtx(DCCP)), context(p));
    assert.equal(m('--sport 4000:6000 --dport 80'), true);
    assert.equal(m('! --dport 80'), false);
    assert.equal(m('--dccp-types REQUEST'), true);
    assert.equal(m('--dccp-types DATA,ACK'), false);
    assert.equal(m('--dccp-option 32'), true);
    assert.equal(m('--dccp-option 33'), false);
    assert.equal(m('! --dccp-option 33'), true);
  });
});

describe('dccp ports as iptables 1.8.9 reads them', () => {
  // Recorded with iptables-restore/iptables-save in a namespace.
  const cases: [string, string | null][] = [
    ['--dport 99999', '--dport 34463'],
    ['--dport 65536:70000', '--dport 0:4464'],
    ['--sport 5:', '--sport 5:65535'],
    ['--sport :5', '--sport 0:5'],
    ['--sport ssh:http', '--sport 22:80'],
    ['--sport 7:5', '--sport 7:5'],
    ['--sport foo', null],
    ['--sport -1', null],
    ['--dccp-option 0', null],
    ['--dccp-option 256', null],
  ];
  for (const [input, expected] of cases) {
    it(`${input} -> ${expected ?? 'refused'}`, () => {
      if (expected === null) assert.throws(() => roundTrip(dccp, input, DCCP), RuleError);
      else assert.equal(roundTrip(dccp, input, DCCP), expected);
    });
  }
});
