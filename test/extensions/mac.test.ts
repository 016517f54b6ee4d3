import assert from 'node:assert/strict';
import mac from '../../src/extensions/mac';
import { fixture, matches, parseError, parseOpts, roundTrip } from './packet-fixture';

describe('match mac', () => {
  // Kernel iptables-save output (v1.8.9 nf_tables).
  const OK: [string, string][] = [
    ['--mac-source 00:11:22:AA:bb:cc', '--mac-source 00:11:22:aa:bb:cc'],
    ['! --mac-source 00:11:22:33:44:55', '! --mac-source 00:11:22:33:44:55'],
    ['--mac-source 0:11:22:33:44:55', '--mac-source 00:11:22:33:44:55'],
    ['--mac-source :11:22:33:44:55', '--mac-source 00:11:22:33:44:55'],
  ];
  for (const [input, expected] of OK) {
    it(`"${input}" -> "${expected}"`, () => assert.equal(roundTrip(mac, input), expected));
  }
  for (const bad of ['00:11:22:33:44', '00-11-22-33-44-55', '0x:11:22:33:44:55', '000:11:22:33:44:55']) {
    it(`refuses ${bad} at the value`, () => {
      const e = parseError(mac, `--mac-source ${bad}`);
      assert.equal(e?.reason, 'Invalid MAC address specified.');
      assert.equal(e?.loc.column, 14);
    });
  }
  it('is refused in OUTPUT and POSTROUTING, as the kernel does', () => {
    // The validator refuses it from the hooks the module names (test/rules/hooks.test.ts).
    assert.deepEqual(mac.allowedHooks?.(parseOpts(mac, '--mac-source 00:11:22:33:44:55')), ['PREROUTING', 'INPUT', 'FORWARD']);
  });
  it('compares the Ethernet source; no link header never matches', () => {
    const p = fixture();
    const srcMac = Uint8Array.from([0, 0x11, 0x22, 0x33, 0x44, 0x55]);
    assert.equal(matches(mac, parseOpts(mac, '--mac-source 00:11:22:33:44:55'), p, { meta: { srcMac } }), true);
    assert.equal(matches(mac, parseOpts(mac, '--mac-source 00:11:22:33:44:56'), p, { meta: { srcMac } }), false);
    assert.equal(matches(mac, parseOpts(mac, '! --mac-source 00:11:22:33:44:56'), p, { meta: { srcMac } }), true);
    assert.equal(matches(mac, parseOpts(mac, '! --mac-source 00:11:22:33:44:56'), p), false);
  });
});
