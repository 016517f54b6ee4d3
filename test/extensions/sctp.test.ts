import assert from 'node:assert/strict';
import sctp from '../../src/extensions/sctp';
import { fixture, matchCtx, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

/** One SCTP chunk header with its length rounded up to 4 bytes of body. */
function chunk(type: number, flags = 0, bodyLen = 0): number[] {
  const len = 4 + bodyLen;
  const out = [type, flags, len >> 8, len & 0xff, ...new Array(bodyLen).fill(0)];
  while (out.length % 4) out.push(0);
  return out;
}

describe('match sctp', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--sport 1:3 --dport 5 --chunk-types any DATA,INIT', '--sport 1:3 --dport 5 --chunk-types any DATA,INIT'],
    ['--chunk-types all INIT,SACK', '--chunk-types all INIT,SACK'],
    ['! --chunk-types only DATA:Be', '! --chunk-types only DATA:Be'],
    ['--chunk-types any INIT,ABORT:T,SHUTDOWN_COMPLETE:t,DATA:IUBE', '--chunk-types any DATA:IUBE,INIT,ABORT:T,SHUTDOWN_COMPLETE:t'],
    ['--dport 5 --sport 6', '--sport 6 --dport 5'],
    ['', ''],
    ['! --sport 6 ! --dport 1:4 ! --chunk-types all COOKIE_ECHO', '! --sport 6 ! --dport 1:4 ! --chunk-types all COOKIE_ECHO'],
    [
      '--chunk-types only INIT,INIT_ACK,SACK,HEARTBEAT,HEARTBEAT_ACK,ABORT,SHUTDOWN,SHUTDOWN_ACK,ERROR,COOKIE_ECHO,COOKIE_ACK,ECN_ECNE,ECN_CWR,SHUTDOWN_COMPLETE,ASCONF,ASCONF_ACK,FORWARD_TSN',
      '--chunk-types only INIT,INIT_ACK,SACK,HEARTBEAT,HEARTBEAT_ACK,ABORT,SHUTDOWN,SHUTDOWN_ACK,ERROR,COOKIE_ECHO,COOKIE_ACK,ECN_ECNE,ECN_CWR,SHUTDOWN_COMPLETE,ASCONF_ACK,FORWARD_TSN,ASCONF',
    ],
    ['--chunk-types any ALL', '--chunk-types any ALL'],
    ['--chunk-types any NONE', '--chunk-types any NONE'],
    ['--chunk-types any I_DATA,RE_CONFIG,PAD,I_FORWARD_TSN', '--chunk-types any I_DATA,RE_CONFIG,PAD,I_FORWARD_TSN'],
    ['--chunk-types any DATA:I', '--chunk-types any DATA:I'],
    ['--sport 0:65535', '--sport 0:65535'],
    ['--dport 0x10', '--dport 16'],
    ['--chunk-types any I_DATA:I', '--chunk-types any I_DATA'],
    ['--chunk-types ANY data', '--chunk-types any DATA'],
    ['--chunk-types any DATA,,INIT', '--chunk-types any DATA,INIT'],
    ['--chunk-types any DATA:I,INIT,ABORT:T,SHUTDOWN_COMPLETE:T,DATA:E', '--chunk-types any DATA:IE,INIT,ABORT:T,SHUTDOWN_COMPLETE:T'],
    ['--chunk-types any DATA:I,ABORT:T,SHUTDOWN_COMPLETE:T,I_DATA:E,DATA:U', '--chunk-types any DATA:IU,ABORT:T,SHUTDOWN_COMPLETE:T,I_DATA'],
    ['--chunk-types any DATA:-', '--chunk-types any DATA:-'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(sctp, input, { proto: 132 }), expected));
  }
  it('refuses what iptables refuses', () => {
    assert.equal(parseError(sctp, '--chunk-types foo INIT')?.reason, 'Match type has to be one of "ALL", "ANY" or "ONLY"');
    assert.equal(parseError(sctp, '--chunk-types any INIT:T')?.reason, 'Invalid flags for chunk type 1');
    assert.equal(parseError(sctp, '--dport 9:1')?.reason, 'invalid portrange (min > max)');
    assert.equal(parseError(sctp, '--chunk-types any ALL,DATA:B')?.reason, "Unknown sctp chunk `ALL'");
    assert.equal(parseError(sctp, '--chunk-types any NONE,INIT')?.reason, "Unknown sctp chunk `NONE'");
    assert.equal(
      parseError(sctp, '--chunk-types any DATA:I,ABORT:T,SHUTDOWN_COMPLETE:T,I_DATA:E,INIT_ACK:-')?.reason,
      'Number of chunk types with flags exceeds currently allowed limit.',
    );
    assert.equal(parseError(sctp, '--dport abc')?.reason, "invalid port/service `abc' specified");
  });

  describe('match', () => {
    const pkt = (chunks: number[], ports: { sport?: number; dport?: number } = {}) =>
      fixture({ proto: 132, sport: ports.sport ?? 5000, dport: ports.dport ?? 80, payload: chunks });
    const m = (text: string, p: ReturnType<typeof fixture>): boolean => matches(sctp, parseOpts(sctp, text), p);
    const initOnly = pkt(chunk(1, 0, 16));
    const dataSack = pkt([...chunk(0, 0x03, 8), ...chunk(3, 0, 12)]);

    it('ports', () => {
      assert.equal(m('--dport 80', initOnly), true);
      assert.equal(m('! --dport 80', initOnly), false);
      assert.equal(m('--sport 1:4999', initOnly), false);
    });
    it('any / all / only over the chunk list', () => {
      assert.equal(m('--chunk-types any INIT', initOnly), true);
      assert.equal(m('--chunk-types any DATA', initOnly), false);
      assert.equal(m('--chunk-types all DATA,SACK', dataSack), true);
      assert.equal(m('--chunk-types all DATA,SACK,INIT', dataSack), false);
      assert.equal(m('--chunk-types only DATA,SACK,INIT', dataSack), true);
      assert.equal(m('--chunk-types only DATA', dataSack), false);
      assert.equal(m('! --chunk-types only DATA', dataSack), true);
    });
    it('chunk flags: upper case set, lower case clear', () => {
      assert.equal(m('--chunk-types any DATA:BE', dataSack), true);
      assert.equal(m('--chunk-types any DATA:Be', dataSack), false);
      assert.equal(m('--chunk-types any DATA:ub', dataSack), false);
      assert.equal(m('--chunk-types any DATA:u', dataSack), true);
      // conditions on one chunk type merge: B and E both set
      assert.equal(m('--chunk-types any DATA:B,DATA:E', dataSack), true);
      assert.equal(m('--chunk-types any DATA:B,DATA:e', dataSack), false);
    });
    it('a zero-length or missing chunk fails the match (the kernel hotdrops it)', () => {
      for (const chunks of [[1, 0, 0, 0], []]) {
        const c = matchCtx(pkt(chunks));
        assert.equal(sctp.match!(parseOpts(sctp, '! --chunk-types any INIT'), c), false);
        assert.equal(c.hotdrop, true);
      }
      const short = matchCtx(fixture({ proto: 132, cutL4: 8 }));
      assert.equal(sctp.match!(parseOpts(sctp, '! --dport 1'), short), false);
      assert.equal(short.hotdrop, true);
    });
  });
});
