// `nfqwall explain`: build one packet, run it through the reference engine with tracing, and print the path it took
// (table, chain, rule number, the rule as iptables-save prints it, what happened), then the verdict, mark and rewrites.
import type { Command } from 'commander';
import { craftPacket } from '../engine/craft';
import type { Decision } from '../engine/decision';
import { Engine, HOOK_TABLES } from '../engine/engine';
import { StaticHost } from '../engine/host';
import { parsePacket } from '../engine/packet';
import { EmptySets } from '../engine/sets';
import type { ConnInfo, CtState, NatRequest, PacketMeta, ParsedPacket } from '../extensions/types';
import { formatIpAddr, guessFamily, parseIpAddr } from '../rules/addr';
import { RuleErrors } from '../rules/errors';
import { formatRuleSpec } from '../rules/format';
import { loadRuleFile } from '../rules/load';
import { HOOKS, type Family, type Hook, type Ruleset } from '../rules/model';
import { parseProtocol, protocolName } from '../rules/services';

export interface ExplainOptions {
  rules?: string;
  rules6?: string;
  hook: string;
  in?: string;
  out?: string;
  src: string;
  dst: string;
  proto?: string;
  sport?: string;
  dport?: string;
  flags?: string;
  mark?: string;
  icmpType?: string;
  local?: string[];
  uid?: string;
  /** The connection state the packet has (default NEW: the first packet of a connection, which walks nat). */
  ctstate?: string;
}

const CT_STATES: readonly CtState[] = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED'];
// IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED: what an established connection's status says.
const ESTABLISHED_STATUS = 2 | 4 | 8;

/** The connection the described packet belongs to, as the connection table would report it. */
function connection(state: string | undefined, pkt: ParsedPacket): ConnInfo {
  const s = (state ?? 'NEW').toUpperCase() as CtState;
  if (!CT_STATES.includes(s)) throw new Error(`unknown connection state "${state}" (${CT_STATES.join(', ')})`);
  const orig = { src: pkt.src, dst: pkt.dst, protocol: pkt.protocol, sport: Math.max(pkt.sport, 0), dport: Math.max(pkt.dport, 0) };
  const reply = { src: pkt.dst, dst: pkt.src, protocol: pkt.protocol, sport: orig.dport, dport: orig.sport };
  const status = s === 'ESTABLISHED' ? ESTABLISHED_STATUS : 0;
  return { state: s, status, mark: 0, direction: 'ORIGINAL', orig, reply, expiresSeconds: 0, zone: 0 };
}

const TCP_FLAGS: Record<string, number> = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16, URG: 32, ECE: 64, CWR: 128 };

const ICMP_NAMES: Record<string, [number, number]> = {
  'echo-reply': [0, 0],
  'destination-unreachable': [3, 0],
  'port-unreachable': [3, 3],
  'echo-request': [8, 0],
  'time-exceeded': [11, 0],
};
const ICMP6_NAMES: Record<string, [number, number]> = {
  'destination-unreachable': [1, 0],
  'packet-too-big': [2, 0],
  'time-exceeded': [3, 0],
  'echo-request': [128, 0],
  'echo-reply': [129, 0],
  'router-solicitation': [133, 0],
  'router-advertisement': [134, 0],
  'neighbour-solicitation': [135, 0],
  'neighbour-advertisement': [136, 0],
};

function parseFlags(s: string): number {
  let v = 0;
  for (const w of s.split(',').map((x) => x.trim().toUpperCase())) {
    if (w === '' || w === 'NONE') continue;
    if (w === 'ALL') v |= 0xff;
    else if (TCP_FLAGS[w] !== undefined) v |= TCP_FLAGS[w];
    else throw new Error(`unknown TCP flag "${w}" (FIN SYN RST PSH ACK URG ECE CWR ALL NONE)`);
  }
  return v;
}

function parseNumber(s: string, what: string, max: number): number {
  const n = /^0x[0-9a-f]+$/i.test(s) ? parseInt(s, 16) : /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > max) throw new Error(`bad ${what} "${s}"`);
  return n;
}

function parseIcmp(s: string, family: Family): [number, number] {
  const named = (family === 4 ? ICMP_NAMES : ICMP6_NAMES)[s];
  if (named) return named;
  const [t, c] = s.split('/');
  return [parseNumber(t, 'ICMP type', 255), c === undefined ? 0 : parseNumber(c, 'ICMP code', 255)];
}

function addr(s: string, family: Family): Uint8Array {
  const a = parseIpAddr(s, family);
  if (!a) throw new Error(`not an IPv${family} address: "${s}"`);
  return a;
}

function describePacket(p: ParsedPacket): string {
  const proto = protocolName(p.protocol);
  const sp = p.sport >= 0 ? `:${p.sport}` : '';
  const dp = p.dport >= 0 ? `:${p.dport}` : '';
  let s = `IPv${p.family} ${proto.toUpperCase()} ${formatIpAddr(p.src)}${sp} -> ${formatIpAddr(p.dst)}${dp}`;
  if (p.tcpFlags >= 0) {
    const names = Object.entries(TCP_FLAGS)
      .filter(([, b]) => p.tcpFlags & b)
      .map(([n]) => n);
    s += ` [${names.join(',') || 'no flags'}]`;
  }
  if (p.icmpType >= 0) s += ` type ${p.icmpType} code ${p.icmpCode}`;
  return s + ` len ${p.length}`;
}

function ruleAt(rs: Ruleset, table: string, chain: string, n: number) {
  for (const [name, t] of rs.tables) if (name === table) return t.chains.get(chain)?.rules[n - 1];
  return undefined;
}

const RESULT_TEXT: Record<string, string> = {
  match: 'matched (no target: counted)',
  jump: 'jump',
  goto: 'goto',
  return: 'RETURN',
  accept: 'ACCEPT (ends this table)',
  drop: 'DROP (ends the hook)',
  reject: 'REJECT (ends the hook)',
  queue: 'NFQUEUE (ends the hook)',
  continue: 'continue',
};

/** The text `nfqwall explain` prints for a decision. */
export function formatExplanation(rs: Ruleset, before: ParsedPacket, meta: PacketMeta, d: Decision): string {
  const out: string[] = [];
  out.push(`packet: ${describePacket(before)}`);
  out.push(`hook:   ${meta.hook} (in=${meta.inIface ?? ''} out=${meta.outIface ?? ''} mark=0x${meta.mark.toString(16)})`);
  const present = HOOK_TABLES[meta.hook].filter((t) => rs.tables.get(t)?.chains.get(meta.hook));
  out.push(`tables: ${present.length > 0 ? present.join(' -> ') : '(none of this hook\'s tables are in the file)'}`);
  out.push('');
  let lastTable = '';
  for (const step of d.path ?? []) {
    if (step.table !== lastTable) {
      out.push(`${step.table}:`);
      lastTable = step.table;
    }
    const where = `${step.chain}`;
    if (step.result === 'policy') {
      const policy = rs.tables.get(step.table)?.chains.get(step.chain)?.policy ?? 'ACCEPT';
      out.push(`  ${where}: policy ${policy}`);
      continue;
    }
    if (step.rule === 0) {
      out.push(`  ${where}: end of chain, RETURN to the caller`);
      continue;
    }
    const rule = ruleAt(rs, step.table, step.chain, step.rule);
    const text = rule ? `-A ${step.chain} ${formatRuleSpec(rule, rs.family)}`.trimEnd() : '(rule not found)';
    const loc = rule ? `  (${rule.loc.file}:${rule.loc.line})` : '';
    out.push(`  ${where} #${step.rule}: ${text}${loc}`);
    out.push(`      -> ${RESULT_TEXT[step.result] ?? step.result}`);
  }
  out.push('');
  let verdict = d.verdict.toUpperCase();
  if (d.verdict === 'queue') verdict += ` ${d.queue ?? 0}`;
  out.push(`verdict: ${verdict}`);
  out.push(`mark:    0x${d.mark.toString(16)}${d.markChanged ? ' (changed)' : ''}`);
  for (const r of d.ct?.nat ?? []) out.push(`nat:     ${formatNat(r)} (bound by the connection table for this connection)`);
  if (d.payload) {
    const after = parsePacket(d.payload, before.family);
    const changes: string[] = [];
    const cmp = (name: string, a: string | number, b: string | number) => {
      if (a !== b) changes.push(`${name} ${a} -> ${b}`);
    };
    cmp('src', formatIpAddr(before.src), formatIpAddr(after.src));
    cmp('dst', formatIpAddr(before.dst), formatIpAddr(after.dst));
    cmp('sport', before.sport, after.sport);
    cmp('dport', before.dport, after.dport);
    cmp(before.family === 4 ? 'ttl' : 'hoplimit', before.ttl, after.ttl);
    cmp(before.family === 4 ? 'tos' : 'tclass', `0x${before.tos.toString(16)}`, `0x${after.tos.toString(16)}`);
    cmp('length', before.length, after.length);
    out.push(`rewrite: ${changes.length > 0 ? changes.join(', ') : 'bytes changed (options or payload)'}`);
  }
  for (const r of d.replies) out.push(`reply:   ${describePacket(parsePacket(r, before.family))}`);
  for (const l of d.logs) out.push(`log:     ${l.kind} ${l.line.trimEnd()}`);
  return out.join('\n') + '\n';
}

/** A NAT binding request as DNAT/SNAT print their ranges: `DST 198.19.2.2:80`, `SRC 198.19.0.1-198.19.0.9:1024-65535`. */
function formatNat(r: NatRequest): string {
  let to = '';
  if (r.minAddr) to = formatIpAddr(r.minAddr) + (r.maxAddr && formatIpAddr(r.maxAddr) !== formatIpAddr(r.minAddr) ? `-${formatIpAddr(r.maxAddr)}` : '');
  if (r.minPort !== undefined) to += `:${r.minPort}${r.maxPort !== undefined && r.maxPort !== r.minPort ? `-${r.maxPort}` : ''}`;
  if (r.masquerade) to = `${to} (masquerade)`.trim();
  return `${r.manip} ${to || '(ports and addresses kept)'}`;
}

/** Builds the packet and runs it; returns the explanation text. */
export function explain(o: ExplainOptions): string {
  const family = guessFamily(o.src);
  if (!family) throw new Error(`not an address: "${o.src}"`);
  if (guessFamily(o.dst) !== family) throw new Error(`--src and --dst must be of one family`);
  const hook = o.hook.toUpperCase() as Hook;
  if (!HOOKS.includes(hook)) throw new Error(`unknown hook "${o.hook}" (${HOOKS.join(', ')})`);
  const file = family === 4 ? o.rules : o.rules6 ?? o.rules;
  if (!file) throw new Error(family === 4 ? 'explain needs --rules FILE' : 'explain needs --rules6 FILE (or --rules)');
  const rs = loadRuleFile(file, family);
  const src = addr(o.src, family);
  const dst = addr(o.dst, family);
  const proto = o.proto === undefined ? (o.icmpType ? (family === 4 ? 1 : 58) : 6) : parseProtocol(o.proto);
  const [icmpType, icmpCode] = o.icmpType ? parseIcmp(o.icmpType, family) : [undefined, undefined];
  const data = craftPacket({
    family,
    src,
    dst,
    proto,
    sport: o.sport ? parseNumber(o.sport, 'port', 65535) : 40000,
    dport: o.dport ? parseNumber(o.dport, 'port', 65535) : 80,
    tcpFlags: o.flags !== undefined ? parseFlags(o.flags) : 0x02,
    icmpType,
    icmpCode,
  });
  const meta: PacketMeta = {
    hook,
    inIface: o.in,
    outIface: o.out,
    mark: o.mark ? parseNumber(o.mark, 'mark', 0xffffffff) : 0,
    pktType: 'unicast',
  };
  if (o.uid !== undefined) meta.uid = parseNumber(o.uid, 'uid', 0xffffffff);
  // Without --local, the address this host owns is the one the hook implies (INPUT: dst, OUTPUT: src).
  const local = o.local ?? (hook === 'INPUT' || hook === 'PREROUTING' ? [o.dst] : hook === 'OUTPUT' ? [o.src] : []);
  const engine = new Engine({
    rules4: family === 4 ? rs : undefined,
    rules6: family === 6 ? rs : undefined,
    host: new StaticHost({ local }),
    sets: new EmptySets(),
  });
  const before = parsePacket(data, family);
  const d = engine.decide({ family, data, meta: { ...meta }, ct: connection(o.ctstate, before) }, { trace: true });
  return formatExplanation(rs, before, meta, d);
}

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description('show the path one packet takes through a ruleset: tables, chains, rules, verdict, mark, rewrites')
    .option('--rules <file>', 'IPv4 rule file (iptables-save format)')
    .option('--rules6 <file>', 'IPv6 rule file (ip6tables-save format)')
    .requiredOption('--hook <hook>', `the hook: ${HOOKS.join(', ')}`)
    .option('--in <iface>', 'input interface')
    .option('--out <iface>', 'output interface')
    .requiredOption('--src <addr>', 'source address')
    .requiredOption('--dst <addr>', 'destination address')
    .option('--proto <p>', 'protocol name or number (default tcp, or icmp with --icmp-type)')
    .option('--sport <n>', 'source port (default 40000)')
    .option('--dport <n>', 'destination port (default 80)')
    .option('--flags <list>', 'TCP flags, e.g. SYN,ACK (default SYN)')
    .option('--mark <n>', 'the packet mark it arrives with')
    .option('--icmp-type <t>', 'ICMP type[/code] or name (echo-request, ...)')
    .option('--uid <n>', 'owner uid of a local packet')
    .option('--ctstate <state>', 'its connection state: NEW (the default: a first packet, which walks nat), ESTABLISHED, RELATED, INVALID or UNTRACKED')
    .option('--local <addr>', "an address of this host, for addrtype (repeatable)", collect)
    .action((opts: ExplainOptions) => {
      try {
        process.stdout.write(explain(opts));
      } catch (e) {
        if (e instanceof RuleErrors) {
          process.stderr.write(`${e.message}\n`);
          process.exitCode = 1;
          return;
        }
        throw e;
      }
    });
}
