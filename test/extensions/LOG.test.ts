import assert from 'node:assert/strict';
import LOG from '../../src/extensions/LOG';
import NFLOG from '../../src/extensions/NFLOG';
import { col, meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('LOG target', () => {
  // iptables-nft 1.8.9 output, and the corpus (`--log-prefix "iptables denied: " --log-level 7`).
  const saves: [string, string][] = [
    ['', ''],
    ['--log-level 4', ''],
    ['--log-level warning', ''],
    ['--log-level emerg', '--log-level 0'],
    ['--log-level panic', '--log-level 0'],
    ['--log-level error', '--log-level 3'],
    ['--log-level debug', '--log-level 7'],
    ['--log-level 0x3', '--log-level 3'],
    ['--log-prefix abc', '--log-prefix abc'],
    ['--log-prefix "iptables denied: " --log-level 7', '--log-prefix "iptables denied: " --log-level 7'],
    ['--log-prefix "[raw] DROP: "', '--log-prefix "[raw] DROP: "'],
    [`--log-prefix "a b'c\\"d"`, `--log-prefix "a b\\'c\\"d"`],
    ['--log-prefix 01234567890123456789012345678901', '--log-prefix 01234567890123456789012345678'],
    [
      '--log-macdecode --log-uid --log-ip-options --log-tcp-options --log-tcp-sequence --log-level 3 --log-prefix x',
      '--log-prefix x --log-level 3 --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid --log-macdecode',
    ],
  ];
  for (const [input, want] of saves) {
    it(`prints "${input}" as "${want}"`, () => assert.equal(roundTrip(LOG, input), want));
  }

  it('refuses what iptables refuses', () => {
    refuses(LOG, '--log-level 8', /log level "8" unknown/, 13);
    refuses(LOG, '--log-level err', /log level "err" unknown/, 13);
    refuses(LOG, '--log-prefix ""', /minimum length of 1/, 14);
    refuses(LOG, '--log-prefix "a\nb"', /Newlines not allowed/, 14);
    const twice = '--log-level 1 --log-level 2';
    refuses(LOG, twice, /"--log-level" can only be used once/, col(twice, '--log-level', 1));
  });

  it('records the kernel log line with its level and continues', () => {
    const ctx = tctx(packet({ dport: 22 }), meta('INPUT'));
    assert.deepEqual(run(LOG, '--log-prefix "drop: " --log-level 6', ctx), { verdict: 'continue' });
    assert.equal(ctx.logs.length, 1);
    assert.equal(ctx.logs[0].kind, 'LOG');
    assert.equal(ctx.logs[0].level, 6);
    assert.match(ctx.logs[0].line, /^drop: IN=veth0 OUT= /);
    assert.match(ctx.logs[0].line, /SRC=198\.18\.0\.1 DST=198\.18\.0\.2 .*PROTO=TCP SPT=40000 DPT=22 /);
  });
});

describe('NFLOG target', () => {
  // iptables-nft 1.8.9 output (NFLOG becomes nftables' log statement) and the corpus' Istio rule.
  const saves: [string, string][] = [
    ['', ''],
    ['--nflog-group 0', ''],
    ['--nflog-group 86', '--nflog-group 86'],
    ['--nflog-group 65535', '--nflog-group 65535'],
    ['--nflog-range 20', ''],
    ['--nflog-size 0', '--nflog-size 0'],
    ['--nflog-threshold 0', ''],
    ['--nflog-threshold 1', '--nflog-threshold 1'],
    ['--nflog-range 5 --nflog-threshold 3', '--nflog-threshold 3'],
    ['--nflog-prefix "a b"', '--nflog-prefix "a b"'],
    ['--nflog-threshold 3 --nflog-size 4 --nflog-prefix p --nflog-group 2', '--nflog-prefix p --nflog-group 2 --nflog-size 4 --nflog-threshold 3'],
    ['--nflog-prefix InboundCapture --nflog-group 1337 --nflog-size 20', '--nflog-prefix InboundCapture --nflog-group 1337 --nflog-size 20'],
  ];
  for (const [input, want] of saves) {
    it(`prints "${input}" as "${want}"`, () => assert.equal(roundTrip(NFLOG, input), want));
  }

  it('refuses what iptables refuses', () => {
    refuses(NFLOG, '--nflog-group 65536', /out of range \(0-65535\)/, 15);
    refuses(NFLOG, '--nflog-prefix ""', /minimum length of 1/, 16);
    const both = '--nflog-size 20 --nflog-range 30';
    refuses(NFLOG, both, /"--nflog-range" cannot be used together with "--nflog-size"/, col(both, '--nflog-range'));
  });

  it('records a line for its group and continues', () => {
    const ctx = tctx(packet(), meta('INPUT'));
    assert.deepEqual(run(NFLOG, '--nflog-group 5 --nflog-prefix cap', ctx), { verdict: 'continue' });
    assert.equal(ctx.logs[0].kind, 'NFLOG');
    assert.equal(ctx.logs[0].group, 5);
    assert.match(ctx.logs[0].line, /^capIN=veth0 /);
  });
});
