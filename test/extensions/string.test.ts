import assert from 'node:assert/strict';
import string, { type StringOptions } from '../../src/extensions/string';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

function opts(text: string): StringOptions {
  return string.parse(uses(string, text), parseCtx());
}

describe('string match', () => {
  describe('parse and format (iptables 1.8.9)', () => {
    kernelCases(string, KERNEL_CASES.string!);
    it('refuses a bad hex block at the pattern', () => {
      const e = refusal(string, '--algo bm --hex-string "|4|"');
      assert.equal(e.loc.column, 24);
      assert.match(e.reason, /Invalid hex block/);
    });
    it('refuses patterns longer than 128 bytes', () => {
      assert.match(refusal(string, `--algo bm --string ${'a'.repeat(129)}`).reason, /too long/);
    });
  });

  describe('match', () => {
    // IPv4 (20) + TCP (20) headers, then the payload at offset 40.
    const pkt = packet({ payload: 'GET /index.html HTTP/1.1\r\nHost: example\r\n' });
    it('finds the pattern anywhere from the IP header on', () => {
      assert.equal(string.match!(opts('--algo bm --string index.html'), context(pkt)), true);
      assert.equal(string.match!(opts('--algo kmp --string nothere'), context(pkt)), false);
      assert.equal(string.match!(opts('--algo bm ! --string nothere'), context(pkt)), true);
    });
    it('honours --from and --to as offsets from the network header; the match must end before --to', () => {
      assert.equal(string.match!(opts('--algo bm --string GET --from 40 --to 43'), context(pkt)), true);
      assert.equal(string.match!(opts('--algo bm --string GET --from 41'), context(pkt)), false);
      assert.equal(string.match!(opts('--algo bm --string GET --to 42'), context(pkt)), false);
    });
    it('--icase ignores ASCII case, hex strings match raw bytes', () => {
      assert.equal(string.match!(opts('--algo bm --string host:'), context(pkt)), false);
      assert.equal(string.match!(opts('--algo bm --string host: --icase'), context(pkt)), true);
      assert.equal(string.match!(opts('--algo bm --hex-string "|0d0a|Host"'), context(pkt)), true);
    });
  });
});
