import assert from 'node:assert/strict';
import NFQUEUE from '../../src/extensions/NFQUEUE';
import { jhash3words } from '../../src/extensions/util/t-jhash';
import { col, meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('NFQUEUE target', () => {
  // iptables-nft 1.8.9 output and libxt_NFQUEUE.t
  const saves: [string, string][] = [
    ['', '--queue-num 0'],
    ['--queue-num 5', '--queue-num 5'],
    ['--queue-num 65535', '--queue-num 65535'],
    ['--queue-balance 0:3', '--queue-balance 0:3'],
    ['--queue-balance 0:65534', '--queue-balance 0:65534'],
    ['--queue-balance 1:65535', '--queue-balance 1:65535'],
    ['--queue-bypass', '--queue-num 0 --queue-bypass'],
    ['--queue-bypass --queue-num 1', '--queue-num 1 --queue-bypass'],
    ['--queue-balance 0:3 --queue-cpu-fanout --queue-bypass', '--queue-balance 0:3 --queue-bypass --queue-cpu-fanout'],
  ];
  for (const [input, want] of saves) {
    it(`prints "${input}" as "${want}"`, () => assert.equal(roundTrip(NFQUEUE, input), want));
  }

  it('refuses what iptables and the kernel refuse', () => {
    refuses(NFQUEUE, '--queue-num 65536', /out of range \(0-65535\)/, 13);
    refuses(NFQUEUE, '--queue-balance 3:3', /3 should be less than 3/, 17);
    refuses(NFQUEUE, '--queue-balance 3:2', /3 should be less than 2/, 17);
    refuses(NFQUEUE, '--queue-balance 2', /Bad range "2"/, 17);
    refuses(NFQUEUE, '--queue-balance 0:65535', /more than 65535 queues/, 17);
    refuses(NFQUEUE, '--queue-cpu-fanout', /also requires "--queue-balance"/, 1);
    const both = '--queue-balance 0:3 --queue-num 3';
    refuses(NFQUEUE, both, /"--queue-num" cannot be used together with "--queue-balance"/, col(both, '--queue-num'));
  });

  it('queues to the given queue with the bypass flag', () => {
    assert.deepEqual(run(NFQUEUE, '--queue-num 7 --queue-bypass', tctx(packet(), meta())), {
      verdict: 'queue',
      queue: 7,
      bypass: true,
    });
    assert.deepEqual(run(NFQUEUE, '', tctx(packet(), meta())), { verdict: 'queue', queue: 0, bypass: false });
  });

  it('balances by addresses and protocol: both directions of a flow share a queue, flows spread', () => {
    const seen = new Set<number>();
    for (let i = 1; i <= 64; i++) {
      const a = `198.18.1.${i}`;
      const fwd = run(NFQUEUE, '--queue-balance 10:13', tctx(packet({ src: a, dst: '198.18.0.2' }), meta()));
      const rev = run(NFQUEUE, '--queue-balance 10:13', tctx(packet({ src: '198.18.0.2', dst: a, sport: 1 }), meta()));
      assert.deepEqual(fwd, rev);
      assert.equal(fwd.verdict, 'queue');
      if (fwd.verdict === 'queue') {
        assert.ok(fwd.queue >= 10 && fwd.queue <= 13);
        seen.add(fwd.queue);
      }
    }
    assert.equal(seen.size, 4, 'all four queues used by 64 flows');
  });

  it('implements jhash_3words as the kernel does', () => {
    // Known answers from include/linux/jhash.h's macros compiled as C (gcc), one per row: a, b, c, initval, hash.
    const vectors: [number, number, number, number, number][] = [
      [0x0, 0x0, 0x0, 0x0, 0x1b68e557],
      [0x1, 0x2, 0x3, 0x0, 0xa46158f5],
      [0x3, 0x2, 0x1, 0x0, 0x9742955a],
      [0x112c6c6, 0x200c6c6, 0x6, 0x0, 0x1821e677],
      [0xffffffff, 0x80000000, 0x11, 0x12345678, 0xacbaeabf],
    ];
    for (const [a, b, c, init, want] of vectors) assert.equal(jhash3words(a, b, c, init), want);
  });
});
