import assert from 'node:assert/strict';
import ipvs from '../../src/extensions/ipvs';
import { parseError, roundTrip } from './packet-fixture';

// This kernel has no xt_ipvs, so these follow libxt_ipvs.c's ipvs_mt_save rather than a kernel run.
describe('match ipvs', () => {
  const OK: [string, string, (4 | 6)?][] = [
    ['--ipvs', '--ipvs'],
    ['! --ipvs', '! --ipvs'],
    ['--ipvs --vproto tcp --vaddr 1.2.3.4/24 --vport 80 --vdir ORIGINAL --vmethod GATE --vportctl 21', '--vproto 6 --vaddr 1.2.3.0/24 --vport 80 --vdir ORIGINAL --vmethod ROUTE --vportctl 21'],
    ['--vmethod MASQ ! --vaddr 1.2.3.4 --vdir REPLY', '! --vaddr 1.2.3.4 --vdir REPLY --vmethod MASQ'],
    ['! --vmethod IPIP', '! --vmethod TUNNEL'],
    ['--vaddr 2001:db8::1/64', '--vaddr 2001:db8::/64', 6],
  ];
  for (const [input, expected, family] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(ipvs, input, { family: family ?? 4 }), expected));
  }
  it('refuses what iptables refuses', () => {
    assert.equal(parseError(ipvs, '! --ipvs --vport 80')?.reason, '! --ipvs cannot be together with other options');
    assert.equal(parseError(ipvs, '--vmethod TUNNEL')?.reason, 'ipvs: Bad value for "--vmethod" option: "TUNNEL"');
    assert.ok(parseError(ipvs, '--vaddr 1.2.3.4', { family: 6 }));
  });
  it('parses and prints but cannot be enforced from userspace', () => {
    assert.match(ipvs.unsupported ?? '', /IPVS connection table/);
    assert.equal(ipvs.match, undefined);
  });
});
