import assert from 'node:assert/strict';
import CT from '../../src/extensions/CT';
import NOTRACK from '../../src/extensions/NOTRACK';
import { col, refuses, roundTrip } from './t-fixture';

const RAW = { table: 'raw' as const, chain: 'PREROUTING' };

describe('CT and NOTRACK targets', () => {
  // iptables-nft 1.8.9 output
  const saves: [string, string, number?][] = [
    ['--notrack', '--notrack'],
    ['--zone 5', '--zone 5'],
    ['--zone 0', ''],
    ['', ''],
    ['--zone-orig 5', '--zone-orig 5'],
    ['--zone-reply 5', '--zone-reply 5'],
    ['--zone mark', '--zone mark'],
    ['--zone-orig mark', '--zone-orig mark'],
    ['--zone-orig 1 --zone-reply 2', '--zone 2'],
    ['--zone 1 --zone-orig 2', '--zone-orig 2'],
    ['--zone 0 --zone-orig mark', '--zone-orig mark'],
    ['--notrack --zone 5', '--notrack --zone 5'],
    ['--zone 5 --ctevents new --expevents new', '--ctevents new --expevents new --zone 5'],
    ['--ctevents destroy,new,related', '--ctevents new,related,destroy'],
    [
      '--ctevents new,related,destroy,reply,assured,protoinfo,helper,mark,natseqinfo,secmark',
      '--ctevents new,related,destroy,reply,assured,protoinfo,helper,mark,natseqinfo,secmark',
    ],
    ['--helper ftp', '--helper ftp', 6],
  ];
  for (const [input, want, proto] of saves) {
    it(`prints "${input}" as "${want}"`, () => assert.equal(roundTrip(CT, input, { ...RAW, proto }), want));
  }

  it('refuses what iptables and the kernel refuse', () => {
    refuses(CT, '--zone 65536', /Cannot parse 65536 as a zone ID/, 8, RAW);
    refuses(CT, '--ctevents foo', /Unknown event type "foo"/, 12, RAW);
    refuses(CT, '--helper ftp', /needs -p/, 1, RAW);
    const twice = '--ctevents new --ctevents related';
    refuses(CT, twice, /"--ctevents" can only be used once/, col(twice, '--ctevents', 1), RAW);
  });

  // H16: --notrack and NOTRACK run on nfqwall's connection table; helpers, timeouts and zones still do not.
  it('are raw-only and continue; --notrack loads, helpers, timeouts and zones fail with a reason', () => {
    assert.deepEqual(CT.allowed, { tables: ['raw'] });
    assert.deepEqual(NOTRACK.allowed, { tables: ['raw'] });
    assert.equal(typeof CT.apply, 'function');
    assert.equal(typeof NOTRACK.apply, 'function');
    assert.equal(CT.unsupported, undefined);
    assert.equal(NOTRACK.unsupported, undefined);
    const base = { notrack: false, ctevents: 0, expevents: 0, zone: 0, zoneMark: false, zoneOrig: false, zoneReply: false };
    assert.equal(CT.unsupportedFor?.({ ...base, notrack: true, zone: 3 }), undefined);
    assert.match(CT.unsupportedFor?.({ ...base, helper: 'ftp' }) ?? '', /no helpers/);
    assert.match(CT.unsupportedFor?.({ ...base, timeout: 'x' }) ?? '', /timeout/);
    assert.match(CT.unsupportedFor?.({ ...base, zone: 3 }) ?? '', /--zone/);
    assert.equal(roundTrip(NOTRACK, '', RAW), '');
  });
});
