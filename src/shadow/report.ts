// What `nfqwall shadow` prints at the end: counters in `save -c` form, the flows the candidate would stop, the rules
// nothing hit, and (with --against) the flows whose fate differs. One data structure, rendered as text or JSON.
import { formatRuleSpec } from '../rules/format';
import type { Family, Ruleset } from '../rules/model';
import { saveRuleset } from '../rules/save';
import { fateText, refText, type Fate, type FlowEntry, type NatEntry, type RuleRef, type Rulesets, type Shadow } from './shadow';

export const CONNTRACK_NOTE =
  'connection state and NAT come from a connection table of the shadow run alone (one per ruleset), filled only by the packets captured since it started: ' +
  'connections opened before it look like mid-stream pick-ups (TCP: ESTABLISHED, as nf_conntrack_tcp_loose; UDP/ICMP: NEW)';

/** What the report says when the capture library cannot count the packets libpcap dropped. */
export const DROPS_UNREPORTED = 'not reported by libpcap binding';

export interface CaptureInfo {
  source: string;
  seconds: number;
  /** Packets the kernel dropped before the capture saw them; undefined when the capture library cannot tell. */
  captureDrops?: number;
  /** Where the --against ruleset came from (a file, or the running daemon's control socket). */
  against?: string;
  /** Why captureDrops is unknown, or how it was estimated. */
  dropsNote?: string;
}

export interface RuleHits {
  family: Family;
  table: string;
  chain: string;
  rule: number;
  text: string;
  packets: number;
  bytes: number;
}

export interface FlowJson {
  family: Family;
  proto: string;
  src: string;
  dst: string;
  dport: number | null;
  packets: number;
  bytes: number;
  verdict: string;
  hook: string | null;
  rule: { table: string; chain: string; rule: number; text: string } | null;
  against?: { verdict: string; hook: string | null; rule: { table: string; chain: string; rule: number; text: string } | null; note?: string };
  /** Why the packet dies when no rule decided it (the shadow connection table refused it). */
  note?: string;
}

export interface NatJson {
  family: Family;
  proto: string;
  src: string;
  dst: string;
  dport: number | null;
  toSrc: string;
  toDst: string;
  toDport: number | null;
  connections: number;
  /** The first packet's fate under the candidate (a connection NATed and then dropped is still listed). */
  verdict: string;
  rules: { table: string; chain: string; rule: number; text: string }[];
}

export interface ShadowReport {
  capture: CaptureInfo;
  note: string;
  packets: {
    seen: number;
    evaluated: number;
    bytes: number;
    truncated: number;
    skipped: Record<string, number>;
    paths: Record<string, number>;
    verdicts: Record<string, number>;
    /** Copies captured leaving after this host's NAT, evaluated in the form they arrived in. */
    unNatted: number;
    /** ctstate of each evaluated packet at its conntrack point (candidate's table). */
    states: Record<string, number>;
  };
  counters: { v4?: string; v6?: string };
  againstCounters?: { v4?: string; v6?: string };
  rules: RuleHits[];
  neverHit: RuleHits[];
  wouldStop: FlowJson[];
  flowOverflow: number;
  /** NAT the candidate binds for new connections, grouped by original and translated endpoints. */
  nat: NatJson[];
  natOverflow: number;
  differing?: { packets: number; flows: FlowJson[]; overflow: number };
}

function allRules(rs: Ruleset): RuleHits[] {
  const out: RuleHits[] = [];
  for (const t of rs.tables.values())
    for (const c of t.chains.values())
      c.rules.forEach((r, i) => {
        out.push({
          family: rs.family,
          table: t.name,
          chain: c.name,
          rule: i + 1,
          text: `-A ${c.name} ${formatRuleSpec(r, rs.family)}`.trimEnd(),
          packets: r.counters.packets,
          bytes: r.counters.bytes,
        });
      });
  return out;
}

function refJson(f: Fate): FlowJson['rule'] {
  return f.by ? { table: f.by.table, chain: f.by.chain, rule: f.by.rule, text: f.by.text } : null;
}

function flowJson(e: FlowEntry): FlowJson {
  const j: FlowJson = {
    family: e.family,
    proto: e.proto,
    src: e.src,
    dst: e.dst,
    dport: e.dport >= 0 ? e.dport : null,
    packets: e.packets,
    bytes: e.bytes,
    verdict: e.fate.verdict,
    hook: e.fate.hook ?? null,
    rule: refJson(e.fate),
  };
  if (e.fate.note !== undefined) j.note = e.fate.note;
  if (e.other) {
    j.against = { verdict: e.other.verdict, hook: e.other.hook ?? null, rule: refJson(e.other) };
    if (e.other.note !== undefined) j.against.note = e.other.note;
  }
  return j;
}

function ruleJson(r: RuleRef): { table: string; chain: string; rule: number; text: string } {
  return { table: r.table, chain: r.chain, rule: r.rule, text: r.text };
}

function natJson(e: NatEntry): NatJson {
  return {
    family: e.family,
    proto: e.proto,
    src: e.src,
    dst: e.dst,
    dport: e.dport >= 0 ? e.dport : null,
    toSrc: e.toSrc,
    toDst: e.toDst,
    toDport: e.toDport >= 0 ? e.toDport : null,
    connections: e.connections,
    verdict: e.verdict,
    rules: e.by.map(ruleJson),
  };
}

function byPackets(a: FlowEntry, b: FlowEntry): number {
  return b.packets - a.packets || (a.src < b.src ? -1 : a.src > b.src ? 1 : 0) || a.dport - b.dport;
}

function counters(rs: Rulesets): { v4?: string; v6?: string } {
  const out: { v4?: string; v6?: string } = {};
  if (rs.v4) out.v4 = saveRuleset(rs.v4, { counters: true });
  if (rs.v6) out.v6 = saveRuleset(rs.v6, { counters: true });
  return out;
}

function record(m: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...m.entries()].sort((a, b) => b[1] - a[1]));
}

export function buildReport(s: Shadow, capture: CaptureInfo): ShadowReport {
  const rs = s.candidate.rules;
  const rules = [...(rs.v4 ? allRules(rs.v4) : []), ...(rs.v6 ? allRules(rs.v6) : [])];
  const st = s.stats;
  const report: ShadowReport = {
    capture,
    note: CONNTRACK_NOTE,
    packets: {
      seen: st.frames,
      evaluated: st.evaluated,
      bytes: st.bytes,
      truncated: st.truncated,
      skipped: record(st.skipped),
      paths: record(st.paths),
      verdicts: { ...st.verdicts },
      unNatted: st.unNatted,
      states: record(st.states),
    },
    counters: counters(rs),
    rules,
    neverHit: rules.filter((r) => r.packets === 0),
    wouldStop: [...s.flows.values()].sort(byPackets).map(flowJson),
    flowOverflow: st.flowOverflow,
    nat: [...s.nat.values()].sort((a, b) => b.connections - a.connections || (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0)).map(natJson),
    natOverflow: st.natOverflow,
  };
  if (s.against) {
    report.againstCounters = counters(s.against.rules);
    report.differing = { packets: st.differing, flows: [...s.diff.values()].sort(byPackets).map(flowJson), overflow: st.diffOverflow };
  }
  return report;
}

function flowLine(f: FlowJson): string {
  const port = f.dport === null ? '' : ` dport ${f.dport}`;
  return `${f.proto} ${f.src} -> ${f.dst}${port}: ${f.packets} packets, ${f.bytes} bytes`;
}

function fateOf(v: string, hook: string | null, rule: FlowJson['rule'], family: Family, note?: string): string {
  const f: Fate = { verdict: v as Fate['verdict'] };
  if (hook !== null) f.hook = hook as NonNullable<Fate['hook']>;
  if (rule) f.by = { family, ...rule };
  if (note !== undefined) f.note = note;
  return fateText(f);
}

function endpoint(addr: string, port: number | null, family: Family): string {
  if (port === null) return addr;
  return family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** The capture drop line: a number only when libpcap gave one. */
export function dropsText(c: CaptureInfo): string {
  if (c.captureDrops !== undefined) return `drops: ${c.captureDrops}`;
  return `drops: ${c.source.startsWith('file ') ? 'not recorded in capture files' : DROPS_UNREPORTED}`;
}

export function formatReport(r: ShadowReport): string {
  const out: string[] = [];
  const c = r.capture;
  const p = r.packets;
  out.push(`# nfqwall shadow: ${c.source}, ${c.seconds.toFixed(1)} s`);
  out.push(`# ${p.seen} packets seen, ${p.evaluated} evaluated (${p.bytes} bytes), ${p.seen - p.evaluated} not evaluated`);
  for (const [why, n] of Object.entries(p.skipped)) out.push(`#   not evaluated: ${n} ${why}`);
  out.push(`# ${dropsText(c)}${c.dropsNote ? ` (${c.dropsNote})` : ''}`);
  if (p.truncated > 0) out.push(`# ${p.truncated} packets were truncated by the capture (matches on their payload may differ)`);
  out.push(`# paths: ${Object.entries(p.paths).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  out.push(`# ctstate at the conntrack point: ${Object.entries(p.states).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`);
  if (p.unNatted > 0) out.push(`# ${p.unNatted} packets captured leaving after NAT were evaluated as they arrived (before the binding)`);
  if (c.against !== undefined) out.push(`# against: ${c.against}`);
  out.push(`# ${r.note}`);
  out.push('');
  for (const [fam, text] of [['IPv4', r.counters.v4], ['IPv6', r.counters.v6]] as const) {
    if (text === undefined) continue;
    out.push(`## Counters, candidate ${fam} (iptables-save -c)`);
    out.push(text.trimEnd());
    out.push('');
  }
  out.push(`## Would drop or reject (${r.wouldStop.length} flows${r.flowOverflow > 0 ? `, ${r.flowOverflow} packets not grouped: flow table full` : ''})`);
  if (r.wouldStop.length === 0) out.push('(none)');
  for (const f of r.wouldStop) {
    out.push(flowLine(f));
    out.push(`    ${fateOf(f.verdict, f.hook, f.rule, f.family, f.note)}`);
  }
  out.push('');
  out.push(`## NAT for new connections (${r.nat.length}${r.natOverflow > 0 ? `, ${r.natOverflow} connections not grouped: table full` : ''})`);
  if (r.nat.length === 0) out.push('(none)');
  for (const n of r.nat) {
    const from = `${n.proto} ${n.src} -> ${endpoint(n.dst, n.dport, n.family)}`;
    const to = `${n.toSrc} -> ${endpoint(n.toDst, n.toDport, n.family)}`;
    out.push(`${from} becomes ${to}: ${n.connections} connection${n.connections === 1 ? '' : 's'}${n.verdict === 'accept' ? '' : ` (then ${n.verdict.toUpperCase()})`}`);
    for (const rule of n.rules) out.push(`    by ${refText({ family: n.family, ...rule })}`);
  }
  out.push('');
  out.push(`## Rules never hit (${r.neverHit.length})`);
  if (r.neverHit.length === 0) out.push('(none)');
  for (const h of r.neverHit) out.push(`IPv${h.family} ${refText({ ...h })}`);
  if (r.differing) {
    out.push('');
    const d = r.differing;
    out.push(`## Fate differs (--against): ${d.packets} packets in ${d.flows.length} flows${d.overflow > 0 ? `, ${d.overflow} packets not grouped: flow table full` : ''}`);
    if (d.flows.length === 0) out.push('(none)');
    for (const f of d.flows) {
      out.push(flowLine(f));
      out.push(`    candidate: ${fateOf(f.verdict, f.hook, f.rule, f.family, f.note)}`);
      if (f.against) out.push(`    against:   ${fateOf(f.against.verdict, f.against.hook, f.against.rule, f.family, f.against.note)}`);
    }
  }
  out.push('');
  const v = p.verdicts;
  out.push(
    `## Summary: ${p.evaluated} packets evaluated: ${v['accept'] ?? 0} accepted, ${v['drop'] ?? 0} dropped, ${v['reject'] ?? 0} rejected, ${v['queue'] ?? 0} queued; ` +
      `${r.wouldStop.length} flows would be stopped; ${r.nat.length} NAT groups; ${r.neverHit.length} of ${r.rules.length} rules never hit` +
      (r.differing ? `; ${r.differing.packets} packets (${r.differing.flows.length} flows) differ from --against` : '') +
      `; ${dropsText(c)}`,
  );
  return out.join('\n') + '\n';
}
