import assert from 'node:assert/strict';
import SET from '../../src/extensions/SET-target';
import { refuses, roundTrip } from './t-fixture';

describe('SET target', () => {
  it('prints in set_target_save_v3 order (corpus: weave-npc, anti-portscan)', () => {
    assert.equal(roundTrip(SET, '--add-set scanner-ipv4-set src'), '--add-set scanner-ipv4-set src');
    assert.equal(
      roundTrip(SET, '--exist --add-set ipv4-egress-port-set dst,dst'),
      '--add-set ipv4-egress-port-set dst,dst --exist',
    );
    assert.equal(roundTrip(SET, '--timeout 10 --exist --del-set b dst --add-set a src'), '--add-set a src --del-set b dst --exist --timeout 10');
    assert.equal(roundTrip(SET, '--map-mark --map-set m src,dst'), '--map-set m src,dst --map-mark');
  });

  it('refuses what iptables refuses', () => {
    refuses(SET, '', /You must specify either `--add-set' or `--del-set' or `--map-set'/, 1);
    refuses(SET, '--add-set foo sport', /'src' or 'dst'/, 15);
    refuses(SET, '--add-set foo src,src,src,src,src,src,src', /more src\/dst options than 6/, 15);
    refuses(SET, `--add-set ${'x'.repeat(32)} src`, /too long, max 31 characters/, 11);
  });

  it('fails loading with a reason', () => {
    assert.equal(SET.apply, undefined);
    assert.match(SET.unsupported ?? '', /ipset/);
  });
});
