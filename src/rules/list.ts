// `iptables -L` output for a table of a ruleset, as iptables 1.8.9 (nft backend) prints it with -v -n -x and
// --line-numbers (print_header, print_rule_details, print_ifaces, print_ipv4_addresses, xtables_print_num).
// Extension options are printed in each module's own `print` format, not its save format: the common ones are
// rebuilt here from their canonical save text (which is exact, whatever the module's option object looks like); the
// rest fall back to the save text. Without -n, iptables resolves addresses through DNS; nfqwall never does, so
// addresses stay numeric (0.0.0.0/0 is still `anywhere`), while protocol, port and ICMP names are resolved locally.
import { formatIpAddr, maskPrefixLength } from './addr';
import { lexLine } from './lexer';
import { BUILTIN_CHAINS, type Chain, type Counters, type IpNet, type MatchUse, type Rule, type Ruleset, type Table } from './model';
import { protocolName, serviceName } from './services';
import { ICMP_NAMES } from '../extensions/util/icmp';

export interface ListOptions {
  verbose?: boolean;
  numeric?: boolean;
  exact?: boolean;
  lineNumbers?: boolean;
}

/** xtables_print_num: %8llu with -x, else up to 99999 then K/M/G/T (rounded); `bare` is FMT_NOTABLE. */
export function formatCount(n: number, exact: boolean, bare = false): string {
  if (exact) return bare ? `${n} ` : `${String(n).padStart(8)} `;
  if (n <= 99999) return bare ? `${n} ` : `${String(n).padStart(5)} `;
  let v = n;
  for (const unit of ['K', 'M', 'G']) {
    v = Math.floor((v + 500) / 1000);
    if (v <= 9999) return bare ? `${v}${unit} ` : `${String(v).padStart(4)}${unit} `;
  }
  v = Math.floor((v + 500) / 1000);
  return bare ? `${v}T ` : `${String(v).padStart(4)}T `;
}

function header(opts: ListOptions): string {
  let s = '';
  if (opts.lineNumbers) s += 'num  ';
  if (opts.verbose) s += opts.exact ? `${'pkts'.padStart(8)} ${'bytes'.padStart(10)} ` : ' pkts bytes ';
  s += `${'target'.padEnd(9)} `;
  s += ' prot opt';
  if (opts.verbose) s += ` ${'in'.padEnd(6)} ${'out'.padEnd(6)} `;
  s += ` ${'source'.padEnd(19)} `;
  s += ` ${'destination'.padEnd(19)} `;
  return s;
}

/** xtables_ipmask_to_numeric / xtables_ip6mask_to_numeric: nothing for a full mask, /N, or /mask with holes. */
function maskText(mask: Uint8Array): string {
  const len = maskPrefixLength(mask);
  if (len === mask.length * 8) return '';
  return len >= 0 ? `/${len}` : `/${formatIpAddr(mask)}`;
}

function addrText(net: IpNet | undefined, family: 4 | 6, numeric: boolean): string {
  if (!net || maskPrefixLength(net.mask) === 0) {
    if (!numeric) return 'anywhere';
    return family === 4 ? '0.0.0.0/0' : '::/0';
  }
  return formatIpAddr(net.addr) + maskText(net.mask);
}

function references(table: Table, name: string): number {
  let n = 0;
  for (const c of table.chains.values())
    for (const r of c.rules) if (r.target?.kind === 'chain' && r.target.chain === name) n++;
  return n;
}

function protoText(rule: Rule, numeric: boolean): string {
  const p = rule.proto?.value ?? 0;
  if (numeric) return String(p);
  return protocolName(p);
}

function targetName(rule: Rule): string {
  const t = rule.target;
  if (!t) return '';
  return t.kind === 'chain' ? t.chain : t.ext.name;
}

function ruleLine(rule: Rule, num: number, family: 4 | 6, opts: ListOptions): string {
  const numeric = opts.numeric === true;
  let s = '';
  if (opts.lineNumbers) s += `${String(num).padEnd(4)} `;
  if (opts.verbose) s += formatCount(rule.counters.packets, opts.exact === true) + formatCount(rule.counters.bytes, opts.exact === true);
  s += `${targetName(rule).padEnd(9)} `;
  s += `${rule.proto?.negated ? '!' : ' '}${protoText(rule, numeric).padEnd(4)} `;
  s += `${rule.fragment?.negated ? '!' : '-'}${rule.fragment ? 'f' : '-'} `;
  if (opts.verbose) {
    const any = numeric ? '*' : 'any';
    const iface = (x: Rule['inIface']) => (x ? `${x.negated ? '!' : ''}${x.value}` : any);
    s += ` ${iface(rule.inIface).padEnd(6)} ${iface(rule.outIface).padEnd(6)} `;
  }
  s += `${rule.src?.negated ? '!' : ' '}${addrText(rule.src?.value, family, numeric).padEnd(19)} `;
  s += `${rule.dst?.negated ? '!' : ' '}${addrText(rule.dst?.value, family, numeric).padEnd(19)} `;
  if (rule.target?.kind === 'chain' && rule.target.goto) s += '[goto] ';
  const proto = rule.proto && !rule.proto.negated ? rule.proto.value : 0;
  for (const m of rule.matches) s += matchText(m, family, numeric, proto);
  const t = rule.target;
  if (t?.kind === 'extension') s += targetText(t.ext.name, t.ext.format(t.opts, family), numeric);
  return s;
}

function chainHeader(table: Table, chain: Chain, opts: ListOptions): string {
  if (!chain.builtin) return `Chain ${chain.name} (${references(table, chain.name)} references)`;
  let s = `Chain ${chain.name} (policy ${chain.policy ?? 'ACCEPT'}`;
  if (opts.verbose) {
    const c: Counters = chain.counters;
    s += ` ${formatCount(c.packets, opts.exact === true, true)}packets, ${formatCount(c.bytes, opts.exact === true, true)}bytes`;
  }
  return `${s})`;
}

/** The chains in the order iptables-nft lists them: built-in chains in hook order, then user chains by name. */
function listedChains(table: Table): Chain[] {
  const builtins = BUILTIN_CHAINS[table.name]
    .map((h) => table.chains.get(h))
    .filter((c): c is Chain => c !== undefined);
  const users = [...table.chains.values()].filter((c) => !c.builtin).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return [...builtins, ...users];
}

/** `iptables -t TABLE -L [-v] [-n] [-x] [--line-numbers]` for one table (an empty table lists its built-in chains). */
export function listTable(rs: Ruleset, tableName: Table['name'], opts: ListOptions = {}): string {
  const table: Table = rs.tables.get(tableName) ?? emptyTable(tableName);
  const out: string[] = [];
  for (const chain of listedChains(table)) {
    if (out.length > 0) out.push('');
    out.push(chainHeader(table, chain, opts), header(opts));
    chain.rules.forEach((r, i) => out.push(ruleLine(r, i + 1, rs.family, opts)));
  }
  return `${out.join('\n')}\n`;
}

function emptyTable(name: Table['name']): Table {
  const loc = { file: '', line: 0, column: 0 };
  const chains = new Map<string, Chain>();
  for (const h of BUILTIN_CHAINS[name])
    chains.set(h, { name: h, builtin: true, policy: 'ACCEPT', counters: { packets: 0, bytes: 0 }, rules: [], loc });
  return { name, chains };
}

// ---- extension print formats ----

/** The canonical save words of a module, with `!` attached to the option after it: [[name, args, negated]]. */
function saveOptions(text: string): { name: string; args: string[]; neg: boolean }[] {
  const words = lexLine(text).map((w) => w.text);
  const out: { name: string; args: string[]; neg: boolean }[] = [];
  let neg = false;
  for (const w of words) {
    if (w === '!') {
      neg = true;
      continue;
    }
    if (w.startsWith('--')) {
      out.push({ name: w.slice(2), args: [], neg });
      neg = false;
      continue;
    }
    out[out.length - 1]?.args.push(w);
  }
  return out;
}

const PROTO_NAMES: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp', 33: 'dccp', 136: 'udplite' };

function portText(port: number, proto: string, numeric: boolean): string {
  return (!numeric && serviceName(port, proto)) || String(port);
}

/** libxt_tcp/udp print_ports: ` spt:P`, ` spts:A:B`, `!` after the colon. */
function portsText(label: string, word: string, neg: boolean, proto: string, numeric: boolean): string {
  const [a, b] = word.split(':');
  const inv = neg ? '!' : '';
  if (b === undefined) return ` ${label}:${inv}${portText(Number(a), proto, numeric)}`;
  return ` ${label}s:${inv}${portText(Number(a), proto, numeric)}:${portText(Number(b), proto, numeric)}`;
}

const TCP_FLAGS: readonly [string, number][] = [
  ['FIN', 1],
  ['SYN', 2],
  ['RST', 4],
  ['PSH', 8],
  ['ACK', 16],
  ['URG', 32],
];

function tcpFlagBits(word: string): number {
  let bits = 0;
  for (const n of word.split(',')) bits |= n === 'ALL' ? 63 : n === 'NONE' ? 0 : (TCP_FLAGS.find(([f]) => f === n)?.[1] ?? 0);
  return bits;
}

function tcpFlagNames(bits: number): string {
  const names = TCP_FLAGS.filter(([, b]) => bits & b).map(([n]) => n);
  return names.length > 0 ? names.join(',') : 'NONE';
}

const hex2 = (n: number) => `0x${n.toString(16).toUpperCase().padStart(2, '0')}`;

function icmpText(word: string, neg: boolean, numeric: boolean): string {
  let type: number;
  let min = 0;
  let max = 0xff;
  if (word === 'any') type = 0xff;
  else {
    const [t, c] = word.split('/');
    type = Number(t);
    if (c !== undefined) min = max = Number(c);
  }
  if (!numeric) {
    const n = ICMP_NAMES.find((x) => x.type === type && x.codeMin === min && x.codeMax === max);
    if (n) return ` ${neg ? '!' : ''}${n.name}`;
  }
  let s = neg ? ' !' : '';
  s += `type ${type}`;
  if (min === max) s += ` code ${min}`;
  else if (min !== 0 || max !== 0xff) s += ` codes ${min}-${max}`;
  return s;
}

/** libxt_limit print_rate: the largest unit that keeps a whole number, as the save text already has it. */
function matchText(m: MatchUse, family: 4 | 6, numeric: boolean, proto: number): string {
  const name = m.ext.name;
  const text = m.ext.format(m.opts, family);
  const opts = saveOptions(text);
  const get = (n: string) => opts.find((o) => o.name === n);
  switch (name) {
    case 'tcp':
    case 'udp': {
      let s = ` ${name}`;
      const sp = get('sport');
      const dp = get('dport');
      if (sp) s += portsText('spt', sp.args[0] ?? '', sp.neg, name, numeric);
      if (dp) s += portsText('dpt', dp.args[0] ?? '', dp.neg, name, numeric);
      const opt = get('tcp-option');
      if (opt) s += ` option=${opt.neg ? '!' : ''}${opt.args[0]}`;
      const fl = get('tcp-flags');
      if (fl) {
        const mask = tcpFlagBits(fl.args[0] ?? '');
        const cmp = tcpFlagBits(fl.args[1] ?? '');
        s += ` flags:${fl.neg ? '!' : ''}`;
        s += numeric ? `${hex2(mask)}/${hex2(cmp)}` : `${tcpFlagNames(mask)}/${tcpFlagNames(cmp)}`;
      }
      return s;
    }
    case 'icmp': {
      const t = get('icmp-type');
      return ` icmp${t ? icmpText(t.args[0] ?? '', t.neg, numeric) : ''}`;
    }
    case 'multiport': {
      const o = opts[0];
      if (!o) break;
      const pname = PROTO_NAMES[proto] ?? 'tcp';
      const ports = (o.args[0] ?? '')
        .split(',')
        .map((p) => p.split(':').map((x) => portText(Number(x), pname, numeric)).join(':'))
        .join(',');
      return ` multiport ${o.name} ${o.neg ? ' !' : ''}${ports}`;
    }
    case 'conntrack':
    case 'state':
      // conntrack_dump prints with prefix "" what conntrack_save prints with "--".
      return ` ${text.replace(/(^| )--/g, '$1')}`;
    case 'mark': {
      const o = get('mark');
      return ` mark match${o?.neg ? ' !' : ''} ${o?.args[0] ?? ''}`;
    }
    case 'comment':
      return ` /* ${get('comment')?.args[0] ?? ''} */`;
    case 'limit': {
      const rate = get('limit')?.args[0] ?? '3/hour';
      return ` limit: avg ${rate} burst ${get('limit-burst')?.args[0] ?? '5'}`;
    }
    case 'addrtype': {
      let s = ' ADDRTYPE match';
      for (const [opt, label] of [
        ['src-type', 'src-type'],
        ['dst-type', 'dst-type'],
      ] as const) {
        const o = get(opt);
        if (o) s += ` ${label} ${o.neg ? '!' : ''}${o.args[0] ?? ''}`;
      }
      if (get('limit-iface-in')) s += ' limit-in';
      if (get('limit-iface-out')) s += ' limit-out';
      return s;
    }
    case 'statistic': {
      // print_match with prefix "": the same words as the save text, but `packet 0` is left out.
      let s = text.replace(/(^| )--/g, '$1');
      if (get('mode')?.args[0] === 'nth' && get('packet')?.args[0] === '0') s = s.replace(/ packet 0$/, '');
      return ` statistic ${s}`;
    }
    case 'mac':
      return ` MAC${get('mac-source')?.neg ? ' !' : ''} ${get('mac-source')?.args[0] ?? ''}`;
    case 'length': {
      const o = get('length');
      return ` length ${o?.neg ? '!' : ''}${o?.args[0] ?? ''}`;
    }
    case 'pkttype': {
      const o = get('pkt-type');
      return ` PKTTYPE ${o?.neg ? '!' : ''}= ${o?.args[0] ?? ''}`;
    }
    default:
      break;
  }
  // Not rebuilt: the save text (iptables prints these modules in formats of their own).
  return text ? ` ${name} ${text}` : ` ${name}`;
}

// What 1.8.9 prints for each syslog level (kernel-checked: 3 is `err`, 4 is `warn`).
const LOG_LEVELS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'];

function targetText(name: string, text: string, numeric: boolean): string {
  const opts = saveOptions(text);
  const get = (n: string) => opts.find((o) => o.name === n);
  switch (name) {
    case 'REJECT':
      return ` reject-with ${get('reject-with')?.args[0] ?? ''}`;
    case 'DNAT':
    case 'SNAT':
    case 'MASQUERADE':
    case 'REDIRECT': {
      let s = '';
      for (const o of opts) {
        if (o.name === 'to-destination' || o.name === 'to-source') s += ` to:${o.args[0] ?? ''}`;
        else if (o.name === 'to-ports') s += name === 'MASQUERADE' ? ` masq ports: ${o.args[0] ?? ''}` : ` redir ports ${o.args[0] ?? ''}`;
        else s += ` ${o.name}`;
      }
      return s;
    }
    case 'MARK': {
      const [v, m] = (get('set-xmark')?.args[0] ?? '0/0').split('/').map((x) => Number(x) >>> 0);
      const h = (x: number) => `0x${(x >>> 0).toString(16)}`;
      if (v === 0) return ` MARK and ${h(~m)}`;
      if (v === m) return ` MARK or ${h(v)}`;
      if (m === 0) return ` MARK xor ${h(v)}`;
      if (m === 0xffffffff) return ` MARK set ${h(v)}`;
      return ` MARK xset ${h(v)}/${h(m)}`;
    }
    case 'LOG': {
      const level = Number(get('log-level')?.args[0] ?? 4);
      const flags: [string, number, string][] = [
        ['log-tcp-sequence', 1, 'tcp-sequence'],
        ['log-tcp-options', 2, 'tcp-options'],
        ['log-ip-options', 4, 'ip-options'],
        ['log-uid', 8, 'uid'],
        ['log-macdecode', 0x20, 'macdecode'],
      ];
      let s = ' LOG';
      if (numeric) s += ` flags ${flags.reduce((a, [o, b]) => (get(o) ? a | b : a), 0)} level ${level}`;
      else {
        s += LOG_LEVELS[level] !== undefined ? ` level ${LOG_LEVELS[level]}` : ` UNKNOWN level ${level}`;
        for (const [o, , label] of flags) if (get(o)) s += ` ${label}`;
      }
      const prefix = get('log-prefix');
      if (prefix) s += ` prefix "${prefix.args[0] ?? ''}"`;
      return s;
    }
    case 'TCPMSS': {
      const mss = get('set-mss');
      return mss ? ` TCPMSS set ${mss.args[0] ?? ''}` : ' TCPMSS clamp to PMTU';
    }
    default:
      break;
  }
  // Not rebuilt (targets without options print nothing, as ACCEPT and DROP do): the name and the save text.
  return text ? ` ${name} ${text}` : '';
}
