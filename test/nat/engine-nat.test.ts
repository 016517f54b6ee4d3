// The engine's side of NAT and connection updates: which packets walk nat, the requests NAT targets hand back, the
// null bindings, CONNMARK and CT --notrack updates, raw seeing no connection, and OUTPUT's filter after DNAT.
import assert from 'node:assert/strict';
import type { Decision } from '../../src/engine/decision';
import { Engine } from '../../src/engine/engine';
import { craftPacket } from '../../src/engine/craft';
import { StaticHost } from '../../src/engine/host';
import { EmptySets } from '../../src/engine/sets';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import { formatIpAddr, parseIpAddr } from '../../src/rules/addr';
import type { Hook } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';

const ip = (s: string): Uint8Array => parseIpAddr(s, s.includes(':') ? 6 : 4)!;
const SRC_NAT_DONE = 128;
const DST_NAT_DONE = 256;

function conn(state: CtState, over: Partial<ConnInfo> = {}): ConnInfo {
  const t = { src: ip('198.18.0.2'), dst: ip('198.18.0.1'), protocol: 6, sport: 40000, dport: 80 };
  return { state, status: 0, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 0, zone: 0, ...over };
}

function engine(text: string, host = new StaticHost()): Engine {
  const rs = parseRuleset(text, 'nat.rules', { family: 4 });
  return new Engine({ rules4: rs, host, sets: new EmptySets() });
}

function tcp(hook: Hook, o: { dst?: string; dport?: number; in?: string; out?: string; ct?: ConnInfo } = {}) {
  const data = craftPacket({ family: 4, src: ip('198.18.0.2'), dst: ip(o.dst ?? '198.18.0.1'), proto: 6, sport: 40000, dport: o.dport ?? 80, tcpFlags: 2 });
  return { family: 4 as const, data, meta: { hook, mark: 0, pktType: 'unicast' as const, inIface: o.in, outIface: o.out }, ct: o.ct };
}

const addrs = (d: Decision): string[] => (d.ct?.nat ?? []).map((r) => `${r.manip} ${r.minAddr ? formatIpAddr(r.minAddr) : ''}-${r.maxAddr ? formatIpAddr(r.maxAddr) : ''}`);

describe('engine: NAT requests and connection updates (H16)', () => {
  const DNAT_RULES = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 198.18.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.19.0.2:8080
-A OUTPUT -d 198.18.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.19.0.2:8080
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -d 198.19.0.2/32 -p tcp -m tcp --dport 8080 -j ACCEPT
COMMIT
`;

  it('DNAT on a NEW packet gives a DST request and ACCEPT; the nat walk stops', () => {
    const e = engine(DNAT_RULES);
    const d = e.decide(tcp('PREROUTING', { ct: conn('NEW') }));
    assert.equal(d.verdict, 'accept');
    assert.deepEqual(addrs(d), ['DST 198.19.0.2-198.19.0.2']);
    assert.equal(d.ct?.nat?.[0].minPort, 8080);
    assert.equal(d.ct?.nat?.[0].maxPort, 8080);
    assert.deepEqual(d.ct?.natRan, ['DST']);
    assert.equal(d.payload, undefined, 'the connection table rewrites, not the engine');
  });

  it('skips nat for ESTABLISHED, REPLY, INVALID, UNTRACKED and manip types already done, and without a table', () => {
    const e = engine(DNAT_RULES);
    for (const ct of [
      conn('ESTABLISHED'),
      conn('NEW', { direction: 'REPLY' }),
      conn('INVALID'),
      conn('UNTRACKED'),
      conn('NEW', { status: DST_NAT_DONE }),
      undefined,
    ]) {
      const d = e.decide(tcp('PREROUTING', { ct }));
      assert.equal(d.ct?.natRan, undefined, JSON.stringify(ct?.state));
      assert.equal(d.ct?.nat, undefined);
    }
    // SRC_NAT_DONE does not stop the DST manip.
    assert.deepEqual(e.decide(tcp('PREROUTING', { ct: conn('NEW', { status: SRC_NAT_DONE }) })).ct?.natRan, ['DST']);
  });

  it('RELATED ICMP errors never walk nat (nf_nat_icmp_reply_translation); other RELATED packets do', () => {
    const e = engine(DNAT_RULES);
    const icmp = craftPacket({ family: 4, src: ip('198.18.0.2'), dst: ip('198.18.0.1'), proto: 1, icmpType: 3, icmpCode: 3 });
    const err = e.decide({ family: 4, data: icmp, meta: { hook: 'PREROUTING', mark: 0, pktType: 'unicast' }, ct: conn('RELATED') });
    assert.equal(err.ct, undefined);
    assert.deepEqual(e.decide(tcp('PREROUTING', { ct: conn('RELATED') })).ct?.natRan, ['DST']);
  });

  it('a nat chain without a binding rule reports a null binding (natRan without nat)', () => {
    const e = engine(DNAT_RULES);
    const d = e.decide(tcp('PREROUTING', { dport: 22, ct: conn('NEW') }));
    assert.deepEqual(d.ct?.natRan, ['DST']);
    assert.equal(d.ct?.nat, undefined);
    const post = e.decide(tcp('INPUT', { dport: 22, ct: conn('NEW', { status: DST_NAT_DONE }) }));
    assert.deepEqual(post.ct?.natRan, ['SRC'], 'INPUT runs the SRC manip type');
  });

  it('MASQUERADE asks for the out interface primary address and names the interface; none means DROP', () => {
    const host = new StaticHost({ local: ['198.19.0.1/24@eth1', '198.19.0.9/24@eth1'] });
    const e = engine(DNAT_RULES, host);
    const d = e.decide(tcp('POSTROUTING', { dst: '198.19.0.2', out: 'eth1', ct: conn('NEW', { status: DST_NAT_DONE }) }));
    assert.deepEqual(addrs(d), ['SRC 198.19.0.1-198.19.0.1']);
    assert.equal(d.ct?.nat?.[0].masquerade, true);
    const none = engine(DNAT_RULES).decide(tcp('POSTROUTING', { out: 'eth1', ct: conn('NEW') }));
    assert.equal(none.verdict, 'drop');
  });

  it('OUTPUT: filter sees the packet as DNAT rewrites it, the payload stays for the table to rewrite', () => {
    const e = engine(DNAT_RULES);
    const d = e.decide(tcp('OUTPUT', { ct: conn('NEW') }));
    assert.equal(d.verdict, 'accept', 'filter OUTPUT accepts the DNATed destination');
    assert.equal(d.payload, undefined);
    // Without nat (a later packet), the filter sees the original destination and its DROP policy.
    assert.equal(e.decide(tcp('OUTPUT', { ct: conn('ESTABLISHED') })).verdict, 'drop');
  });

  it('SNAT ranges, REDIRECT to loopback or the in interface, NETMAP prefixes', () => {
    const e = engine(
      `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128
-A PREROUTING -i eth2 -j NETMAP --to 10.1.0.0/16
-A OUTPUT -p tcp -j REDIRECT --to-ports 15001
-A POSTROUTING -p tcp -j SNAT --to-source 198.19.0.10-198.19.0.20:1024-2047 --random-fully
COMMIT
`,
      new StaticHost({ local: ['198.18.0.1/24@eth0'] }),
    );
    const r = e.decide(tcp('PREROUTING', { in: 'eth0', ct: conn('NEW') }));
    assert.deepEqual(addrs(r), ['DST 198.18.0.1-198.18.0.1']);
    assert.equal(r.ct?.nat?.[0].minPort, 3128);
    assert.deepEqual(addrs(e.decide(tcp('OUTPUT', { ct: conn('NEW') }))), ['DST 127.0.0.1-127.0.0.1']);
    const nm = e.decide(tcp('PREROUTING', { in: 'eth2', ct: conn('NEW') }));
    assert.deepEqual(addrs(nm), ['DST 10.1.0.0-10.1.255.255']);
    assert.equal(nm.ct?.nat?.[0].netmap, true);
    const s = e.decide(tcp('POSTROUTING', { ct: conn('NEW', { status: DST_NAT_DONE }) }));
    assert.deepEqual(addrs(s), ['SRC 198.19.0.10-198.19.0.20']);
    assert.equal(s.ct?.nat?.[0].randomFully, true);
    assert.deepEqual([s.ct?.nat?.[0].minPort, s.ct?.nat?.[0].maxPort], [1024, 2047]);
  });

  it('raw sees no connection (INVALID), CT --notrack makes later tables see UNTRACKED, CONNMARK updates the mark', () => {
    const e = engine(`*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -m conntrack --ctstate INVALID -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -p udp -j CT --notrack
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m conntrack --ctstate UNTRACKED -j MARK --set-xmark 0x10/0x10
-A PREROUTING -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x5/0xffffffff
COMMIT
`);
    const d = e.decide(tcp('PREROUTING', { ct: conn('NEW') }));
    assert.equal(d.mark, 1, 'raw saw INVALID, mangle not UNTRACKED');
    assert.equal(d.ct?.connmark, 5);
    assert.equal(d.ct?.notrack, undefined);
    const udp = craftPacket({ family: 4, src: ip('198.18.0.2'), dst: ip('198.18.0.1'), proto: 17, sport: 5, dport: 53 });
    const u = e.decide({ family: 4, data: udp, meta: { hook: 'PREROUTING', mark: 0, pktType: 'unicast' }, ct: conn('NEW') });
    assert.equal(u.ct?.notrack, true);
    assert.equal(u.mark, 0x11, 'mangle saw UNTRACKED after raw notrack');
    assert.equal(u.ct?.connmark, undefined, 'CONNMARK does nothing to an untracked packet');
  });
});
