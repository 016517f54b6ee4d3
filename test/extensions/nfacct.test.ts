import assert from 'node:assert/strict';
import nfacct from '../../src/extensions/nfacct';
import { nfacctStore } from '../../src/extensions/util/b-nfacct-store';
import { context, packet, parseCtx, refusal, roundTrip, uses } from './b-fixture';

describe('nfacct match', () => {
  beforeEach(() => nfacctStore.reset());
  it('prints the name after two spaces, as iptables-save does (corpus 01)', () => {
    assert.equal(
      roundTrip(nfacct, '--nfacct-name ct_state_invalid_dropped_pkts'),
      '--nfacct-name  ct_state_invalid_dropped_pkts',
    );
    assert.equal(roundTrip(nfacct, '--nfacct-name "a b"'), '--nfacct-name  "a b"');
  });
  it('refuses an empty or too long name', () => {
    assert.equal(refusal(nfacct, `--nfacct-name ${'n'.repeat(32)}`).loc.column, 15);
  });
  it('always matches and counts packets and bytes per object', () => {
    const o = nfacct.parse(uses(nfacct, '--nfacct-name acct1'), parseCtx());
    const p = packet({ proto: 17, payload: 'abcd' });
    assert.equal(nfacct.match!(o, context(p)), true);
    assert.equal(nfacct.match!(o, context(p)), true);
    assert.deepEqual(nfacctStore.get('acct1'), { packets: 2, bytes: 2 * p.length });
    assert.equal(nfacctStore.get('other'), undefined);
  });
});
