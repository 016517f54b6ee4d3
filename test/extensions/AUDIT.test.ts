import assert from 'node:assert/strict';
import AUDIT from '../../src/extensions/AUDIT';
import CONNSECMARK from '../../src/extensions/CONNSECMARK';
import SECMARK from '../../src/extensions/SECMARK';
import IDLETIMER from '../../src/extensions/IDLETIMER';
import LED from '../../src/extensions/LED';
import SYNPROXY from '../../src/extensions/SYNPROXY';
import TEE from '../../src/extensions/TEE';
import { col, refuses, roundTrip } from './t-fixture';

describe('targets nfqwall parses and prints but cannot enforce', () => {
  it('AUDIT', () => {
    assert.equal(roundTrip(AUDIT, '--type accept'), '--type accept');
    assert.equal(roundTrip(AUDIT, '--type DROP'), '--type drop');
    refuses(AUDIT, '--type foo', /Bad action type value "foo"/, 8);
    refuses(AUDIT, '', /AUDIT: option "--type" must be specified/, 1);
  });
  it('CONNSECMARK', () => {
    assert.equal(roundTrip(CONNSECMARK, '--save', { table: 'mangle' }), '--save');
    assert.equal(roundTrip(CONNSECMARK, '--restore', { table: 'security' }), '--restore');
    refuses(CONNSECMARK, '', /parameter required/, 1);
    const both = '--save --restore';
    refuses(CONNSECMARK, both, /"--save" cannot be used together with "--restore"/, col(both, '--restore'));
    assert.deepEqual(CONNSECMARK.allowed, { tables: ['mangle', 'security'] });
  });
  it('SECMARK', () => {
    assert.equal(roundTrip(SECMARK, '--selctx system_u:object_r:ssh_packet_t:s0'), '--selctx system_u:object_r:ssh_packet_t:s0');
    refuses(SECMARK, '', /"--selctx" must be specified/, 1);
  });
  it('IDLETIMER', () => {
    assert.equal(roundTrip(IDLETIMER, '--timeout 10 --label foo'), '--timeout 10 --label foo');
    assert.equal(roundTrip(IDLETIMER, '--alarm --label foo --timeout 10'), '--timeout 10 --label foo --alarm');
    refuses(IDLETIMER, '--label foo', /"--timeout" must be specified/, 1);
  });
  it('LED', () => {
    assert.equal(roundTrip(LED, '--led-trigger-id foo --led-delay inf --led-always-blink'), '--led-trigger-id "foo" --led-delay inf --led-always-blink');
    assert.equal(roundTrip(LED, '--led-delay 5 --led-trigger-id foo'), '--led-trigger-id "foo" --led-delay 5');
    assert.equal(roundTrip(LED, '--led-trigger-id "a\\"b"'), '--led-trigger-id "a\\"b"');
    refuses(LED, '--led-trigger-id 01234567890123456', /16 chars or less/, 18);
  });
  it('SYNPROXY', () => {
    const tcp = { proto: 6 };
    assert.equal(
      roundTrip(SYNPROXY, '--mss 1460 --wscale 7 --sack-perm --timestamp --ecn', tcp),
      '--sack-perm --timestamp --wscale 7 --mss 1460 --ecn',
    );
    assert.equal(roundTrip(SYNPROXY, '', tcp), '');
    refuses(SYNPROXY, '', /only valid with -p tcp/, 1);
  });
  it('TEE', () => {
    assert.equal(roundTrip(TEE, '--gateway 1.2.3.4'), '--gateway 1.2.3.4');
    assert.equal(roundTrip(TEE, '--gateway 1.2.3'), '--gateway 1.2.0.3');
    assert.equal(roundTrip(TEE, '--oif eth0 --gateway 1.2.3.4'), '--gateway 1.2.3.4 --oif eth0');
    refuses(TEE, '', /"--gateway" must be specified/, 1);
    // tee_tg_check refuses the all-zero gateway (kernel-checked in nat OUTPUT and mangle).
    refuses(TEE, '--gateway 0 --oif eth0', /gateway 0\.0\.0\.0 is not allowed/, 11);
    refuses(TEE, '--gateway ::', /gateway :: is not allowed/, 11, { family: 6 });
  });
  it('each names why it cannot run', () => {
    for (const t of [AUDIT, CONNSECMARK, SECMARK, IDLETIMER, LED, SYNPROXY, TEE]) {
      assert.ok((t.unsupported ?? '').length > 20, `${t.name} gives a reason`);
      assert.equal(t.apply, undefined);
    }
  });
});
