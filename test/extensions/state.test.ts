import assert from 'node:assert/strict';
import state from '../../src/extensions/state';
import { conn, fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match state', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables; iptables-nft loads it as conntrack rev 3 and prints it back).
  const OK: [string, string][] = [
    ['--state NEW,ESTABLISHED,RELATED,INVALID,UNTRACKED', '--state INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED'],
    ['! --state NEW', '! --state NEW'],
    ['--state INVALID,UNTRACKED', '--state INVALID,UNTRACKED'],
    ['--state new,established', '--state NEW,ESTABLISHED'],
    ['--state RELATED,ESTABLISHED', '--state RELATED,ESTABLISHED'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(state, input), expected));
  }
  it('refuses the conntrack-only virtual states and a missing --state', () => {
    const e = parseError(state, '--state NEW,SNAT');
    assert.equal(e?.reason, 'Bad state "SNAT"');
    assert.equal(e?.loc.column, 9);
    assert.equal(parseError(state, '')?.reason, 'state: option "--state" must be specified');
    assert.equal(parseError(state, '--state ""')?.reason, '"--state" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED');
  });
  it('matches the connection state; no connection counts as UNTRACKED', () => {
    const pkt = fixture();
    assert.equal(matches(state, parseOpts(state, '--state RELATED,ESTABLISHED'), pkt, { ct: conn() }), true);
    assert.equal(matches(state, parseOpts(state, '--state NEW'), pkt, { ct: conn() }), false);
    assert.equal(matches(state, parseOpts(state, '! --state NEW'), pkt, { ct: conn() }), true);
    assert.equal(matches(state, parseOpts(state, '--state UNTRACKED'), pkt), true);
    assert.equal(matches(state, parseOpts(state, '--state INVALID'), pkt, { ct: conn({ state: 'INVALID' }) }), true);
  });
});
