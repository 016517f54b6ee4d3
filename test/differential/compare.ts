// Comparing the two sides: what each packet caused on the wire, and fw's per-rule counters.
import type { RunResult } from './harness';
import { ORACLE_CHAIN } from './harness';
import { describePacket, hasTestId, normalize, summarize, traceIndex, type PacketSpec } from './packets';

interface Seen {
  at: string;
  hex: string;
  text: string;
}

function byPacket(run: RunResult, specs: PacketSpec[], side: string, problems: string[]): Map<number, Seen[]> {
  const out = new Map<number, Seen[]>();
  for (const f of run.frames) {
    const i = traceIndex(f.ip, specs.length);
    const own = i >= 0 && specs[i]?.dir === 'out' && hasTestId(f.ip, i);
    const n = normalize(f.ip, own);
    const text = `${f.at}: ${summarize(f.ip)}`;
    for (const p of n.problems) problems.push(`${side}: ${p} in ${text}${i >= 0 ? ` (packet #${i})` : ''}`);
    let list = out.get(i);
    if (!list) out.set(i, (list = []));
    list.push({ at: f.at, hex: n.hex, text });
  }
  return out;
}

/** One line per packet whose wire effects differ (delivered or not, bytes, replies), plus checksum problems. */
export function compareWire(specs: PacketSpec[], kernel: RunResult, nfqwall: RunResult): string[] {
  const diffs: string[] = [];
  const k = byPacket(kernel, specs, 'kernel', diffs);
  const n = byPacket(nfqwall, specs, 'nfqwall', diffs);
  const keys = [...new Set([...k.keys(), ...n.keys()])].sort((a, b) => a - b);
  for (const i of keys) {
    const ks = k.get(i) ?? [];
    const ns = n.get(i) ?? [];
    const key = (s: Seen[]): string => s.map((x) => `${x.at}:${x.hex}`).join(' ');
    if (key(ks) === key(ns)) continue;
    const what = i >= 0 ? `packet #${i} (${describePacket(specs[i] as PacketSpec)})` : 'untraced packets';
    const show = (s: Seen[]): string => (s.length === 0 ? 'nothing' : s.map((x) => `${x.text} [${x.hex}]`).join('; '));
    diffs.push(`${what}:\n      kernel:  ${show(ks)}\n      nfqwall: ${show(ns)}`);
  }
  return diffs;
}

export interface CounterLine {
  table: string;
  chain: string;
  /** -1 for the chain's policy counters. */
  index: number;
  text: string;
  packets: number;
  bytes: number;
}

function ignoredChain(name: string): boolean {
  return name.startsWith('NFQWALL') || name === ORACLE_CHAIN;
}

/** The counters in `iptables-save -c` text, for the given tables, without the harness's and nfqwall's own chains. */
export function parseCounters(text: string, tables: ReadonlySet<string>): CounterLine[] {
  const out: CounterLine[] = [];
  const perChain = new Map<string, number>();
  let table = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      table = line.slice(1);
      continue;
    }
    if (!tables.has(table)) continue;
    let m = /^:(\S+) (\S+) \[(\d+):(\d+)\]/.exec(line);
    if (m) {
      if (m[2] !== '-' && !ignoredChain(m[1] as string)) {
        out.push({ table, chain: m[1] as string, index: -1, text: `policy ${m[2]}`, packets: Number(m[3]), bytes: Number(m[4]) });
      }
      continue;
    }
    m = /^\[(\d+):(\d+)\] -A (\S+)(.*)$/.exec(line);
    if (!m) continue;
    const chain = m[3] as string;
    const rest = (m[4] as string).trim();
    const jump = /(?:^|\s)-[jg] (\S+)$/.exec(rest);
    if (ignoredChain(chain) || (jump && ignoredChain(jump[1] as string))) continue;
    const key = `${table}/${chain}`;
    const index = perChain.get(key) ?? 0;
    perChain.set(key, index + 1);
    out.push({ table, chain, index, text: rest, packets: Number(m[1]), bytes: Number(m[2]) });
  }
  return out;
}

/** The tables a ruleset file names. */
export function tablesOf(rules: string): Set<string> {
  const t = new Set<string>();
  for (const line of rules.split('\n')) if (line.startsWith('*')) t.add(line.slice(1).trim());
  return t;
}

/**
 * `table/chain` for every built-in chain a rule file declares (`:INPUT ACCEPT [0:0]`). iptables-nft gives a built-in
 * chain a policy counter only when the restore file declares it so; one it creates for `-A INPUT ...` alone (or not at
 * all) counts nothing, where legacy iptables and nfqwall count its policy.
 */
function declaredChains(rules: string): Set<string> {
  const out = new Set<string>();
  let table = '';
  for (const raw of rules.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) table = line.slice(1).trim();
    const m = /^:(\S+)\s/.exec(line);
    if (m) out.add(`${table}/${m[1]}`);
  }
  return out;
}

/** Rules (not policies) whose packet counter is non-zero: how much of a ruleset a run exercised. */
export function hitRules(save: string, rules: string): { hit: number; total: number } {
  const lines = parseCounters(save, tablesOf(rules)).filter((c) => c.index >= 0);
  return { hit: lines.filter((c) => c.packets > 0).length, total: lines.length };
}

/** One line per rule or policy whose packet or byte counter differs (rules matched by table, chain and position). */
export function compareCounters(rules: string, kernelSave: string, nfqwallSave: string): string[] {
  const tables = tablesOf(rules);
  // Policies the kernel side does not count (see declaredChains) are not compared.
  const named = declaredChains(rules);
  const keep = (c: CounterLine): boolean => c.index >= 0 || named.has(`${c.table}/${c.chain}`);
  const k = parseCounters(kernelSave, tables).filter(keep);
  const n = parseCounters(nfqwallSave, tables).filter(keep);
  const key = (c: CounterLine): string => `${c.table} ${c.chain} ${c.index < 0 ? 'policy' : `#${c.index + 1}`}`;
  const nm = new Map(n.map((c) => [key(c), c]));
  const diffs: string[] = [];
  for (const kc of k) {
    const nc = nm.get(key(kc));
    nm.delete(key(kc));
    if (nc === undefined) {
      diffs.push(`${key(kc)} (${kc.text}): only in the kernel's save`);
      continue;
    }
    if (kc.packets !== nc.packets || kc.bytes !== nc.bytes) {
      diffs.push(`${key(kc)} ${kc.text}: kernel [${kc.packets}:${kc.bytes}], nfqwall [${nc.packets}:${nc.bytes}]`);
    }
  }
  for (const [kk, nc] of nm) diffs.push(`${kk} (${nc.text}): only in nfqwall's save`);
  return diffs;
}
