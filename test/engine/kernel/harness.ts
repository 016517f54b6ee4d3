// The kernel as the oracle (DESIGN.md, Testing): one ruleset, one probe sequence, two identical three-host labs —
// in one the fw host's kernel iptables holds the rules, in the other nfqwall does — then compare what the client saw
// and the per-rule counters (`iptables-save -c` against nfqwall's `save` with counters over its control socket).
import { controlRequest } from '../../../src/daemon/control';
import { Daemon, scratchDir } from '../../lab/daemon';
import { Lab, THREE_HOST, threeHostSpec, type Host } from '../../lab/lab';
import { ping, tcpConnect, udpExchange } from '../../lab/traffic';

export type Probe =
  | { kind: 'tcp'; family: 4 | 6; port: number }
  | { kind: 'udp'; family: 4 | 6; port: number; count: number }
  | { kind: 'ping'; family: 4 | 6; count: number };

export interface ProbeResult {
  probe: string;
  value: boolean | number;
}

export interface Counter {
  packets: number;
  bytes: number;
}

export interface SideResult {
  results: ProbeResult[];
  /** `table/chain/#n` for rules (1-based), `table/chain/policy` for built-in policies. */
  counters: Map<string, Counter>;
  /** The save text the counters came from, for failure messages. */
  save: string;
  /**
   * What the client and server stacks sent and received (TCP/UDP/ICMP segment counts from /proc/net/snmp{,6}).
   * Real TCP endpoints choose by timing whether an ACK rides alone or on data or a FIN, so two runs of the same probes
   * can put a different number of packets through fw; counters are comparable only between runs whose endpoints agree.
   */
  endpoints: string;
}

export function probeName(p: Probe): string {
  return p.kind === 'ping' ? `ping v${p.family} x${p.count}` : `${p.kind} v${p.family} :${p.port}`;
}

/** Lets the last packets of each probe (a TCP close, a late reply) cross fw before counters are read, on both sides. */
const SETTLE_MS = 500;

async function runProbes(lab: Lab, probes: Probe[]): Promise<ProbeResult[]> {
  const client = lab.host('client');
  const server = lab.host('server');
  const out: ProbeResult[] = [];
  for (const p of probes) {
    const addr = p.family === 4 ? THREE_HOST.server4 : THREE_HOST.server6;
    let value: boolean | number;
    // Under the initial RTO (1 s): a dropped SYN is sent exactly once on both sides, so counters compare exactly.
    if (p.kind === 'tcp') value = await tcpConnect(client, server, addr, p.port, 600);
    else if (p.kind === 'udp') value = await udpExchange(client, server, addr, p.port, p.count, 1_000);
    else value = await ping(client, addr, p.count, { intervalS: 0.05, waitS: 1 });
    out.push({ probe: probeName(p), value });
  }
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  return out;
}

/**
 * Counters from save text with counters: `[p:b] -A CHAIN ...` (or a trailing `-c p b`) for rules, `:CHAIN POLICY [p:b]`
 * for built-in chains. Chains in `skipChains` (nfqwall's own hook chains on the kernel side) are left out.
 */
export function parseSaveCounters(text: string, skipChains: (name: string) => boolean = () => false): Map<string, Counter> {
  const out = new Map<string, Counter>();
  let table = '';
  const index = new Map<string, number>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      table = line.slice(1);
      index.clear();
      continue;
    }
    const pol = /^:(\S+) (ACCEPT|DROP) \[(\d+):(\d+)\]/.exec(line);
    if (pol) {
      if (!skipChains(pol[1])) out.set(`${table}/${pol[1]}/policy`, { packets: Number(pol[3]), bytes: Number(pol[4]) });
      continue;
    }
    let m = /^\[(\d+):(\d+)\] -A (\S+)/.exec(line);
    let counter: Counter | undefined;
    let chain: string | undefined;
    if (m) {
      counter = { packets: Number(m[1]), bytes: Number(m[2]) };
      chain = m[3];
    } else {
      m = /^-A (\S+) .*-c (\d+) (\d+)$/.exec(line);
      if (m) {
        counter = { packets: Number(m[2]), bytes: Number(m[3]) };
        chain = m[1];
      }
    }
    if (!counter || !chain || skipChains(chain)) continue;
    const n = (index.get(chain) ?? 0) + 1;
    index.set(chain, n);
    out.set(`${table}/${chain}/#${n}`, counter);
  }
  return out;
}

const SNMP_KEYS: Record<string, string[]> = {
  Tcp: ['InSegs', 'OutSegs', 'RetransSegs', 'OutRsts'],
  Udp: ['InDatagrams', 'OutDatagrams'],
  Icmp: ['InMsgs', 'OutMsgs'],
};
// Not Icmp6In/OutMsgs: those count router solicitations and neighbour discovery, sent on timers of their own.
const SNMP6_KEYS = ['Udp6InDatagrams', 'Udp6OutDatagrams', 'Icmp6InEchos', 'Icmp6OutEchos', 'Icmp6InEchoReplies', 'Icmp6OutEchoReplies', 'Icmp6InDestUnreachs', 'Icmp6OutDestUnreachs'];

async function endpointCounts(host: Host): Promise<string> {
  const parts: string[] = [];
  const lines = (await host.exec(['cat', '/proc/net/snmp'])).stdout.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i].split(/\s+/);
    const values = lines[i + 1].split(/\s+/);
    const proto = names[0].replace(/:$/, '');
    for (const key of SNMP_KEYS[proto] ?? []) parts.push(`${proto}${key}=${values[names.indexOf(key)]}`);
  }
  for (const line of (await host.exec(['cat', '/proc/net/snmp6'])).stdout.split('\n')) {
    const [key, value] = line.split(/\s+/);
    if (SNMP6_KEYS.includes(key)) parts.push(`${key}=${value}`);
  }
  return `${host.name}: ${parts.join(' ')}`;
}

async function endpoints(lab: Lab): Promise<string> {
  return `${await endpointCounts(lab.host('client'))}\n${await endpointCounts(lab.host('server'))}`;
}

/** Runs the probes with the kernel's iptables holding the rules on fw. */
export async function runKernel(rules4: string, rules6: string | undefined, probes: Probe[]): Promise<SideResult> {
  const lab = await Lab.create(threeHostSpec());
  try {
    const fw = lab.host('fw');
    await fw.exec(['iptables-restore'], { input: rules4 });
    if (rules6 !== undefined) await fw.exec(['ip6tables-restore'], { input: rules6 });
    const results = await runProbes(lab, probes);
    const save = (await fw.exec(['iptables-save', '-c'])).stdout + (rules6 !== undefined ? (await fw.exec(['ip6tables-save', '-c'])).stdout : '');
    return { results, counters: parseSaveCounters(save), save, endpoints: await endpoints(lab) };
  } finally {
    await lab.destroy();
  }
}

/** Runs the same probes with nfqwall (the built CLI) holding the rules on fw. */
export async function runNfqwall(rules4: string, rules6: string | undefined, probes: Probe[]): Promise<SideResult> {
  const lab = await Lab.create(threeHostSpec());
  const scratch = scratchDir();
  let daemon: Daemon | undefined;
  try {
    const fw: Host = lab.host('fw');
    const control = `${scratch.dir}/control.sock`;
    daemon = await Daemon.start(fw, control, {
      rules: scratch.write('rules4', rules4),
      rules6: rules6 !== undefined ? scratch.write('rules6', rules6) : undefined,
    });
    const results = await runProbes(lab, probes);
    const res = await controlRequest(control, { cmd: 'save', counters: true });
    if (!res.ok) throw new Error(`nfqwall save: ${res.error}`);
    const rs = (res as { rulesets?: { ipv4?: string; ipv6?: string } }).rulesets ?? {};
    const save = (rs.ipv4 ?? '') + (rs.ipv6 ?? '');
    return { results, counters: parseSaveCounters(save), save, endpoints: await endpoints(lab) };
  } finally {
    if (daemon) await daemon.stop();
    await lab.destroy();
    scratch.cleanup();
  }
}

/** Human-readable differences; empty when the two sides agree. */
export function compareSides(kernel: SideResult, nfqwall: SideResult): string[] {
  const diffs: string[] = [];
  kernel.results.forEach((k, i) => {
    const n = nfqwall.results[i];
    if (!n || n.value !== k.value) diffs.push(`${k.probe}: kernel ${String(k.value)}, nfqwall ${String(n?.value)}`);
  });
  for (const [key, k] of kernel.counters) {
    const n = nfqwall.counters.get(key);
    if (!n) diffs.push(`${key}: kernel [${k.packets}:${k.bytes}], nfqwall has no such counter`);
    else if (n.packets !== k.packets || n.bytes !== k.bytes)
      diffs.push(`${key}: kernel [${k.packets}:${k.bytes}], nfqwall [${n.packets}:${n.bytes}]`);
  }
  for (const key of nfqwall.counters.keys()) if (!kernel.counters.has(key)) diffs.push(`${key}: only nfqwall has it`);
  return diffs;
}

/**
 * Runs the probes on both sides until the endpoints exchanged the same segments (at most `attempts` pairs) and returns
 * the differences of that pair. If no pair agrees, the endpoint counts are the difference: nfqwall made the stacks
 * retransmit or answer differently, which is a finding, not noise.
 */
export async function differential(rules4: string, rules6: string | undefined, probes: Probe[], attempts = 3): Promise<{ diffs: string[]; kernel: SideResult; nfqwall: SideResult }> {
  let last: { diffs: string[]; kernel: SideResult; nfqwall: SideResult } | undefined;
  for (let i = 0; i < attempts; i++) {
    const kernel = await runKernel(rules4, rules6, probes);
    const nfqwall = await runNfqwall(rules4, rules6, probes);
    if (kernel.endpoints === nfqwall.endpoints) return { diffs: compareSides(kernel, nfqwall), kernel, nfqwall };
    process.stderr.write(`differential: endpoints exchanged different segments on attempt ${i + 1}, running the pair again\n${kernel.endpoints}\n${nfqwall.endpoints}\n`);
    last = { diffs: [`endpoints differ:\nkernel:\n${kernel.endpoints}\nnfqwall:\n${nfqwall.endpoints}`], kernel, nfqwall };
  }
  if (!last) throw new Error('differential: attempts must be at least 1');
  return last;
}
