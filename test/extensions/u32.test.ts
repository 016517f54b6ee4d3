import assert from 'node:assert/strict';
import u32, { runU32, parseU32, type U32Options } from '../../src/extensions/u32';
import { KERNEL_CASES } from './b-kernel-cases';
import { context, kernelCases, packet, parseCtx, refusal, uses } from './b-fixture';

function opts(text: string): U32Options {
  return u32.parse(uses(u32, text), parseCtx());
}

describe('u32 match', () => {
  describe('parse and format (iptables 1.8.9)', () => {
    kernelCases(u32, KERNEL_CASES.u32!);
    it('names the character where the program goes wrong', () => {
      assert.match(refusal(u32, '--u32 "0<1=1"').reason, /at char 2: a second '<' was expected/);
      assert.match(refusal(u32, '--u32 "0=-1"').reason, /at char 2: not a number or out of range/);
    });
    it('parses the operators into a program', () => {
      const [t] = parseU32(uses(u32, '--u32 "0>>22&0x3C@12=5:6"')[0]!);
      assert.deepEqual(t, {
        location: [{ number: 0 }, { op: '>>', number: 22 }, { op: '&', number: 0x3c }, { op: '@', number: 12 }],
        values: [{ min: 5, max: 6 }],
      });
    });
  });

  describe('match', () => {
    it('reads big-endian words: TTL, protocol, ports', () => {
      const pkt = packet({ ttl: 63, proto: 17, sport: 5353, dport: 53 });
      // Word at 8: TTL, protocol, checksum.
      assert.equal(u32.match!(opts('--u32 "8>>24=63"'), context(pkt)), true);
      assert.equal(u32.match!(opts('--u32 "6&0xFF=17"'), context(pkt)), true);
      // The classic: skip the IP header by its IHL and read the destination port.
      assert.equal(u32.match!(opts('--u32 "0>>22&0x3C@0&0xFFFF=53"'), context(pkt)), true);
      assert.equal(u32.match!(opts('--u32 "0>>22&0x3C@0&0xFFFF=54:100"'), context(pkt)), false);
      assert.equal(u32.match!(opts('! --u32 "0>>22&0x3C@0&0xFFFF=53"'), context(pkt)), false);
    });
    it('every && test must hold; any value range of a test may', () => {
      const pkt = packet({ ttl: 63, proto: 6 });
      assert.equal(u32.match!(opts('--u32 "8>>24=1,63&&6&0xFF=6"'), context(pkt)), true);
      assert.equal(u32.match!(opts('--u32 "8>>24=63&&6&0xFF=17"'), context(pkt)), false);
    });
    it('reads beyond the packet do not match', () => {
      const data = new Uint8Array(8);
      assert.equal(runU32(parseU32(uses(u32, '--u32 "4=0"')[0]!), data), true);
      assert.equal(runU32(parseU32(uses(u32, '--u32 "5=0"')[0]!), data), false);
      assert.equal(runU32(parseU32(uses(u32, '--u32 "0@4=0"')[0]!), data), true);
      assert.equal(runU32(parseU32(uses(u32, '--u32 "0@5=0"')[0]!), data), false);
    });
  });
});
