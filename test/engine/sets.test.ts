import assert from 'node:assert/strict';
import { craftPacket } from '../../src/engine/craft';
import { parsePacket } from '../../src/engine/packet';
import { IpsetError, IpsetStore } from '../../src/engine/sets';
import type { PacketMeta } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import { v4 } from './build';

const meta: PacketMeta = { hook: 'INPUT', mark: 0, pktType: 'unicast' };
const SAVE = `create allow hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1234abcd
add allow 198.18.0.1
add allow 198.18.0.7 timeout 300
create nets hash:net family inet hashsize 1024 maxelem 65536
add nets 10.0.0.0/8
add nets 10.1.0.0/16 nomatch
add nets 10.1.2.0/24
create svc hash:ip,port family inet hashsize 1024 maxelem 65536
add svc 198.18.1.1,tcp:80
add svc 198.18.1.1,udp:53 comment "dns server"
add svc 198.18.1.1,icmp:8/0
create np hash:net,port family inet
add np 198.18.0.0/15,tcp:443
create ports bitmap:port range 0-1024
add ports 22
add ports 80-81
create v6 hash:ip family inet6
add v6 2001:db8::1
create all list:set size 8
add all allow
add all v6
`;

function pkt4(src: string, dst: string, proto: number, sport = 1000, dport = 80, icmpType?: number) {
  return parsePacket(craftPacket({ family: 4, src: v4(src), dst: v4(dst), proto, sport, dport, icmpType }), 4);
}

describe('IpsetStore', () => {
  const s = IpsetStore.parse(SAVE);

  it('knows the sets it loaded, and no others', () => {
    assert.deepEqual(s.names(), ['allow', 'nets', 'svc', 'np', 'ports', 'v6', 'all']);
    assert.equal(s.test('missing', pkt4('1.1.1.1', '2.2.2.2', 6), meta, ['src']), undefined);
  });

  it('hash:ip by src or dst', () => {
    assert.equal(s.test('allow', pkt4('198.18.0.1', '9.9.9.9', 6), meta, ['src']), true);
    assert.equal(s.test('allow', pkt4('198.18.0.1', '9.9.9.9', 6), meta, ['dst']), false);
    assert.equal(s.test('allow', pkt4('9.9.9.9', '198.18.0.7', 6), meta, ['dst']), true);
  });

  it('hash:net: longest prefix wins, nomatch excludes', () => {
    assert.equal(s.test('nets', pkt4('10.9.9.9', '1.1.1.1', 6), meta, ['src']), true);
    assert.equal(s.test('nets', pkt4('10.1.9.9', '1.1.1.1', 6), meta, ['src']), false);
    assert.equal(s.test('nets', pkt4('10.1.2.3', '1.1.1.1', 6), meta, ['src']), true);
    assert.equal(s.test('nets', pkt4('11.0.0.1', '1.1.1.1', 6), meta, ['src']), false);
  });

  it('hash:ip,port and hash:net,port take protocol and port from the packet', () => {
    assert.equal(s.test('svc', pkt4('198.18.0.1', '198.18.1.1', 6, 1000, 80), meta, ['dst', 'dst']), true);
    assert.equal(s.test('svc', pkt4('198.18.0.1', '198.18.1.1', 17, 1000, 80), meta, ['dst', 'dst']), false);
    assert.equal(s.test('svc', pkt4('198.18.0.1', '198.18.1.1', 17, 1000, 53), meta, ['dst', 'dst']), true);
    assert.equal(s.test('svc', pkt4('198.18.0.1', '198.18.1.1', 1, 0, 0, 8), meta, ['dst', 'dst']), true);
    assert.equal(s.test('svc', pkt4('198.18.1.1', '198.18.0.1', 6, 80, 1000), meta, ['src', 'src']), true);
    assert.equal(s.test('np', pkt4('198.19.3.3', '1.1.1.1', 6, 1, 443), meta, ['src', 'dst']), true);
    assert.equal(s.test('np', pkt4('198.20.3.3', '1.1.1.1', 6, 1, 443), meta, ['src', 'dst']), false);
  });

  it('bitmap:port matches TCP and UDP only', () => {
    assert.equal(s.test('ports', pkt4('1.1.1.1', '2.2.2.2', 6, 5, 22), meta, ['dst']), true);
    assert.equal(s.test('ports', pkt4('1.1.1.1', '2.2.2.2', 17, 5, 81), meta, ['dst']), true);
    assert.equal(s.test('ports', pkt4('1.1.1.1', '2.2.2.2', 132, 5, 22), meta, ['dst']), false);
    assert.equal(s.test('ports', pkt4('1.1.1.1', '2.2.2.2', 6, 5, 23), meta, ['dst']), false);
  });

  it('list:set tries its members; family must fit', () => {
    assert.equal(s.test('all', pkt4('198.18.0.1', '2.2.2.2', 6), meta, ['src']), true);
    const p6 = parsePacket(craftPacket({ family: 6, src: parseIpAddr('2001:db8::1', 6)!, dst: parseIpAddr('2001:db8::2', 6)!, proto: 17, sport: 1, dport: 2 }), 6);
    assert.equal(s.test('all', p6, meta, ['src']), true);
    assert.equal(s.test('allow', p6, meta, ['src']), false);
  });

  it('refuses what it cannot honour, with the line', () => {
    assert.throws(() => IpsetStore.parse('create x hash:mac\n'), (e: unknown) => e instanceof IpsetError && /line 1: set type "hash:mac"/.test(e.message));
    assert.throws(() => IpsetStore.parse('create x hash:ip\nadd y 1.2.3.4\n'), /line 2: add to unknown set "y"/);
    assert.throws(() => IpsetStore.parse('create x hash:ip\nadd x 1.2.3.400\n'), /bad IPv4 address/);
  });
});
