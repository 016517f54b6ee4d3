import assert from 'node:assert/strict';
import bpf, { runBpf, unsupportedReason } from '../../src/extensions/bpf';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, roundTrip, uses } from './b-fixture';

describe('bpf match', () => {
  kernelCases(bpf, KERNEL_CASES.bpf!);
  it('prints a pinned object and reports it as unsupported', () => {
    assert.equal(roundTrip(bpf, '--object-pinned /sys/fs/bpf/x'), '--object-pinned /sys/fs/bpf/x');
    assert.match(unsupportedReason(bpf.parse(uses(bpf, '--object-pinned /x'), parseCtx())) ?? '', /kernel/);
  });
  it('runs classic BPF from the network header: "ldb [9]; jeq #6; ret #1; ret #0" matches TCP', () => {
    const o = bpf.parse(uses(bpf, '--bytecode "4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0"'), parseCtx());
    assert.equal(bpf.match!(o, context(packet({ proto: 6 }))), true);
    assert.equal(bpf.match!(o, context(packet({ proto: 17 }))), false);
  });
  it('loads past the end return 0; ALU, index and scratch memory work', () => {
    assert.equal(
      runBpf(
        [
          { code: 0x20, jt: 0, jf: 0, k: 100 },
          { code: 0x16, jt: 0, jf: 0, k: 0 },
        ],
        new Uint8Array(8),
      ),
      0,
    );
    // ldxb 4*([0]&0xf); ld #5; add x; st M[1]; ld M[1]; ret a   -> 5 + 20 for a 0x45 first byte
    const prog = [
      { code: 0xb1, jt: 0, jf: 0, k: 0 },
      { code: 0x00, jt: 0, jf: 0, k: 5 },
      { code: 0x0c, jt: 0, jf: 0, k: 0 },
      { code: 0x02, jt: 0, jf: 0, k: 1 },
      { code: 0x60, jt: 0, jf: 0, k: 1 },
      { code: 0x16, jt: 0, jf: 0, k: 0 },
    ];
    assert.equal(runBpf(prog, packet().data), 25);
  });
});
