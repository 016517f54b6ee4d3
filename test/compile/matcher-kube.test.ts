// kube-proxy's service connections through the native matcher and the engine (docs/matcher.md, issue #6): a new
// connection to a ClusterIP or a NodePort walks nat PREROUTING -> KUBE-SERVICES (keyed) -> KUBE-SVC-* (statistic
// random) -> KUBE-SEP-* (KUBE-MARK-MASQ, DNAT), and POSTROUTING -> KUBE-POSTROUTING (mark test, MARK --xor-mark,
// MASQUERADE --random-fully). Every packet the matcher decides must be decided as the engine does (verdict, mark,
// natRan, NAT request, counters, the numbers statistic drew), and nearly every packet to a service natively.
import assert from 'node:assert/strict';
import { craftPacket } from '../../src/engine/craft';
import type { PacketInput } from '../../src/engine/decision';
import type { ConnInfo, CtState } from '../../src/extensions/types';
import { parseIpAddr } from '../../src/rules/addr';
import type { Hook } from '../../src/rules/model';
import { parseRuleset } from '../../src/rules/parse';
import { generateServices, kubeProxyRuleset, type KubeService } from '../../scripts/gen-kube-proxy';
import { Rng } from '../rng';
import { natRate, newTally, Pair, rate, type Tally } from './matcher-harness';

const NODE = '198.18.0.1'; // LOCAL in the harness's host, eth0's primary address
const CLUSTER = '198.19.0.0/16';
const IPS_DST_NAT = 0x20;
const IPS_DST_NAT_DONE = 0x100;

function ip(s: string): Uint8Array {
  return parseIpAddr(s, 4)!;
}

function pkt(o: { hook: Hook; src: string; dst: string; proto: number; dport: number; state: CtState; status?: number; mark?: number; inIface?: string; outIface?: string }, rng: Rng): PacketInput {
  const data = craftPacket({ family: 4, src: ip(o.src), dst: ip(o.dst), proto: o.proto, sport: rng.int(32768, 60999), dport: o.dport, tcpFlags: 0x02, payload: new Uint8Array(rng.int(0, 20)) });
  const t = { src: ip(o.src), dst: ip(o.dst), protocol: o.proto, sport: 1, dport: o.dport };
  const ct: ConnInfo = { state: o.state, status: o.status ?? 0, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 60, zone: 0 };
  return { family: 4, data, meta: { hook: o.hook, inIface: o.inIface, outIface: o.outIface, mark: o.mark ?? 0, pktType: 'unicast' }, ct };
}

/** The packets of new connections to `s` at every hook they pass, and a few established ones. */
function servicePackets(s: KubeService, rng: Rng): { what: string; p: PacketInput }[] {
  const proto = s.protocol === 'udp' ? 17 : 6;
  const external = `198.18.9.${rng.int(1, 254)}`;
  const pod = s.endpoints.length > 0 ? rng.pick(s.endpoints) : { ip: '198.19.250.1', port: 8080 };
  const src = rng.chance(0.5) ? external : `198.19.${rng.int(0, 200)}.${rng.int(1, 254)}`;
  const out: { what: string; p: PacketInput }[] = [
    { what: 'PREROUTING to the ClusterIP', p: pkt({ hook: 'PREROUTING', src, dst: s.clusterIP, proto, dport: s.port, state: 'NEW', inIface: 'eth0' }, rng) },
    { what: 'OUTPUT to the ClusterIP', p: pkt({ hook: 'OUTPUT', src: NODE, dst: s.clusterIP, proto, dport: s.port, state: 'NEW', outIface: 'eth1' }, rng) },
    {
      what: 'FORWARD to the endpoint',
      p: pkt({ hook: 'FORWARD', src, dst: pod.ip, proto, dport: pod.port, state: 'NEW', status: IPS_DST_NAT | IPS_DST_NAT_DONE, mark: rng.pick([0, 0x4000]), inIface: 'eth0', outIface: 'eth1' }, rng),
    },
    {
      what: 'POSTROUTING to the endpoint',
      p: pkt({ hook: 'POSTROUTING', src, dst: pod.ip, proto, dport: pod.port, state: 'NEW', status: IPS_DST_NAT | IPS_DST_NAT_DONE, mark: rng.pick([0, 0x4000]), outIface: rng.pick(['eth1', 'eth0', 'veth1']) }, rng),
    },
    { what: 'PREROUTING established', p: pkt({ hook: 'PREROUTING', src, dst: s.clusterIP, proto, dport: s.port, state: 'ESTABLISHED', status: IPS_DST_NAT | IPS_DST_NAT_DONE, inIface: 'eth0' }, rng) },
  ];
  if (s.nodePort !== undefined)
    out.push({ what: 'PREROUTING to the NodePort', p: pkt({ hook: 'PREROUTING', src: external, dst: NODE, proto, dport: s.nodePort, state: 'NEW', inIface: 'eth0' }, rng) });
  return out;
}

function runServices(services: KubeService[], randomFully: boolean): { all: Tally; byWhat: Map<string, Tally> } {
  const text = kubeProxyRuleset(services, { clusterCIDR: CLUSTER, randomFully });
  const rules = parseRuleset(text, 'kube-proxy.rules', { family: 4 });
  const pair = new Pair(rules, ['eth0', 'eth1', 'veth1']);
  const rng = new Rng(services.length * 31 + (randomFully ? 1 : 0));
  const all = newTally();
  const byWhat = new Map<string, Tally>();
  for (const s of services)
    for (let round = 0; round < 3; round++)
      for (const { what, p } of servicePackets(s, rng)) {
        const t = byWhat.get(what) ?? newTally();
        byWhat.set(what, t);
        const diff = pair.check(p, t, `${s.namespace}/${s.name} ${what}`);
        if (diff !== undefined) assert.fail(diff);
      }
  for (const t of byWhat.values()) {
    all.packets += t.packets;
    all.decided += t.decided;
    all.slow += t.slow;
    all.nat += t.nat;
    all.natDecided += t.natDecided;
    all.drew += t.drew;
    all.drewDecided += t.drewDecided;
  }
  return { all, byWhat };
}

describe('matcher: kube-proxy service connections, native against the engine', function () {
  this.timeout(600_000);
  it('ClusterIP and NodePort services with endpoints, no session affinity: identical, >= 95% of their packets native', () => {
    const services = generateServices(300, 5, { serviceCIDR: '198.18.128.0/17', podCIDR: CLUSTER, affinityEvery: 0, noEndpointsEvery: 0 });
    // Endpoint counts 1..5: probabilities 1/n down to the unconditional last rule.
    services.forEach((s, i) => (s.endpoints = s.endpoints.slice(0, 1 + (i % 5))));
    const { all, byWhat } = runServices(services, true);
    for (const [what, t] of byWhat) console.log(`      ${what}: ${rate(t)}`);
    console.log(`      kube-proxy services: ${rate(all)}; ${natRate(all)}`);
    assert.ok(all.decided >= 0.95 * all.packets, rate(all));
    assert.ok(all.nat > all.packets / 4, `only ${all.nat} NAT requests: the packets no longer reach DNAT/MASQUERADE`);
    assert.ok(all.natDecided >= 0.95 * all.nat, natRate(all));
    assert.ok(all.drew > 0 && all.drewDecided >= 0.95 * all.drew, natRate(all));
  });
  it("kube-proxy's default shapes (session affinity: recent, services without endpoints: REJECT): identical", () => {
    const services = generateServices(200, 2, { serviceCIDR: '198.18.128.0/17', podCIDR: CLUSTER });
    const { all } = runServices(services, false);
    console.log(`      kube-proxy default shapes: ${rate(all)}; ${natRate(all)}`);
    // recent and REJECT stay in JavaScript; the rest is native.
    assert.ok(all.slow > 0 && all.decided >= 0.7 * all.packets, rate(all));
  });
});
