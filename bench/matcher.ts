// `npx tsx bench/matcher.ts [services...]`: the native matcher's cost per packet against the size of a kube-proxy
// ruleset (scripts/gen-kube-proxy.ts, one endpoint per service), beside Engine.decide on the same packets. Matcher
// figures are Matcher.time(): the receive thread's run() in a C++ loop, no N-API per packet. The packets: an
// ESTABLISHED flow to a service at PREROUTING, FORWARD and POSTROUTING (nat does not run), and a NEW connection to an
// address no service has at PREROUTING (nat runs: KUBE-SERVICES is looked up, not walked, then KUBE-NODEPORTS), a NEW
// connection to a service at PREROUTING and OUTPUT (KUBE-SVC's statistic, KUBE-SEP's DNAT request) and its POSTROUTING
// with the masquerade mark (KUBE-POSTROUTING's MASQUERADE request).
// Absolute figures on a shared machine are noise; the ratio between rule counts is the result.
import { performance } from 'node:perf_hooks';
import { compileProgram } from '../src/compile/program';
import { craftPacket } from '../src/engine/craft';
import type { PacketInput } from '../src/engine/decision';
import { Engine } from '../src/engine/engine';
import { StaticHost } from '../src/engine/host';
import { EmptySets } from '../src/engine/sets';
import type { Hook } from '../src/rules/model';
import { parseIpAddr } from '../src/rules/addr';
import { parseRuleset } from '../src/rules/parse';
import { addon, HOOK_BY_NUMBER, type MatcherInput } from '../src/native';
import { generateServices, kubeProxyRuleset } from '../scripts/gen-kube-proxy';

const COUNTS = process.argv.slice(2).map(Number).filter((n) => n > 0);
const SERVICES = COUNTS.length ? COUNTS : [10, 1000, 10000];
const ITER = 200_000;

interface Case {
  name: string;
  hook: Hook;
  dst: string;
  dport: number;
  proto: number;
  state: 'NEW' | 'ESTABLISHED';
  mark?: number;
}

function input(c: Case): { js: PacketInput; native: MatcherInput } {
  const data = craftPacket({ family: 4, src: parseIpAddr('198.19.200.1', 4)!, dst: parseIpAddr(c.dst, 4)!, proto: c.proto, sport: 40000, dport: c.dport, tcpFlags: c.state === 'NEW' ? 2 : 0x10 });
  const t = { src: data.slice(12, 16), dst: data.slice(16, 20), protocol: c.proto, sport: 40000, dport: c.dport };
  const inOk = c.hook !== 'POSTROUTING';
  const outOk = c.hook !== 'PREROUTING';
  const js: PacketInput = {
    family: 4,
    data,
    meta: { hook: c.hook, inIface: inOk ? 'eth0' : undefined, outIface: outOk ? 'eth1' : undefined, mark: c.mark ?? 0, pktType: 'unicast' },
    ct: { state: c.state, status: c.state === 'NEW' ? 0 : 0x0e, mark: 0, direction: 'ORIGINAL', orig: t, reply: t, expiresSeconds: 60, zone: 0 },
  };
  const native: MatcherInput = {
    data,
    family: 4,
    hook: HOOK_BY_NUMBER.indexOf(c.hook),
    inIf: inOk ? 1 : 0,
    outIf: outOk ? 2 : 0,
    mark: c.mark ?? 0,
    ct: { state: c.state === 'NEW' ? 1 : 2, dir: 0, status: js.ct!.status, mark: 0 },
  };
  return { js, native };
}

const rows: string[] = [];
for (const n of SERVICES) {
  // Past 60,000 services the default ranges run out (a /16 of cluster IPs, 2,768 NodePorts): kube's own defaults then.
  // Nothing here is sent anywhere; the addresses only fill the ruleset.
  const services = generateServices(n, 1, n > 60_000 ? { serviceCIDR: '10.96.0.0/12', podCIDR: '10.128.0.0/12', nodePortEvery: 50 } : {});
  const svc = services[Math.floor(n / 2)];
  const t0 = performance.now();
  const rules = parseRuleset(kubeProxyRuleset(services), `kube-${n}.rules`, { family: 4 });
  const t1 = performance.now();
  const program = compileProgram(rules, 4);
  const t2 = performance.now();
  const m = new addon.Matcher();
  m.load(4, program.words, 1);
  const t3 = performance.now();
  m.setHost({ names: [undefined, 'eth0', 'eth1'], local4: ['198.18.255.253', '198.18.255.254'], primary4: [undefined, '198.18.255.254', '198.18.255.253'] });
  const engine = new Engine({ rules4: rules, host: new StaticHost({ local: ['198.18.255.254@eth0', '198.18.255.253@eth1'] }), sets: new EmptySets() });
  let ruleCount = 0;
  for (const t of rules.tables.values()) for (const c of t.chains.values()) ruleCount += c.rules.length;
  const proto = svc.protocol === 'udp' ? 17 : 6;
  const cases: Case[] = [
    { name: 'established PREROUTING', hook: 'PREROUTING', dst: svc.clusterIP, dport: svc.port, proto, state: 'ESTABLISHED' },
    { name: 'established FORWARD', hook: 'FORWARD', dst: svc.endpoints[0]?.ip ?? svc.clusterIP, dport: svc.endpoints[0]?.port ?? svc.port, proto, state: 'ESTABLISHED' },
    { name: 'established POSTROUTING', hook: 'POSTROUTING', dst: svc.endpoints[0]?.ip ?? svc.clusterIP, dport: 80, proto, state: 'ESTABLISHED' },
    { name: 'new, no service, PREROUTING', hook: 'PREROUTING', dst: '198.51.100.7', dport: 443, proto: 6, state: 'NEW' },
    { name: 'new to a service, PREROUTING', hook: 'PREROUTING', dst: svc.clusterIP, dport: svc.port, proto, state: 'NEW' },
    { name: 'new to a service, OUTPUT', hook: 'OUTPUT', dst: svc.clusterIP, dport: svc.port, proto, state: 'NEW' },
    { name: 'new, masqueraded, POSTROUTING', hook: 'POSTROUTING', dst: svc.endpoints[0]?.ip ?? svc.clusterIP, dport: 8080, proto, state: 'NEW', mark: 0x4000 },
  ];
  rows.push(`${n} services (${ruleCount} rules, ${program.words.length} words): parse ${(t1 - t0).toFixed(0)} ms, compile ${(t2 - t1).toFixed(0)} ms, load ${(t3 - t2).toFixed(0)} ms`);
  for (const c of cases) {
    const { js, native } = input(c);
    const ns = m.time(native, ITER);
    const reps = 20_000;
    engine.decide(js, { flow: true });
    const e0 = performance.now();
    for (let k = 0; k < reps; k++) engine.decide(js, { flow: true });
    const engineNs = ((performance.now() - e0) * 1e6) / reps;
    rows.push(`  ${c.name.padEnd(30)} matcher ${ns < 0 ? '  slow' : `${ns.toFixed(0).padStart(6)} ns`}   engine ${engineNs.toFixed(0).padStart(6)} ns`);
  }
}
console.log(rows.join('\n'));
