import assert from 'node:assert/strict';
import DSCP from '../../src/extensions/DSCP-target';
import { checksumsValid, col, meta, packet, refuses, roundTrip, run, tctx } from './t-fixture';

describe('DSCP target', () => {
  const saves: [string, string][] = [
    ['--set-dscp 10', '--set-dscp 0x0a'],
    ['--set-dscp 0x2e', '--set-dscp 0x2e'],
    ['--set-dscp-class EF', '--set-dscp 0x2e'],
    ['--set-dscp-class af11', '--set-dscp 0x0a'],
    ['--set-dscp-class CS7', '--set-dscp 0x38'],
    ['--set-dscp-class be', '--set-dscp 0x00'],
  ];
  for (const [input, want] of saves) {
    it(`prints ${input} as ${want}`, () => assert.equal(roundTrip(DSCP, input, { table: 'mangle' }), want));
  }

  it('refuses what iptables refuses', () => {
    refuses(DSCP, '--set-dscp 64', /DSCP: bad value for option "--set-dscp", or out of range \(0-63\)/, 12);
    refuses(DSCP, '--set-dscp-class foo', /Invalid DSCP value `foo'/, 18);
    refuses(DSCP, '', /DSCP target: Parameter --set-dscp is required/, 1);
    const two = '--set-dscp 1 --set-dscp-class EF';
    refuses(DSCP, two, /"--set-dscp" cannot be used together with "--set-dscp-class"/, col(two, '--set-dscp-class'));
    assert.deepEqual(DSCP.allowed, { tables: ['mangle'] });
  });

  it('replaces the six DSCP bits and keeps ECN', () => {
    const ctx = tctx(packet({ tos: 0x03 }), meta('FORWARD'));
    run(DSCP, '--set-dscp-class EF', ctx, { table: 'mangle' });
    assert.equal(ctx.pkt.data[1], 0xbb);
    assert.ok(checksumsValid(ctx.pkt));
    const ctx6 = tctx(packet({ family: 6, tos: 0xb9 }), meta('FORWARD'));
    run(DSCP, '--set-dscp 0', ctx6, { table: 'mangle', family: 6 });
    assert.equal(ctx6.pkt.tos, 0x01);
  });
});
