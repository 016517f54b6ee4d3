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

  it('are raw-only, continue, and fail loading with a reason', () => {
    assert.deepEqual(CT.allowed, { tables: ['raw'] });
    assert.deepEqual(NOTRACK.allowed, { tables: ['raw'] });
    assert.equal(CT.apply, undefined);
    assert.equal(NOTRACK.apply, undefined);
    assert.match(CT.unsupported ?? '', /connection table/);
    assert.match(NOTRACK.unsupported ?? '', /connection table/);
    assert.equal(roundTrip(NOTRACK, '', RAW), '');
  });
});
